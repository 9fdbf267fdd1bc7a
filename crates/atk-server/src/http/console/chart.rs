//! The key detail's usage chart: verifications over time, stacked by
//! outcome, drawn as SVG on the server (no script, no inline style: the
//! colours come from the stylesheet's classes).

use atk_core::decision::VerifyCode;
use atk_core::usage::{Granularity, UsageReport};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;
/// Room for the last tick's label.
const RIGHT: f64 = 48.0;

/// The outcome groups a bar is stacked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    /// Scope missing or blocked by a Commerce entitlement.
    Blocked,
    /// The key itself was refused (revoked, expired, outside its allowlist,
    /// from a browser, over its rate limit).
    Refused,
}

impl Outcome {
    pub const ALL: [Self; 3] = [Self::Allowed, Self::Blocked, Self::Refused];

    pub fn of(code: VerifyCode) -> Self {
        match code {
            VerifyCode::Ok => Self::Allowed,
            VerifyCode::ScopeMissing
            | VerifyCode::EntitlementDisabled
            | VerifyCode::EntitlementUpgradeRequired
            | VerifyCode::EntitlementTrialEnded => Self::Blocked,
            VerifyCode::Malformed
            | VerifyCode::NotFound
            | VerifyCode::Revoked
            | VerifyCode::Expired
            | VerifyCode::ForbiddenIp
            | VerifyCode::BrowserOriginBlocked
            | VerifyCode::RateLimited => Self::Refused,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Allowed => "Allowed (OK)",
            Self::Blocked => "Blocked by scope or entitlement",
            Self::Refused => "Key refused (revoked, expired, address, origin or rate limit)",
        }
    }

    pub fn class(self) -> &'static str {
        match self {
            Self::Allowed => "bar-allowed",
            Self::Blocked => "bar-blocked",
            Self::Refused => "bar-refused",
        }
    }
}

pub struct Segment {
    pub y: String,
    pub height: String,
    pub class: &'static str,
}

pub struct Bar {
    pub x: String,
    pub width: String,
    pub segments: Vec<Segment>,
    /// For the tooltip and the data table.
    pub label: String,
    pub counts: [u64; 3],
    pub total: u64,
}

pub struct Tick {
    pub x: String,
    pub label: String,
}

pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
    pub max: u64,
    pub total: u64,
    pub axis_y: String,
    pub axis_x0: String,
    pub axis_x1: String,
    pub max_y: String,
    pub outcomes: [Outcome; 3],
    pub title: String,
}

fn px(value: f64) -> String {
    format!("{value:.1}")
}

impl Chart {
    pub fn new(report: &UsageReport) -> Self {
        let buckets = &report.series;
        let plot_width = WIDTH - LEFT - RIGHT;
        let plot_height = HEIGHT - BOTTOM - TOP;
        let max = buckets.iter().map(|b| b.total).max().unwrap_or(0).max(1);
        let slot = plot_width / buckets.len().max(1) as f64;
        let bar_width = (slot * 0.8).max(1.0);
        let label_format = match report.granularity {
            Granularity::Hour => "%m-%d %H:00",
            Granularity::Day => "%Y-%m-%d",
        };
        let bars = buckets
            .iter()
            .enumerate()
            .map(|(i, bucket)| {
                let mut counts = [0u64; 3];
                for (code, count) in &bucket.by_code {
                    if let Some(code) = VerifyCode::parse(code) {
                        let slot = Outcome::ALL
                            .iter()
                            .position(|o| *o == Outcome::of(code))
                            .unwrap_or(2);
                        counts[slot] += count;
                    }
                }
                let mut base = HEIGHT - BOTTOM;
                let segments = Outcome::ALL
                    .iter()
                    .zip(counts)
                    .filter(|(_, count)| *count > 0)
                    .map(|(outcome, count)| {
                        let height = plot_height * count as f64 / max as f64;
                        base -= height;
                        Segment {
                            y: px(base),
                            height: px(height),
                            class: outcome.class(),
                        }
                    })
                    .collect();
                Bar {
                    x: px(LEFT + slot * i as f64 + (slot - bar_width) / 2.0),
                    width: px(bar_width),
                    segments,
                    label: bucket.start.format(label_format).to_string(),
                    counts,
                    total: bucket.total,
                }
            })
            .collect::<Vec<_>>();
        let every = (buckets.len() / 6).max(1);
        let ticks = buckets
            .iter()
            .enumerate()
            .filter(|(i, _)| i % every == 0)
            .map(|(i, bucket)| Tick {
                x: px(LEFT + slot * i as f64),
                label: bucket.start.format(label_format).to_string(),
            })
            .collect();
        Self {
            width: WIDTH,
            height: HEIGHT,
            bars,
            ticks,
            max,
            total: report.total,
            axis_y: px(HEIGHT - BOTTOM),
            axis_x0: px(LEFT),
            axis_x1: px(WIDTH - RIGHT),
            max_y: px(TOP + 10.0),
            outcomes: Outcome::ALL,
            title: format!(
                "Verifications per {} from {} to {}",
                report.granularity.as_str(),
                report.from.format("%Y-%m-%d %H:%M UTC"),
                report.to.format("%Y-%m-%d %H:%M UTC")
            ),
        }
    }

    pub fn tick_y(&self) -> String {
        px(HEIGHT - 6.0)
    }
}
