//! [`HelpGapStore`] for SQLite and PostgreSQL, written once like the key
//! store (see `sql.rs`).

use async_trait::async_trait;
use atk_core::clock::millis_to_time;
use atk_core::ids::ProjectId;

use crate::sql::{millis, on_pool};
use crate::{
    HELP_MISS_QUESTIONS_PER_ROUTE, HelpGapStore, HelpMiss, HelpMissCount, SqlStore, StoreError,
};

#[async_trait]
impl HelpGapStore for SqlStore {
    async fn record_help_miss(&self, miss: &HelpMiss<'_>) -> Result<(), StoreError> {
        let project = miss.project.map_or("", ProjectId::as_str);
        let at = millis(miss.at);
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut question = miss.question.unwrap_or("");
            if !question.is_empty() {
                // A question already kept is counted again; a new one only
                // while the route has room.
                let (kept, known): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN question = $3 THEN 1 ELSE 0 END), 0) \
                     FROM help_misses WHERE project_id = $1 AND route = $2",
                )
                .bind(project)
                .bind(miss.route)
                .bind(question)
                .fetch_one(&mut *tx)
                .await?;
                if known == 0 && kept >= HELP_MISS_QUESTIONS_PER_ROUTE {
                    question = "";
                }
            }
            sqlx::query(
                "INSERT INTO help_misses \
                 (project_id, route, question, asked, first_asked_at, last_asked_at) \
                 VALUES ($1, $2, $3, 1, $4, $4) \
                 ON CONFLICT (project_id, route, question) DO UPDATE SET \
                 asked = help_misses.asked + 1, \
                 last_asked_at = CASE WHEN help_misses.last_asked_at > excluded.last_asked_at \
                 THEN help_misses.last_asked_at ELSE excluded.last_asked_at END",
            )
            .bind(project)
            .bind(miss.route)
            .bind(question)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    async fn help_misses(
        &self,
        project: &ProjectId,
        limit: u32,
    ) -> Result<Vec<HelpMissCount>, StoreError> {
        let rows: Vec<(String, String, i64, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT route, question, asked, last_asked_at FROM help_misses \
                 WHERE project_id = $1 \
                 ORDER BY asked DESC, last_asked_at DESC, route, question LIMIT $2",
            )
            .bind(project.as_str())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(route, question, asked, last_asked_at)| HelpMissCount {
                route,
                question: (!question.is_empty()).then_some(question),
                asked: u64::try_from(asked).unwrap_or(0),
                last_asked_at: millis_to_time(last_asked_at),
            })
            .collect())
    }
}
