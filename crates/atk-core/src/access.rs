//! Who may do what: one rule set for every way in (API bearer credentials,
//! console sessions, the command line, help answers). Callers are turned
//! into a [`Principal`] at the edge; services ask [`decide`] before they act.
//!
//! A project the principal has no standing in answers [`Access::Hidden`]
//! (the API says 404, as if it did not exist) rather than 403, so a
//! credential cannot be used to learn which project ids exist.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{Actor, ActorType};
use crate::ids::{AccountId, KeyId, ProjectId};
use crate::key::{KeyKind, text_enum};

/// A console member's role in one project.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads only.
    Viewer,
    /// Also creates and manages keys (not service role keys).
    Admin,
    /// Also manages members and creates service role keys.
    Owner,
}
text_enum!(Role {
    Viewer => "viewer",
    Admin => "admin",
    Owner => "owner",
});

impl Role {
    pub const fn label(self) -> &'static str {
        match self {
            Self::Viewer => "Viewer",
            Self::Admin => "Admin",
            Self::Owner => "Owner",
        }
    }
}

/// A console account, as a principal: its roles per project, and whether it
/// administers the platform (the first owner, created through the setup
/// link, does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub account_id: AccountId,
    pub platform_admin: bool,
    pub roles: Vec<(ProjectId, Role)>,
}

impl Member {
    pub fn role_in(&self, project: &ProjectId) -> Option<Role> {
        self.roles
            .iter()
            .find(|(id, _)| id == project)
            .map(|(_, role)| *role)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The platform admin token (it stands for Commerce, too).
    PlatformAdmin,
    /// The `atk` command line with direct access to the store: the operator
    /// of the deployment, with the platform admin's rights.
    Operator { user: String },
    /// The service itself (first-start setup).
    System,
    /// A service role key: administers its own project only.
    ServiceRoleKey {
        project_id: ProjectId,
        key_id: KeyId,
    },
    /// A signed-in console account.
    Member(Member),
}

/// Something a principal may ask to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    CreateProject,
    /// The project, its entitlements, keys and usage.
    ReadProject,
    ReadAudit,
    CreateKey(KeyKind),
    /// Rotate, revoke, expire.
    ManageKeys,
    /// Only Commerce (the platform admin) sets entitlements.
    ChangeEntitlements,
    /// Invite members and change their roles.
    ManageMembers,
    /// The questions Page Help could not answer in the project: members
    /// typed them, so only owners read them, as coverage gaps for writers.
    ReadHelpGaps,
}

impl Operation {
    /// Every operation, for tests and for listing what a page may offer.
    pub fn all() -> Vec<Self> {
        let mut all = vec![
            Self::CreateProject,
            Self::ReadProject,
            Self::ReadAudit,
            Self::ManageKeys,
            Self::ChangeEntitlements,
            Self::ManageMembers,
            Self::ReadHelpGaps,
        ];
        all.extend(KeyKind::ALL.into_iter().map(Self::CreateKey));
        all
    }
}

/// The answer of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// The principal can see the project but may not do this (403).
    Forbidden,
    /// The principal has no standing in the project (404).
    Hidden,
}

impl Access {
    pub fn is_allowed(self) -> bool {
        self == Self::Allowed
    }
}

/// Whether `principal` may perform `operation` on `project` (`None` for
/// operations that concern no project, such as creating one).
pub fn decide(principal: &Principal, operation: Operation, project: Option<&ProjectId>) -> Access {
    match principal {
        Principal::PlatformAdmin | Principal::Operator { .. } | Principal::System => {
            Access::Allowed
        }
        Principal::Member(member) if member.platform_admin => Access::Allowed,
        Principal::ServiceRoleKey { project_id, .. } => match (operation, project) {
            (Operation::CreateProject, _) => Access::Forbidden,
            (_, Some(project)) if project != project_id => Access::Hidden,
            (_, None) => Access::Forbidden,
            // Least privilege: a Service Role Key never mints another one
            // (only the platform admin or a console owner may).
            (Operation::CreateKey(KeyKind::ServiceRole), Some(_)) => Access::Forbidden,
            (
                Operation::ReadProject
                | Operation::ReadAudit
                | Operation::CreateKey(_)
                | Operation::ManageKeys,
                Some(_),
            ) => Access::Allowed,
            (
                Operation::ChangeEntitlements | Operation::ManageMembers | Operation::ReadHelpGaps,
                Some(_),
            ) => Access::Forbidden,
        },
        Principal::Member(member) => {
            if operation == Operation::CreateProject {
                return Access::Forbidden;
            }
            let Some(role) = project.and_then(|project| member.role_in(project)) else {
                return Access::Hidden;
            };
            let needed = match operation {
                Operation::ReadProject | Operation::ReadAudit => Role::Viewer,
                Operation::CreateKey(KeyKind::ServiceRole) => Role::Owner,
                Operation::CreateKey(_) | Operation::ManageKeys => Role::Admin,
                Operation::ManageMembers | Operation::ReadHelpGaps => Role::Owner,
                Operation::ChangeEntitlements | Operation::CreateProject => {
                    return Access::Forbidden;
                }
            };
            if role >= needed {
                Access::Allowed
            } else {
                Access::Forbidden
            }
        }
    }
}

