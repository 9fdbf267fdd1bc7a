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
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "atk",
    version,
    about = "AuthToolkit Keys: issue, verify and govern API keys"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true, help_heading = "Output")]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// A running deployment to manage over HTTP instead of the store.
#[derive(Debug, Args)]
#[command(next_help_heading = "Remote deployment (instead of the store)")]
pub struct RemoteArgs {
    /// Manage the deployment at this address (e.g. https://keys.example.com)
    /// through its API instead of opening the store: every management
    /// command and `verify` go over HTTP, with the same output.
    #[arg(long, env = "ATK_URL", global = true)]
    pub url: Option<String>,
    /// The credential for --url: the platform admin token or a Service
    /// Role key.
    #[arg(long, env = "ATK_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Server and store")]
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
    /// Where people reach the console (e.g. https://keys.example.com), for
    /// printed links; default: http://<listen address>.
    #[arg(long, env = "ATK_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Mark the console session cookie Secure (HTTPS only); default: on when
    /// the public URL is https://.
    #[arg(long, env = "ATK_SECURE_COOKIES", global = true)]
    pub secure_cookies: Option<bool>,
    /// A folder of your own Knowledge Hub documents (`*.md`), answered by
    /// the global helper beside the shipped ones.
    #[arg(long, env = "ATK_KNOWLEDGE_DIR", global = true)]
    pub knowledge_dir: Option<PathBuf>,
    /// Failed verifications (MALFORMED, NOT_FOUND) one address may make,
    /// as REQUESTS/SECONDS; past it, verify answers 429 with Retry-After.
    #[arg(
        long,
        env = "ATK_FAILED_VERIFY_LIMIT",
        global = true,
        default_value = "600/60"
    )]
    pub failed_verify_limit: atk_core::limits::RateLimit,
    /// Management calls with a bad credential one address may make, as
    /// REQUESTS/SECONDS; past it, 429 with Retry-After.
    #[arg(
        long,
        env = "ATK_BAD_CREDENTIAL_LIMIT",
        global = true,
        default_value = "30/300"
    )]
    pub bad_credential_limit: atk_core::limits::RateLimit,
    /// Open connections at most (lowered to fit the open-file limit). At
    /// the cap, a new connection replaces the oldest idle or stalled one.
    #[arg(long, env = "ATK_MAX_CONNECTIONS", global = true, default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Seconds a client has to send a request's headers, also the longest
    /// a kept-alive connection may sit idle; then it is closed.
    #[arg(long, env = "ATK_HEADER_TIMEOUT", global = true, default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,
    /// Seconds a client has to send a request's whole body; then it gets
    /// 408 and the connection is closed.
    #[arg(long, env = "ATK_BODY_TIMEOUT", global = true, default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout: u64,
    /// GitHub's secret-scanning public keys (the JSON of
    /// api.github.com/meta/public_keys/secret_scanning), to accept signed
    /// leaked-secret reports at POST /v1/secret-scanning/report.
    #[arg(long, env = "ATK_SECRET_SCANNING_KEYS", global = true)]
    pub secret_scanning_keys: Option<PathBuf>,
    /// A proxy or load balancer (CIDR or address; repeat, or comma-separate
    /// in the variable) whose X-Forwarded-For names the real client.
    /// Default: none; the TCP peer is the client.
    #[arg(
        long = "trusted-proxy",
        env = "ATK_TRUSTED_PROXIES",
        global = true,
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
}

