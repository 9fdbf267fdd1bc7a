//! Console accounts: the first owner through the setup link, members through
//! invite links, sign-in with throttling, sessions kept in the store (so
//! every node accepts them), roles per project. Who may invite or change
//! roles is decided by the domain's access rules, like everything else.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use atk_core::Clock;
use atk_core::access::{Member, Operation, Principal, Role};
use atk_core::account::{
    Account, AccountRecord, ConsoleLink, INVITE_LINK_LIFETIME, LinkPurpose, SETUP_LINK_LIFETIME,
    Session, check_new_password,
};
use atk_core::audit::{Actor, ActorType, AuditAction, AuditEvent};
use atk_core::ids::{AccountId, DisplayName, Email, ProjectId};
use atk_core::secret::{Pepper, SecretHash, random_base62};
use atk_store::{AccountStore, Redemption, Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use moka::sync::Cache;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Caller, ServiceError};

/// Failed sign-ins allowed per account, and per source address, within
/// [`THROTTLE_WINDOW`] of the last failure. Counted per node: with N nodes
/// behind a balancer an attacker gets at most N times as many tries.
pub const FAILURES_PER_ACCOUNT: u32 = 5;
pub const FAILURES_PER_ADDRESS: u32 = 20;
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Remembered accounts and addresses per node; the oldest go first.
const THROTTLE_CAPACITY: u64 = 100_000;
/// `last_seen_at` is written at most this often per session, so browsing
/// the console does not mean a write per page.
const TOUCH_EVERY: TimeDelta = TimeDelta::minutes(1);
/// A create or rotate form resubmitted within this long is recognised as a
/// resubmission (its nonce is kept this long).
const FORM_NONCE_LIFETIME: TimeDelta = TimeDelta::days(7);
/// What a sign-in hears when every Argon2 slot stayed busy.
const BUSY: &str = "The server is busy checking passwords. Try again in a moment.";
/// How long a sign-in waits for a turn at Argon2 before it is told to retry.
const HASHING_WAIT: Duration = Duration::from_secs(10);
/// Random characters of session tokens and one-time links (about 256 bits).
const TOKEN_CHARS: usize = 43;

/// A bearer secret of the console (a session token or a one-time link):
/// never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleToken(String);

impl ConsoleToken {
    fn generate() -> Self {
        Self(random_base62(TOKEN_CHARS))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ConsoleToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsoleToken(<redacted>)")
    }
}

/// What a new account form carries.
#[derive(Debug, Clone, Copy)]
pub struct NewAccount<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password: &'a str,
}

/// A signed-in console user: the account and the principal it acts as.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub account: Account,
    pub caller: Caller,
}

/// A new session: its token goes into the cookie, nowhere else.
#[derive(Debug)]
pub struct NewSession {
    pub token: ConsoleToken,
    pub account: Account,
}

#[derive(Debug, Clone)]
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    projects: Arc<dyn Store>,
    pepper: Pepper,
    clock: Arc<dyn Clock>,
    failures_by_account: Cache<String, u32>,
    failures_by_address: Cache<IpAddr, u32>,
    /// Verified against when an email is unknown, so a sign-in takes as
    /// long whether or not the account exists.
    decoy_hash: Arc<str>,
    /// Argon2 runs this many at once (each holds 19 MiB for tens of
    /// milliseconds); more requests wait their turn, briefly.
    hashing: Arc<Semaphore>,
}

