use atk_core::access::Operation;
use atk_core::audit::AuditAction;
use atk_core::ids::{DisplayName, KeyId, ProjectId};
use atk_core::key::{Environment, KeyKind, KeyRecord, KeyStatus, PreviewRow};
use atk_core::lifecycle::{Ending, Grace, check_can_end, check_can_rotate};
use atk_core::limits::{IpAllowlist, RateLimit};
use atk_core::policy::{
    BlockedScope, Confirmation, KeyRequest, blocked_scopes, require_rotation_confirmations,
};
use atk_core::secret::{PlaintextSecret, looks_like_secret};
use atk_core::usage::{Granularity, UsageReport, summarize};
use atk_store::{KeyCursor, KeyQuery, Rotation, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::{Caller, Service, ServiceError, bad_cursor, page_limit};

/// Longest revocation reason kept.
const MAX_REASON_CHARS: usize = 500;

/// A new key and the only copy of its secret there will ever be.
#[derive(Debug)]
pub struct CreatedKey {
    pub secret: PlaintextSecret,
    pub key: PreviewRow,
    pub blocked_scopes: Vec<BlockedScope>,
}

/// A rotation's result: the new key (and its secret, once) and the old key
/// as it is now.
#[derive(Debug)]
pub struct RotatedKey {
    pub secret: PlaintextSecret,
    pub key: PreviewRow,
    pub previous: PreviewRow,
}

/// Filters of the key listing: the API's query, also what the console and
/// the CLI fill in.
pub type KeyFilter = atk_api::keys::ListKeysQuery;

impl From<CreatedKey> for atk_api::keys::CreatedKeyBody {
    fn from(created: CreatedKey) -> Self {
        Self {
            secret: created.secret.expose().to_owned(),
            key: created.key,
            blocked_scopes: created
                .blocked_scopes
                .iter()
                .map(|blocked| blocked.scope.clone())
                .collect(),
            blocked_scope_reasons: created.blocked_scopes,
        }
    }
}

impl From<RotatedKey> for atk_api::keys::RotatedKeyBody {
    fn from(rotated: RotatedKey) -> Self {
        Self {
            secret: rotated.secret.expose().to_owned(),
            key: rotated.key,
            previous: rotated.previous,
        }
    }
}

#[derive(Debug, Clone)]
pub struct KeyPage {
    pub items: Vec<PreviewRow>,
    pub next_cursor: Option<String>,
}

impl Service {
    /// A fresh key record with a new secret. Only its keyed hash and
    /// preview go into the record.
    fn mint(&self, template: KeyTemplate<'_>, now: DateTime<Utc>) -> (PlaintextSecret, KeyRecord) {
        let secret = PlaintextSecret::generate(template.environment.secret_prefix());
        let parsed = secret.parsed();
        let record = KeyRecord {
            id: KeyId::generate(),
            project_id: template.project_id.clone(),
            name: template.name,
            kind: template.kind,
            environment: template.environment,
            scopes: template.scopes,
            expiration: template.expiration,
            secret_hash: self.pepper.hash(&parsed),
            secret_preview: parsed.preview(),
            created_at: now,
            expires_at: template.expiration.expires_at(now),
            last_used_at: None,
            revoked_at: None,
            revoke_reason: None,
            rotated_from: template.rotated_from,
            rotated_to: None,
            created_by: template.created_by,
            allowed_ips: template.allowed_ips,
            rate_limit: template.rate_limit,
        };
        (secret, record)
    }

    /// Creates a key. The plaintext secret is in the result and nowhere else.
    #[tracing::instrument(skip_all, fields(%project_id, kind = ?request.kind))]
    pub async fn create_key(
        &self,
        caller: &Caller,
        project_id: &ProjectId,
        name: &str,
        request: &KeyRequest,
    ) -> Result<CreatedKey, ServiceError> {
        caller.authorize(
            Operation::CreateKey(request.kind.unwrap_or_default()),
            Some(project_id),
        )?;
        self.existing_project(project_id).await?;
        self.admin_token.check("name", name)?;
        let name = DisplayName::parse(name)?;
        let now = self.now();
        let plan = request.plan(self.catalog, now)?;
        let entitlements = self.store.list_entitlements(project_id).await?;
        let template = KeyTemplate {
            project_id,
            name,
            kind: plan.kind,
            environment: plan.environment,
            scopes: plan.scopes,
            expiration: plan.expiration,
            rotated_from: None,
            created_by: caller.service_role_key().cloned(),
            allowed_ips: plan.allowed_ips,
            rate_limit: plan.rate_limit,
        };
        let (secret, record) = self.mint(template, now);
        let event = caller.event(
            now,
            AuditAction::KeyCreate,
            project_id,
            ("key", record.id.as_str()),
            json!({
                "name": record.name,
                "kind": record.kind,
                "environment": record.environment,
                "scopes": record.scopes,
                "expiration": record.expiration,
                "expires_at": record.expires_at,
                "allowed_ips": record.allowed_ips.to_strings(),
                "rate_limit": record.rate_limit,
            }),
        );
        self.store.insert_key(&record, &event).await?;
        tracing::info!(key_id = %record.id, "key created");
        Ok(CreatedKey {
            blocked_scopes: blocked_scopes(self.catalog, &record.scopes, &entitlements, now),
            key: record.preview_at(now),
            secret,
        })
    }

    #[tracing::instrument(skip_all, fields(%project_id))]
    pub async fn get_key(
        &self,
        caller: &Caller,
        project_id: &ProjectId,
        key_id: &str,
    ) -> Result<PreviewRow, ServiceError> {
        caller.authorize(Operation::ReadProject, Some(project_id))?;
        Ok(self.key(project_id, key_id).await?.preview_at(self.now()))
    }

    #[tracing::instrument(skip_all, fields(%project_id))]
    pub async fn list_keys(
        &self,
        caller: &Caller,
        project_id: &ProjectId,
        filter: &KeyFilter,
    ) -> Result<KeyPage, ServiceError> {
        caller.authorize(Operation::ReadProject, Some(project_id))?;
        self.existing_project(project_id).await?;
        let now = self.now();
        let after = match filter.cursor.as_deref() {
            None | Some("") => None,
            Some(text) => Some(KeyCursor::decode(text).ok_or_else(bad_cursor)?),
        };
        let expiring_before = match filter.expiring_within_days {
            None => None,
            Some(days @ 0..=3650) => Some(now + TimeDelta::days(i64::from(days))),
            Some(_) => {
                return Err(ServiceError::field(
                    "expiring_within_days",
                    "expiring_within_days must be between 0 and 3650",
                ));
            }
        };
        let query = KeyQuery {
            now,
            status: filter.status,
            environment: filter.environment,
            kind: filter.kind,
            expiring_before,
            limit: page_limit(filter.limit)?,
            after,
        };
        let page = self.store.list_keys(project_id, &query).await?;
        Ok(KeyPage {
            items: page
                .items
                .iter()
                .map(|record| record.preview_at(now))
                .collect(),
            next_cursor: page.next.map(|cursor| cursor.encode()),
        })
    }

    /// A new key with the old one's name, kind, environment, scopes and
    /// expiration choice (counted from now); the old key ends after `grace`,
    /// never later than it would have. One rotation per key: a concurrent
    /// second attempt gets `Conflict`.
    #[tracing::instrument(skip_all, fields(%project_id, grace = grace.as_str()))]
    pub async fn rotate_key(
        &self,
        caller: &Caller,
        project_id: &ProjectId,
        key_id: &str,
        grace: Grace,
        confirmations: &[Confirmation],
    ) -> Result<RotatedKey, ServiceError> {
        caller.authorize(Operation::ManageKeys, Some(project_id))?;
        let old = self.key(project_id, key_id).await?;
        // A rotation hands out a new secret of the old key's kind: whoever
        // may not create that kind (an admin and a Service Role Key, say)
        // may not rotate it either.
        caller.authorize(Operation::CreateKey(old.kind), Some(project_id))?;
        require_rotation_confirmations(old.kind, confirmations)?;
        let now = self.now();
        check_can_rotate(&old, now)?;
        let template = KeyTemplate {
            project_id,
            name: old.name.clone(),
            kind: old.kind,
            environment: old.environment,
            scopes: old.scopes.clone(),
            expiration: old.expiration,
            rotated_from: Some(old.id.clone()),
            // The successor of a key a Service Role Key created is still
            // that key's: a cascade reaches it too.
            created_by: old.created_by.clone(),
            allowed_ips: old.allowed_ips.clone(),
            rate_limit: old.rate_limit,
        };
        let (secret, new_key) = self.mint(template, now);
        let old_ends_at = grace.old_key_ends_at(now, old.expires_at);
        let event = caller.event(
            now,
            AuditAction::KeyRotate,
            project_id,
            ("key", old.id.as_str()),
            json!({ "new_key_id": new_key.id, "grace": grace, "old_key_ends_at": old_ends_at }),
        );
        let rotation = Rotation {
            project: project_id,
            old_id: &old.id,
            now,
            old_ends_at,
            new_key: &new_key,
            event: &event,
        };
        let previous = self
            .store
            .rotate_key(rotation)
            .await
            .map_err(|error| match error {
                StoreError::Conflict => {
                    ServiceError::Conflict("the key was rotated or ended meanwhile".into())
                }
                StoreError::NotFound => ServiceError::NotFound("key"),
                other => other.into(),
            })?;
        self.verifier.forget_key(&old.secret_hash);
        tracing::info!(old_key_id = %old.id, new_key_id = %new_key.id, "key rotated");
        Ok(RotatedKey {
            secret,
            key: new_key.preview_at(now),
            previous: previous.preview_at(now),
        })
    }

    /// Ends the key now, for good; verification answers `REVOKED` from the
    /// next request on. With `cascade`, every still-active key that this key
    /// created is revoked first, each with its own audit event; they go
    /// first so that a cascade cut short can be run again.
    #[tracing::instrument(skip_all, fields(%project_id, cascade))]
    pub async fn revoke_key(
        &self,
        caller: &Caller,
        project_id: &ProjectId,
        key_id: &str,
        reason: Option<&str>,
        cascade: bool,
    ) -> Result<PreviewRow, ServiceError> {
        caller.authorize(Operation::ManageKeys, Some(project_id))?;
        self.admin_token
            .check("reason", reason.unwrap_or_default())?;
        let reason = checked_reason(reason)?;
        if cascade {
            let parent = self.key(project_id, key_id).await?;
            let now = self.now();
            for child in self.store.keys_created_by(project_id, &parent.id).await? {
                if child.status_at(now) != KeyStatus::Active {
                    continue;
                }
                let details = json!({ "reason": reason, "cascade_from": parent.id });
                match self
                    .end_key(
                        caller,
                        project_id,
                        child.id.as_str(),
                        Ending::Revoke {
                            reason: reason.clone(),
                        },
                        AuditAction::KeyRevoke,
                        details,
                    )
                    .await
                {
                    // Ended meanwhile by someone else: what the cascade wanted.
                    Ok(_) | Err(ServiceError::Conflict(_)) => {}
                    Err(other) => return Err(other),
                }
            }
        }
        let details = json!({ "reason": reason, "cascade": cascade });
        self.end_key(
            caller,
            project_id,
            key_id,
            Ending::Revoke { reason },
            AuditAction::KeyRevoke,
            details,
        )
        .await
    }

    /// Ends the key now (status `expired`); verification answers `EXPIRED`.
    #[tracing::instrument(skip_all, fields(%project_id))]
    pub async fn expire_key(
        &self,
        caller: &Caller,
        project_id: &ProjectId,
        key_id: &str,
    ) -> Result<PreviewRow, ServiceError> {
        self.end_key(
            caller,
            project_id,
            key_id,
            Ending::Expire,
            AuditAction::KeyExpire,
            json!({}),
        )
        .await
    }

    pub(super) async fn end_key(
        &self,
        caller: &Caller,
        project_id: &ProjectId,
        key_id: &str,
        ending: Ending,
        action: AuditAction,
        details: serde_json::Value,
    ) -> Result<PreviewRow, ServiceError> {
        caller.authorize(Operation::ManageKeys, Some(project_id))?;
        let key = self.key(project_id, key_id).await?;
        let now = self.now();
        check_can_end(&key, now)?;
        let event = caller.event(now, action, project_id, ("key", key.id.as_str()), details);
        let ended = self
            .store
            .end_key(project_id, &key.id, now, &ending, &event)
            .await
            .map_err(|error| match error {
                StoreError::Conflict => ServiceError::Conflict("the key ended meanwhile".into()),
                StoreError::NotFound => ServiceError::NotFound("key"),
                other => other.into(),
            })?;
        self.verifier.forget_key(&key.secret_hash);
        tracing::info!(key_id = %key.id, action = action.as_str(), "key ended");
        Ok(ended.preview_at(now))
    }

    /// Verification counts of one key over `[from, to)`. Defaults: the last
    /// 24 hours by hour, or the last 30 days by day.
    #[tracing::instrument(skip_all, fields(%project_id))]
    pub async fn key_usage(
        &self,
        caller: &Caller,
        project_id: &ProjectId,
        key_id: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        granularity: Option<Granularity>,
    ) -> Result<UsageReport, ServiceError> {
        caller.authorize(Operation::ReadProject, Some(project_id))?;
        let key = self.key(project_id, key_id).await?;
        let granularity = granularity.unwrap_or_default();
        for bound in [from, to].into_iter().flatten() {
            if !(usage_epoch()..=usage_end()).contains(&bound) {
                return Err(ServiceError::field(
                    if Some(bound) == from { "from" } else { "to" },
                    "from and to must lie between 1970 and 9999",
                ));
            }
        }
        let to = to.unwrap_or_else(|| self.now());
        let from = from.unwrap_or_else(|| match granularity {
            Granularity::Hour => to - TimeDelta::hours(24),
            Granularity::Day => to - TimeDelta::days(30),
        });
        if from >= to {
            return Err(ServiceError::field("from", "from must be before to"));
        }
        if to - from > granularity.max_window() {
            return Err(ServiceError::field(
                "from",
                format!(
                    "the window is limited to {} days for granularity {}",
                    granularity.max_window().num_days(),
                    granularity.as_str()
                ),
            ));
        }
        // Read-your-writes on this node: what it verified so far is saved
        // before the query (other nodes' counts arrive within a second).
        if !self.verifier.usage().flush().await {
            // Answering now would under-count without saying so.
            return Err(ServiceError::Unavailable(
                "recent usage could not be saved; try again".into(),
            ));
        }
        // Counters are hourly: widen to whole buckets so partial ones count.
        let start = granularity.bucket_of(from);
        let rows = self.store.usage(project_id, &key.id, start, to).await?;
        Ok(summarize(&rows, from, to, granularity))
    }
}

/// The range usage windows must lie in: it keeps bucket arithmetic far
/// from chrono's limits, whatever a client puts in `from` and `to`.
fn usage_epoch() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH
}

