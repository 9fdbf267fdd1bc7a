//! `atk`: the one binary. `atk serve` runs the service; the management
//! commands talk to the store directly through the same library calls the
//! API uses, or with `--url` to a running deployment through `atk-client`.

mod backend;
mod cli;
mod confirm;
mod output;

use std::process::ExitCode;
use std::sync::Arc;

use atk_api::audit::AuditListQuery;
use atk_api::error::ErrorCode;
use atk_api::keys::{CreateKey, ListKeysQuery, RevokeKey, RotateKey, UsageQuery};
use atk_api::projects::CreateProject;
use atk_api::verify::VerifyRequest;
use atk_core::SystemClock;
use atk_server::service::ServiceError;
use atk_server::startup::{Application, Services, StartupError};
use atk_server::verifier::VerifyError;
use clap::Parser;
use serde_json::json;

use backend::Backend;
use cli::{Cli, Command, KeysCommand, ProjectsCommand};
use output::{Output, describe_key};

/// jemalloc rather than glibc's allocator: a request allocates and frees
/// about fifteen small blocks, and glibc spent about 2,000 instructions per
/// request on them (callgrind, per request: verify 36,189 -> 34,487,
/// healthz 17,206 -> 16,080). mimalloc was as fast but held 322-370 MiB
/// with a million keys cached, against 267 MiB for glibc with its heap
/// trimmed; jemalloc, configured below, 265 MiB.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start (`_RJEM_MALLOC_CONF` in the
/// environment still overrides them): freed pages are handed back to the
/// system by a background thread after a second rather than ten, so that
/// resident memory follows what the node holds once a burst (a million
/// keys read into the cache) is over. The type is the one
/// tikv-jemalloc-sys declares for this symbol.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: Option<&'static std::ffi::c_char> =
    Some(unsafe { &*c"background_thread:true,dirty_decay_ms:1000".as_ptr() });

/// Exit statuses: 0 done (or, for `verify`, allowed); 1 refused (`verify`
/// not allowed, not found, conflict, no or a wrong credential); 2 bad
/// input (bad id, policy, confirmation, unknown action); 3 the service
/// failed (store, startup, unreachable, usage counts not saved).
const EXIT_REFUSED: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;
const EXIT_INTERNAL: u8 = 3;

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A refusal or failure of the remote deployment (`--url`).
    /// Not a `source`: its message is already the whole story, as a
    /// refusal from the store's is.
    #[error("{}", remote_message(.0))]
    Client(atk_client::Error),
    /// A command line that cannot work as given.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Internal(String),
}

