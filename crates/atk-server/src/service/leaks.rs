//! Leaked-secret reports from a secret-scanning partner (GitHub's format):
//! a signed list of tokens found in public places. Every report is checked
//! against the partner's ECDSA P-256 public keys before anything happens;
//! each token that is one of our keys is revoked at once and audited with
//! the URL where it was found.

use std::path::Path;

use atk_core::audit::AuditAction;
use atk_core::key::KeyStatus;
use atk_core::lifecycle::Ending;
use atk_core::secret::ParsedSecret;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest;
use utoipa::ToSchema;

use super::{Caller, Service, ServiceError};

/// Reports longer than this are refused whole (a partner batches far fewer).
pub const MAX_REPORTED_TOKENS: usize = 1000;

/// The partner's public keys, by identifier (GitHub's
/// `meta/public_keys/secret_scanning` document, saved by the operator).
#[derive(Debug, Default, Clone)]
pub struct ScanningKeys {
    keys: Vec<(String, VerifyingKey)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanningKeysError {
    #[error("cannot read the secret-scanning keys file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the secret-scanning keys file is not {{\"public_keys\": [{{\"key_identifier\", \"key\"}}]}}: {0}"
    )]
    Format(String),
    #[error("secret-scanning key {0} is not a PEM-encoded P-256 public key")]
    Key(String),
}

#[derive(Deserialize)]
struct KeysDocument {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
}

impl ScanningKeys {
    pub fn load(path: &Path) -> Result<Self, ScanningKeysError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScanningKeysError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, ScanningKeysError> {
        let document: KeysDocument =
            serde_json::from_str(text).map_err(|e| ScanningKeysError::Format(e.to_string()))?;
        let keys = document
            .public_keys
            .into_iter()
            .map(|published| {
                VerifyingKey::from_public_key_pem(&published.key)
                    .map(|key| (published.key_identifier.clone(), key))
                    .map_err(|_| ScanningKeysError::Key(published.key_identifier))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `signature` (base64 of an ASN.1 DER ECDSA signature) over
    /// `body` verifies with the key named `identifier`.
    pub fn verifies(&self, identifier: &str, signature: &str, body: &[u8]) -> bool {
        let Some((_, key)) = self.keys.iter().find(|(id, _)| id == identifier) else {
            return false;
        };
        let Ok(der) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
            return false;
        };
        let Ok(signature) = Signature::from_der(&der) else {
            return false;
        };
        key.verify(body, &signature).is_ok()
    }
}

/// One token a partner found.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LeakReport {
    /// The token as found.
    pub token: String,
    /// The partner's name for the token's type.
    #[serde(rename = "type")]
    pub token_type: String,
    /// Where it was found.
    #[serde(default)]
    pub url: Option<String>,
    /// What the partner scanned (`content`, `commit`, ...).
    #[serde(default)]
    pub source: Option<String>,
}

/// The answer for one token: the token is never echoed, only its SHA-256.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeakLabel {
    /// Hex SHA-256 of the reported token.
    pub token_hash: String,
    pub token_type: String,
    /// `true_positive`: one of our keys (now revoked); `false_positive`:
    /// not a key of this deployment.
    pub label: &'static str,
}

/// Where a leak was found, kept in the audit log: bounded, and with
/// anything secret-shaped cut out (the URL may quote the token).
fn found_at(text: Option<&str>) -> Option<String> {
    text.map(|text| {
        atk_core::secret::redact_secrets(&text.chars().take(500).collect::<String>()).into_owned()
    })
}

impl Service {
    /// Revokes every reported token that is an active key of this
    /// deployment; labels each token. A token whose checksum fails is a
    /// false positive without any lookup.
    pub async fn report_leaks(
        &self,
        caller: &Caller,
        reports: &[LeakReport],
    ) -> Result<Vec<LeakLabel>, ServiceError> {
        let mut labels = Vec::with_capacity(reports.len());
        for report in reports {
            let ours = match ParsedSecret::parse(&report.token) {
                Ok(parsed) => {
                    let hash = self.pepper().hash(&parsed);
                    match self.store().find_key_by_hash(&hash).await? {
                        Some(key) => {
                            if key.status_at(self.now()) == KeyStatus::Active {
                                self.revoke_leaked(caller, &key, report).await?;
                            }
                            true
                        }
                        None => false,
                    }
                }
                Err(_) => false,
            };
            labels.push(LeakLabel {
                token_hash: hex::encode(sha2::Sha256::digest(report.token.as_bytes())),
                token_type: report.token_type.chars().take(100).collect(),
                label: if ours {
                    "true_positive"
                } else {
                    "false_positive"
                },
            });
        }
        Ok(labels)
    }

    async fn revoke_leaked(
        &self,
        caller: &Caller,
        key: &atk_core::key::KeyRecord,
        report: &LeakReport,
    ) -> Result<(), ServiceError> {
        let source = found_at(report.source.as_deref());
        let details = json!({
            "reason": "leaked",
            "leaked": {"url": found_at(report.url.as_deref()), "source": source},
        });
        let ended = self
            .end_key(
                caller,
                &key.project_id,
                key.id.as_str(),
                Ending::Revoke {
                    reason: Some("leaked: reported by secret scanning".into()),
                },
                AuditAction::KeyRevoke,
                details,
            )
            .await;
        match ended {
            // Ended meanwhile: what the report wanted.
            Ok(_) | Err(ServiceError::Conflict(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }
}