fn usage_end() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
        .expect("a valid constant")
        .with_timezone(&Utc)
}

/// What a new key is made from: a create request's plan or the key it rotates.
struct KeyTemplate<'a> {
    project_id: &'a ProjectId,
    name: DisplayName,
    kind: KeyKind,
    environment: Environment,
    scopes: Vec<String>,
    expiration: atk_core::key::Expiration,
    rotated_from: Option<KeyId>,
    created_by: Option<KeyId>,
    allowed_ips: IpAllowlist,
    rate_limit: Option<RateLimit>,
}

/// Judged as sent (length, control characters), then kept trimmed; white
/// space alone is no reason.
fn checked_reason(reason: Option<&str>) -> Result<Option<String>, ServiceError> {
    let Some(sent) = reason else {
        return Ok(None);
    };
    if sent.chars().count() > MAX_REASON_CHARS {
        return Err(ServiceError::field(
            "reason",
            format!("reason is limited to {MAX_REASON_CHARS} characters"),
        ));
    }
    if sent.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ServiceError::field(
            "reason",
            "reason must not contain control characters",
        ));
    }
    let reason = sent.trim();
    if reason.is_empty() {
        return Ok(None);
    }
    if looks_like_secret(reason) {
        return Err(ServiceError::field(
            "reason",
            "reason must not contain a secret (it looks like an atk_ key or token)",
        ));
    }
    Ok(Some(reason.to_owned()))
}
