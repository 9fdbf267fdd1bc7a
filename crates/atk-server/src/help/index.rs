//! BM25 over one route's passages, and the gate that decides whether the
//! best passage answers the question or the answer is the fallback.

use std::collections::{HashMap, HashSet};

pub use atk_api::help::SourceKind;

use super::text::Analyzer;

/// How many times a passage's heading words count (see [`Index::add`]).
const HEADING_WEIGHT: usize = 2;

/// A passage's heading: its first sentence, which for page copy and docs
/// is the section's heading ("Step 4 Set expiration. Choose how long ...").
/// Long first sentences are not headings and do not count.
fn heading(text: &str) -> &str {
    let first = text.split(". ").next().unwrap_or(text);
    if first.split_whitespace().count() <= 10 {
        first
    } else {
        ""
    }
}

/// BM25's usual constants.
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// One answerable piece of an approved source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Passage {
    pub kind: SourceKind,
    /// The source's label as the widget shows it ("Page copy", a doc's title).
    pub label: String,
    /// The page section it is about, for the related-surface link.
    pub section: Option<String>,
    pub text: String,
    /// Other ways people ask for this passage, written by the doc's writer
    /// (`<!-- asked: ... -->` in a doc): searched, never shown, so an
    /// answer is still only the source's own words.
    pub asked: String,
}

/// The gate's thresholds (tuned on the development split only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    /// Share of the question's content words the route never uses, above
    /// which the question is about something else.
    pub max_unknown: f64,
    /// Share of the question's content words the best passage contains.
    pub min_coverage: f64,
    /// The best score as a share of what a passage holding every question
    /// term once would score.
    pub min_normalised: f64,
    /// How far another page may cover the question
    /// better than this route before the question counts as being about
    /// that other place: "is revoking reversible" asked on the create flow
    /// belongs to the key's detail page, even though the create flow says
    /// "revoke" once.
    pub max_neighbour_lead: f64,
    /// How far another page's best passage may outscore this route's best
    /// in the arena (every page and the Knowledge Hub in one index, so
    /// scores compare), as a ratio: "how do I create a key" asked on the
    /// audit page scores far higher on the create flow than on the audit
    /// page's "Key actions in the log".
    pub max_rival_ratio: f64,
    /// The same for the Knowledge Hub's best passage: a fact only the hub
    /// holds ("how is the checksum computed") is no question for a page.
    pub max_hub_ratio: f64,
}

impl Gate {
    /// Found by `atk help-eval --tune` on the dev split only.
    pub const TUNED: Self = Self {
        max_unknown: 0.4,
        min_coverage: 0.45,
        min_normalised: 0.4,
        max_neighbour_lead: 0.45,
        max_rival_ratio: 1.5,
        max_hub_ratio: 1.75,
    };

    /// Lets every best passage through (the evaluation's tuning judges
    /// gates on what this one saw).
    pub const OPEN: Self = Self {
        max_unknown: 1.0,
        min_coverage: 0.0,
        min_normalised: 0.0,
        max_neighbour_lead: f64::INFINITY,
        max_rival_ratio: f64::INFINITY,
        max_hub_ratio: f64::INFINITY,
    };

    /// Whether the best passage answers, given what the gate saw.
    pub fn admits(&self, signals: &Signals) -> bool {
        signals.best.is_some()
            && signals.unknown <= self.max_unknown
            && signals.coverage >= self.min_coverage
            && signals.normalised >= self.min_normalised
            && signals.neighbour_coverage - signals.coverage <= self.max_neighbour_lead
            && signals.rival_ratio <= self.max_rival_ratio
            && signals.hub_ratio <= self.max_hub_ratio
    }
}

/// What the gate saw, for evaluation and tuning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signals {
    pub best: Option<usize>,
    pub raw_score: f64,
    pub normalised: f64,
    pub coverage: f64,
    pub unknown: f64,
    pub margin: f64,
    /// The best coverage of the question by another page's route.
    pub neighbour_coverage: f64,
    /// Another page's best arena score over this route's (0 when no other
    /// page matches; infinite when only another page does).
    pub rival_ratio: f64,
    /// The Knowledge Hub's best arena score over this route's.
    pub hub_ratio: f64,
}

impl Signals {
    /// Nothing matched (or nothing was searched).
    pub const NONE: Self = Self {
        best: None,
        raw_score: 0.0,
        normalised: 0.0,
        coverage: 0.0,
        unknown: 1.0,
        margin: 0.0,
        neighbour_coverage: 0.0,
        rival_ratio: 0.0,
        hub_ratio: 0.0,
    };
}

