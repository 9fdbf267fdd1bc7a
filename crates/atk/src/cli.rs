//! Command-line definitions. Every configuration flag also reads an
//! environment variable, as SPEC section 4 lists.

use std::net::SocketAddr;
use std::path::PathBuf;

use atk_core::audit::AuditAction;
use atk_core::key::{Environment, Expiration, KeyKind, KeyStatus};
use atk_core::lifecycle::Grace;
use atk_core::policy::Confirmation;
use atk_core::usage::Granularity;
use atk_server::Config;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "atk",
    version,
    about = "AuthToolkit Keys: issue, verify and govern API keys"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Address the API and console listen on.
    #[arg(
        long,
        env = "ATK_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,
    /// Holds the SQLite file and the generated pepper.
    #[arg(
        long,
        env = "ATK_DATA_DIR",
        default_value = "./atk-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL; default: a SQLite file in the data dir.
    #[arg(long, env = "ATK_DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Platform admin token; default: generated at first start, printed once.
    #[arg(long, env = "ATK_ADMIN_TOKEN", global = true, hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Hex-encoded pepper (at least 32 bytes); default: generated in the data dir.
    #[arg(long, env = "ATK_PEPPER_FILE", global = true)]
    pub pepper_file: Option<PathBuf>,
}

impl ConfigArgs {
    pub fn to_config(&self) -> Config {
        Config {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            admin_token: self.admin_token.clone(),
            pepper_file: self.pepper_file.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API (and console) on one port until SIGINT/SIGTERM.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage projects.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Manage keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read the project's audit log, newest first.
    Audit {
        #[command(flatten)]
        project: ProjectArg,
        /// Only events of this action.
        #[arg(long, value_enum)]
        action: Option<AuditActionArg>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Verify a key, optionally for an action. Exit status 0 when allowed, 1 when not.
    Verify {
        /// The secret (`atk_live_…` or `atk_test_…`).
        key: String,
        /// A catalog action, for example `notification.send`.
        #[arg(long)]
        action: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// Create a project with the initial entitlement table.
    Create {
        /// `^[a-z][a-z0-9_]{2,62}$`
        project_id: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct ProjectArg {
    /// The project the key belongs to.
    #[arg(long, env = "ATK_PROJECT", default_value = "project_identity_demo")]
    pub project: String,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        #[command(flatten)]
        project: ProjectArg,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        #[arg(long, value_enum)]
        environment: Option<EnvironmentArg>,
        /// A catalog action; repeat for several. Default: the kind's default scopes.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long, value_enum)]
        expiration: Option<ExpirationArg>,
        /// A safety confirmation id; repeat for each one the kind requires.
        #[arg(long = "confirm", value_enum)]
        confirmations: Vec<ConfirmationArg>,
    },
    /// List preview rows, newest first.
    List {
        #[command(flatten)]
        project: ProjectArg,
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        #[arg(long, value_enum)]
        environment: Option<EnvironmentArg>,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        #[arg(long)]
        expiring_within_days: Option<u32>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one preview row.
    Show {
        #[command(flatten)]
        project: ProjectArg,
        key_id: String,
    },
    /// Rotate a key: a new secret (printed once); the old key ends after the grace.
    Rotate {
        #[command(flatten)]
        project: ProjectArg,
        key_id: String,
        #[arg(long, value_enum)]
        grace: GraceArg,
        /// Must include secret_shown_once.
        #[arg(long = "confirm", value_enum)]
        confirmations: Vec<ConfirmationArg>,
    },
    /// Revoke a key now, for good.
    Revoke {
        #[command(flatten)]
        project: ProjectArg,
        key_id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// End a key now (status expired).
    Expire {
        #[command(flatten)]
        project: ProjectArg,
        key_id: String,
    },
    /// Verification counts of a key: totals by code and action, and a series.
    Usage {
        #[command(flatten)]
        project: ProjectArg,
        key_id: String,
        /// RFC 3339 start (default: 24 hours or 30 days before --to).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// RFC 3339 end (default: now).
        #[arg(long)]
        to: Option<DateTime<Utc>>,
        #[arg(long, value_enum)]
        granularity: Option<GranularityArg>,
    },
}

/// Clap's view of a domain enum: same names, kebab-free, so `--kind
/// service_role` reads like the API.
macro_rules! value_enum {
    ($arg:ident => $domain:ident { $($variant:ident = $name:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, ValueEnum)]
        pub enum $arg {
            $(#[value(name = $name)] $variant),+
        }
        impl From<$arg> for $domain {
            fn from(value: $arg) -> Self {
                match value { $($arg::$variant => $domain::$variant),+ }
            }
        }
    };
}

value_enum!(KindArg => KeyKind {
    Project = "project",
    ProductScoped = "product_scoped",
    AnalyticsRead = "analytics_read",
    BackendSecret = "backend_secret",
    ServiceRole = "service_role",
});
value_enum!(EnvironmentArg => Environment {
    Production = "production",
    Staging = "staging",
    Development = "development",
});
value_enum!(ExpirationArg => Expiration {
    Days7 = "7_days",
    Days30 = "30_days",
    Days90 = "90_days",
    Never = "never",
});
value_enum!(StatusArg => KeyStatus {
    Active = "active",
    Expired = "expired",
    Revoked = "revoked",
});
value_enum!(ConfirmationArg => Confirmation {
    BackendOnly = "backend_only",
    ServiceRoleDanger = "service_role_danger",
    SecretShownOnce = "secret_shown_once",
    EntitlementsMayBlock = "entitlements_may_block",
});

value_enum!(GraceArg => Grace {
    None = "none",
    Hour1 = "1_hour",
    Hours24 = "24_hours",
    Days7 = "7_days",
});
value_enum!(GranularityArg => Granularity {
    Hour = "hour",
    Day = "day",
});
value_enum!(AuditActionArg => AuditAction {
    ProjectCreate = "project.create",
    EntitlementUpdate = "entitlement.update",
    KeyCreate = "key.create",
    KeyRotate = "key.rotate",
    KeyRevoke = "key.revoke",
    KeyExpire = "key.expire",
    ConsoleSignIn = "console.sign_in",
    ConsoleSignInFailed = "console.sign_in_failed",
});

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_value_name_matches_the_api_spelling() {
        for kind in KindArg::value_variants() {
            let name = kind.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(KeyKind::from(*kind).as_str(), name);
        }
        for confirmation in ConfirmationArg::value_variants() {
            let name = confirmation
                .to_possible_value()
                .unwrap()
                .get_name()
                .to_owned();
            assert_eq!(Confirmation::from(*confirmation).as_str(), name);
        }
        for grace in GraceArg::value_variants() {
            let name = grace.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(Grace::from(*grace).as_str(), name);
        }
        for action in AuditActionArg::value_variants() {
            let name = action.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(AuditAction::from(*action).as_str(), name);
        }
        for expiration in ExpirationArg::value_variants() {
            let name = expiration
                .to_possible_value()
                .unwrap()
                .get_name()
                .to_owned();
            assert_eq!(Expiration::from(*expiration).as_str(), name);
        }
    }
}
