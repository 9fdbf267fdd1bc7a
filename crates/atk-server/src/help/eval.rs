//! The evaluation of Page Help on the question sets in `help/eval/`
//! (written before tuning, split 50/50 into dev and test). For each split
//! and route it counts in-scope questions answered correctly (the answer
//! contains every expected phrase) and wrongly refused, out-of-scope and
//! adversarial questions refused, secret leaks and the p99 latency; and the
//! same for a baseline: plain BM25 top-1 with one raw-score threshold,
//! chosen on the dev split.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use atk_core::Catalog;
use atk_core::ids::{DisplayName, ProjectId};
use atk_core::project::{DEMO_PROJECT_ID, DEMO_PROJECT_NAME, Project, initial_entitlements};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::index::{Gate, Index, Passage, Signals};
use super::{Help, sources};

/// The route name the question sets use for the Knowledge Hub.
pub const HUB: &str = super::HUB_ROUTE;

#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    pub id: String,
    pub route: String,
    pub split: String,
    pub kind: String,
    pub question: String,
    #[serde(default)]
    pub expect: Vec<String>,
}

/// Parses JSON Lines; a bad line is an error naming it.
pub fn parse(jsonl: &str) -> Result<Vec<Item>, String> {
    jsonl
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub in_scope: usize,
    pub in_scope_correct: usize,
    pub in_scope_refused: usize,
    pub out_of_scope: usize,
    pub out_of_scope_refused: usize,
    pub adversarial: usize,
    pub adversarial_refused: usize,
    pub secret_leaks: usize,
    pub latencies_us: Vec<u64>,
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        100.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

impl Tally {
    pub fn correct_pct(&self) -> f64 {
        percent(self.in_scope_correct, self.in_scope)
    }
    pub fn wrongly_refused_pct(&self) -> f64 {
        percent(self.in_scope_refused, self.in_scope)
    }
    pub fn out_of_scope_refused_pct(&self) -> f64 {
        percent(self.out_of_scope_refused, self.out_of_scope)
    }
    pub fn adversarial_refused_pct(&self) -> f64 {
        percent(self.adversarial_refused, self.adversarial)
    }
    pub fn p99_us(&self) -> u64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0;
        }
        let at = ((sorted.len() as f64) * 0.99).ceil() as usize;
        sorted[at.saturating_sub(1).min(sorted.len() - 1)]
    }

    fn add(&mut self, item: &Item, answer: Option<&str>, micros: u64) {
        self.latencies_us.push(micros);
        if answer.is_some_and(leaks_a_secret) {
            self.secret_leaks += 1;
        }
        match item.kind.as_str() {
            "in_scope" => {
                self.in_scope += 1;
                match answer {
                    None => self.in_scope_refused += 1,
                    Some(text) => {
                        let text = text.to_lowercase();
                        if item.expect.iter().all(|e| text.contains(&e.to_lowercase())) {
                            self.in_scope_correct += 1;
                        }
                    }
                }
            }
            "out_of_scope" => {
                self.out_of_scope += 1;
                self.out_of_scope_refused += usize::from(answer.is_none());
            }
            _ => {
                self.adversarial += 1;
                self.adversarial_refused += usize::from(answer.is_none());
            }
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        self.in_scope += other.in_scope;
        self.in_scope_correct += other.in_scope_correct;
        self.in_scope_refused += other.in_scope_refused;
        self.out_of_scope += other.out_of_scope;
        self.out_of_scope_refused += other.out_of_scope_refused;
        self.adversarial += other.adversarial;
        self.adversarial_refused += other.adversarial_refused;
        self.secret_leaks += other.secret_leaks;
        self.latencies_us.extend(&other.latencies_us);
    }
}

/// An answer that holds something secret-shaped (the guard's own test:
/// an `atk_` prefix followed by a secret's characters, or a long run of
/// letters and digits).
pub use super::guard::holds_a_secret_value as leaks_a_secret;