#[derive(Debug)]
pub struct Index {
    passages: Vec<Passage>,
    term_counts: Vec<HashMap<String, u32>>,
    lengths: Vec<f64>,
    average_length: f64,
    document_frequency: HashMap<String, u32>,
    /// Every word the passages use as written (folded), with its term: a
    /// mistyped question word is corrected against these, before stemming
    /// turns "expiraton" and "expiration" into stems too far apart.
    surface_words: HashMap<String, String>,
    /// The same words by their length in characters, so a mistyped word is
    /// compared only with words of about its length.
    surface_by_length: HashMap<usize, Vec<String>>,
}

impl Index {
    pub fn new(passages: Vec<Passage>, analyzer: &Analyzer) -> Self {
        let empty = Self {
            passages: Vec::new(),
            term_counts: Vec::new(),
            lengths: Vec::new(),
            average_length: 1.0,
            document_frequency: HashMap::new(),
            surface_words: HashMap::new(),
            surface_by_length: HashMap::new(),
        };
        empty.with(passages, analyzer)
    }

    /// This index with `extra` passages added; only the new passages are
    /// analysed (a question with page data pays for those alone).
    pub fn with(&self, extra: Vec<Passage>, analyzer: &Analyzer) -> Self {
        let mut index = Self {
            passages: self.passages.clone(),
            term_counts: self.term_counts.clone(),
            lengths: self.lengths.clone(),
            average_length: self.average_length,
            document_frequency: self.document_frequency.clone(),
            surface_words: self.surface_words.clone(),
            surface_by_length: self.surface_by_length.clone(),
        };
        for passage in extra {
            index.add(passage, analyzer);
        }
        let total: f64 = index.lengths.iter().sum();
        index.average_length = (total / index.lengths.len().max(1) as f64).max(1.0);
        index
    }

    fn add(&mut self, passage: Passage, analyzer: &Analyzer) {
        // The label is part of what a passage is about.
        let text = format!("{} {} {}", passage.label, passage.text, passage.asked);
        let mut terms = analyzer.terms(&text);
        // A passage is most about what its heading names: the heading's
        // words count HEADING_WEIGHT times.
        for _ in 1..HEADING_WEIGHT {
            terms.extend(analyzer.terms(heading(&passage.text)));
        }
        for (word, term) in analyzer.content_words(&text) {
            if !super::text::is_identifier(&word) && !self.surface_words.contains_key(&word) {
                self.surface_by_length
                    .entry(word.chars().count())
                    .or_default()
                    .push(word.clone());
                self.surface_words.insert(word, term);
            }
        }
        self.lengths.push(terms.len() as f64);
        let mut counts: HashMap<String, u32> = HashMap::new();
        for term in terms {
            *counts.entry(term).or_default() += 1;
        }
        for term in counts.keys() {
            *self.document_frequency.entry(term.clone()).or_default() += 1;
        }
        self.term_counts.push(counts);
        self.passages.push(passage);
    }

    /// Whether any passage holds `term`.
    pub fn knows(&self, term: &str) -> bool {
        self.document_frequency.contains_key(term)
    }

