//! Page Help's coverage gaps: every question answered with the fallback is
//! counted per project and route, so owners can show writers which docs to
//! add. A question that looks like it holds a secret is counted but never
//! kept.

use std::sync::Arc;

use atk_core::access::Operation;
use atk_core::clock::Clock;
use atk_core::ids::ProjectId;
use atk_store::{HelpGapStore, HelpMiss, HelpMissCount};

use super::{Caller, ServiceError};
use crate::help::guard::holds_a_secret_value;

/// How much of a question is kept: enough to read what was asked.
const KEPT_QUESTION_CHARS: usize = 200;

/// How many gaps the console lists.
pub const LISTED_GAPS: u32 = 100;

#[derive(Debug)]
pub struct HelpGaps {
    store: Arc<dyn HelpGapStore>,
    clock: Arc<dyn Clock>,
}

impl HelpGaps {
    pub fn new(store: Arc<dyn HelpGapStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Counts a fallback answer on `route` in `project` (a project the
    /// caller may read; callers check). Counting is best effort: a store
    /// failure is logged and the person still gets their answer.
    pub async fn record(&self, caller: &Caller, project: &ProjectId, route: &str, question: &str) {
        if !caller.principal.may(Operation::ReadProject, project) {
            return;
        }
        let kept = kept_question(question);
        let miss = HelpMiss {
            project: Some(project),
            route,
            question: kept.as_deref(),
            at: self.clock.now(),
        };
        if let Err(error) = self.store.record_help_miss(&miss).await {
            tracing::warn!(%error, route, "could not count a Page Help miss");
        }
    }

    /// The project's unanswered questions, most asked first. Owners only.
    pub async fn list(
        &self,
        caller: &Caller,
        project: &ProjectId,
    ) -> Result<Vec<HelpMissCount>, ServiceError> {
        caller.authorize(Operation::ReadHelpGaps, Some(project))?;
        Ok(self.store.help_misses(project, LISTED_GAPS).await?)
    }
}

/// The question as it is kept: whitespace collapsed, cut to a readable
/// length, or `None` when it looks like it holds a secret.
fn kept_question(question: &str) -> Option<String> {
    if holds_a_secret_value(question) {
        return None;
    }
    let collapsed = question.split_whitespace().collect::<Vec<_>>().join(" ");
    let kept: String = collapsed.chars().take(KEPT_QUESTION_CHARS).collect();
    (!kept.is_empty()).then_some(kept)
}

#[cfg(test)]
mod tests {
    use super::kept_question;

    #[test]
    fn a_question_holding_a_secret_is_not_kept_and_others_are_tidied() {
        assert_eq!(kept_question("is atk_live_AbCdEf123456 still good?"), None);
        assert_eq!(kept_question(&format!("hash {} ok", "a1".repeat(20))), None);
        assert_eq!(
            kept_question("  what   is\nSSO?  ").as_deref(),
            Some("what is SSO?")
        );
        assert_eq!(
            kept_question(&"x ".repeat(300)).unwrap().chars().count(),
            200
        );
    }
}