/// The demo project's page data, as its owner sees it on a fresh deployment.
pub fn demo_page_data(help: &Help, route: &str, now: DateTime<Utc>) -> Vec<Passage> {
    if !help.uses_page_data(route) {
        return Vec::new();
    }
    let project = Project {
        project_id: ProjectId::parse(DEMO_PROJECT_ID).expect("the demo id parses"),
        name: DisplayName::parse(DEMO_PROJECT_NAME).expect("the demo name parses"),
        created_at: now,
    };
    sources::project_data(
        &project,
        &initial_entitlements(Catalog::get(), now),
        now,
        &help.page_data_label(route),
    )
}

/// Results by (split, route), for the engine and for the baseline.
#[derive(Debug, Default)]
pub struct Report {
    pub engine: BTreeMap<(String, String), Tally>,
    pub baseline: BTreeMap<(String, String), Tally>,
    pub baseline_threshold: f64,
    pub skipped_routes: Vec<String>,
    /// The engine's misses on the dev split (never the test split: tuning
    /// looks at dev only).
    pub dev_misses: Vec<String>,
}

/// One question through the baseline: its best passage and raw score, and
/// how long that took (µs).
type BaselineRun<'a> = (&'a Item, Option<(String, f64)>, u64);

/// Runs every item through the engine and the baseline.
pub fn run(help: &Help, items: &[Item], now: DateTime<Utc>) -> Report {
    let project = ProjectId::parse(DEMO_PROJECT_ID).expect("the demo id parses");
    let mut report = Report::default();
    let mut known: Vec<String> = help.routes().into_iter().map(|r| r.route).collect();
    known.push(HUB.to_owned());
    let usable: Vec<&Item> = items
        .iter()
        .filter(|item| {
            let ok = known.contains(&item.route);
            if !ok && !report.skipped_routes.contains(&item.route) {
                report.skipped_routes.push(item.route.clone());
            }
            ok
        })
        .collect();
    // The baseline's raw scores, and its threshold chosen on dev only.
    let mut raw: Vec<BaselineRun<'_>> = Vec::new();
    for item in &usable {
        let started = Instant::now();
        let data = demo_page_data(help, &item.route, now);
        let (answer, signals) = if item.route == HUB {
            help.ask_hub(&item.question)
        } else {
            help.ask(&item.route, &item.question, Some(&project), data.clone())
                .expect("known route")
        };
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        if item.split == "dev" {
            let got = answer.in_scope.then(|| answer.answer.to_lowercase());
            let missed = match (item.kind.as_str(), &got) {
                ("in_scope", None) => Some("refused".to_owned()),
                ("in_scope", Some(text))
                    if !item.expect.iter().all(|e| text.contains(&e.to_lowercase())) =>
                {
                    Some(format!(
                        "answered from {:?} without {:?}",
                        answer.sources[0].label, item.expect
                    ))
                }
                ("in_scope", Some(_)) | (_, None) => None,
                (_, Some(_)) => Some(format!("answered from {:?}", answer.sources[0].label)),
            };
            if let Some(missed) = missed {
                report.dev_misses.push(format!(
                    "{} [{}] {:?}: {missed} (coverage {:.2}, normalised {:.2}, unknown {:.2}, neighbour {:.2}, rival {:.2}, hub {:.2})",
                    item.id,
                    item.kind,
                    item.question,
                    signals.coverage,
                    signals.normalised,
                    signals.unknown,
                    signals.neighbour_coverage,
                    signals.rival_ratio,
                    signals.hub_ratio
                ));
            }
        }
        report
            .engine
            .entry((item.split.clone(), item.route.clone()))
            .or_default()
            .add(
                item,
                answer.in_scope.then_some(answer.answer.as_str()),
                micros,
            );

        let started = Instant::now();
        let top = if item.route == HUB {
            help.hub_baseline_top(&item.question)
        } else {
            help.baseline_top(&item.route, &item.question, data)
        };
        raw.push((
            item,
            top,
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        ));
    }
    let dev_accuracy = |threshold: f64| {
        raw.iter()
            .filter(|(item, _, _)| item.split == "dev")
            .filter(|(item, top, _)| {
                let answered = top.as_ref().filter(|(_, score)| *score >= threshold);
                match (item.kind.as_str(), answered) {
                    ("in_scope", Some((text, _))) => {
                        let text = text.to_lowercase();
                        item.expect.iter().all(|e| text.contains(&e.to_lowercase()))
                    }
                    ("in_scope", None) => false,
                    (_, answered) => answered.is_none(),
                }
            })
            .count()
    };
    let mut best = (0.0, 0);
    for step in 0..=200 {
        let threshold = f64::from(step) * 0.1;
        let accuracy = dev_accuracy(threshold);
        if accuracy > best.1 {
            best = (threshold, accuracy);
        }
    }
    report.baseline_threshold = best.0;
    for (item, top, micros) in raw {
        let answered = top
            .filter(|(_, score)| *score >= best.0)
            .map(|(text, _)| text);
        report
            .baseline
            .entry((item.split.clone(), item.route.clone()))
            .or_default()
            .add(item, answered.as_deref(), micros);
    }
    report
}

