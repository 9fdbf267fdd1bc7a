//! Values that parse, never just validate: once one of these exists it is
//! well-formed, so nothing past the boundary checks again.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::secret::random_base62;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("project_id must match ^[a-z][a-z0-9_]{{2,62}}$ (got {0} characters)")]
    ProjectId(usize),
    #[error("key id must be key_ followed by 22 base62 characters")]
    KeyId,
    #[error("name must be 1 to 100 characters after trimming")]
    NameLength,
    #[error("name must not contain control characters")]
    NameControlCharacter,
    #[error("name must not contain a secret (it looks like an atk_ key or token)")]
    NameLooksLikeSecret,
    #[error("account id must be acc_ followed by 22 base62 characters")]
    AccountId,
    #[error("enter an email address like name@example.com (at most 254 characters)")]
    Email,
}

/// `^[a-z][a-z0-9_]{2,62}$`, for example `project_identity_demo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProjectId(String);

impl ProjectId {
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let mut chars = text.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if first_ok && rest_ok && (3..=63).contains(&text.len()) {
            Ok(Self(text.to_owned()))
        } else {
            Err(IdError::ProjectId(text.chars().count()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `key_` + 22 base62 characters (about 131 random bits): unguessable, so a
/// key id alone reveals nothing about which keys exist. Held inline (no
/// allocation): a node caches a million keys and counts usage by key id,
/// so a clone is a copy of 26 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId([u8; KEY_ID_LEN]);

const KEY_ID_PREFIX: &str = "key_";
const KEY_ID_RANDOM_LEN: usize = 22;
const KEY_ID_LEN: usize = KEY_ID_PREFIX.len() + KEY_ID_RANDOM_LEN;

impl KeyId {
    pub fn generate() -> Self {
        Self::parse(&format!(
            "{KEY_ID_PREFIX}{}",
            random_base62(KEY_ID_RANDOM_LEN)
        ))
        .expect("a generated key id has the key id shape")
    }

    pub fn parse(text: &str) -> Result<Self, IdError> {
        match text.strip_prefix(KEY_ID_PREFIX) {
            Some(rest)
                if rest.len() == KEY_ID_RANDOM_LEN
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                let mut bytes = [0; KEY_ID_LEN];
                bytes.copy_from_slice(text.as_bytes());
                Ok(Self(bytes))
            }
            _ => Err(IdError::KeyId),
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a key id is ASCII by construction")
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeyId").field(&self.as_str()).finish()
    }
}

impl TryFrom<String> for KeyId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<KeyId> for String {
    fn from(value: KeyId) -> String {
        value.as_str().to_owned()
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A human label for a key or a project: trimmed, 1–100 characters, no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    /// At most 100 characters as sent, no control character anywhere (a
    /// tab at the end too), and something besides white space; stored
    /// trimmed. Judged on the text as sent, so the rule is exactly what
    /// the OpenAPI document can say.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        if text.chars().any(char::is_control) {
            return Err(IdError::NameControlCharacter);
        }
        let trimmed = text.trim();
        if trimmed.is_empty() || text.chars().count() > 100 {
            return Err(IdError::NameLength);
        }
        if crate::secret::looks_like_secret(trimmed) {
            return Err(IdError::NameLooksLikeSecret);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// A name read back from the store. It passed the rules of its day; a
    /// rule added since (a shorter limit, a new forbidden shape) must not
    /// make an existing key, project or account unreadable, so it is taken
    /// as it is. Input from clients always goes through [`DisplayName::parse`].
    pub fn stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `acc_` + 22 base62 characters: a console account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

const ACCOUNT_ID_PREFIX: &str = "acc_";

impl AccountId {
    pub fn generate() -> Self {
        Self(format!(
            "{ACCOUNT_ID_PREFIX}{}",
            random_base62(KEY_ID_RANDOM_LEN)
        ))
    }

    pub fn parse(text: &str) -> Result<Self, IdError> {
        match text.strip_prefix(ACCOUNT_ID_PREFIX) {
            Some(rest)
                if rest.len() == KEY_ID_RANDOM_LEN
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                Ok(Self(text.to_owned()))
            }
            _ => Err(IdError::AccountId),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A console sign-in name: an email address, trimmed and lower-cased so
/// `Ana@Example.com` and `ana@example.com` are one account. Only the shape
/// is checked (one `@`, text on both sides, a dot in the domain, no spaces
/// or control characters); nothing is sent to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let email = text.trim().to_lowercase();
        let valid = email.len() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(email.split_once('@'), Some((local, domain))
                if !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.'));
        if valid {
            Ok(Self(email))
        } else {
            Err(IdError::Email)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_impls {
    ($($name:ident),+) => {$(
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    )+};
}
string_newtype_impls!(ProjectId, DisplayName, AccountId, Email);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn project_ids_follow_the_pattern() {
        for good in ["project_identity_demo", "abc", "a12_"] {
            assert!(ProjectId::parse(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(64);
        for bad in [
            "",
            "ab",
            "1abc",
            "_abc",
            "Abc",
            "ab-c",
            "abc ",
            "abé",
            too_long.as_str(),
        ] {
            assert!(ProjectId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_trimmed_and_must_be_printable() {
        assert_eq!(
            DisplayName::parse("  Backend key ").unwrap().as_str(),
            "Backend key"
        );
        assert_eq!(DisplayName::parse("   "), Err(IdError::NameLength));
        assert_eq!(
            DisplayName::parse(&"x".repeat(101)),
            Err(IdError::NameLength)
        );
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        assert_eq!(
            DisplayName::parse("a\u{0}b"),
            Err(IdError::NameControlCharacter)
        );
        assert_eq!(
            DisplayName::parse("a\nb"),
            Err(IdError::NameControlCharacter)
        );
    }

    #[test]
    fn emails_are_lower_cased_and_need_a_domain() {
        assert_eq!(
            Email::parse(" Ana@Example.COM ").unwrap().as_str(),
            "ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "a@b@c.com",
            "ana@.com",
        ] {
            assert_eq!(Email::parse(bad), Err(IdError::Email), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn generated_account_ids_parse(_seed in 0u8..255) {
            let id = AccountId::generate();
            prop_assert_eq!(AccountId::parse(id.as_str()), Ok(id.clone()));
        }

        #[test]
        fn email_parse_never_panics(text in "\\PC{0,300}") {
            let _ = Email::parse(&text);
        }

        #[test]
        fn generated_key_ids_parse(_seed in 0u8..255) {
            let id = KeyId::generate();
            prop_assert_eq!(KeyId::parse(id.as_str()), Ok(id.clone()));
        }

        #[test]
        fn project_id_parse_never_panics_and_accepts_only_the_pattern(text in "\\PC{0,70}") {
            let ok = ProjectId::parse(&text).is_ok();
            let expected = text.len() >= 3 && text.len() <= 63
                && text.starts_with(|c: char| c.is_ascii_lowercase())
                && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            prop_assert_eq!(ok, expected);
        }
    }
}
