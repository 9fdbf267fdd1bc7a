//! Secret format: `atk_` + `live`|`test` + `_` + 32 base62 characters from
//! the OS CSPRNG + 6 base62 characters of CRC-32 checksum (47 in all).
//!
//! The checksum lets [`ParsedSecret::parse`] turn away typos and truncated
//! pastes without a store lookup, and lets secret scanners recognise a real
//! key. The plaintext lives only in [`PlaintextSecret`], whose `Debug` is
//! redacted, and is reduced to a [`SecretHash`] (HMAC-SHA-256 with the
//! server pepper) before anything is stored or compared.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::block_api::compress256;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// `0-9A-Za-z`, in that order: a digit's value is its index here.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const SECRET_LEN: usize = 47;
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const PREFIX_LEN: usize = 9;
const BODY_END: usize = SECRET_LEN - CHECKSUM_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretPrefix {
    Live,
    Test,
}

impl SecretPrefix {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Live => "atk_live_",
            Self::Test => "atk_test_",
        }
    }
}

/// `len` characters drawn uniformly from [`BASE62`] using the OS CSPRNG.
/// Rejection sampling (bytes 248..=255 are dropped) keeps every character
/// equally likely; a plain `% 62` would favour the first eight.
pub fn random_base62(len: usize) -> String {
    const ACCEPT_BELOW: u8 = 62 * 4;
    let mut out = String::with_capacity(len);
    let mut pool = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut pool).expect("the operating system random source is available");
        for &byte in pool.iter().filter(|&&b| b < ACCEPT_BELOW) {
            if out.len() == len {
                break;
            }
            out.push(char::from(BASE62[usize::from(byte % 62)]));
        }
    }
    out
}

/// CRC-32 (IEEE) of `text` in base62, most significant digit first, padded
/// with `0` to six characters (62^6 > 2^32, so six always suffice).
pub fn checksum(text: &str) -> [u8; CHECKSUM_LEN] {
    let mut value = crc32fast::hash(text.as_bytes());
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits
}

/// A freshly generated secret. It exists only until the create or rotate
/// response is written; `Debug` never shows it.
pub struct PlaintextSecret(String);

impl PlaintextSecret {
    pub fn generate(prefix: SecretPrefix) -> Self {
        let mut text = String::with_capacity(SECRET_LEN);
        text.push_str(prefix.as_str());
        text.push_str(&random_base62(RANDOM_LEN));
        let digits = checksum(&text);
        text.push_str(std::str::from_utf8(&digits).expect("base62 is ASCII"));
        Self(text)
    }

    /// The one deliberate way to read the plaintext: for the response body.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn parsed(&self) -> ParsedSecret<'_> {
        ParsedSecret::parse(&self.0).expect("a generated secret always parses")
    }
}

impl std::fmt::Debug for PlaintextSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlaintextSecret(<redacted>)")
    }
}

/// Prefixes of everything secret this service hands out: key secrets and the
/// platform admin token.
pub const SECRET_SHAPED_PREFIXES: [&str; 3] = ["atk_live_", "atk_test_", "atk_admin_"];

/// Whether free text (a name, a reason) seems to hold a secret. Such text
/// is refused, so a pasted secret never reaches the store or the audit log.
pub fn looks_like_secret(text: &str) -> bool {
    SECRET_SHAPED_PREFIXES
        .iter()
        .any(|prefix| text.contains(prefix))
}

/// `text` with anything shaped like a secret (`atk_live_…`, `atk_test_…`)
/// cut down to its prefix. For messages that quote client input, so a
/// secret pasted into the wrong field is not echoed back or logged.
pub fn redact_secrets(text: &str) -> std::borrow::Cow<'_, str> {
    let prefixes = SECRET_SHAPED_PREFIXES;
    if !looks_like_secret(text) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, prefix)) = prefixes
        .iter()
        .filter_map(|prefix| rest.find(prefix).map(|at| (at, *prefix)))
        .min()
    {
        out.push_str(&rest[..at + prefix.len()]);
        out.push_str("[redacted]");
        rest = rest[at + prefix.len()..].trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the key is not a well-formed AuthToolkit secret")]
pub struct MalformedSecret;

/// A string that has the secret's shape and a matching checksum. Borrowed
/// from the request, so checking it copies nothing.
#[derive(Clone, Copy)]
pub struct ParsedSecret<'a> {
    text: &'a str,
    prefix: SecretPrefix,
}