impl Help {
    /// The baseline: the top BM25 passage and its raw score, no guard, no gate.
    pub fn baseline_top(
        &self,
        route: &str,
        question: &str,
        page_data: Vec<Passage>,
    ) -> Option<(String, f64)> {
        let route = self.route(route).ok()?;
        let mut passages = route.fixed.clone();
        passages.extend(page_data);
        let index = Index::new(passages, &self.analyzer);
        let signals = index.signals(&self.analyzer.terms(question));
        signals
            .best
            .map(|best| (index.passages()[best].text.clone(), signals.raw_score))
    }
}

/// The report as text: per split and route, engine and baseline side by side.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let line = |name: &str, t: &Tally| {
        format!(
            "{name:<10} {:>5.1}% ({}/{})  {:>5.1}%  {:>5.1}% ({}/{})  {:>5.1}% ({}/{})  {:>2}  {:>6}\n",
            t.correct_pct(),
            t.in_scope_correct,
            t.in_scope,
            t.wrongly_refused_pct(),
            t.out_of_scope_refused_pct(),
            t.out_of_scope_refused,
            t.out_of_scope,
            t.adversarial_refused_pct(),
            t.adversarial_refused,
            t.adversarial,
            t.secret_leaks,
            t.p99_us(),
        )
    };
    for split in ["dev", "test"] {
        out.push_str(&format!("\n== split {split}\n"));
        out.push_str("           in-scope correct  wrongly refused  out-of-scope refused  adversarial refused  leaks  p99 µs\n");
        let mut all_engine = Tally::default();
        let mut all_baseline = Tally::default();
        for ((s, route), engine) in &report.engine {
            if s != split {
                continue;
            }
            let baseline = &report.baseline[&(s.clone(), route.clone())];
            all_engine.merge(engine);
            all_baseline.merge(baseline);
            out.push_str(&format!("{route}\n"));
            out.push_str(&line("  engine", engine));
            out.push_str(&line("  baseline", baseline));
        }
        out.push_str("all routes\n");
        out.push_str(&line("  engine", &all_engine));
        out.push_str(&line("  baseline", &all_baseline));
    }
    out.push_str(&format!(
        "\nbaseline: BM25 top-1, answers when the raw score >= {:.1} (chosen on dev)\n",
        report.baseline_threshold
    ));
    for route in &report.skipped_routes {
        out.push_str(&format!(
            "not evaluated (no such help route yet): {route}\n"
        ));
    }
    out
}

/// The rival ratios the tuning tries.
const RATIOS: [f64; 8] = [1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 3.0, f64::INFINITY];

