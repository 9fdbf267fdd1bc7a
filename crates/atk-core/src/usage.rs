//! Usage: verifications counted per key, action, outcome code and hour, and
//! the summaries the usage API and the console chart show.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::decision::VerifyCode;
use crate::key::text_enum;

/// What `by_action` calls verifications that named no action.
pub const NO_ACTION: &str = "none";

/// The start of the hour `at` falls in: the unit usage is stored in.
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// One stored counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub hour: DateTime<Utc>,
    pub action: Option<String>,
    pub code: VerifyCode,
    pub count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    #[default]
    Hour,
    Day,
}
text_enum!(Granularity {
    Hour => "hour",
    Day => "day",
});

impl Granularity {
    pub fn step(self) -> TimeDelta {
        match self {
            Self::Hour => TimeDelta::hours(1),
            Self::Day => TimeDelta::days(1),
        }
    }

    pub fn bucket_of(self, at: DateTime<Utc>) -> DateTime<Utc> {
        at.duration_trunc(self.step()).unwrap_or(at)
    }

    /// The widest window one request may ask for, so a response stays small.
    pub fn max_window(self) -> TimeDelta {
        match self {
            Self::Hour => TimeDelta::days(31),
            Self::Day => TimeDelta::days(400),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageBucket {
    pub start: DateTime<Utc>,
    pub total: u64,
    /// Counts by verification code; codes with no count are left out.
    #[schema(value_type = Object)]
    pub by_code: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub granularity: Granularity,
    pub total: u64,
    #[schema(value_type = Object)]
    pub by_code: BTreeMap<String, u64>,
    /// Counts by action; `none` for verifications that named no action.
    #[schema(value_type = Object)]
    pub by_action: BTreeMap<String, u64>,
    /// One bucket per hour or day from `from` to `to`, empty ones included,
    /// so a chart needs no gap filling.
    pub series: Vec<UsageBucket>,
}

/// Sums `rows` (already limited to the window) into totals and a series.
pub fn summarize(
    rows: &[UsageRow],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    granularity: Granularity,
) -> UsageReport {
    let mut series = Vec::new();
    let mut start = granularity.bucket_of(from);
    while start < to {
        series.push(UsageBucket {
            start,
            total: 0,
            by_code: BTreeMap::new(),
        });
        start += granularity.step();
    }
    let first = series.first().map(|bucket| bucket.start);
    let mut report = UsageReport {
        from,
        to,
        granularity,
        total: 0,
        by_code: BTreeMap::new(),
        by_action: BTreeMap::new(),
        series,
    };
    for row in rows {
        report.total += row.count;
        *report
            .by_code
            .entry(row.code.as_str().to_owned())
            .or_default() += row.count;
        let action = row.action.clone().unwrap_or_else(|| NO_ACTION.to_owned());
        *report.by_action.entry(action).or_default() += row.count;
        let Some(first) = first else { continue };
        let offset = (granularity.bucket_of(row.hour) - first).num_seconds()
            / granularity.step().num_seconds();
        if let Some(bucket) = usize::try_from(offset)
            .ok()
            .and_then(|i| report.series.get_mut(i))
        {
            bucket.total += row.count;
            *bucket
                .by_code
                .entry(row.code.as_str().to_owned())
                .or_default() += row.count;
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn hours_are_truncated_to_their_start() {
        assert_eq!(
            hour_of(at("2026-06-07T22:59:59.999Z")),
            at("2026-06-07T22:00:00Z")
        );
    }

    #[test]
    fn a_summary_adds_up_by_code_action_and_bucket() {
        let rows = [
            UsageRow {
                hour: at("2026-06-07T10:00:00Z"),
                action: Some("qr.scan.read".into()),
                code: VerifyCode::Ok,
                count: 3,
            },
            UsageRow {
                hour: at("2026-06-07T10:00:00Z"),
                action: None,
                code: VerifyCode::Ok,
                count: 2,
            },
            UsageRow {
                hour: at("2026-06-07T12:00:00Z"),
                action: Some("qr.scan.read".into()),
                code: VerifyCode::ScopeMissing,
                count: 4,
            },
        ];
        let report = summarize(
            &rows,
            at("2026-06-07T10:30:00Z"),
            at("2026-06-07T13:00:00Z"),
            Granularity::Hour,
        );
        assert_eq!(report.total, 9);
        assert_eq!(report.by_code["OK"], 5);
        assert_eq!(report.by_code["SCOPE_MISSING"], 4);
        assert_eq!(report.by_action["qr.scan.read"], 7);
        assert_eq!(report.by_action[NO_ACTION], 2);
        let totals: Vec<u64> = report.series.iter().map(|b| b.total).collect();
        assert_eq!(totals, [5, 0, 4]);

        let daily = summarize(
            &rows,
            at("2026-06-07T00:00:00Z"),
            at("2026-06-09T00:00:00Z"),
            Granularity::Day,
        );
        let totals: Vec<u64> = daily.series.iter().map(|b| b.total).collect();
        assert_eq!(totals, [9, 0]);
    }
}
