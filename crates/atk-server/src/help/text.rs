//! Turning text into search terms: Unicode folding (`é` → `e`), lower case,
//! word splitting, stop words, English Snowball stemming, then the reviewed
//! synonym table (`help/synonyms.txt`) mapping each stem to its group's
//! first word, so "token", "credential" and "key" meet.

use std::collections::HashMap;

use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::UnicodeNormalization;

/// Words that carry no meaning for matching a question to a passage.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "been",
    "being",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "for",
    "from",
    "get",
    "got",
    "had",
    "has",
    "have",
    "he",
    "her",
    "here",
    "him",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "just",
    "me",
    "mean",
    "means",
    "meant",
    "my",
    "of",
    "on",
    "or",
    "our",
    "please",
    "she",
    "should",
    "so",
    "some",
    "than",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "to",
    "u",
    "up",
    "us",
    "was",
    "we",
    "were",
    "what",
    "whats",
    "wat",
    "wats",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "im",
    "ive",
    "dont",
    "doesnt",
    "isnt",
    "cant",
    "wont",
    "arent",
    "didnt",
    "wasnt",
    "shouldnt",
    "couldnt",
    "wouldnt",
    "youre",
    "theyre",
    "thats",
    "theres",
    "hows",
    "wheres",
    "whos",
    "lets",
    "weve",
    "youve",
    "hey",
    "hi",
    "thanks",
    "tell",
    "explain",
    "know",
    "need",
    "want",
    "thing",
    "things",
    "one",
    "ones",
    "also",
    "really",
    "exactly",
    "ok",
    "okay",
    "difference",
    "between",
    "happen",
    "happens",
    "happened",
    "someone",
    "somebody",
    "anyone",
    "anybody",
    "something",
    "wat",
    "wht",
    "hw",
    "pls",
    "plz",
];

/// Folds, lower-cases and splits `text` into words (letters and digits;
/// `_` and `.` inside a word keep `atk_live_` and `notification.send` whole).
pub fn words(text: &str) -> Vec<String> {
    let folded: String = text
        .nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    let mut words = Vec::new();
    let mut current = String::new();
    let mut chars = folded.chars().peekable();
    while let Some(c) = chars.next() {
        // "can't", "what's": the apostrophe joins, so the contraction is one
        // (stop) word, not "can" and a stray "t".
        if (c == '\'' || c == '’')
            && !current.is_empty()
            && chars.peek().is_some_and(|next| next.is_alphanumeric())
        {
            continue;
        }
        let joins = (c == '_' || c == '.' || c == '-')
            && !current.is_empty()
            && chars.peek().is_some_and(|next| next.is_alphanumeric());
        if c.is_alphanumeric() || (joins && c != '-') {
            current.push(c);
        } else if joins && c == '-' {
            // "read-only" → "readonly" matches "read only" poorly; keep both parts.
            words.push(std::mem::take(&mut current));
        } else if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
        .into_iter()
        .map(|word| word.trim_matches(|c| c == '.' || c == '_').to_owned())
        .filter(|word| !word.is_empty())
        .collect()
}

/// Whether `word` is a name such as `notification.send` or `atk_live`.
pub fn is_identifier(word: &str) -> bool {
    word.contains('.') || word.contains('_')
}

/// The analyser: stop words, stemming and synonyms.
pub struct Analyzer {
    stemmer: Stemmer,
    /// stem → the stem of its synonym group's first word.
    synonyms: HashMap<String, String>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("synonyms", &self.synonyms.len())
            .finish()
    }
}

impl Analyzer {
    /// `synonyms`: one group per line, words separated by commas; `#`
    /// starts a comment. A word may be several words ("api key"), which
    /// then counts as its last word.
    pub fn new(synonyms: &str) -> Self {
        let stemmer = Stemmer::create(Algorithm::English);
        let mut table = HashMap::new();
        for line in synonyms.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let stems: Vec<String> = line
                .split(',')
                .filter_map(|word| words(word).last().cloned())
                .map(|word| stemmer.stem(&word).into_owned())
                .collect();
            let Some(head) = stems.first().cloned() else {
                continue;
            };
            for stem in stems {
                table.entry(stem).or_insert_with(|| head.clone());
            }
        }
        Self {
            stemmer,
            synonyms: table,
        }
    }

    pub fn is_stop_word(word: &str) -> bool {
        STOP_WORDS.contains(&word)
    }

    /// The search terms of `text`: content words, stemmed, synonyms merged.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut terms = Vec::new();
        for word in words(text) {
            if !Self::is_stop_word(&word) {
                self.push_terms(&word, &mut terms);
            }
        }
        terms
    }

    /// The content words of `text` with the term each becomes (an
    /// identifier's parts are not listed; see [`Analyzer::push_terms`]).
    pub fn content_words(&self, text: &str) -> Vec<(String, String)> {
        words(text)
            .into_iter()
            .filter(|word| !Self::is_stop_word(word))
            .map(|word| {
                let term = self.term(&word);
                (word, term)
            })
            .collect()
    }

    /// Pushes the terms of one word: the word's term, and for an identifier
    /// (`atk_live`, `forbidden_ip`, `notification.send`) its parts too, so
    /// "live key" meets `atk_live_` and the whole name still matches best.
    pub fn push_terms(&self, word: &str, terms: &mut Vec<String>) {
        terms.push(self.term(word));
        if is_identifier(word) {
            terms.extend(
                word.split(['.', '_'])
                    .filter(|part| !part.is_empty() && !Self::is_stop_word(part))
                    .map(|part| self.term(part)),
            );
        }
    }

    pub fn term(&self, word: &str) -> String {
        // Scope names and prefixes (`notification.send`, `atk_live_`) are
        // matched whole, not stemmed.
        if is_identifier(word) {
            return word.to_owned();
        }
        // Snowball makes "production" "product", and a production key is
        // not a product.
        let stem = match word {
            "production" | "productions" => std::borrow::Cow::Borrowed("production"),
            _ => self.stemmer.stem(word),
        };
        self.synonyms
            .get(stem.as_ref())
            .cloned()
            .unwrap_or_else(|| stem.into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_folded_lower_cased_and_keep_scope_names_whole() {
        assert_eq!(
            words("Qué es Notification.send? atk_live_ keys!"),
            ["que", "es", "notification.send", "atk_live", "keys"]
        );
        assert_eq!(words("read-only"), ["read", "only"]);
        assert_eq!(
            words("Why can't I? What’s that"),
            ["why", "cant", "i", "whats", "that"]
        );
    }

    #[test]
    fn synonyms_and_stems_meet() {
        let analyzer = Analyzer::new("key, token, credential\ncreate, make, generate\n");
        assert_eq!(analyzer.terms("Tokens"), analyzer.terms("key"));
        assert_eq!(analyzer.terms("credentials"), analyzer.terms("keys"));
        assert_eq!(analyzer.terms("generating"), analyzer.terms("create"));
        assert!(analyzer.terms("what is the").is_empty());
        assert_ne!(analyzer.terms("production"), analyzer.terms("product"));
    }
}
