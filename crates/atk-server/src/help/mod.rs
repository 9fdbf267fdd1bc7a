//! Page Help (SPEC section 6): answers about the current console page,
//! only from its approved sources. It writes nothing of its own: an answer
//! is one passage of a source, labelled with it, or the exact fallback.
//!
//! `help/routes.toml` (the registry), `help/pages/*.md` (each page's doc) and
//! `help/synonyms.txt` are files a writer edits; they are embedded in the
//! binary. Page copy is each page's template rendered with sample data.

pub mod eval;
pub mod guard;
pub mod index;
pub mod sources;
pub mod text;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use atk_api::help::{HelpAnswer, RelatedSurface, RouteInfo, SourceEntry, SourceQuote};
use atk_core::ids::ProjectId;
use include_dir::{Dir, include_dir};
use serde::Deserialize;

pub use index::Gate;
use index::{Index, Passage, Signals, SourceKind};
use text::Analyzer;

/// The exact out-of-scope answer of Page Help (SPEC section 6).
pub const PAGE_FALLBACK: &str =
    "I can help with this page only. I don't see that information here.";
/// The exact out-of-scope answer of the Knowledge Hub (SPEC section 6).
/// The Knowledge Hub's name where a help route id is expected (the
/// evaluation's question sets, the coverage gaps).
pub const HUB_ROUTE: &str = "knowledge-hub";

pub const HUB_FALLBACK: &str = "I don't see that in the Knowledge Hub yet.";