impl Accounts {
    pub fn new(
        store: Arc<dyn AccountStore>,
        projects: Arc<dyn Store>,
        pepper: Pepper,
        clock: Arc<dyn Clock>,
    ) -> Self {
        fn throttle<K: std::hash::Hash + Eq + Send + Sync + 'static>() -> Cache<K, u32> {
            Cache::builder()
                .max_capacity(THROTTLE_CAPACITY)
                .time_to_live(THROTTLE_WINDOW)
                .build()
        }
        let decoy = Argon2::default()
            .hash_password(random_base62(24).as_bytes())
            .expect("Argon2 hashes with its default parameters")
            .to_string();
        Self {
            store,
            projects,
            pepper,
            clock,
            failures_by_account: throttle(),
            failures_by_address: throttle(),
            decoy_hash: decoy.into(),
            hashing: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().max(2)),
            )),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn hash(&self, token: &str) -> SecretHash {
        self.pepper.hash_token(token)
    }

    /// A turn at Argon2, or "busy" after waiting [`HASHING_WAIT`]. The
    /// permit is owned, so it moves into the blocking task and is released
    /// when the hashing ends, not when the request does (a client that
    /// hangs up mid-sign-in must not free its slot while Argon2 still runs).
    async fn hashing_turn(&self) -> Result<OwnedSemaphorePermit, ServiceError> {
        match tokio::time::timeout(HASHING_WAIT, self.hashing.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ServiceError::RateLimited(BUSY.into())),
        }
    }

    /// Argon2id with the crate's defaults (19 MiB, 2 passes), on a blocking
    /// thread so a sign-in never stalls the request workers.
    async fn hash_password(&self, password: String) -> Result<String, ServiceError> {
        let turn = self.hashing_turn().await?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|error| {
                    ServiceError::Unavailable(format!("password hashing failed: {error}"))
                })
        })
        .await
        .map_err(|_| ServiceError::Unavailable("password hashing failed".into()))?
    }

    async fn verify_password(&self, password: String, phc: String) -> Result<bool, ServiceError> {
        let turn = self.hashing_turn().await?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            Argon2::default()
                .verify_password(password.as_bytes(), phc.as_str())
                .is_ok()
        })
        .await
        .map_err(|_| ServiceError::Unavailable("password check failed".into()))
    }

    /// The CSRF token of a session: derived from the session token with the
    /// pepper, so it needs no storage and cannot be guessed without both.
    pub fn csrf_token(&self, session_token: &str) -> String {
        hex::encode(self.hash(&format!("csrf:{session_token}")).0)
    }

    /// Deletes ended sessions, spent or expired links and old form nonces.
    /// Run at start and after each sign-in, so the tables hold what is live.
    pub async fn prune(&self) -> Result<u64, ServiceError> {
        let now = self.now();
        Ok(self
            .store
            .prune(
                now,
                now - atk_core::account::SESSION_IDLE,
                now - FORM_NONCE_LIFETIME,
            )
            .await?)
    }

    /// On a deployment without accounts: a new setup link token (valid
    /// [`SETUP_LINK_LIFETIME`], single use). `None` once an account exists.
    pub async fn setup_link_if_no_account(&self) -> Result<Option<ConsoleToken>, ServiceError> {
        if self.store.has_accounts().await? {
            return Ok(None);
        }
        let token = ConsoleToken::generate();
        let now = self.now();
        self.store
            .insert_link(
                &ConsoleLink {
                    token_hash: self.hash(token.expose()),
                    purpose: LinkPurpose::Setup,
                    grant: None,
                    created_by: None,
                    created_at: now,
                    expires_at: now + SETUP_LINK_LIFETIME,
                    used_at: None,
                },
                &[],
            )
            .await?;
        Ok(Some(token))
    }

    /// The link behind `token` if it is of `purpose` and can still be used.
    pub async fn open_link(
        &self,
        token: &str,
        purpose: LinkPurpose,
    ) -> Result<Option<ConsoleLink>, ServiceError> {
        let link = self.store.get_link(&self.hash(token)).await?;
        Ok(link.filter(|link| link.purpose == purpose && link.is_open_at(self.now())))
    }

    /// Creates the first owner: a platform admin and owner of every project.
    pub async fn redeem_setup(
        &self,
        token: &str,
        form: NewAccount<'_>,
        source_ip: Option<IpAddr>,
    ) -> Result<NewSession, ServiceError> {
        let roles = self
            .projects
            .list_projects()
            .await?
            .into_iter()
            .map(|project| (project.project_id, Role::Owner))
            .collect();
        self.redeem(token, LinkPurpose::Setup, form, true, roles, source_ip)
            .await
    }

    /// Creates an invited member with the role the link grants.
    pub async fn redeem_invite(
        &self,
        token: &str,
        form: NewAccount<'_>,
        source_ip: Option<IpAddr>,
    ) -> Result<NewSession, ServiceError> {
        let link = self
            .open_link(token, LinkPurpose::Invite)
            .await?
            .ok_or(ServiceError::NotFound("invite link"))?;
        let roles = link.grant.into_iter().collect();
        self.redeem(token, LinkPurpose::Invite, form, false, roles, source_ip)
            .await
    }

    /// A signed-in member accepts an invite to another project with the
    /// account they have.
    pub async fn join_with_invite(
        &self,
        token: &str,
        signed_in: &SignedIn,
    ) -> Result<(ProjectId, Role), ServiceError> {
        let link = self
            .open_link(token, LinkPurpose::Invite)
            .await?
            .ok_or_else(|| {
                ServiceError::Conflict("this link has been used or has expired".into())
            })?;
        let Some((project, role)) = link.grant else {
            return Err(ServiceError::NotFound("invite link"));
        };
        let account = &signed_in.account;
        let event = signed_in.caller.event(
            self.now(),
            AuditAction::MemberRoleChange,
            &project,
            ("account", account.id.as_str()),
            json!({ "from": null, "to": role, "via": "invite" }),
        );
        match self
            .store
            .redeem_invite_for_account(&self.hash(token), self.now(), &account.id, &[event])
            .await
        {
            Ok(()) => Ok((project, role)),
            Err(StoreError::NotFound) => Err(ServiceError::Conflict(
                "this link has been used or has expired".into(),
            )),
            Err(StoreError::Conflict) => Err(ServiceError::Conflict(format!(
                "you already have a role in {project}; the invite is left unused"
            ))),
            Err(other) => Err(other.into()),
        }
    }

    async fn redeem(
        &self,
        token: &str,
        purpose: LinkPurpose,
        form: NewAccount<'_>,
        platform_admin: bool,
        roles: Vec<(ProjectId, Role)>,
        source_ip: Option<IpAddr>,
    ) -> Result<NewSession, ServiceError> {
        let email = Email::parse(form.email)?;
        let display_name = DisplayName::parse(form.display_name)?;
        check_new_password(form.password).map_err(|why| ServiceError::field("password", why))?;
        let now = self.now();
        let account = Account {
            id: AccountId::generate(),
            email,
            display_name,
            platform_admin,
            created_at: now,
        };
        let record = AccountRecord {
            password_hash: self.hash_password(form.password.to_owned()).await?,
            account: account.clone(),
        };
        let actor = Actor {
            kind: ActorType::Account,
            id: account.id.to_string(),
        };
        let events: Vec<AuditEvent> = roles
            .iter()
            .map(|(project, role)| {
                AuditEvent::new(
                    now,
                    actor.clone(),
                    AuditAction::AccountCreate,
                    project,
                    ("account", account.id.as_str()),
                    source_ip.map(|ip| ip.to_string()),
                    json!({ "email": account.email, "role": role, "via": purpose.as_str() }),
                )
            })
            .collect();
        let redemption = Redemption {
            link_hash: &self.hash(token),
            purpose,
            now,
            account: &record,
            roles: &roles,
            events: &events,
        };
        match self.store.redeem_link(redemption).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => {
                return Err(ServiceError::Conflict(
                    "this link has been used or has expired".into(),
                ));
            }
            Err(StoreError::Conflict) => {
                return Err(ServiceError::field(
                    "email",
                    "an account with this email already exists; sign in instead",
                ));
            }
            Err(other) => return Err(other.into()),
        }
        tracing::info!(account_id = %account.id, purpose = purpose.as_str(), "account created");
        self.start_session(account).await
    }

    async fn start_session(&self, account: Account) -> Result<NewSession, ServiceError> {
        let token = ConsoleToken::generate();
        let session = Session::new(self.hash(token.expose()), account.id.clone(), self.now());
        self.store.insert_session(&session).await?;
        Ok(NewSession { token, account })
    }

    /// Checks the password; refuses (without checking) once the account or
    /// the address has tried too often. Attempts are counted before the
    /// check, so a burst of parallel guesses is limited like a sequence;
    /// success resets the account's count. Success and failure are audited
    /// in every project the account belongs to.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        source_ip: Option<IpAddr>,
    ) -> Result<NewSession, ServiceError> {
        // Only a well-formed email is counted per account: the key stays
        // short (at most 254 bytes), whatever a client sends.
        let email = Email::parse(email).ok();
        let account_key = email.as_ref().map(|email| email.as_str().to_owned());
        if !self.take_attempt(account_key.as_deref(), source_ip) {
            return Err(ServiceError::RateLimited(format!(
                "Too many failed sign-ins. Try again in {} minutes.",
                THROTTLE_WINDOW.as_secs() / 60
            )));
        }
        let record = match &email {
            Some(email) => self.store.find_account_by_email(email).await?,
            None => None,
        };
        let stored_hash = record
            .as_ref()
            .map_or_else(|| self.decoy_hash.to_string(), |r| r.password_hash.clone());
        let matches = self
            .verify_password(password.to_owned(), stored_hash)
            .await?;
        match record {
            Some(record) if matches => {
                self.failures_by_account
                    .invalidate(record.account.email.as_str());
                // A success is not a failure: take it off the address.
                self.give_back_attempt(None, source_ip);
                self.audit_sign_in(&record.account, AuditAction::ConsoleSignIn, source_ip)
                    .await?;
                tracing::info!(account_id = %record.account.id, "console sign-in");
                if let Err(error) = self.prune().await {
                    // Housekeeping only: the sign-in itself succeeded.
                    tracing::warn!(error = ?error, "pruning console sessions failed");
                }
                self.start_session(record.account).await
            }
            other => {
                if let Some(record) = other {
                    self.audit_sign_in(
                        &record.account,
                        AuditAction::ConsoleSignInFailed,
                        source_ip,
                    )
                    .await?;
                }
                tracing::info!("console sign-in failed");
                Err(ServiceError::InvalidCredentials)
            }
        }
    }

    /// Counts a sign-in attempt against the account and the address, or
    /// refuses it (`false`) when either is at its limit. A refused attempt
    /// is not counted, so it does not extend the window: an attacker cannot
    /// keep a known account locked for longer than [`THROTTLE_WINDOW`]
    /// after their last checked guess.
    fn take_attempt(&self, account: Option<&str>, source_ip: Option<IpAddr>) -> bool {
        let at_limit = account
            .and_then(|key| self.failures_by_account.get(key))
            .is_some_and(|n| n >= FAILURES_PER_ACCOUNT)
            || source_ip
                .and_then(|ip| self.failures_by_address.get(&ip))
                .is_some_and(|n| n >= FAILURES_PER_ADDRESS);
        if at_limit {
            return false;
        }
        // Counted before the password is checked, atomically per key, so
        // a burst of parallel guesses is limited like a sequence.
        let account_count = account.map_or(0, |key| {
            self.failures_by_account
                .entry(key.to_owned())
                .and_upsert_with(one_more)
                .into_value()
        });
        let address_count = source_ip.map_or(0, |ip| {
            self.failures_by_address
                .entry(ip)
                .and_upsert_with(one_more)
                .into_value()
        });
        if account_count > FAILURES_PER_ACCOUNT || address_count > FAILURES_PER_ADDRESS {
            // Lost a race at the limit: this one was not checked either.
            self.give_back_attempt(account, source_ip);
            return false;
        }
        true
    }

    fn give_back_attempt(&self, account: Option<&str>, source_ip: Option<IpAddr>) {
        if let Some(key) = account {
            self.failures_by_account
                .entry(key.to_owned())
                .and_compute_with(one_less);
        }
        if let Some(ip) = source_ip {
            self.failures_by_address
                .entry(ip)
                .and_compute_with(one_less);
        }
    }

    async fn audit_sign_in(
        &self,
        account: &Account,
        action: AuditAction,
        source_ip: Option<IpAddr>,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let actor = Actor {
            kind: ActorType::Account,
            id: account.id.to_string(),
        };
        let events: Vec<AuditEvent> = self
            .store
            .roles_of(&account.id)
            .await?
            .iter()
            .map(|(project, _)| {
                AuditEvent::new(
                    now,
                    actor.clone(),
                    action,
                    project,
                    ("account", account.id.as_str()),
                    source_ip.map(|ip| ip.to_string()),
                    json!({ "email": account.email }),
                )
            })
            .collect();
        self.store.append_events(&events).await?;
        Ok(())
    }

    /// The signed-in user behind a session token, or `None` when the
    /// session is unknown, ended or expired.
    pub async fn session(
        &self,
        token: &str,
        source_ip: Option<IpAddr>,
    ) -> Result<Option<SignedIn>, ServiceError> {
        let hash = self.hash(token);
        let now = self.now();
        let Some(session) = self.store.get_session(&hash).await? else {
            return Ok(None);
        };
        if !session.is_live_at(now) {
            self.store.delete_session(&hash).await?;
            return Ok(None);
        }
        if now - session.last_seen_at >= TOUCH_EVERY {
            self.store.touch_session(&hash, now).await?;
        }
        let Some(record) = self.store.get_account(&session.account_id).await? else {
            return Ok(None);
        };
        let roles = self.store.roles_of(&record.account.id).await?;
        let principal = Principal::Member(Member {
            account_id: record.account.id.clone(),
            platform_admin: record.account.platform_admin,
            roles,
        });
        Ok(Some(SignedIn {
            account: record.account,
            caller: Caller::new(principal, source_ip),
        }))
    }

    /// Spends a one-time form nonce; `false` when the form was already
    /// submitted (a reload or a second click), on this node or another.
    pub async fn claim_form(&self, nonce: &str) -> Result<bool, ServiceError> {
        Ok(self
            .store
            .claim_form_nonce(&self.hash(&format!("form:{nonce}")), self.now())
            .await?)
    }

    /// Ends the session on the server: the cookie is worthless from now on.
    pub async fn sign_out(&self, token: &str) -> Result<(), ServiceError> {
        self.store.delete_session(&self.hash(token)).await?;
        Ok(())
    }

    /// A one-time invite link token for `role` in `project` (owners only).
    pub async fn invite(
        &self,
        caller: &Caller,
        project: &ProjectId,
        role: Role,
    ) -> Result<ConsoleToken, ServiceError> {
        caller.authorize(Operation::ManageMembers, Some(project))?;
        let token = ConsoleToken::generate();
        let now = self.now();
        let created_by = match &caller.principal {
            Principal::Member(member) => Some(member.account_id.clone()),
            _ => None,
        };
        self.store
            .insert_link(
                &ConsoleLink {
                    token_hash: self.hash(token.expose()),
                    purpose: LinkPurpose::Invite,
                    grant: Some((project.clone(), role)),
                    created_by,
                    created_at: now,
                    expires_at: now + INVITE_LINK_LIFETIME,
                    used_at: None,
                },
                &[caller.event(
                    now,
                    AuditAction::MemberInvite,
                    project,
                    ("project", project.as_str()),
                    json!({ "role": role, "expires_at": now + INVITE_LINK_LIFETIME }),
                )],
            )
            .await?;
        Ok(token)
    }

    /// The project's members (readers of the project may see them).
    pub async fn members(
        &self,
        caller: &Caller,
        project: &ProjectId,
    ) -> Result<Vec<(Account, Role)>, ServiceError> {
        caller.authorize(Operation::ReadProject, Some(project))?;
        Ok(self
            .store
            .members_of(project)
            .await?
            .into_iter()
            .map(|(record, role)| (record.account, role))
            .collect())
    }

    /// Changes a member's role (owners only). An owner cannot demote
    /// themselves, so a project never loses its last owner by accident.
    pub async fn set_role(
        &self,
        caller: &Caller,
        project: &ProjectId,
        account_id: &str,
        role: Role,
    ) -> Result<(), ServiceError> {
        caller.authorize(Operation::ManageMembers, Some(project))?;
        let account_id =
            AccountId::parse(account_id).map_err(|_| ServiceError::NotFound("member"))?;
        let members = self.store.members_of(project).await?;
        let Some((_, old_role)) = members.iter().find(|(m, _)| m.account.id == account_id) else {
            return Err(ServiceError::NotFound("member"));
        };
        if let Principal::Member(me) = &caller.principal
            && me.account_id == account_id
            && role < *old_role
        {
            return Err(ServiceError::field(
                "role",
                "you cannot lower your own role; ask another owner",
            ));
        }
        let event = caller.event(
            self.now(),
            AuditAction::MemberRoleChange,
            project,
            ("account", account_id.as_str()),
            json!({ "from": old_role, "to": role }),
        );
        self.store
            .set_role(project, &account_id, role, &event)
            .await?;
        Ok(())
    }
}

fn one_more<K>(entry: Option<moka::Entry<K, u32>>) -> u32 {
    entry.map_or(1, |e| e.into_value().saturating_add(1))
}

fn one_less<K>(entry: Option<moka::Entry<K, u32>>) -> moka::ops::compute::Op<u32> {
    use moka::ops::compute::Op;
    match entry {
        Some(e) if *e.value() > 1 => Op::Put(e.into_value() - 1),
        Some(_) => Op::Remove,
        None => Op::Nop,
    }
}