/// A remote refusal reads as the same refusal from the store would: its
/// message, without the status line.
fn remote_message(error: &atk_client::Error) -> String {
    if let Some(missing) = backend::missing_confirmations_of(error) {
        return atk_core::policy::PolicyError::MissingConfirmations(missing).to_string();
    }
    match error {
        atk_client::Error::Api { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

impl From<atk_client::Error> for CliError {
    fn from(error: atk_client::Error) -> Self {
        Self::Client(error)
    }
}

impl From<VerifyError> for CliError {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::UnknownAction => {
                Self::Service(ServiceError::InvalidRequest(error.to_string()))
            }
            VerifyError::Store(store) => Self::Service(ServiceError::Store(store)),
        }
    }
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Service(
                ServiceError::InvalidRequest(_)
                | ServiceError::InvalidField(_)
                | ServiceError::Policy(_),
            )
            | Self::Usage(_) => EXIT_BAD_INPUT,
            Self::Service(
                ServiceError::NotFound(_)
                | ServiceError::Conflict(_)
                | ServiceError::Forbidden(_)
                | ServiceError::InvalidCredentials
                | ServiceError::RateLimited(_),
            ) => EXIT_REFUSED,
            Self::Client(error) => match error.code() {
                Some(
                    ErrorCode::InvalidRequest
                    | ErrorCode::ConfirmationRequired
                    | ErrorCode::ScopeNotAllowed
                    | ErrorCode::PayloadTooLarge,
                ) => EXIT_BAD_INPUT,
                Some(
                    ErrorCode::Unauthorized
                    | ErrorCode::Forbidden
                    | ErrorCode::NotFound
                    | ErrorCode::Conflict
                    | ErrorCode::RateLimited,
                ) => EXIT_REFUSED,
                _ if matches!(error, atk_client::Error::InvalidUrl(_)) => EXIT_BAD_INPUT,
                _ => EXIT_INTERNAL,
            },
            Self::Service(ServiceError::Unavailable(_) | ServiceError::Store(_))
            | Self::Startup(_)
            | Self::Internal(_) => EXIT_INTERNAL,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    atk_server::telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            error.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let config = cli.config.to_config();
    let out = Output { json: cli.json };
    match cli.command {
        Command::Serve => return serve(&config).await,
        Command::HelpEval {
            dir,
            dev_misses,
            tune,
        } => return help_eval(&dir, dev_misses, tune),
        Command::Migrate if cli.remote.url.is_some() => {
            return Err(CliError::Usage(
                "migrate works on the database itself: run it without --url, where \
                 ATK_DATABASE_URL reaches the database"
                    .into(),
            ));
        }
        Command::Migrate => {
            // Opening the store applies the migrations.
            let services = Services::open(&config, Arc::new(SystemClock)).await?;
            services.shutdown().await;
            out.print(&json!({"migrated": true}), || "migrations applied".into());
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    if let Some(url) = &cli.remote.url {
        let mut client = atk_client::Client::builder(url.as_str());
        if let Some(token) = &cli.remote.token {
            client = client.token(token.as_str());
        }
        let backend = Backend::Remote(client.build()?);
        return command(&backend, cli.command, out).await;
    }
    let backend = Backend::Store(Services::open(&config, Arc::new(SystemClock)).await?);
    let outcome = command(&backend, cli.command, out).await;
    let Backend::Store(services) = backend else {
        unreachable!("opened as the store above")
    };
    // Saves the usage a `verify` counted before the process exits.
    let saved = services.shutdown().await;
    match outcome {
        Ok(_) if !saved => Err(CliError::Internal("usage counts could not be saved".into())),
        other => other,
    }
}

async fn command(backend: &Backend, command: Command, out: Output) -> Result<ExitCode, CliError> {
    match command {
        Command::Serve | Command::HelpEval { .. } | Command::Migrate => {
            unreachable!("handled by run")
        }
        Command::Projects(ProjectsCommand::Create { project_id, name }) => {
            let project = backend
                .create_project(&CreateProject { project_id, name })
                .await?;
            out.print(&project, || {
                format!("created project {}", project.project_id)
            });
        }
        Command::Keys(command) => keys(backend, command, out).await?,
        Command::Audit {
            project,
            action,
            limit,
            cursor,
        } => {
            let query = AuditListQuery {
                action,
                limit,
                cursor,
            };
            let page = backend.list_audit(&project.project, &query).await?;
            out.print(&page, || {
                output::audit_lines(&page.items, page.next_cursor.as_deref())
            });
        }
        Command::Verify {
            key,
            action,
            client_ip,
            origin,
        } => {
            let outcome = backend
                .verify(&VerifyRequest {
                    key,
                    action,
                    client_ip,
                    origin,
                })
                .await?;
            out.print(&outcome, || {
                let mut line = format!(
                    "{} (valid: {}, allowed: {})",
                    outcome.code.as_str(),
                    outcome.valid,
                    outcome.allowed
                );
                if !outcome.missing_scopes.is_empty() {
                    line.push_str(&format!(
                        "; missing scopes: {}",
                        outcome.missing_scopes.join(", ")
                    ));
                }
                line
            });
            return Ok(if outcome.allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_REFUSED)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: &atk_server::Config) -> Result<ExitCode, CliError> {
    let app = Application::build(config).await?;
    if app.bootstrap.demo_project_created {
        println!("Created project project_identity_demo with the default entitlements.");
    }
    if let Some(token) = &app.bootstrap.new_admin_token {
        // Printed to the terminal, never logged: this is the only copy.
        println!();
        println!("Platform admin token (shown once, store it now):");
        println!();
        println!("    {token}");
        println!();
        println!("Use it as: Authorization: Bearer <token>");
        println!();
    }
    if let Some(link) = &app.bootstrap.setup_link {
        // Printed to the terminal, never logged: whoever opens it first
        // becomes the first owner.
        println!();
        println!("Console setup link (one-time, valid 24 hours; it creates the first owner):");
        println!();
        println!("    {link}");
        println!();
    }
    println!("AuthToolkit Keys listening on http://{}", app.local_addr());
    app.run_until_stopped()
        .await
        .map_err(|error| CliError::Internal(format!("server failed: {error}")))?;
    Ok(ExitCode::SUCCESS)
}

/// `atk help-eval`: every `*.jsonl` question set in `dir`, through the
/// engine and the baseline; the report on stdout.
fn help_eval(dir: &std::path::Path, dev_misses: bool, tune: bool) -> Result<ExitCode, CliError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| CliError::Internal(format!("cannot read {}: {e}", dir.display())))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    files.sort();
    let mut items = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| CliError::Internal(format!("cannot read {}: {e}", file.display())))?;
        items.extend(atk_server::help::eval::parse(&text).map_err(|e| {
            CliError::Service(ServiceError::InvalidRequest(format!(
                "{}: {e}",
                file.display()
            )))
        })?);
    }
    eprintln!("{} questions from {} files", items.len(), files.len());
    let mut help = atk_server::help::Help::load();
    if tune {
        let (gate, right) = atk_server::help::eval::tune(&mut help, &items, chrono::Utc::now());
        println!("tuned on dev: {gate:?} gets {right} dev questions right");
    }
    let report = atk_server::help::eval::run(&help, &items, chrono::Utc::now());
    println!("{}", atk_server::help::eval::render(&report));
    if dev_misses {
        println!("dev misses ({}):", report.dev_misses.len());
        for miss in &report.dev_misses {
            println!("  {miss}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn keys(backend: &Backend, command: KeysCommand, out: Output) -> Result<(), CliError> {
    match command {
        KeysCommand::Create {
            project,
            name,
            kind,
            environment,
            scopes,
            expiration,
            confirmations,
            allowed_ips,
            rate_limit,
        } => {
            let mut request = CreateKey {
                name,
                kind,
                environment,
                scopes: (!scopes.is_empty()).then_some(scopes),
                expiration,
                confirmations,
                allowed_ips: (!allowed_ips.is_empty()).then_some(allowed_ips),
                rate_limit,
            };
            let created = match backend.create_key(&project.project, &request).await {
                Err(refused) => {
                    request.confirmations.extend(confirm::ask(refused)?);
                    backend.create_key(&project.project, &request).await?
                }
                Ok(created) => created,
            };
            out.print(&created, || {
                let mut text = output::secret_once(&created.secret, &created.key);
                if !created.blocked_scopes.is_empty() {
                    text.push_str(&format!(
                        "\nblocked by entitlements today: {}",
                        created.blocked_scopes.join(", ")
                    ));
                }
                text
            });
        }
        KeysCommand::List {
            project,
            status,
            environment,
            kind,
            expiring_within_days,
            limit,
            cursor,
        } => {
            let query = ListKeysQuery {
                status,
                environment,
                kind,
                expiring_within_days,
                limit,
                cursor,
            };
            let page = backend.list_keys(&project.project, &query).await?;
            out.print(&page, || {
                output::key_lines(&page.items, page.next_cursor.as_deref())
            });
        }
        KeysCommand::Show { project, key_id } => {
            let key = backend.get_key(&project.project, &key_id).await?;
            out.print(&key, || describe_key(&key));
        }
        KeysCommand::Rotate {
            project,
            key_id,
            grace,
            confirmations,
        } => {
            let mut request = RotateKey {
                grace,
                confirmations,
            };
            let rotated = match backend
                .rotate_key(&project.project, &key_id, &request)
                .await
            {
                Err(refused) => {
                    request.confirmations.extend(confirm::ask(refused)?);
                    backend
                        .rotate_key(&project.project, &key_id, &request)
                        .await?
                }
                Ok(rotated) => rotated,
            };
            out.print(&rotated, || {
                let ends = rotated
                    .previous
                    .expires_at
                    .map_or("-".to_owned(), |at| at.to_rfc3339());
                format!(
                    "{}\n\nprevious key {} ends at {ends}",
                    output::secret_once(&rotated.secret, &rotated.key),
                    rotated.previous.id
                )
            });
        }
        KeysCommand::Revoke {
            project,
            key_id,
            reason,
            cascade,
        } => {
            let key = backend
                .revoke_key(&project.project, &key_id, &RevokeKey { reason, cascade })
                .await?;
            out.print(&key, || describe_key(&key));
        }
        KeysCommand::Expire { project, key_id } => {
            let key = backend.expire_key(&project.project, &key_id).await?;
            out.print(&key, || describe_key(&key));
        }
        KeysCommand::Usage {
            project,
            key_id,
            from,
            to,
            granularity,
        } => {
            let usage = backend
                .key_usage(
                    &project.project,
                    &key_id,
                    &UsageQuery {
                        from,
                        to,
                        granularity,
                    },
                )
                .await?;
            out.print(&usage, || output::usage_text(&usage.report));
        }
    }
    Ok(())
}
