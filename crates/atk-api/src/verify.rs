//! `POST /v1/keys/verify` (SPEC section 5).
//!
//! The response borrows where it can: the server answers straight from its
//! cached key record without copying it, and a client reads an owned
//! [`VerifyOutcome`].

use std::borrow::Cow;
use std::net::IpAddr;

use atk_core::decision::{EntitlementView, VerifyCode};
use atk_core::ids::{KeyId, ProjectId};
use atk_core::key::{Environment, KeyKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a product backend asks.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The secret presented to the product backend.
    pub key: String,
    /// A catalog action, for example `notification.send`.
    pub action: Option<String>,
    /// What the calling backend knows of its own caller's address.
    /// A key with an IP allowlist answers `FORBIDDEN_IP` when this is
    /// outside it or missing.
    #[schema(value_type = Option<String>, format = "ip", example = "203.0.113.7")]
    pub client_ip: Option<IpAddr>,
    /// The browser `Origin` the calling backend saw, if any: keys are
    /// backend-only, so any origin answers `BROWSER_ORIGIN_BLOCKED`.
    pub origin: Option<String>,
}

// `Debug` leaves the key out, so a logged request shows no secret.
impl std::fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("key", &"[secret, not printed]")
            .field("action", &self.action)
            .field("client_ip", &self.client_ip)
            .field("origin", &self.origin)
            .finish()
    }
}

/// The key as verification reports it: no secret, no hash, no name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifiedKey<'a> {
    #[schema(value_type = String)]
    pub id: Cow<'a, KeyId>,
    #[schema(value_type = String)]
    pub project_id: Cow<'a, ProjectId>,
    pub environment: Environment,
    pub kind: KeyKind,
    #[schema(value_type = Vec<String>)]
    pub scopes: Cow<'a, [String]>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyResponse<'a> {
    /// The key exists and is active.
    pub valid: bool,
    /// The key may perform `action` now (equals `valid` without an action).
    pub allowed: bool,
    pub code: VerifyCode,
    /// `null` unless the key was found.
    pub key: Option<VerifiedKey<'a>>,
    #[schema(value_type = Option<EntitlementView>)]
    pub entitlement: Option<Cow<'a, EntitlementView>>,
    #[schema(value_type = Vec<String>)]
    pub missing_scopes: Cow<'a, [String]>,
}

impl VerifiedKey<'_> {
    /// The same key, owning its fields.
    pub fn into_owned(self) -> VerifiedKeyOwned {
        VerifiedKey {
            id: Cow::Owned(self.id.into_owned()),
            project_id: Cow::Owned(self.project_id.into_owned()),
            environment: self.environment,
            kind: self.kind,
            scopes: Cow::Owned(self.scopes.into_owned()),
            expires_at: self.expires_at,
        }
    }
}

impl VerifyResponse<'_> {
    /// The same answer, owning its fields.
    pub fn into_owned(self) -> VerifyOutcome {
        VerifyResponse {
            valid: self.valid,
            allowed: self.allowed,
            code: self.code,
            key: self.key.map(VerifiedKey::into_owned),
            entitlement: self.entitlement.map(|view| Cow::Owned(view.into_owned())),
            missing_scopes: Cow::Owned(self.missing_scopes.into_owned()),
        }
    }
}

impl VerifyResponse<'_> {
    /// This answer as JSON, byte for byte what its `Serialize` writes (a
    /// property test holds the two equal), written directly. On the verify
    /// path serde's writer cost more than the verification: it escapes
    /// every field name and every string byte by byte, and a cached
    /// verification is otherwise a few hundred nanoseconds.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_json_with(out, None);
    }

    /// As [`Self::write_json`], with the key's scopes already written as
    /// JSON (`scopes_json`, exactly what serde_json writes for them): a
    /// server keeps that per scope list rather than writing it per answer.
    pub fn write_json_with(&self, out: &mut Vec<u8>, scopes_json: Option<&str>) {
        out.extend_from_slice(b"{\"valid\":");
        out.extend_from_slice(boolean(self.valid));
        out.extend_from_slice(b",\"allowed\":");
        out.extend_from_slice(boolean(self.allowed));
        out.extend_from_slice(b",\"code\":");
        quoted(out, self.code.as_str());
        out.extend_from_slice(b",\"key\":");
        match &self.key {
            None => out.extend_from_slice(b"null"),
            Some(key) => key.write_json(out, scopes_json),
        }
        out.extend_from_slice(b",\"entitlement\":");
        match &self.entitlement {
            None => out.extend_from_slice(b"null"),
            Some(view) => {
                out.extend_from_slice(b"{\"product\":");
                string(out, &view.product);
                out.extend_from_slice(b",\"status\":");
                quoted(out, view.status.as_str());
                out.push(b'}');
            }
        }
        out.extend_from_slice(b",\"missing_scopes\":");
        strings(out, &self.missing_scopes);
        out.push(b'}');
    }
}