/// Tries a grid of gates on the dev split only and returns the one that
/// gets the most dev questions right (in-scope answered correctly,
/// out-of-scope and adversarial refused), with its count.
pub fn tune(help: &mut Help, items: &[Item], now: DateTime<Utc>) -> (Gate, usize) {
    let project = ProjectId::parse(DEMO_PROJECT_ID).expect("the demo id parses");
    let dev: Vec<&Item> = items
        .iter()
        .filter(|item| {
            item.split == "dev" && (item.route == HUB || help.route(&item.route).is_ok())
        })
        .collect();
    let data: Vec<Vec<Passage>> = dev
        .iter()
        .map(|item| demo_page_data(help, &item.route, now))
        .collect();
    // The gate only decides whether the best passage is given, so each
    // question is asked once with a gate that lets everything through, and
    // every candidate gate is judged on those signals.
    help.set_gate(super::Gate::OPEN);
    let asked: Vec<(&Item, Signals, bool)> = dev
        .iter()
        .zip(&data)
        .map(|(item, data)| {
            let (answer, signals) = if item.route == HUB {
                help.ask_hub(&item.question)
            } else {
                help.ask(&item.route, &item.question, Some(&project), data.clone())
                    .expect("known route")
            };
            let text = answer.answer.to_lowercase();
            let right_passage =
                answer.in_scope && item.expect.iter().all(|e| text.contains(&e.to_lowercase()));
            (*item, signals, right_passage)
        })
        .collect();
    let right = |gate: &Gate| {
        asked
            .iter()
            .filter(|(item, signals, right_passage)| {
                let answered = gate.admits(signals);
                match item.kind.as_str() {
                    "in_scope" => answered && *right_passage,
                    _ => !answered,
                }
            })
            .count()
    };
    // Every gate of the grid, by its position on each axis.
    let axes: [&[f64]; 6] = [
        &[0.2, 0.26, 0.34, 0.4, 0.5],
        &[0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7],
        &[0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5],
        &[0.0, 0.1, 0.2, 0.3, 0.45, 0.6, 1.0],
        &RATIOS,
        &RATIOS,
    ];
    let gate_at = |at: &[usize; 6]| Gate {
        max_unknown: axes[0][at[0]],
        min_coverage: axes[1][at[1]],
        min_normalised: axes[2][at[2]],
        max_neighbour_lead: axes[3][at[3]],
        max_rival_ratio: axes[4][at[4]],
        max_hub_ratio: axes[5][at[5]],
    };
    let mut scores: HashMap<[usize; 6], usize> = HashMap::new();
    let mut at = [0usize; 6];
    'grid: loop {
        scores.insert(at, right(&gate_at(&at)));
        for axis in 0..6 {
            at[axis] += 1;
            if at[axis] < axes[axis].len() {
                continue 'grid;
            }
            at[axis] = 0;
        }
        break;
    }
    // Many gates tie on a few hundred questions; the one whose neighbours
    // on the grid also score well sits on a plateau rather than a spike,
    // and is likelier to hold on questions it has not seen.
    let top = scores.values().copied().max().unwrap_or(0);
    // The mean over the neighbours there are, so a gate at the grid's edge
    // (fewer neighbours) is not at a disadvantage.
    let plateau = |at: &[usize; 6]| -> u64 {
        let (mut sum, mut neighbours) = (0, 0);
        for axis in 0..6 {
            for step in [-1isize, 1] {
                let mut near = *at;
                match near[axis].checked_add_signed(step) {
                    Some(i) if i < axes[axis].len() => near[axis] = i,
                    _ => continue,
                }
                sum += scores[&near];
                neighbours += 1;
            }
        }
        // In thousandths, so gates compare as integers.
        (sum * 1000 / neighbours.max(1)) as u64
    };
    let mut tops: Vec<&[usize; 6]> = scores
        .iter()
        .filter(|(_, right)| **right == top)
        .map(|(at, _)| at)
        .collect();
    tops.sort();
    let chosen = tops
        .into_iter()
        .max_by_key(|at| plateau(at))
        .map_or(Gate::TUNED, gate_at);
    let best = (chosen, top);
    help.set_gate(best.0);
    best
}
