//! The fuzz targets of AuthToolkit Keys, as plain functions over bytes.
//!
//! `fuzz/` (cargo-fuzz, libFuzzer) drives each one with coverage guidance;
//! `tests/corpus_replay.rs` runs each over its committed, minimised corpus
//! in `cargo test`, so whatever a fuzzing run found stays fixed. A target
//! panics when a property fails: that is what the fuzzer reports.
//!
//! Every target checks more than "does not crash": each one asserts what
//! the component promises for any input (a parsed secret round-trips, a
//! help answer is a source's own words or the exact fallback, an API
//! answer is never a 5xx and always the SPEC error shape).

use std::net::IpAddr;
use std::sync::OnceLock;

use atk_core::limits::IpAllowlist;
use atk_core::secret::{BASE62, ParsedSecret, Pepper, SECRET_LEN, redact_secrets};

mod api;
mod help;

pub use api::api_request;
pub use help::help_question;

/// A target: the name of its corpus folder under `fuzz/corpus/`, and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 4] = [
    ("secret_parser", secret_parser),
    ("cidr_parser", cidr_parser),
    ("help_question", help_question),
    ("api_request", api_request),
];

/// The secret parser (`ParsedSecret::parse`) and the redaction of pasted
/// secrets from free text.
///
/// - A text that parses has the secret's length and prefix, hashes the
///   same way twice, and its preview hides the random part.
/// - Changing any one character of the random part of a parsed secret to
///   another base62 character breaks its checksum (CRC-32 catches every
///   single-character change, and six base62 digits hold all 32 bits).
/// - After redaction no secret that parses is left in the text, and text
///   without a secret prefix is left as it was.
pub fn secret_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = ParsedSecret::parse(text) {
        assert_eq!(text.len(), SECRET_LEN);
        assert!(text.starts_with("atk_live_") || text.starts_with("atk_test_"));
        assert!(text.starts_with(parsed.prefix().as_str()));
        let pepper = pepper();
        assert!(pepper.hash(&parsed).ct_eq(&pepper.hash(&parsed)));
        let preview = parsed.preview();
        assert!(
            !preview.contains(&text[9..41]),
            "the preview shows the random part"
        );
        let mut changed = text.as_bytes().to_vec();
        let at = 9 + usize::from(data[9]) % 32;
        let replacement = BASE62[(BASE62.iter().position(|c| *c == changed[at]).unwrap_or(0)
            + 1
            + usize::from(data[10]) % 61)
            % 62];
        changed[at] = replacement;
        let changed = String::from_utf8(changed).expect("base62 is ASCII");
        assert!(
            ParsedSecret::parse(&changed).is_err(),
            "a one-character change kept the checksum"
        );
    }
    let redacted = redact_secrets(text);
    let no_prefix = !["atk_live_", "atk_test_", "atk_admin_"]
        .iter()
        .any(|prefix| text.contains(prefix));
    if no_prefix {
        assert_eq!(redacted, text);
    }
    for start in 0..redacted.len() {
        if let Some(window) = redacted.get(start..start + SECRET_LEN) {
            assert!(
                ParsedSecret::parse(window).is_err(),
                "a secret survived redaction"
            );
        }
    }
}

/// The allowlist parser (`allowed_ips`, `--trusted-proxy`): entries are the
/// input's lines. What parses prints back as networks that parse to the
/// same allowlist, and a network admits its own address.
pub fn cidr_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entries: Vec<&str> = text.split('\n').collect();
    let Ok(allowlist) = IpAllowlist::parse(&entries) else {
        return;
    };
    let printed = allowlist.to_strings();
    assert!(printed.len() <= entries.len());
    let reparsed = IpAllowlist::parse(&printed).expect("printed networks parse");
    assert_eq!(reparsed, allowlist);
    for network in &printed {
        let (address, _) = network
            .split_once('/')
            .expect("printed with a prefix length");
        let address: IpAddr = address.parse().expect("a network's address parses");
        assert!(
            allowlist.admits(address),
            "{network} does not admit {address}"
        );
    }
}

fn pepper() -> &'static Pepper {
    static PEPPER: OnceLock<Pepper> = OnceLock::new();
    PEPPER.get_or_init(|| Pepper::from_bytes(&[7; 32]).expect("32 bytes are enough"))
}