impl ConfigArgs {
    pub fn to_config(&self) -> Config {
        Config {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            admin_token: self.admin_token.clone(),
            pepper_file: self.pepper_file.clone(),
            secure_cookies: self.secure_cookies.unwrap_or_else(|| {
                self.public_url
                    .as_deref()
                    .is_some_and(|url| url.starts_with("https://"))
            }),
            public_url: self.public_url.clone(),
            knowledge_dir: self.knowledge_dir.clone(),
            failed_verify_limit: self.failed_verify_limit,
            bad_credential_limit: self.bad_credential_limit,
            connections: atk_server::http::connections::ConnectionLimits {
                max_connections: self.max_connections as usize,
                header_timeout: std::time::Duration::from_secs(self.header_timeout),
                body_timeout: std::time::Duration::from_secs(self.body_timeout),
            },
            secret_scanning_keys: self.secret_scanning_keys.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API (and console) on one port until SIGINT/SIGTERM.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Evaluate Page Help on the question sets (JSON Lines) in a folder:
    /// per split and route, against the BM25 baseline. Needs no store.
    HelpEval {
        /// Folder of `*.jsonl` question sets.
        #[arg(long, default_value = "help/eval")]
        dir: std::path::PathBuf,
        /// Also list the engine's misses on the dev split (for tuning;
        /// the test split's misses are never shown).
        #[arg(long)]
        dev_misses: bool,
        /// Search the gate's thresholds on the dev split and report with
        /// the best (copy them into `Gate::TUNED`).
        #[arg(long)]
        tune: bool,
    },
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
        #[arg(long, value_parser = one_of(AuditAction::ALL, AuditAction::as_str))]
        action: Option<AuditAction>,
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
        /// The address of the caller being served (checked against the
        /// key's IP allowlist).
        #[arg(long)]
        client_ip: Option<std::net::IpAddr>,
        /// A browser `Origin` the caller sent (keys are backend-only).
        #[arg(long)]
        origin: Option<String>,
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
        /// Display name, 1–100 characters.
        #[arg(long)]
        name: String,
        /// Key kind (default: project).
        #[arg(long, value_parser = one_of(KeyKind::ALL, KeyKind::as_str))]
        kind: Option<KeyKind>,
        /// Default: production (secrets start atk_live_; others atk_test_).
        #[arg(long, value_parser = one_of(Environment::ALL, Environment::as_str))]
        environment: Option<Environment>,
        /// A catalog action; repeat for several. Default: the kind's default scopes.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Default: 90_days.
        #[arg(long, value_parser = one_of(Expiration::ALL, Expiration::as_str))]
        expiration: Option<Expiration>,
        /// A safety confirmation id; repeat for each one the kind requires.
        #[arg(long = "confirm", value_parser = one_of(Confirmation::ALL, Confirmation::as_str))]
        confirmations: Vec<Confirmation>,
        /// A network (CIDR) or address the key may be used from; repeat for
        /// several. Backend Secret and Service Role keys only.
        #[arg(long = "allowed-ip")]
        allowed_ips: Vec<String>,
        /// The key's own rate limit, per node: REQUESTS/SECONDS, for
        /// example 100/60.
        #[arg(long)]
        rate_limit: Option<atk_core::limits::RateLimit>,
    },
    /// List preview rows, newest first.
    List {
        #[command(flatten)]
        project: ProjectArg,
        #[arg(long, value_parser = one_of(KeyStatus::ALL, KeyStatus::as_str))]
        status: Option<KeyStatus>,
        #[arg(long, value_parser = one_of(Environment::ALL, Environment::as_str))]
        environment: Option<Environment>,
        #[arg(long, value_parser = one_of(KeyKind::ALL, KeyKind::as_str))]
        kind: Option<KeyKind>,
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
        #[arg(long, value_parser = one_of(Grace::ALL, Grace::as_str))]
        grace: Grace,
        /// Must include secret_shown_once.
        #[arg(long = "confirm", value_parser = one_of(Confirmation::ALL, Confirmation::as_str))]
        confirmations: Vec<Confirmation>,
    },
    /// Revoke a key now, for good.
    Revoke {
        #[command(flatten)]
        project: ProjectArg,
        key_id: String,
        #[arg(long)]
        reason: Option<String>,
        /// Also revoke every key this key (a Service Role Key) created.
        #[arg(long)]
        cascade: bool,
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
        #[arg(long, value_parser = one_of(Granularity::ALL, Granularity::as_str))]
        granularity: Option<Granularity>,
    },
}

/// A value parser for a domain enum, built from its `ALL` list and its
/// stored text, so the CLI spells every value exactly as the API does and
/// lists them in `--help`.
fn one_of<T, const N: usize>(
    all: [T; N],
    text: fn(T) -> &'static str,
) -> impl TypedValueParser<Value = T>
where
    T: Copy + Send + Sync + 'static,
{
    PossibleValuesParser::new(all.map(text)).map(move |chosen: String| {
        all.into_iter()
            .find(|value| text(*value) == chosen)
            .expect("clap accepts only the listed values")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommand_help_lists_its_own_options_before_the_global_ones() {
        let help = Cli::try_parse_from(["atk", "keys", "create", "--help"])
            .unwrap_err()
            .to_string();
        let at = |flag: &str| {
            help.find(flag)
                .unwrap_or_else(|| panic!("{flag} in {help}"))
        };
        for own in ["--name", "--confirm", "--rate-limit"] {
            for global in ["--listen", "--database-url", "--url", "--token", "--json"] {
                assert!(at(own) < at(global), "{own} before {global}: {help}");
            }
        }
    }

    #[test]
    fn enum_flags_take_the_api_spelling() {
        let cli = Cli::try_parse_from([
            "atk",
            "keys",
            "create",
            "--name",
            "n",
            "--kind",
            "service_role",
            "--environment",
            "staging",
            "--expiration",
            "7_days",
            "--confirm",
            "service_role_danger",
            "--confirm",
            "backend_only",
        ])
        .unwrap();
        let Command::Keys(KeysCommand::Create {
            kind,
            environment,
            expiration,
            confirmations,
            ..
        }) = cli.command
        else {
            panic!("parsed as another command");
        };
        assert_eq!(kind, Some(KeyKind::ServiceRole));
        assert_eq!(environment, Some(Environment::Staging));
        assert_eq!(expiration, Some(Expiration::Days7));
        assert_eq!(
            confirmations,
            [Confirmation::ServiceRoleDanger, Confirmation::BackendOnly]
        );
        assert!(
            Cli::try_parse_from([
                "atk",
                "keys",
                "create",
                "--name",
                "n",
                "--kind",
                "superuser"
            ])
            .is_err()
        );
        let audit = Cli::try_parse_from(["atk", "audit", "--action", "key.rotate"]).unwrap();
        assert!(matches!(
            audit.command,
            Command::Audit {
                action: Some(AuditAction::KeyRotate),
                ..
            }
        ));
    }
}
