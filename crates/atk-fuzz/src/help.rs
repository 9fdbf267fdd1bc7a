//! The help question path: the guard, the analyzer (folding, stemming,
//! synonyms, typo correction), retrieval and the gate, for a route with
//! page data and for the Knowledge Hub.

use std::sync::OnceLock;

use atk_core::ids::ProjectId;
use atk_core::project::DEMO_PROJECT_ID;
use atk_core::secret::{ParsedSecret, SECRET_LEN};
use atk_server::help::{self, HUB_FALLBACK, Help, HelpAnswer, PAGE_FALLBACK};
use chrono::{DateTime, Utc};

/// The first byte picks the route (or the Knowledge Hub); the rest, read
/// as UTF-8 with bad bytes replaced, is the question.
///
/// An answer is either one source's own words, labelled, or the exact
/// fallback with no sources; a question that carries a secret is refused;
/// no answer holds anything that parses as a secret.
pub fn help_question(data: &[u8]) {
    let Some((&selector, question)) = data.split_first() else {
        return;
    };
    let question = String::from_utf8_lossy(question);
    let help = engine();
    let routes = help::route_ids();
    let carries_secret = help::guard::holds_a_secret_value(&question);
    let answer = match routes.get(usize::from(selector) % (routes.len() + 1)) {
        Some(route) => {
            let project = ProjectId::parse(DEMO_PROJECT_ID).expect("the demo id parses");
            let page_data = help::eval::demo_page_data(help, route, fixed_now());
            let (answer, _) = help
                .ask(route, &question, Some(&project), page_data)
                .expect("every listed route answers");
            check(&answer, PAGE_FALLBACK);
            answer
        }
        None => {
            let (answer, _) = help.ask_hub(&question);
            check(&answer, HUB_FALLBACK);
            answer
        }
    };
    if carries_secret {
        assert!(
            !answer.in_scope,
            "a question carrying a secret was answered"
        );
    }
}

fn check(answer: &HelpAnswer, fallback: &str) {
    if answer.in_scope {
        assert_eq!(answer.sources.len(), 1, "an answer names its one source");
        assert_eq!(
            answer.answer, answer.sources[0].text,
            "an answer is its source's words"
        );
        assert!(!answer.answer.trim().is_empty());
        assert!(!answer.sources[0].label.is_empty(), "a source has a label");
    } else {
        assert_eq!(answer.answer, fallback, "a refusal is the exact fallback");
        assert!(answer.sources.is_empty());
        assert!(answer.related_surface.is_none());
    }
    for start in 0..answer.answer.len() {
        if let Some(window) = answer.answer.get(start..start + SECRET_LEN) {
            assert!(
                ParsedSecret::parse(window).is_err(),
                "an answer holds a secret"
            );
        }
    }
}

fn engine() -> &'static Help {
    static HELP: OnceLock<Help> = OnceLock::new();
    HELP.get_or_init(Help::load)
}

/// A fixed instant, so a corpus replays the same way on any day.
fn fixed_now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-07T22:30:00Z")
        .expect("a valid instant")
        .with_timezone(&Utc)
}
