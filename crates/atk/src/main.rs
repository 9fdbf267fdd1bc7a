//! `atk`: the one binary. `atk serve` runs the service; the other commands
//! talk to the store directly through the same library calls the API uses.

mod cli;

use std::process::ExitCode;
use std::sync::Arc;

use atk_core::SystemClock;
use atk_core::key::PreviewRow;
use atk_core::policy::KeyRequest;
use atk_server::service::{KeyFilter, ServiceError};
use atk_server::startup::{Application, Services, StartupError};
use clap::Parser;
use serde_json::json;

use cli::{Cli, Command, KeysCommand, ProjectsCommand};

/// Exit status for input the service refused (bad id, policy, confirmation).
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("{0}")]
    Other(String),
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Service(ServiceError::InvalidRequest(_) | ServiceError::Policy(_)) => {
                ExitCode::from(EXIT_BAD_INPUT)
            }
            _ => ExitCode::FAILURE,
        }
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
            return ExitCode::FAILURE;
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
    let json = cli.json;
    if let Command::Serve = cli.command {
        return serve(&config).await;
    }
    let services = Services::open(&config, Arc::new(SystemClock)).await?;
    let outcome = match cli.command {
        Command::Serve => unreachable!("handled above"),
        Command::Migrate => {
            // `Services::open` has applied the migrations.
            print(json, &json!({"migrated": true}), || {
                "migrations applied".into()
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Projects(ProjectsCommand::Create { project_id, name }) => {
            let project = services.service.create_project(&project_id, &name).await?;
            print(json, &project, || {
                format!("created project {}", project.project_id)
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(command) => keys(&services, command, json).await,
        Command::Verify { key, action } => {
            let verification = services
                .verifier
                .verify(&key, action.as_deref())
                .await
                .map_err(|error| CliError::Other(error.to_string()))?;
            let decision = &verification.decision;
            let body = json!({
                "valid": decision.valid,
                "allowed": decision.allowed,
                "code": decision.code,
                "key_id": verification.key.as_ref().map(|key| key.id.to_string()),
                "entitlement": decision.entitlement,
                "missing_scopes": decision.missing_scopes,
            });
            print(json, &body, || {
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
            Ok(if decision.allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    };
    services.store.close().await;
    outcome
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
    println!("AuthToolkit Keys listening on http://{}", app.local_addr());
    app.run_until_stopped()
        .await
        .map_err(|error| CliError::Other(format!("server failed: {error}")))?;
    Ok(ExitCode::SUCCESS)
}

async fn keys(services: &Services, command: KeysCommand, json: bool) -> Result<ExitCode, CliError> {
    let project_id = |raw: &str| {
        atk_core::ids::ProjectId::parse(raw).map_err(|error| CliError::Service(error.into()))
    };
    match command {
        KeysCommand::Create {
            project,
            name,
            kind,
            environment,
            scopes,
            expiration,
            confirmations,
        } => {
            let request = KeyRequest {
                kind: kind.map(Into::into),
                environment: environment.map(Into::into),
                scopes: (!scopes.is_empty()).then_some(scopes),
                expiration: expiration.map(Into::into),
                confirmations: confirmations.into_iter().map(Into::into).collect(),
            };
            let created = services
                .service
                .create_key(&project_id(&project.project)?, &name, &request)
                .await?;
            let body = json!({
                "secret": created.secret.expose(),
                "key": created.key,
                "blocked_scopes": created.blocked_scopes,
            });
            print(json, &body, || {
                let mut text = format!(
                    "Secret (shown once, store it securely):\n\n    {}\n\n{}",
                    created.secret.expose(),
                    describe(&created.key)
                );
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
            let filter = KeyFilter {
                status: status.map(Into::into),
                environment: environment.map(Into::into),
                kind: kind.map(Into::into),
                expiring_within_days,
                limit,
                cursor,
            };
            let page = services
                .service
                .list_keys(&project_id(&project.project)?, &filter)
                .await?;
            let body = json!({"items": page.items, "next_cursor": page.next_cursor});
            print(json, &body, || {
                let mut lines: Vec<String> = page
                    .items
                    .iter()
                    .map(|key| {
                        format!(
                            "{}  {:<8} {:<15} {:<11} {}  {}",
                            key.id,
                            key.status.as_str(),
                            key.kind.as_str(),
                            key.environment.as_str(),
                            key.secret_preview,
                            key.name
                        )
                    })
                    .collect();
                if lines.is_empty() {
                    lines.push("no keys".into());
                }
                if let Some(cursor) = &page.next_cursor {
                    lines.push(format!("more: --cursor {cursor}"));
                }
                lines.join("\n")
            });
        }
        KeysCommand::Show { project, key_id } => {
            let key = services
                .service
                .get_key(&project_id(&project.project)?, &key_id)
                .await?;
            print(json, &key, || describe(&key));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(key: &PreviewRow) -> String {
    let time =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or("-".to_owned(), |t| t.to_rfc3339());
    [
        format!("id:             {}", key.id),
        format!("name:           {}", key.name),
        format!("project:        {}", key.project_id),
        format!("kind:           {}", key.kind.as_str()),
        format!("environment:    {}", key.environment.as_str()),
        format!("status:         {}", key.status.as_str()),
        format!("secret preview: {}", key.secret_preview),
        format!("scopes:         {}", key.scopes.join(", ")),
        format!("created:        {}", key.created_at.to_rfc3339()),
        format!("expires:        {}", time(key.expires_at)),
        format!("last used:      {}", time(key.last_used_at)),
    ]
    .join("\n")
}

fn print(json: bool, value: &impl serde::Serialize, text: impl FnOnce() -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("output serializes")
        );
    } else {
        println!("{}", text());
    }
}
