//! Console accounts, sessions and one-time links (first-owner setup,
//! member invites). Session tokens and links are secrets: only their keyed
//! hash is kept, like an API key's. Passwords are kept only as Argon2id PHC
//! strings (hashed in the server, which owns the CPU cost).

use chrono::{DateTime, TimeDelta, Utc};

use crate::access::Role;
use crate::ids::{AccountId, DisplayName, Email, ProjectId};
use crate::key::text_enum;
use crate::secret::SecretHash;

/// A session ends after this long without a request…
pub const SESSION_IDLE: TimeDelta = TimeDelta::hours(2);
/// …and this long after sign-in, however busy.
pub const SESSION_ABSOLUTE: TimeDelta = TimeDelta::hours(12);
/// The setup link printed at first start.
pub const SETUP_LINK_LIFETIME: TimeDelta = TimeDelta::hours(24);
/// An invite link.
pub const INVITE_LINK_LIFETIME: TimeDelta = TimeDelta::days(7);
/// Shortest and longest password accepted (characters). Long passphrases
/// are welcome; the upper bound only caps the hashing work per request.
pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub email: Email,
    pub display_name: DisplayName,
    pub platform_admin: bool,
    pub created_at: DateTime<Utc>,
}

/// An account as stored, with its password hash (a PHC string).
#[derive(Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub account: Account,
    pub password_hash: String,
}

/// The hash is not a secret in the usual sense, but it has no business in
/// a log line either.
impl std::fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRecord")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkPurpose {
    /// Creates the first owner (a platform admin) when no account exists.
    Setup,
    /// Creates a member of one project with one role.
    Invite,
}
text_enum!(LinkPurpose {
    Setup => "setup",
    Invite => "invite",
});

/// A one-time link, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLink {
    pub token_hash: SecretHash,
    pub purpose: LinkPurpose,
    /// Invites only.
    pub grant: Option<(ProjectId, Role)>,
    /// The account that invited, for the audit log.
    pub created_by: Option<AccountId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

impl ConsoleLink {
    pub fn is_open_at(&self, now: DateTime<Utc>) -> bool {
        self.used_at.is_none() && now < self.expires_at
    }
}

/// A console session, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token_hash: SecretHash,
    pub account_id: AccountId,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    pub fn new(token_hash: SecretHash, account_id: AccountId, now: DateTime<Utc>) -> Self {
        Self {
            token_hash,
            account_id,
            created_at: now,
            last_seen_at: now,
            expires_at: now + SESSION_ABSOLUTE,
        }
    }

    /// Live until its absolute end and while used at least every
    /// [`SESSION_IDLE`].
    pub fn is_live_at(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at && now < self.last_seen_at + SESSION_IDLE
    }
}

/// Checks a new password's length; `Err` says what is wrong, for the form.
pub fn check_new_password(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        Err(format!(
            "Use at least {PASSWORD_MIN_CHARS} characters; a few words make a good password."
        ))
    } else if chars > PASSWORD_MAX_CHARS {
        Err(format!("Use at most {PASSWORD_MAX_CHARS} characters."))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_when_idle_or_at_its_absolute_end_whichever_comes_first() {
        let start = DateTime::UNIX_EPOCH;
        let mut session = Session::new(SecretHash([0; 32]), AccountId::generate(), start);
        assert!(session.is_live_at(start + SESSION_IDLE - TimeDelta::seconds(1)));
        assert!(!session.is_live_at(start + SESSION_IDLE));
        session.last_seen_at = start + SESSION_ABSOLUTE - TimeDelta::minutes(1);
        assert!(session.is_live_at(start + SESSION_ABSOLUTE - TimeDelta::seconds(1)));
        assert!(!session.is_live_at(start + SESSION_ABSOLUTE));
    }

    #[test]
    fn passwords_need_twelve_characters() {
        assert!(check_new_password("short pass").is_err());
        assert!(check_new_password("correct horse").is_ok());
        assert!(check_new_password(&"x".repeat(257)).is_err());
    }
}
