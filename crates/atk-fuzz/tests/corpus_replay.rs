//! Every input a fuzzing run kept (`fuzz/corpus/<target>/`, minimised) and
//! every input that once found a bug (`fuzz/regressions/<target>/`) runs
//! through its target again: what fuzzing found stays fixed.

use std::path::PathBuf;

fn inputs(folder: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(folder)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|entry| entry.expect("a readable corpus entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = std::fs::read(&path).expect("a readable corpus file");
            (path, bytes)
        })
        .collect();
    inputs.sort();
    inputs
}

fn replay(target: &str) {
    let (_, run) = atk_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a listed target");
    let corpus = inputs("corpus", target);
    // A corpus that went missing would make this test pass vacuously.
    assert!(
        corpus.len() >= 20,
        "fuzz/corpus/{target} holds {} inputs; run fuzz/run {target} to rebuild it",
        corpus.len()
    );
    for (path, bytes) in corpus.iter().chain(&inputs("regressions", target)) {
        let outcome = std::panic::catch_unwind(|| run(bytes));
        assert!(outcome.is_ok(), "{} fails its target again", path.display());
    }
}

#[test]
fn the_secret_parser_corpus_replays_clean() {
    replay("secret_parser");
}

#[test]
fn the_cidr_parser_corpus_replays_clean() {
    replay("cidr_parser");
}

#[test]
fn the_help_question_corpus_replays_clean() {
    replay("help_question");
}

#[test]
fn the_api_request_corpus_replays_clean() {
    replay("api_request");
}

#[test]
fn every_target_has_a_replay_test() {
    let names: Vec<&str> = atk_fuzz::TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "secret_parser",
            "cidr_parser",
            "help_question",
            "api_request"
        ]
    );
}
