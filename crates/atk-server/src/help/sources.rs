//! The approved sources, cut into passages: the page's copy (its template
//! as it renders), the page's data for this caller, its markdown doc and
//! its route metadata. Every passage goes through [`scrub`] on the way in,
//! so no secret, hash, token or one-time link can be quoted.

use atk_core::Catalog;
use atk_core::access::Operation;
use atk_core::entitlement::{EntitlementStatus, blocks, describe};
use atk_core::ids::ProjectId;

use super::index::{Passage, SourceKind};
use crate::service::{Caller, Service, ServiceError};

/// Removes anything secret-shaped: `atk_live_…`/`atk_test_…`/`atk_admin_…`
/// values (cut to their prefix), console setup and invite link tokens, and
/// any run of 32 or more letters and digits (hashes, tokens, CSRF values).
/// Key ids (26 characters) and words stay.
pub fn scrub(text: &str) -> String {
    let text = atk_core::secret::redact_secrets(text);
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 32 {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn passage(kind: SourceKind, label: &str, section: Option<&str>, text: &str) -> Passage {
    Passage {
        kind,
        label: label.to_owned(),
        section: section.map(str::to_owned),
        text: scrub(text),
        asked: String::new(),
    }
}

/// Decodes the entities askama writes (`&#39;`, `&#38;`, …) and the named
/// ones a template may hold.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|end| *end <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => entity
                .strip_prefix('#')
                .and_then(|n| n.parse::<u32>().ok())
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One part of a page: the section's id, its heading, its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSection {
    pub id: Option<String>,
    pub heading: String,
    pub text: String,
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

/// Cuts the `<main>` of a rendered page into its top-level `<section>` and
/// `<fieldset>` parts (the text before the first one is the introduction).
/// Scripts, styles and drawings are skipped; headings (`h1`–`h3`,
/// `legend`, `summary`) start with a full stop so they read as sentences.
pub fn page_sections(html: &str) -> Vec<PageSection> {
    let main = html
        .find("<main")
        .and_then(|start| {
            let end = html[start..].find("</main>")? + start;
            Some(&html[start..end])
        })
        .unwrap_or(html);
    let mut sections = vec![PageSection {
        id: None,
        heading: String::new(),
        text: String::new(),
    }];
    let mut depth = 0usize;
    let mut skipping: Option<&str> = None;
    let mut in_heading = false;
    let mut rest = main;
    while !rest.is_empty() {
        let Some(open) = rest.find('<') else {
            if skipping.is_none() {
                push_text(sections.last_mut().unwrap(), rest, in_heading);
            }
            break;
        };
        if skipping.is_none() {
            push_text(sections.last_mut().unwrap(), &rest[..open], in_heading);
        }
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let tag = &rest[open..open + close + 1];
        rest = &rest[open + close + 1..];
        let name: String = tag
            .trim_start_matches('<')
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let closing = tag.starts_with("</");
        if let Some(skipped) = skipping {
            if closing && name == skipped {
                skipping = None;
            }
            continue;
        }
        match (name.as_str(), closing) {
            ("script" | "style" | "svg", false) => {
                skipping = Some(match name.as_str() {
                    "script" => "script",
                    "style" => "style",
                    _ => "svg",
                });
            }
            ("section" | "fieldset", false) => {
                if depth == 0 {
                    sections.push(PageSection {
                        id: attribute(tag, "id"),
                        heading: String::new(),
                        text: String::new(),
                    });
                }
                depth += 1;
            }
            ("section" | "fieldset", true) => depth = depth.saturating_sub(1),
            ("h1" | "h2" | "h3" | "legend" | "summary", false) => {
                in_heading = true;
                push_text(sections.last_mut().unwrap(), " ", false);
            }
            ("h1" | "h2" | "h3" | "legend" | "summary", true) => {
                in_heading = false;
                sections.last_mut().unwrap().text.push_str(". ");
            }
            ("p" | "li" | "tr" | "div" | "dt" | "dd" | "label" | "br" | "td" | "th", _) => {
                push_text(sections.last_mut().unwrap(), " ", false);
            }
            _ => {}
        }
    }
    sections
        .into_iter()
        .map(|mut section| {
            section.text = tidy(&section.text);
            section.heading = tidy(&section.heading);
            section
        })
        .filter(|section| !section.text.is_empty())
        .collect()
}

fn push_text(section: &mut PageSection, raw: &str, heading: bool) {
    let text = decode_entities(raw);
    if heading {
        section.heading.push_str(&text);
        section.heading.push(' ');
    }
    section.text.push_str(&text);
}

/// Collapses white space and the stray full stops headings leave.
fn tidy(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .replace(" .", ".")
        .replace(".. ", ". ")
        .replace(": .", ":")
        .trim_start_matches(". ")
        .trim()
        .to_owned()
}

/// The page copy of a rendered page, one passage per section.
pub fn page_copy(html: &str, label: &str) -> Vec<Passage> {
    page_sections(html)
        .iter()
        .map(|section| {
            passage(
                SourceKind::PageCopy,
                label,
                section.id.as_deref(),
                &section.text,
            )
        })
        .collect()
}

/// A markdown doc, one passage per `##` section; the label names the doc's
/// title and the section. `section_ids` maps a heading to the page section
/// it is about (for the related-surface link). A whole-line HTML comment
/// `<!-- asked: ... -->` lists other ways people ask for the section: it is
/// searched but never shown. Other comments are the writer's own notes.
pub fn markdown(
    doc: &str,
    kind: SourceKind,
    label: &str,
    section_of: impl Fn(&str) -> Option<String>,
) -> Vec<Passage> {
    let mut passages = Vec::new();
    let mut heading: Option<String> = None;
    let mut body = String::new();
    let mut asked = String::new();
    let flush = |heading: &Option<String>, body: &str, asked: &str, passages: &mut Vec<Passage>| {
        let text = body.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(heading) = heading.as_ref().filter(|_| !text.is_empty()) {
            passages.push(Passage {
                kind,
                label: format!("{label} · {heading}"),
                section: section_of(heading),
                text: scrub(&format!("{heading}. {text}")),
                asked: scrub(asked.trim()),
            });
        }
    };
    for line in doc.lines() {
        let comment = line
            .trim()
            .strip_prefix("<!--")
            .and_then(|rest| rest.strip_suffix("-->"))
            .map(str::trim);
        if let Some(title) = line.strip_prefix("## ") {
            flush(&heading, &body, &asked, &mut passages);
            heading = Some(title.trim().to_owned());
            body.clear();
            asked.clear();
        } else if let Some(comment) = comment {
            if let Some(questions) = comment.strip_prefix("asked:") {
                asked.push_str(questions);
                asked.push(' ');
            }
        } else if !line.starts_with("# ") {
            body.push_str(line);
            body.push('\n');
        }
    }
    flush(&heading, &body, &asked, &mut passages);
    passages
}

/// The route's metadata as one passage.
pub fn route_metadata(
    id: &str,
    title: &str,
    surface: &str,
    platform_step: &str,
    label: &str,
) -> Passage {
    let mut metadata = passage(
        SourceKind::RouteMetadata,
        label,
        None,
        &format!(
            "This page is {title}. Route: {id}. Surface: {surface}. Platform step: {platform_step}."
        ),
    );
    // Every page is asked where the asker is; the metadata is what answers.
    metadata.asked = ROUTE_METADATA_ASKED.to_owned();
    metadata
}

/// How people ask which page they are on (searched, never shown).
const ROUTE_METADATA_ASKED: &str = "what page is this, which page am i on, where am i, \
     what is this page for, what is this screen, which screen is this, what is this page called";

/// What the page shows this caller about `project`: its id, environments,
/// Commerce entitlements and the key kinds. Only for a project the caller
/// may read (the same access rules as the API); otherwise nothing.
pub async fn page_data(
    service: &Service,
    caller: &Caller,
    project_id: &ProjectId,
    label: &str,
) -> Result<Vec<Passage>, ServiceError> {
    if !caller.principal.may(Operation::ReadProject, project_id) {
        return Ok(Vec::new());
    }
    let project = match service.get_project(caller, project_id).await {
        Ok(project) => project,
        Err(ServiceError::NotFound(_)) => return Ok(Vec::new()),
        Err(other) => return Err(other),
    };
    let entitlements = service.list_entitlements(caller, project_id).await?;
    Ok(project_data(&project, &entitlements, service.now(), label))
}

/// The page data passages of a project with these entitlements (pure: the
/// evaluation uses it with the demo project's initial table).
pub fn project_data(
    project: &atk_core::project::Project,
    entitlements: &[atk_core::entitlement::Entitlement],
    now: chrono::DateTime<chrono::Utc>,
    label: &str,
) -> Vec<Passage> {
    let catalog = Catalog::get();
    let mut passages = vec![passage(
        SourceKind::PageData,
        label,
        None,
        &format!(
            "This project is {} (project ID {}). Keys belong to one environment: production \
             (secrets start atk_live_), staging or development (secrets start atk_test_).",
            project.name, project.project_id
        ),
    )];
    for product in &catalog.products {
        let entitlement = entitlements.iter().find(|e| e.product == product.id);
        let status = entitlement.map_or(EntitlementStatus::Disabled, |e| e.status);
        let verdict = if blocks(entitlement, now).is_some() {
            "blocked today"
        } else {
            "allowed today"
        };
        let scopes: Vec<String> = product
            .actions
            .iter()
            .map(|a| format!("{}: {}", a.scope, a.description))
            .collect();
        passages.push(passage(
            SourceKind::PageData,
            label,
            Some("step-entitlements"),
            &format!(
                "{} entitlement for this project: {}. {} Its actions are {verdict}. {}",
                product.name,
                status.label(),
                describe(product, entitlement, now),
                scopes.join(" ")
            ),
        ));
    }
    for kind in &catalog.kinds {
        passages.push(passage(
            SourceKind::PageData,
            label,
            Some("step-kind"),
            &format!(
                "{} ({}): {} Default use: {}",
                kind.name, kind.badge, kind.summary, kind.default_use
            ),
        ));
    }
    passages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_leaves_words_and_key_ids_and_removes_secrets_and_tokens() {
        let secret = "atk_live_0123456789abcdefghijABCDEFGHIJ0123456";
        let text = format!(
            "key {secret} id key_0000000000000000000000 csrf {} link /console/setup/{}",
            "ab".repeat(32),
            "Zz9".repeat(15)
        );
        let scrubbed = scrub(&text);
        assert!(!scrubbed.contains(&secret[9..]), "{scrubbed}");
        assert!(scrubbed.contains("key_0000000000000000000000"));
        assert!(!scrubbed.contains(&"ab".repeat(32)));
        assert!(!scrubbed.contains(&"Zz9".repeat(15)));
        assert!(
            scrubbed.contains("atk_live_"),
            "the prefix is kept: {scrubbed}"
        );
    }

    #[test]
    fn a_page_is_cut_into_its_sections_with_headings_as_sentences() {
        let html = r#"<header>Nav</header><main><h1>Create Key Flow</h1><p>Intro &amp; more.</p>
            <section id="step-a"><h2>Step A</h2><p>First &#39;part&#39;</p><svg><text>9</text></svg></section>
            <fieldset id="step-b"><legend>Step B</legend><label>Pick</label><section>inner</section></fieldset></main>"#;
        let sections = page_sections(html);
        let summary: Vec<(Option<&str>, &str)> = sections
            .iter()
            .map(|s| (s.id.as_deref(), s.text.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (None, "Create Key Flow. Intro & more."),
                (Some("step-a"), "Step A. First 'part'"),
                (Some("step-b"), "Step B. Pick inner"),
            ]
        );
    }
}
