//! `atk`: the one binary. `atk serve` runs the service; the other commands
//! talk to the store directly through the same library calls the API uses.

mod cli;
mod output;

use std::process::ExitCode;
use std::sync::Arc;

use atk_core::SystemClock;
use atk_core::ids::ProjectId;
use atk_core::policy::KeyRequest;
use atk_server::service::{Caller, KeyFilter, ServiceError};
use atk_server::startup::{Application, Services, StartupError};
use atk_server::verifier::VerifyError;
use clap::Parser;
use serde_json::json;

use cli::{Cli, Command, KeysCommand, ProjectsCommand};
use output::{Output, describe_key};

/// Exit statuses: 0 done (or, for `verify`, allowed); 1 refused (`verify`
/// not allowed, not found, conflict); 2 bad input (bad id, policy,
/// confirmation, unknown action); 3 the service failed (store, startup,
/// usage counts not saved).
const EXIT_REFUSED: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;
const EXIT_INTERNAL: u8 = 3;

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("{0}")]
    Internal(String),
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
            ) => EXIT_BAD_INPUT,
            Self::Service(
                ServiceError::NotFound(_)
                | ServiceError::Conflict(_)
                | ServiceError::Forbidden(_)
                | ServiceError::InvalidCredentials
                | ServiceError::RateLimited(_),
            ) => EXIT_REFUSED,
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
        _ => {}
    }
    let services = Services::open(&config, Arc::new(SystemClock)).await?;
    let outcome = command(&services, cli.command, out).await;
    // Saves the usage a `verify` counted before the process exits.
    let saved = services.shutdown().await;
    match outcome {
        Ok(_) if !saved => Err(CliError::Internal("usage counts could not be saved".into())),
        other => other,
    }
}

async fn command(services: &Services, command: Command, out: Output) -> Result<ExitCode, CliError> {
    let caller = Caller::cli();
    match command {
        Command::Serve | Command::HelpEval { .. } => unreachable!("handled by run"),
        Command::Migrate => {
            // `Services::open` has applied the migrations.
            out.print(&json!({"migrated": true}), || "migrations applied".into());
        }
        Command::Projects(ProjectsCommand::Create { project_id, name }) => {
            let project = services
                .service
                .create_project(&caller, &project_id, &name)
                .await?;
            out.print(&project, || {
                format!("created project {}", project.project_id)
            });
        }
        Command::Keys(command) => keys(services, command, out, &caller).await?,
        Command::Audit {
            project,
            action,
            limit,
            cursor,
        } => {
            let page = services
                .service
                .list_audit(
                    &caller,
                    &project_id(&project.project)?,
                    action,
                    limit,
                    cursor.as_deref(),
                )
                .await?;
            out.print(
                &json!({"items": page.items, "next_cursor": page.next_cursor}),
                || output::audit_lines(&page.items, page.next_cursor.as_deref()),
            );
        }
        Command::Verify {
            key,
            action,
            client_ip,
            origin,
        } => {
            let context = atk_core::decision::VerifyContext {
                action: action.as_deref(),
                client_ip,
                origin: origin.as_deref(),
            };
            let verification = services.verifier.verify(&key, context).await?;
            let decision = &verification.decision;
            let body = json!({
                "valid": decision.valid,
                "allowed": decision.allowed,
                "code": decision.code,
                "key_id": verification.key.as_ref().map(|key| key.id.to_string()),
                "entitlement": decision.entitlement,
                "missing_scopes": decision.missing_scopes,
            });
            out.print(&body, || {
                let mut line = format!(
                    "{} (valid: {}, allowed: {})",
                    decision.code.as_str(),
                    decision.valid,
                    decision.allowed
                );
                if !decision.missing_scopes.is_empty() {
                    line.push_str(&format!(
                        "; missing scopes: {}",
                        decision.missing_scopes.join(", ")
                    ));
                }
                line
            });
            return Ok(if decision.allowed {
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

fn project_id(raw: &str) -> Result<ProjectId, CliError> {
    ProjectId::parse(raw).map_err(|error| CliError::Service(error.into()))
}

async fn keys(
    services: &Services,
    command: KeysCommand,
    out: Output,
    caller: &Caller,
) -> Result<(), CliError> {
    let service = &services.service;
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
            let request = KeyRequest {
                kind,
                environment,
                scopes: (!scopes.is_empty()).then_some(scopes),
                expiration,
                confirmations,
                allowed_ips: (!allowed_ips.is_empty()).then_some(allowed_ips),
                rate_limit,
            };
            let created = service
                .create_key(caller, &project_id(&project.project)?, &name, &request)
                .await?;
            let blocked: Vec<&str> = created
                .blocked_scopes
                .iter()
                .map(|blocked| blocked.scope.as_str())
                .collect();
            let body = json!({
                "secret": created.secret.expose(),
                "key": created.key,
                "blocked_scopes": blocked,
                "blocked_scope_reasons": created.blocked_scopes,
            });
            out.print(&body, || {
                let mut text = output::secret_once(created.secret.expose(), &created.key);
                if !created.blocked_scopes.is_empty() {
                    text.push_str(&format!(
                        "\nblocked by entitlements today: {}",
                        blocked.join(", ")
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
            let filter = KeyFilter {
                status,
                environment,
                kind,
                expiring_within_days,
                limit,
                cursor,
            };
            let page = service
                .list_keys(caller, &project_id(&project.project)?, &filter)
                .await?;
            out.print(
                &json!({"items": page.items, "next_cursor": page.next_cursor}),
                || output::key_lines(&page.items, page.next_cursor.as_deref()),
            );
        }
        KeysCommand::Show { project, key_id } => {
            let key = service
                .get_key(caller, &project_id(&project.project)?, &key_id)
                .await?;
            out.print(&key, || describe_key(&key));
        }
        KeysCommand::Rotate {
            project,
            key_id,
            grace,
            confirmations,
        } => {
            let rotated = service
                .rotate_key(
                    caller,
                    &project_id(&project.project)?,
                    &key_id,
                    grace,
                    &confirmations,
                )
                .await?;
            let body = json!({
                "secret": rotated.secret.expose(),
                "key": rotated.key,
                "previous": rotated.previous,
            });
            out.print(&body, || {
                let ends = rotated
                    .previous
                    .expires_at
                    .map_or("-".to_owned(), |at| at.to_rfc3339());
                format!(
                    "{}\n\nprevious key {} ends at {ends}",
                    output::secret_once(rotated.secret.expose(), &rotated.key),
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
            let key = service
                .revoke_key(
                    caller,
                    &project_id(&project.project)?,
                    &key_id,
                    reason.as_deref(),
                    cascade,
                )
                .await?;
            out.print(&key, || describe_key(&key));
        }
        KeysCommand::Expire { project, key_id } => {
            let key = service
                .expire_key(caller, &project_id(&project.project)?, &key_id)
                .await?;
            out.print(&key, || describe_key(&key));
        }
        KeysCommand::Usage {
            project,
            key_id,
            from,
            to,
            granularity,
        } => {
            let report = service
                .key_usage(
                    caller,
                    &project_id(&project.project)?,
                    &key_id,
                    from,
                    to,
                    granularity,
                )
                .await?;
            out.print(&report, || output::usage_text(&report));
        }
    }
    Ok(())
}