static HELP_DIR: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../help");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Registry {
    route: Vec<RouteEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteEntry {
    id: String,
    title: String,
    surface: String,
    platform_step: String,
    page: String,
    console_path: String,
    doc: String,
    sources: Vec<SourceEntry>,
    suggested: Vec<SuggestedEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestedEntry {
    pub question: String,
    /// The source kind that must answer it (checked by a test).
    pub source: String,
}

struct Route {
    entry: RouteEntry,
    /// Page copy, doc and metadata: the same for every caller.
    fixed: Vec<Passage>,
    index: Index,
    /// Page section id → its heading, for related-surface labels.
    section_headings: HashMap<String, String>,
}

impl Route {
    fn info(&self) -> RouteInfo {
        RouteInfo {
            route: self.entry.id.clone(),
            title: self.entry.title.clone(),
            surface: self.entry.surface.clone(),
            platform_step: self.entry.platform_step.clone(),
            allowed_sources: self.entry.sources.clone(),
            suggested_questions: self
                .entry
                .suggested
                .iter()
                .map(|s| s.question.clone())
                .collect(),
        }
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("id", &self.entry.id)
            .field("passages", &self.fixed.len())
            .finish()
    }
}

/// The exact fallback: no sources, no related surface.
fn fallback_answer(text: &str, suggested: &[String]) -> HelpAnswer {
    HelpAnswer {
        in_scope: false,
        answer: text.to_owned(),
        sources: Vec::new(),
        related_surface: None,
        suggested_questions: suggested.to_vec(),
    }
}

/// Why help could not be given at all.
#[derive(Debug, thiserror::Error)]
pub enum HelpError {
    #[error("no help route {0}; GET /v1/help/routes lists them")]
    UnknownRoute(String),
}

/// The help engine: the registry with each route's fixed passages indexed,
/// and the Knowledge Hub.
#[derive(Debug)]
pub struct Help {
    analyzer: Analyzer,
    routes: Vec<Route>,
    hub: Index,
    /// Every route's fixed passages and the Knowledge Hub in one index, so
    /// that scores compare across pages (see [`Gate::max_rival_ratio`]).
    arena: Index,
    /// Whose each arena passage is: a route's position, or `None` for the
    /// Knowledge Hub.
    arena_owners: Vec<Option<usize>>,
    gate: Gate,
    /// A route's index with one project's page data added, by route and
    /// data: page data changes seldom, and building the index is most of
    /// what a question costs.
    with_data: Mutex<HashMap<DataKey, Arc<Index>>>,
}

/// A route id and the page data added to its index.
type DataKey = (String, Vec<Passage>);

/// How many route-and-page-data indexes are kept before starting afresh.
const KEPT_DATA_INDEXES: usize = 256;

/// Suggested questions of the global helper.
pub const HUB_SUGGESTED: [&str; 4] = [
    "How do I rotate a key without downtime?",
    "What does ENTITLEMENT_TRIAL_ENDED mean?",
    "How should I store secrets?",
    "How do I run several nodes on PostgreSQL?",
];

/// A Knowledge Hub document: its file name and its markdown.
#[derive(Debug, Clone)]
pub struct HubDocument {
    pub name: String,
    pub markdown: String,
}

/// The Knowledge Hub documents shipped in the binary (`help/hub/*.md`).
pub fn shipped_hub_documents() -> Vec<HubDocument> {
    let mut documents: Vec<HubDocument> = HELP_DIR
        .get_dir("hub")
        .map(|dir| {
            dir.files()
                .filter(|file| file.path().extension().is_some_and(|ext| ext == "md"))
                .filter_map(|file| {
                    Some(HubDocument {
                        name: file.path().file_name()?.to_string_lossy().into_owned(),
                        markdown: file.contents_utf8()?.to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    documents.sort_by(|a, b| a.name.cmp(&b.name));
    documents
}

fn file(path: &str) -> &'static str {
    HELP_DIR
        .get_file(path)
        .and_then(|file| file.contents_utf8())
        .unwrap_or_else(|| panic!("help/{path} is embedded and UTF-8 (checked by the help tests)"))
}

/// The help route ids of the embedded registry, without building any index
/// (the OpenAPI document lists them as the values `route` may take).
pub fn route_ids() -> Vec<String> {
    let registry: Registry =
        toml::from_str(file("routes.toml")).expect("help/routes.toml is valid");
    registry.route.into_iter().map(|route| route.id).collect()
}

impl Help {
    /// Loads the embedded registry and docs and renders each page's copy.
    /// Panics on a malformed registry: the tests load it, so a broken file
    /// never ships.
    pub fn load() -> Self {
        Self::load_with(Vec::new())
    }

    /// As [`Help::load`], with the operator's own Knowledge Hub documents
    /// (`--knowledge-dir`) beside the shipped ones.
    pub fn load_with(operator_documents: Vec<HubDocument>) -> Self {
        let registry: Registry =
            toml::from_str(file("routes.toml")).expect("help/routes.toml is valid");
        let analyzer = Analyzer::new(file("synonyms.txt"));
        let routes = registry
            .route
            .into_iter()
            .map(|entry| {
                let route_id: &'static str = Box::leak(entry.id.clone().into_boxed_str());
                let label = |kind: &str, default: &str| {
                    entry
                        .sources
                        .iter()
                        .find(|s| s.kind == kind)
                        .map_or(default.to_owned(), |s| s.label.clone())
                };
                let html = crate::http::console::sample_page(&entry.page, route_id)
                    .unwrap_or_else(|| panic!("help route {} names an unknown page", entry.id))
                    .expect("console pages render with sample data");
                let page_sections = sources::page_sections(&html);
                let section_headings: HashMap<String, String> = page_sections
                    .iter()
                    .filter_map(|s| Some((s.id.clone()?, s.heading.clone())))
                    .collect();
                let mut fixed = sources::page_copy(&html, &label("page_copy", "Page copy"));
                let headings = section_headings.clone();
                fixed.extend(sources::markdown(
                    file(&entry.doc),
                    SourceKind::MarkdownDoc,
                    &label("markdown_doc", "Markdown doc"),
                    |heading| section_for_doc_heading(&headings, heading),
                ));
                fixed.push(sources::route_metadata(
                    &entry.id,
                    &entry.title,
                    &entry.surface,
                    &entry.platform_step,
                    &label("route_metadata", "Route metadata"),
                ));
                let index = Index::new(fixed.clone(), &analyzer);
                Route {
                    entry,
                    fixed,
                    index,
                    section_headings,
                }
            })
            .collect();
        let mut hub_passages = Vec::new();
        for document in shipped_hub_documents()
            .into_iter()
            .chain(operator_documents)
        {
            let title = document
                .markdown
                .lines()
                .find_map(|line| line.strip_prefix("# "))
                .map_or(document.name.clone(), |title| title.trim().to_owned());
            hub_passages.extend(sources::markdown(
                &document.markdown,
                SourceKind::KnowledgeHub,
                &title,
                |_| None,
            ));
        }
        let routes: Vec<Route> = routes;
        let mut arena_passages = Vec::new();
        let mut arena_owners = Vec::new();
        for (position, route) in routes.iter().enumerate() {
            arena_passages.extend(route.fixed.iter().cloned());
            arena_owners.extend(std::iter::repeat_n(Some(position), route.fixed.len()));
        }
        arena_passages.extend(hub_passages.iter().cloned());
        arena_owners.extend(std::iter::repeat_n(None, hub_passages.len()));
        let arena = Index::new(arena_passages, &analyzer);
        let hub = Index::new(hub_passages, &analyzer);
        Self {
            analyzer,
            routes,
            hub,
            arena,
            arena_owners,
            gate: Gate::TUNED,
            with_data: Mutex::new(HashMap::new()),
        }
    }

    /// Answers from the Knowledge Hub only, or with its exact fallback.
    pub fn ask_hub(&self, question: &str) -> (HelpAnswer, Signals) {
        let suggested: Vec<String> = HUB_SUGGESTED.iter().map(|q| (*q).to_owned()).collect();
        let fallback = |signals| (fallback_answer(HUB_FALLBACK, &suggested), signals);
        if question.chars().count() > 500 || guard::refuses(question) {
            return fallback(Signals::NONE);
        }
        let terms = self.corrected_terms(&self.hub, question);
        let (best, signals) = self.hub.answer(&terms, &self.gate);
        let Some(best) = best else {
            return fallback(signals);
        };
        let passage = &self.hub.passages()[best];
        (
            HelpAnswer {
                in_scope: true,
                answer: passage.text.clone(),
                sources: vec![SourceQuote {
                    kind: passage.kind,
                    label: passage.label.clone(),
                    text: passage.text.clone(),
                }],
                related_surface: None,
                suggested_questions: suggested,
            },
            signals,
        )
    }

    /// The question's terms, with hurried typing read as the nearest word
    /// of `index` (one edit away).
    fn corrected_terms(&self, index: &Index, question: &str) -> Vec<String> {
        let mut terms = Vec::new();
        for (word, term) in self.analyzer.content_words(question) {
            let near = (!index.knows(&term))
                .then(|| index.nearest(&word))
                .flatten();
            match near {
                Some(near) => terms.push(near.to_owned()),
                None => self.analyzer.push_terms(&word, &mut terms),
            }
        }
        terms
    }

    /// The Knowledge Hub's baseline: top BM25 passage and raw score.
    pub fn hub_baseline_top(&self, question: &str) -> Option<(String, f64)> {
        let signals = self.hub.signals(&self.analyzer.terms(question));
        signals
            .best
            .map(|best| (self.hub.passages()[best].text.clone(), signals.raw_score))
    }

    /// The gate in use.
    pub fn gate(&self) -> Gate {
        self.gate
    }

    /// Replaces the gate (the evaluation's tuning tries several).
    pub fn set_gate(&mut self, gate: Gate) {
        self.gate = gate;
    }

    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    fn route(&self, id: &str) -> Result<&Route, HelpError> {
        self.routes
            .iter()
            .find(|route| route.entry.id == id)
            .ok_or_else(|| HelpError::UnknownRoute(id.chars().take(100).collect()))
    }

    /// Every route, as `GET /v1/help/routes` lists them.
    pub fn routes(&self) -> Vec<RouteInfo> {
        self.routes.iter().map(Route::info).collect()
    }

    /// One route, as `GET /v1/help/routes` lists it.
    pub fn route_info(&self, id: &str) -> Option<RouteInfo> {
        self.route(id).ok().map(Route::info)
    }

    /// The suggested questions of a route with the source kind each must be
    /// answered from.
    pub fn suggested(&self, route: &str) -> Result<Vec<SuggestedEntry>, HelpError> {
        Ok(self.route(route)?.entry.suggested.clone())
    }

    /// The console page of a route in `project`.
    pub fn console_path(&self, route: &str, project: &ProjectId) -> Option<String> {
        let route = self.route(route).ok()?;
        Some(
            route
                .entry
                .console_path
                .replace("{project_id}", project.as_str()),
        )
    }

    /// Whether the route quotes the project's data.
    pub fn uses_page_data(&self, route: &str) -> bool {
        self.route(route)
            .is_ok_and(|r| r.entry.sources.iter().any(|s| s.kind == "page_data"))
    }

    /// The label of a route's page data source.
    pub fn page_data_label(&self, route: &str) -> String {
        self.route(route)
            .ok()
            .and_then(|r| r.entry.sources.iter().find(|s| s.kind == "page_data"))
            .map_or("Project data".to_owned(), |s| s.label.clone())
    }

    /// Answers `question` on `route` from its fixed passages plus
    /// `page_data` (already limited to what this caller may see).
    pub fn ask(
        &self,
        route: &str,
        question: &str,
        project: Option<&ProjectId>,
        page_data: Vec<Passage>,
    ) -> Result<(HelpAnswer, Signals), HelpError> {
        let route = self.route(route)?;
        let suggested: Vec<String> = route
            .entry
            .suggested
            .iter()
            .map(|s| s.question.clone())
            .collect();
        let fallback = |signals| Ok((fallback_answer(PAGE_FALLBACK, &suggested), signals));
        if question.chars().count() > 500 || guard::refuses(question) {
            return fallback(Signals::NONE);
        }
        let with_data;
        let index = if page_data.is_empty() {
            &route.index
        } else {
            with_data = self.index_with_data(route, page_data);
            with_data.as_ref()
        };
        let terms = self.corrected_terms(index, question);
        let mut signals = index.signals(&terms);
        signals.neighbour_coverage = self
            .routes
            .iter()
            .filter(|other| other.entry.id != route.entry.id)
            // The Knowledge Hub is about everything, so it is no neighbour:
            // only another page covering the question better says the
            // question is about that page.
            .map(|other| other.index.signals(&terms).coverage)
            .fold(0.0, f64::max);
        // The arena holds no project's data: a question this project's data
        // answers has no rival there to lose to.
        let answered_by_data = signals
            .best
            .is_some_and(|best| index.passages()[best].kind == SourceKind::PageData);
        if !answered_by_data {
            (signals.rival_ratio, signals.hub_ratio) = self.rivals(route, &terms);
        }
        let best = self.gate.admits(&signals).then_some(signals.best).flatten();
        let Some(best) = best else {
            return fallback(signals);
        };
        let passage = &index.passages()[best];
        let related_surface = passage.section.as_ref().map(|section| RelatedSurface {
            label: match route.section_headings.get(section) {
                Some(heading) => format!("{} · {heading}", route.entry.surface),
                None => route.entry.surface.clone(),
            },
            href: format!(
                "{}#{section}",
                project.map_or("/console".to_owned(), |p| route
                    .entry
                    .console_path
                    .replace("{project_id}", p.as_str()))
            ),
        });
        Ok((
            HelpAnswer {
                in_scope: true,
                answer: passage.text.clone(),
                sources: vec![SourceQuote {
                    kind: passage.kind,
                    label: passage.label.clone(),
                    text: passage.text.clone(),
                }],
                related_surface,
                suggested_questions: suggested,
            },
            signals,
        ))
    }

    /// How far the best passage of another page, and of the Knowledge Hub,
    /// outscores the route's own best in the arena.
    fn rivals(&self, route: &Route, terms: &[String]) -> (f64, f64) {
        let position = self
            .routes
            .iter()
            .position(|r| std::ptr::eq(r, route))
            .expect("the route is one of ours");
        let (mut own, mut rival, mut hub) = (0.0_f64, 0.0_f64, 0.0_f64);
        for (score, owner) in self.arena.scores(terms).into_iter().zip(&self.arena_owners) {
            match owner {
                Some(p) if *p == position => own = own.max(score),
                Some(_) => rival = rival.max(score),
                None => hub = hub.max(score),
            }
        }
        let ratio = |other: f64| {
            if own > 0.0 {
                other / own
            } else if other > 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        };
        (ratio(rival), ratio(hub))
    }

    /// The route's index with `page_data` added, built once per distinct
    /// data.
    fn index_with_data(&self, route: &Route, page_data: Vec<Passage>) -> Arc<Index> {
        // Keyed by the data itself, not a hash of it: a collision must not
        // answer one project's question from another project's data.
        let key = (route.entry.id.clone(), page_data);
        let cached = self
            .with_data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(index) = cached {
            return index;
        }
        let index = Arc::new(route.index.with(key.1.clone(), &self.analyzer));
        let mut kept = self
            .with_data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.len() >= KEPT_DATA_INDEXES {
            kept.clear();
        }
        kept.insert(key, index.clone());
        index
    }

    /// Every fixed passage of every route (for the no-secret tests).
    pub fn all_fixed_passages(&self) -> impl Iterator<Item = &Passage> {
        self.routes.iter().flat_map(|route| route.fixed.iter())
    }
}

/// The page section a doc heading is about: the section whose heading
/// shares a content word with it ("Expiration" → "Step 4 Set expiration").
fn section_for_doc_heading(
    headings: &HashMap<String, String>,
    doc_heading: &str,
) -> Option<String> {
    let wanted: Vec<String> = text::words(doc_heading)
        .into_iter()
        .filter(|w| !Analyzer::is_stop_word(w) && w.len() > 3)
        .collect();
    let mut ids: Vec<&String> = headings.keys().collect();
    ids.sort();
    ids.into_iter()
        .find(|id| {
            let heading = text::words(&headings[*id]).join(" ");
            wanted
                .iter()
                .any(|w| heading.contains(&w[..w.len().min(6)]))
        })
        .cloned()
}