impl Principal {
    /// Who the audit log names for this principal.
    pub fn actor(&self) -> Actor {
        match self {
            Self::PlatformAdmin => Actor::admin(),
            Self::Operator { user } => Actor {
                kind: ActorType::Cli,
                id: user.clone(),
            },
            Self::System => Actor::system(),
            Self::ServiceRoleKey { key_id, .. } => Actor {
                kind: ActorType::ServiceRoleKey,
                id: key_id.to_string(),
            },
            Self::Member(member) => Actor {
                kind: ActorType::Account,
                id: member.account_id.to_string(),
            },
        }
    }

    pub fn may(&self, operation: Operation, project: &ProjectId) -> bool {
        decide(self, operation, Some(project)).is_allowed()
    }

    /// Sees every project (a project switcher lists them all).
    pub fn sees_all_projects(&self) -> bool {
        match self {
            Self::PlatformAdmin | Self::Operator { .. } | Self::System => true,
            Self::Member(member) => member.platform_admin,
            Self::ServiceRoleKey { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(id: &str) -> ProjectId {
        ProjectId::parse(id).unwrap()
    }

    fn member(role: Option<Role>, platform_admin: bool) -> Principal {
        Principal::Member(Member {
            account_id: AccountId::generate(),
            platform_admin,
            roles: role
                .map(|role| vec![(project("project_own"), role)])
                .unwrap_or_default(),
        })
    }

    /// The whole matrix: every principal × every operation × (own project,
    /// another project, no project), written out as the expected answer.
    #[test]
    fn every_principal_and_operation_gets_the_documented_answer() {
        use Access::{Allowed as A, Forbidden as F, Hidden as H};
        let own = project("project_own");
        let other = project("project_other");
        let service_role = Principal::ServiceRoleKey {
            project_id: own.clone(),
            key_id: KeyId::generate(),
        };
        let principals: Vec<(&str, Principal)> = vec![
            ("platform admin", Principal::PlatformAdmin),
            ("operator", Principal::Operator { user: "ops".into() }),
            ("system", Principal::System),
            ("service role key", service_role),
            ("platform admin account", member(None, true)),
            ("owner", member(Some(Role::Owner), false)),
            ("admin", member(Some(Role::Admin), false)),
            ("viewer", member(Some(Role::Viewer), false)),
            ("account without a role", member(None, false)),
        ];
        // Per principal, per operation: (own project, other project, none).
        let expected = |who: &str, operation: Operation| -> (Access, Access, Access) {
            match (who, operation) {
                ("platform admin" | "operator" | "system" | "platform admin account", _) => {
                    (A, A, A)
                }
                ("service role key", Operation::CreateProject) => (F, F, F),
                ("service role key", Operation::CreateKey(KeyKind::ServiceRole)) => (F, H, F),
                (
                    "service role key",
                    Operation::ReadProject
                    | Operation::ReadAudit
                    | Operation::CreateKey(_)
                    | Operation::ManageKeys,
                ) => (A, H, F),
                (
                    "service role key",
                    Operation::ChangeEntitlements
                    | Operation::ManageMembers
                    | Operation::ReadHelpGaps,
                ) => (F, H, F),
                (_, Operation::CreateProject) => (F, F, F),
                ("account without a role", _) => (H, H, H),
                (_, Operation::ChangeEntitlements) => (F, H, H),
                ("owner", _) => (A, H, H),
                (
                    "admin",
                    Operation::CreateKey(KeyKind::ServiceRole)
                    | Operation::ManageMembers
                    | Operation::ReadHelpGaps,
                ) => (F, H, H),
                ("admin", _) => (A, H, H),
                ("viewer", Operation::ReadProject | Operation::ReadAudit) => (A, H, H),
                ("viewer", _) => (F, H, H),
                (who, operation) => panic!("no expectation for {who} × {operation:?}"),
            }
        };
        let mut checked = 0;
        for (who, principal) in &principals {
            for operation in Operation::all() {
                let got = (
                    decide(principal, operation, Some(&own)),
                    decide(principal, operation, Some(&other)),
                    decide(principal, operation, None),
                );
                assert_eq!(got, expected(who, operation), "{who} × {operation:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, principals.len() * (7 + KeyKind::ALL.len()));
    }

    #[test]
    fn each_principal_is_named_in_the_audit_log_by_its_own_kind() {
        let key_id = KeyId::generate();
        let actor = Principal::ServiceRoleKey {
            project_id: project("project_own"),
            key_id: key_id.clone(),
        }
        .actor();
        assert_eq!(
            (actor.kind, actor.id),
            (ActorType::ServiceRoleKey, key_id.to_string())
        );
        assert_eq!(Principal::PlatformAdmin.actor(), Actor::admin());
        let Principal::Member(m) = member(Some(Role::Viewer), false) else {
            unreachable!()
        };
        let actor = Principal::Member(m.clone()).actor();
        assert_eq!(
            (actor.kind, actor.id),
            (ActorType::Account, m.account_id.to_string())
        );
    }

    #[test]
    fn roles_are_ordered_by_what_they_allow() {
        assert!(Role::Viewer < Role::Admin && Role::Admin < Role::Owner);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }
}