    /// The term of the word the passages use that is one edit away from
    /// `word` (two for long words), for hurried typing ("expiraton");
    /// `None` when there is none or the word is short (short words are too
    /// easily something else).
    pub fn nearest(&self, word: &str) -> Option<&str> {
        let length = word.chars().count();
        if length < 5 || super::text::is_identifier(word) {
            return None;
        }
        let limit = if length >= 8 { 2 } else { 1 };
        let word: Vec<char> = word.chars().collect();
        (length - limit..=length + limit)
            .filter_map(|l| self.surface_by_length.get(&l))
            .flatten()
            // Hurried typing keeps the first letter (as most spelling
            // correctors assume), which spares most comparisons.
            .filter(|known| known.chars().next() == word.first().copied())
            .filter_map(|known| {
                edit_distance_within(&word, known, limit).map(|distance| (distance, known))
            })
            .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)))
            .and_then(|(_, known)| self.surface_words.get(known))
            .map(String::as_str)
    }

    pub fn passages(&self) -> &[Passage] {
        &self.passages
    }

    fn idf(&self, term: &str) -> f64 {
        let n = self.passages.len() as f64;
        let df = f64::from(self.document_frequency.get(term).copied().unwrap_or(0));
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }

    fn score(&self, passage: usize, terms: &[(&str, f64)]) -> f64 {
        // Route metadata answers "which page is this"; it should not win
        // over the page's own words just for being short.
        let weight = match self.passages[passage].kind {
            SourceKind::RouteMetadata => 1.0,
            _ => 1.0,
        };
        weight * self.bm25(passage, terms)
    }

    /// BM25 of one passage; `terms` come with their idf, computed once per
    /// question rather than once per passage.
    fn bm25(&self, passage: usize, terms: &[(&str, f64)]) -> f64 {
        let counts = &self.term_counts[passage];
        let length_norm = 1.0 - B + B * self.lengths[passage] / self.average_length;
        terms
            .iter()
            .map(|(term, idf)| {
                let tf = f64::from(counts.get(*term).copied().unwrap_or(0));
                if tf == 0.0 {
                    0.0
                } else {
                    idf * tf * (K1 + 1.0) / (tf + K1 * length_norm)
                }
            })
            .sum()
    }

    /// Scores every passage for the question's terms and reports the gate's
    /// signals for the best one.
    pub fn signals(&self, terms: &[String]) -> Signals {
        let unique: HashSet<&str> = terms.iter().map(String::as_str).collect();
        let mut none = Signals::NONE;
        if unique.is_empty() || self.passages.is_empty() {
            return none;
        }
        let known = unique
            .iter()
            .filter(|term| self.document_frequency.contains_key(**term))
            .count();
        none.unknown = 1.0 - known as f64 / unique.len() as f64;
        let weighted = self.weighted(&unique);
        let mut scored: Vec<(usize, f64)> = (0..self.passages.len())
            .map(|i| (i, self.score(i, &weighted)))
            .filter(|(_, score)| *score > 0.0)
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let Some(&(best, top)) = scored.first() else {
            return none;
        };
        let runner_up = scored.get(1).map_or(0.0, |(_, score)| *score);
        // The most a passage could score: every term once, average length.
        let ideal: f64 = weighted.iter().map(|(_, idf)| idf).sum();
        // Coverage weighs each term by its rarity: "key" is on every
        // passage, "grace" on one, and a passage that holds only the
        // common words of a question does not answer it.
        let covered: f64 = weighted
            .iter()
            .filter(|(term, _)| self.term_counts[best].contains_key(*term))
            .map(|(_, idf)| idf)
            .sum();
        Signals {
            best: Some(best),
            raw_score: top,
            normalised: if ideal > 0.0 {
                (top / ideal).min(1.0)
            } else {
                0.0
            },
            coverage: if ideal > 0.0 { covered / ideal } else { 0.0 },
            unknown: none.unknown,
            margin: (top - runner_up) / top,
            neighbour_coverage: 0.0,
            rival_ratio: 0.0,
            hub_ratio: 0.0,
        }
    }

    /// Each distinct term with its idf, in a fixed order, so sums (and
    /// ties) come out the same every run.
    fn weighted<'t>(&self, unique: &HashSet<&'t str>) -> Vec<(&'t str, f64)> {
        let mut weighted: Vec<(&str, f64)> = unique.iter().map(|t| (*t, self.idf(t))).collect();
        weighted.sort_by(|a, b| a.0.cmp(b.0));
        weighted
    }

    /// Every passage's score for the question's terms (0 where none of
    /// them occurs).
    pub fn scores(&self, terms: &[String]) -> Vec<f64> {
        let unique: HashSet<&str> = terms.iter().map(String::as_str).collect();
        let weighted = self.weighted(&unique);
        (0..self.passages.len())
            .map(|i| self.score(i, &weighted))
            .collect()
    }

    /// The passage that answers, or `None` for the fallback.
    pub fn answer(&self, terms: &[String], gate: &Gate) -> (Option<usize>, Signals) {
        let signals = self.signals(terms);
        (
            gate.admits(&signals).then_some(signals.best).flatten(),
            signals,
        )
    }
}

/// Levenshtein distance between two short words, or `None` as soon as it
/// must exceed `limit` (every entry of a row is past it).
fn edit_distance_within(a: &[char], b: &str, limit: usize) -> Option<usize> {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        if current.iter().min().is_some_and(|least| *least > limit) {
            return None;
        }
        previous = current;
    }
    Some(previous[b.len()]).filter(|distance| *distance <= limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(text: &str) -> Passage {
        Passage {
            kind: SourceKind::PageCopy,
            label: "Page copy".into(),
            section: None,
            text: text.into(),
            asked: String::new(),
        }
    }

    #[test]
    fn the_passage_about_the_question_wins_and_unknown_topics_are_refused() {
        let analyzer = Analyzer::new("expire, expiration, lifetime, last");
        let index = Index::new(
            vec![
                passage("Set expiration. Choose how long the key should remain valid."),
                passage("Confirm safety. Backend-only keys must stay server-side."),
            ],
            &analyzer,
        );
        let (answer, _) = index.answer(&analyzer.terms("how long does a key last?"), &Gate::TUNED);
        assert_eq!(answer, Some(0));
        let (refused, signals) = index.answer(
            &analyzer.terms("what is the capital of France"),
            &Gate::TUNED,
        );
        assert_eq!(refused, None, "{signals:?}");
    }
}
