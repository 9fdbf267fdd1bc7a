//! `atk help-eval` runs on the repository's question sets and prints the
//! engine beside the baseline for both splits, with no secret leaked.

use std::process::Command;

#[test]
fn help_eval_prints_engine_and_baseline_per_split_with_no_leaks() {
    let output = Command::new(env!("CARGO_BIN_EXE_atk"))
        .args([
            "help-eval",
            "--dir",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../help/eval"),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "== split dev",
        "== split test",
        "/project-settings/key-create",
        "all routes",
    ] {
        assert!(said.contains(expected), "{expected}: {said}");
    }
    let engine_lines: Vec<&str> = said
        .lines()
        .filter(|l| l.trim_start().starts_with("engine"))
        .collect();
    let baseline_lines = said
        .lines()
        .filter(|l| l.trim_start().starts_with("baseline") && l.contains('%'))
        .count();
    assert_eq!(
        engine_lines.len(),
        16,
        "6 routes, the Knowledge Hub and all routes, two splits: {said}"
    );
    assert_eq!(baseline_lines, 16);
    for line in engine_lines {
        // The leaks column: the second to last number on the line.
        let numbers: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(numbers[numbers.len() - 2], "0", "a secret leaked: {line}");
    }
}