impl<'a> ParsedSecret<'a> {
    pub fn parse(text: &'a str) -> Result<Self, MalformedSecret> {
        let bytes = text.as_bytes();
        if bytes.len() != SECRET_LEN {
            return Err(MalformedSecret);
        }
        let prefix = if text.starts_with(SecretPrefix::Live.as_str()) {
            SecretPrefix::Live
        } else if text.starts_with(SecretPrefix::Test.as_str()) {
            SecretPrefix::Test
        } else {
            return Err(MalformedSecret);
        };
        if !bytes[PREFIX_LEN..].iter().all(u8::is_ascii_alphanumeric) {
            return Err(MalformedSecret);
        }
        // Length and alphabet were checked above, so these slices are on
        // ASCII boundaries.
        if checksum(&text[..BODY_END]) != bytes[BODY_END..] {
            return Err(MalformedSecret);
        }
        Ok(Self { text, prefix })
    }

    pub fn prefix(&self) -> SecretPrefix {
        self.prefix
    }

    /// `atk_live_...x7Kq2B`: enough to recognise a key, useless to an attacker
    /// (the last six characters are the checksum, derived from the rest).
    pub fn preview(&self) -> String {
        format!("{}...{}", &self.text[..PREFIX_LEN], &self.text[BODY_END..])
    }

    fn as_bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }
}

impl std::fmt::Debug for ParsedSecret<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParsedSecret({})", self.preview())
    }
}

/// HMAC-SHA-256 of a secret under the pepper: what the store keeps and looks
/// up by. Without the pepper a stolen table cannot be brute-forced offline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Constant-time comparison, for credentials compared in memory.
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(<hidden>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the pepper must be at least 32 bytes")]
pub struct PepperTooShort;

/// The server-wide HMAC key. Every node of one deployment shares it.
#[derive(Clone)]
pub struct Pepper {
    keyed: Hmac<Sha256>,
    /// The same key, for messages that fit one block (every key secret).
    short: ShortMessageHmac,
}

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const SHA256_INITIAL_STATE: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];
const SHA256_BLOCK: usize = 64;

/// HMAC-SHA-256 (RFC 2104) with both padded keys already absorbed, for a
/// message of at most [`ShortMessageHmac::MAX_MESSAGE`] bytes: the inner and
/// the outer hash then take one compression each, and nothing is copied.
/// Every verification hashes one secret; the general `Hmac` clone, buffer
/// and padding cost as much as the two compressions themselves. The tests
/// hold it equal to the `hmac` crate's for every length and key.
#[derive(Clone)]
struct ShortMessageHmac {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl ShortMessageHmac {
    /// What fits in one block with SHA-256's padding (a 0x80 byte and the
    /// 8-byte length).
    const MAX_MESSAGE: usize = SHA256_BLOCK - 9;