impl VerifiedKey<'_> {
    fn write_json(&self, out: &mut Vec<u8>, scopes_json: Option<&str>) {
        out.extend_from_slice(b"{\"id\":");
        quoted(out, self.id.as_str());
        out.extend_from_slice(b",\"project_id\":");
        quoted(out, self.project_id.as_str());
        out.extend_from_slice(b",\"environment\":");
        quoted(out, self.environment.as_str());
        out.extend_from_slice(b",\"kind\":");
        quoted(out, self.kind.as_str());
        out.extend_from_slice(b",\"scopes\":");
        match scopes_json {
            Some(json) => out.extend_from_slice(json.as_bytes()),
            None => strings(out, &self.scopes),
        }
        out.extend_from_slice(b",\"expires_at\":");
        match &self.expires_at {
            None => out.extend_from_slice(b"null"),
            Some(at) => crate::timestamp::write_json(at, out),
        }
        out.push(b'}');
    }
}

fn boolean(value: bool) -> &'static [u8] {
    if value { b"true" } else { b"false" }
}

/// A JSON string: copied as it is when nothing in it needs escaping (a
/// scope name never does), else escaped by serde_json.
fn string(out: &mut Vec<u8>, text: &str) {
    // Or-ed into a byte rather than `any`: no early exit, so the compiler
    // takes the bytes sixteen at a time.
    let mut escaped = 0_u8;
    for byte in text.bytes() {
        escaped |= u8::from(byte < 0x20) | u8::from(byte == b'"') | u8::from(byte == b'\\');
    }
    if escaped != 0 {
        // Writing into a Vec cannot fail, and a str is always serializable.
        let _ = serde_json::to_writer(&mut *out, text);
    } else {
        quoted(out, text);
    }
}

/// A string that needs no escaping by construction: a code's or a kind's
/// name, a key id (base62), a project id (`[a-z0-9_]`).
fn quoted(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

fn strings(out: &mut Vec<u8>, texts: &[String]) {
    out.push(b'[');
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, text);
    }
    out.push(b']');
}

/// A verify answer as a client holds it: owned.
pub type VerifyOutcome = VerifyResponse<'static>;
pub type VerifiedKeyOwned = VerifiedKey<'static>;

#[cfg(test)]
mod tests {
    use super::*;
    use atk_core::entitlement::EntitlementStatus;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        // Mostly plain, sometimes with what JSON must escape.
        prop_oneof![
            "[a-z_.]{0,20}",
            any::<String>(),
            "[\"\\\\\u{0}-\u{1f}a\u{7f}é😀]{0,8}",
        ]
    }

    fn response() -> impl Strategy<Value = VerifyOutcome> {
        let key = (
            any::<bool>(),
            0..KeyKind::ALL.len(),
            0..Environment::ALL.len(),
            prop::collection::vec(text(), 0..4),
            prop::option::of((-100_000_000_000_i64..300_000_000_000, 0_u32..1_000_000_000)),
        )
            .prop_map(|(present, kind, environment, scopes, expires_at)| {
                present.then(|| VerifiedKey {
                    id: Cow::Owned(KeyId::generate()),
                    project_id: Cow::Owned(ProjectId::parse("project_identity_demo").unwrap()),
                    environment: Environment::ALL[environment],
                    kind: KeyKind::ALL[kind],
                    scopes: Cow::Owned(scopes),
                    expires_at: expires_at.and_then(|(s, n)| DateTime::from_timestamp(s, n)),
                })
            });
        let entitlement = prop::option::of((text(), 0..4_usize)).prop_map(|view| {
            view.map(|(product, status)| {
                Cow::Owned(EntitlementView {
                    product: product.into(),
                    status: [
                        EntitlementStatus::Enabled,
                        EntitlementStatus::Trial,
                        EntitlementStatus::UpgradeRequired,
                        EntitlementStatus::Disabled,
                    ][status],
                })
            })
        });
        (
            any::<bool>(),
            any::<bool>(),
            0..VerifyCode::ALL.len(),
            key,
            entitlement,
            prop::collection::vec(text(), 0..3),
        )
            .prop_map(
                |(valid, allowed, code, key, entitlement, missing)| VerifyResponse {
                    valid,
                    allowed,
                    code: VerifyCode::ALL[code],
                    key,
                    entitlement,
                    missing_scopes: Cow::Owned(missing),
                },
            )
    }

    proptest! {
        /// The verify path's writer and serde write the same bytes, for
        /// every code and kind, with or without a key, an entitlement or
        /// an expiry, and strings that need escaping.
        #[test]
        fn the_direct_writer_writes_what_serde_writes(response in response()) {
            let expected = serde_json::to_string(&response).unwrap();
            let mut direct = Vec::new();
            response.write_json(&mut direct);
            prop_assert_eq!(String::from_utf8(direct).unwrap(), expected.clone());
            // With the scopes written beforehand, as the server keeps them.
            let scopes = response
                .key
                .as_ref()
                .map(|key| serde_json::to_string(&key.scopes).unwrap());
            let mut direct = Vec::new();
            response.write_json_with(&mut direct, scopes.as_deref());
            prop_assert_eq!(String::from_utf8(direct).unwrap(), expected);
        }
    }
}