    fn new(key: &[u8]) -> Self {
        let mut block_key = [0u8; SHA256_BLOCK];
        if key.len() > SHA256_BLOCK {
            block_key[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block_key[..key.len()].copy_from_slice(key);
        }
        let absorbed = |pad: u8| {
            let mut state = SHA256_INITIAL_STATE;
            compress256(&mut state, &[block_key.map(|byte| byte ^ pad)]);
            state
        };
        Self {
            inner: absorbed(0x36),
            outer: absorbed(0x5c),
        }
    }

    fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut inner = self.inner;
        compress256(&mut inner, &[last_block(message)]);
        let mut outer = self.outer;
        compress256(&mut outer, &[last_block(&digest_bytes(&inner))]);
        digest_bytes(&outer)
    }
}

/// The final block of a message whose first block (the padded key) was
/// already absorbed: the message, 0x80, zeros, and the bit length of
/// everything hashed.
fn last_block(message: &[u8]) -> [u8; SHA256_BLOCK] {
    let mut block = [0u8; SHA256_BLOCK];
    block[..message.len()].copy_from_slice(message);
    block[message.len()] = 0x80;
    let bits = ((SHA256_BLOCK + message.len()) as u64) * 8;
    block[SHA256_BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
    block
}

fn digest_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

impl Pepper {
    pub const MIN_LEN: usize = 32;

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PepperTooShort> {
        if bytes.len() < Self::MIN_LEN {
            return Err(PepperTooShort);
        }
        let keyed = Hmac::<Sha256>::new_from_slice(bytes).map_err(|_| PepperTooShort)?;
        Ok(Self {
            keyed,
            short: ShortMessageHmac::new(bytes),
        })
    }

    /// 32 fresh random bytes for a new deployment.
    pub fn generate_bytes() -> [u8; 32] {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system random source is available");
        bytes
    }

    pub fn hash(&self, secret: &ParsedSecret<'_>) -> SecretHash {
        self.hash_bytes(secret.as_bytes())
    }

    /// For credentials that are not key secrets (the admin token).
    pub fn hash_token(&self, token: &str) -> SecretHash {
        self.hash_bytes(token.as_bytes())
    }

    fn hash_bytes(&self, bytes: &[u8]) -> SecretHash {
        if bytes.len() <= ShortMessageHmac::MAX_MESSAGE {
            return SecretHash(self.short.mac(bytes));
        }
        // Cloning the keyed state skips re-deriving the HMAC pads per call.
        let mut mac = self.keyed.clone();
        mac.update(bytes);
        SecretHash(mac.finalize().into_bytes().into())
    }
}

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pepper(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_well_formed(text: &str) -> bool {
        let pattern_ok = text.len() == SECRET_LEN
            && (text.starts_with("atk_live_") || text.starts_with("atk_test_"))
            && text[PREFIX_LEN..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric());
        pattern_ok && checksum(&text[..BODY_END]) == text.as_bytes()[BODY_END..]
    }

    #[test]
    fn the_checksum_is_crc32_in_six_base62_digits() {
        // CRC-32 of "123456789" is 0xCBF43926 = 3421780262; in base62 its
        // digits are 3 45 35 27 22 14, written "3jZRME".
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(&checksum("123456789"), b"3jZRME");
        assert_eq!(&checksum(""), b"000000");
    }

    #[test]
    fn the_preview_is_the_prefix_and_the_checksum() {
        let secret = PlaintextSecret::generate(SecretPrefix::Live);
        let preview = secret.parsed().preview();
        assert_eq!(preview.len(), 9 + 3 + 6);
        assert!(preview.starts_with("atk_live_..."));
        assert!(secret.expose().ends_with(&preview[12..]));
    }

    #[test]
    fn debug_output_never_shows_the_plaintext() {
        let secret = PlaintextSecret::generate(SecretPrefix::Test);
        let printed = format!("{secret:?} {:?}", secret.parsed());
        assert!(!printed.contains(secret.expose()));
        assert!(!printed.contains(&secret.expose()[9..41]));
    }

    #[test]
    fn secrets_quoted_in_messages_are_redacted() {
        let secret = PlaintextSecret::generate(SecretPrefix::Live);
        let message = format!("invalid type: string \"{}\", expected u32", secret.expose());
        let redacted = redact_secrets(&message);
        assert!(!redacted.contains(&secret.expose()[9..]), "{redacted}");
        assert_eq!(
            redacted,
            "invalid type: string \"atk_live_[redacted]\", expected u32"
        );
        assert_eq!(redact_secrets("nothing here"), "nothing here");
        assert_eq!(
            redact_secrets("atk_test_abc atk_live_"),
            "atk_test_[redacted] atk_live_[redacted]"
        );
    }

    #[test]
    fn short_peppers_are_refused() {
        assert!(Pepper::from_bytes(&[7; 31]).is_err());
        assert!(Pepper::from_bytes(&[7; 32]).is_ok());
    }

    #[test]
    fn different_peppers_give_different_hashes() {
        let secret = PlaintextSecret::generate(SecretPrefix::Live);
        let a = Pepper::from_bytes(&[1; 32]).unwrap().hash(&secret.parsed());
        let b = Pepper::from_bytes(&[2; 32]).unwrap().hash(&secret.parsed());
        assert_ne!(a, b);
        assert!(a.ct_eq(&a));
        assert!(!a.ct_eq(&b));
    }

    fn any_prefix() -> impl Strategy<Value = SecretPrefix> {
        prop_oneof![Just(SecretPrefix::Live), Just(SecretPrefix::Test)]
    }

    #[test]
    fn the_keyed_hash_matches_rfc_4231_test_case_6() {
        // A 131-byte key (longer than a block, so it is hashed first) and a
        // 54-byte message, which takes the one-block path.
        let pepper = Pepper::from_bytes(&[0xaa; 131]).unwrap();
        let mac = pepper.hash_bytes(b"Test Using Larger Than Block-Size Key - Hash Key First");
        let hex: String = mac.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn the_keyed_hash_is_the_hmac_crates_hmac_sha256_for_every_key_and_message(
            // Peppers shorter than a block, a block, and longer (hashed
            // first); messages of every length up to past one block.
            key in proptest::collection::vec(any::<u8>(), 32..150),
            message in proptest::collection::vec(any::<u8>(), 0..130),
        ) {
            let pepper = Pepper::from_bytes(&key).unwrap();
            let mut expected = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            expected.update(&message);
            let expected: [u8; 32] = expected.finalize().into_bytes().into();
            prop_assert_eq!(pepper.hash_bytes(&message).0, expected);
        }

        #[test]
        fn every_generated_secret_matches_the_pattern_and_its_checksum(prefix in any_prefix()) {
            let secret = PlaintextSecret::generate(prefix);
            let text = secret.expose();
            prop_assert!(is_well_formed(text), "{}", text);
            prop_assert!(text.starts_with(prefix.as_str()));
            let parsed = ParsedSecret::parse(text).unwrap();
            prop_assert_eq!(parsed.prefix(), prefix);
        }

        #[test]
        fn every_single_character_change_is_rejected(
            prefix in any_prefix(),
            position in 0..SECRET_LEN,
            replacement in any::<char>(),
        ) {
            let secret = PlaintextSecret::generate(prefix);
            let original = secret.expose();
            prop_assume!(original.chars().nth(position) != Some(replacement));
            let changed: String = original
                .chars()
                .enumerate()
                .map(|(i, c)| if i == position { replacement } else { c })
                .collect();
            prop_assert!(ParsedSecret::parse(&changed).is_err(), "{} accepted", changed);
        }

        #[test]
        fn every_single_base62_substitution_is_rejected(
            position in 0..SECRET_LEN,
            digit in 0usize..62,
        ) {
            // The sharpest case: the change keeps the alphabet, so only the
            // checksum (or the prefix check) can catch it.
            let secret = PlaintextSecret::generate(SecretPrefix::Live);
            let mut bytes = secret.expose().as_bytes().to_vec();
            prop_assume!(bytes[position] != BASE62[digit]);
            bytes[position] = BASE62[digit];
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(ParsedSecret::parse(&changed).is_err(), "{} accepted", changed);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics_and_accepts_only_well_formed_secrets(text in "\\PC{0,60}") {
            prop_assert_eq!(ParsedSecret::parse(&text).is_ok(), is_well_formed(&text));
        }

        #[test]
        fn random_base62_has_the_requested_length_and_alphabet(len in 0usize..200) {
            let text = random_base62(len);
            prop_assert_eq!(text.len(), len);
            prop_assert!(text.bytes().all(|b| BASE62.contains(&b)));
        }
    }
}
