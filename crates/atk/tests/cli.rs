//! The `atk` command line, run as a real process against a temporary data
//! directory (SQLite) and, when available, a fresh PostgreSQL database;
//! each management command both straight on the store and with `--url`
//! through a running `atk serve`.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::Value;
use support::Server;

const ADMIN_TOKEN: &str = "cli-remote-admin-token-0123456789abcdefghij";

struct Atk {
    dir: Arc<tempfile::TempDir>,
    database_url: Option<String>,
    /// With a server, every command goes to it with `--url` (as `ATK_URL`).
    server: Option<Arc<Server>>,
}

impl Atk {
    fn sqlite() -> Self {
        Self {
            dir: Arc::new(tempfile::tempdir().unwrap()),
            database_url: None,
            server: None,
        }
    }

    async fn postgres() -> Option<Self> {
        let url = atk_store::testing::fresh_postgres_url().await?;
        Some(Self {
            dir: Arc::new(tempfile::tempdir().unwrap()),
            database_url: Some(url),
            server: None,
        })
    }

    /// The same store, managed over HTTP: `atk serve` on it, and commands
    /// sent there with `--url` and the admin token.
    fn remote(&self) -> Self {
        let mut env = vec![("ATK_ADMIN_TOKEN", ADMIN_TOKEN)];
        if let Some(url) = &self.database_url {
            env.push(("ATK_DATABASE_URL", url.as_str()));
        }
        Self {
            dir: self.dir.clone(),
            database_url: self.database_url.clone(),
            server: Some(Arc::new(Server::start(self.dir.path(), &env))),
        }
    }

    fn is_remote(&self) -> bool {
        self.server.is_some()
    }

    /// The audit actor type of this CLI's changes.
    fn actor_type(&self) -> &'static str {
        if self.is_remote() { "admin" } else { "cli" }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_atk"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ATK_DATA_DIR", self.dir.path());
        if let Some(url) = &self.database_url {
            command.env("ATK_DATABASE_URL", url);
        }
        if let Some(server) = &self.server {
            command
                .env("ATK_URL", server.url(""))
                .env("ATK_TOKEN", ADMIN_TOKEN);
        }
        command.output().expect("atk runs")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let output = self.run(&with_json);
        assert!(
            output.status.success(),
            "atk {args:?} failed: {}",
            stderr(&output)
        );
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("not JSON: {}", stdout(&output)))
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const CONFIRM: [&str; 6] = [
    "--confirm",
    "backend_only",
    "--confirm",
    "secret_shown_once",
    "--confirm",
    "entitlements_may_block",
];

fn create_key(atk: &Atk, project: &str, extra: &[&str]) -> Value {
    let mut args = vec!["keys", "create", "--project", project, "--name", "cli key"];
    args.extend_from_slice(&CONFIRM);
    args.extend_from_slice(extra);
    atk.json(&args)
}

fn issues_verifies_and_lists_keys(atk: &Atk) {
    if atk.is_remote() {
        // Migrations run where the database is, never over HTTP.
        let refused = atk.run(&["migrate"]);
        assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
        assert!(
            stderr(&refused).contains("without --url"),
            "{}",
            stderr(&refused)
        );
    } else {
        let migrated = atk.json(&["migrate"]);
        assert_eq!(migrated["migrated"], true);
    }
    let project = atk.json(&["projects", "create", "cli_project", "--name", "CLI project"]);
    assert_eq!(project["project_id"], "cli_project");

    let created = create_key(atk, "cli_project", &[]);
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("atk_live_"));
    assert_eq!(
        created["blocked_scopes"],
        serde_json::json!(["marketing.campaign.send"])
    );
    let id = created["key"]["id"].as_str().unwrap().to_owned();

    let ok = atk.run(&["verify", &secret, "--action", "notification.send"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).starts_with("OK"), "{}", stdout(&ok));

    let blocked = atk.run(&[
        "verify",
        &secret,
        "--action",
        "marketing.campaign.send",
        "--json",
    ]);
    assert_eq!(
        blocked.status.code(),
        Some(1),
        "a refused verification exits 1"
    );
    let body: Value = serde_json::from_slice(&blocked.stdout).unwrap();
    assert_eq!(body["code"], "ENTITLEMENT_UPGRADE_REQUIRED");

    let scoped = create_key(
        atk,
        "cli_project",
        &["--kind", "product_scoped", "--scope", "qr.scan.read"],
    );
    let scoped_secret = scoped["secret"].as_str().unwrap();
    let missing =
        atk.json_allowing_failure(&["verify", scoped_secret, "--action", "notification.send"]);
    assert_eq!(missing["code"], "SCOPE_MISSING");
    assert_eq!(
        missing["missing_scopes"],
        serde_json::json!(["notification.send"])
    );

    let listed = atk.json(&["keys", "list", "--project", "cli_project"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    let shown = atk.json(&["keys", "show", "--project", "cli_project", &id]);
    assert_eq!(shown["id"], id.as_str());
    let text = stdout(&atk.run(&["keys", "list", "--project", "cli_project"]));
    assert!(text.contains(&id), "{text}");
    for output in [text, shown.to_string(), listed.to_string()] {
        assert!(
            !output.contains(&secret[9..41]),
            "the secret is shown again"
        );
    }
}

impl Atk {
    fn json_allowing_failure(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        serde_json::from_slice(&self.run(&with_json).stdout).unwrap()
    }
}

#[test]
fn the_cli_issues_verifies_and_lists_keys_on_sqlite() {
    let atk = Atk::sqlite();
    issues_verifies_and_lists_keys(&atk);
    assert!(atk.data_dir().join("atk.sqlite").exists());
    assert!(atk.data_dir().join("pepper").exists());
}

#[tokio::test]
async fn the_cli_issues_verifies_and_lists_keys_on_postgres() {
    let Some(atk) = Atk::postgres().await else {
        return;
    };
    tokio::task::spawn_blocking(move || issues_verifies_and_lists_keys(&atk))
        .await
        .unwrap();
}

#[test]
fn bad_input_exits_non_zero_with_a_clear_message() {
    bad_input_is_refused(&Atk::sqlite());
}

#[test]
fn bad_input_exits_non_zero_with_a_clear_message_over_http_too() {
    bad_input_is_refused(&Atk::sqlite().remote());
}

fn bad_input_is_refused(atk: &Atk) {
    atk.json(&["projects", "create", "cli_project", "--name", "CLI project"]);
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["projects", "create", "Bad-Id", "--name", "x"],
            2,
            "project_id must match",
        ),
        (
            &["projects", "create", "cli_project", "--name", "again"],
            1,
            "already exists",
        ),
        (
            &["keys", "create", "--project", "cli_project", "--name", "x"],
            2,
            "missing confirmations",
        ),
        (
            &[
                "keys",
                "create",
                "--project",
                "cli_project",
                "--name",
                "x",
                "--kind",
                "superuser",
            ],
            2,
            "superuser",
        ),
        (
            &[
                "keys",
                "create",
                "--project",
                "no_such_project",
                "--name",
                "x",
            ],
            1,
            "project not found",
        ),
        (
            &[
                "keys",
                "show",
                "--project",
                "cli_project",
                "key_0000000000000000000000",
            ],
            1,
            "key not found",
        ),
        (
            &["keys", "list", "--project", "cli_project", "--limit", "0"],
            2,
            "limit",
        ),
        (&["verify", "atk_live_short"], 1, "MALFORMED"),
        (
            &["verify", "atk_live_short", "--action", "nope.nothing"],
            2,
            "not in the catalog",
        ),
    ];
    for (args, code, needle) in cases {
        let output = atk.run(args);
        assert_eq!(
            output.status.code(),
            Some(*code),
            "atk {args:?}: {}",
            stderr(&output)
        );
        let said = format!("{}{}", stdout(&output), stderr(&output));
        assert!(
            said.contains(needle),
            "atk {args:?} should say {needle:?}, said: {said}"
        );
    }
    let mut with_confirmations = vec!["keys", "create", "--project", "cli_project", "--name", "x"];
    with_confirmations.extend_from_slice(&CONFIRM);
    with_confirmations.extend_from_slice(&[
        "--kind",
        "analytics_read",
        "--scope",
        "notification.send",
    ]);
    let refused = atk.run(&with_confirmations);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("may not carry"),
        "{}",
        stderr(&refused)
    );
    let listed = atk.json(&["keys", "list", "--project", "cli_project"]);
    assert_eq!(
        listed["items"],
        serde_json::json!([]),
        "refused commands wrote nothing"
    );
}

fn lifecycle_through_the_cli(atk: &Atk) {
    let created = create_key(atk, "project_identity_demo", &[]);
    if !atk.is_remote() {
        atk.json(&["migrate"]);
    }
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    for action in ["notification.send", "marketing.campaign.send"] {
        atk.json_allowing_failure(&["verify", &secret, "--action", action]);
    }
    // Each `atk verify` saved its count before exiting.
    let usage = atk.json(&["keys", "usage", &id]);
    assert_eq!(usage["total"], 2, "{usage}");
    assert_eq!(usage["by_code"]["OK"], 1);
    assert_eq!(usage["by_code"]["ENTITLEMENT_UPGRADE_REQUIRED"], 1);

    let refused = atk.run(&["keys", "rotate", &id, "--grace", "1_hour"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "rotation needs secret_shown_once"
    );
    let rotated = atk.json(&[
        "keys",
        "rotate",
        &id,
        "--grace",
        "1_hour",
        "--confirm",
        "secret_shown_once",
    ]);
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    let new_id = rotated["key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(rotated["previous"]["rotated_to"], new_id.as_str());
    assert_eq!(
        atk.json_allowing_failure(&["verify", &secret])["code"],
        "OK",
        "the grace hour"
    );
    assert_eq!(
        atk.json_allowing_failure(&["verify", &new_secret])["code"],
        "OK"
    );

    let revoked = atk.json(&["keys", "revoke", &new_id, "--reason", "testing"]);
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(
        atk.json_allowing_failure(&["verify", &new_secret])["code"],
        "REVOKED"
    );
    let expired = atk.json(&["keys", "expire", &id]);
    assert_eq!(expired["status"], "expired");
    assert_eq!(
        atk.json_allowing_failure(&["verify", &secret])["code"],
        "EXPIRED"
    );
    let again = atk.run(&["keys", "expire", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already expired"),
        "{}",
        stderr(&again)
    );

    let audit = atk.json(&["audit"]);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions[..4],
        ["key.expire", "key.revoke", "key.rotate", "key.create"]
    );
    for event in &audit["items"].as_array().unwrap()[..4] {
        assert_eq!(event["actor"]["type"], atk.actor_type(), "{event}");
    }
    let only_revokes = atk.json(&["audit", "--action", "key.revoke"]);
    assert_eq!(only_revokes["items"].as_array().unwrap().len(), 1);
    assert_eq!(only_revokes["items"][0]["details"]["reason"], "testing");
    let text = stdout(&atk.run(&["audit"]));
    assert!(text.contains("key.rotate") && text.contains(&id), "{text}");
}

#[test]
fn the_cli_issues_verifies_and_lists_keys_over_http() {
    issues_verifies_and_lists_keys(&Atk::sqlite().remote());
}

#[test]
fn the_cli_rotates_revokes_expires_and_reports_usage_and_audit_over_http() {
    // The server creates the demo project at its first start.
    lifecycle_through_the_cli(&Atk::sqlite().remote());
}

#[test]
fn the_cli_rotates_revokes_expires_and_reports_usage_and_audit_on_sqlite() {
    let atk = Atk::sqlite();
    // The demo project exists once a server has started; create it here.
    atk.json(&[
        "projects",
        "create",
        "project_identity_demo",
        "--name",
        "Demo",
    ]);
    lifecycle_through_the_cli(&atk);
}

#[tokio::test]
async fn the_cli_rotates_revokes_expires_and_reports_usage_and_audit_on_postgres() {
    let Some(atk) = Atk::postgres().await else {
        return;
    };
    tokio::task::spawn_blocking(move || {
        atk.json(&[
            "projects",
            "create",
            "project_identity_demo",
            "--name",
            "Demo",
        ]);
        lifecycle_through_the_cli(&atk);
    })
    .await
    .unwrap();
}

/// Fields whose values differ between two otherwise equal answers: new
/// secrets, ids, the instants they were made, and a window ending now.
const VARIES: [&str; 12] = [
    "secret",
    "id",
    "project_id",
    "secret_preview",
    "created_at",
    "expires_at",
    "revoked_at",
    "rotated_from",
    "rotated_to",
    "at",
    "from",
    "to",
];

fn masked(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, field)| {
                    // Only one twin was verified: its last use is set, the
                    // other's is not.
                    let varies = (VARIES.contains(&name.as_str()) && !field.is_null())
                        || name == "last_used_at";
                    let field = if varies {
                        Value::String("<varies>".into())
                    } else {
                        masked(field)
                    };
                    (name.clone(), field)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(masked).collect()),
        other => other.clone(),
    }
}

/// Every management command run both ways on one store: reads print the
/// very same JSON; changes, made to twin objects, print the same JSON but
/// for the new ids, secrets and instants.
fn the_same_json_both_ways(direct: &Atk) {
    let remote = direct.remote();
    let both = |args: &[&str]| (direct.json(args), remote.json(args));

    let project_direct = direct.json(&["projects", "create", "twin_direct", "--name", "Twin"]);
    let project_remote = remote.json(&["projects", "create", "twin_remote", "--name", "Twin"]);
    assert_eq!(masked(&project_direct), masked(&project_remote));

    let created_direct = create_key(direct, "project_identity_demo", &[]);
    let created_remote = create_key(&remote, "project_identity_demo", &[]);
    assert_eq!(masked(&created_direct), masked(&created_remote));
    let id_direct = created_direct["key"]["id"].as_str().unwrap().to_owned();
    let id_remote = created_remote["key"]["id"].as_str().unwrap().to_owned();
    let secret = created_remote["secret"].as_str().unwrap().to_owned();

    let (shown_direct, shown_remote) = both(&["keys", "show", &id_remote]);
    assert_eq!(shown_direct, shown_remote);
    let (listed_direct, listed_remote) = both(&["keys", "list"]);
    assert_eq!(listed_direct, listed_remote);
    assert_eq!(listed_direct["items"].as_array().unwrap().len(), 2);

    for action in ["notification.send", "marketing.campaign.send"] {
        let args = ["verify", &secret, "--action", action, "--json"];
        let (on_store, over_http) = (direct.run(&args), remote.run(&args));
        assert_eq!(on_store.status.code(), over_http.status.code(), "{action}");
        assert_eq!(stdout(&on_store), stdout(&over_http), "{action}");
    }

    // The remote read saves the server's counts first; then both read the
    // same rows for the same window.
    let window = [
        "keys",
        "usage",
        &id_remote,
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        "2026-01-02T00:00:00Z",
        "--granularity",
        "day",
    ];
    let usage_remote = remote.json(&window);
    let usage_direct = direct.json(&window);
    assert_eq!(usage_direct, usage_remote);
    let today = ["keys", "usage", &id_remote, "--granularity", "day"];
    let today_remote = remote.json(&today);
    assert_eq!(today_remote["total"], 4, "{today_remote}");
    assert_eq!(masked(&direct.json(&today)), masked(&today_remote));

    let rotate = |atk: &Atk, id: &str| {
        atk.json(&[
            "keys",
            "rotate",
            id,
            "--grace",
            "1_hour",
            "--confirm",
            "secret_shown_once",
        ])
    };
    let rotated_direct = rotate(direct, &id_direct);
    let rotated_remote = rotate(&remote, &id_remote);
    assert_eq!(masked(&rotated_direct), masked(&rotated_remote));

    let revoke = |atk: &Atk, rotated: &Value| {
        let id = rotated["key"]["id"].as_str().unwrap().to_owned();
        atk.json(&["keys", "revoke", &id, "--reason", "twin test"])
    };
    assert_eq!(
        masked(&revoke(direct, &rotated_direct)),
        masked(&revoke(&remote, &rotated_remote))
    );
    assert_eq!(
        masked(&direct.json(&["keys", "expire", &id_direct])),
        masked(&remote.json(&["keys", "expire", &id_remote]))
    );

    let (audit_direct, audit_remote) = both(&["audit"]);
    assert_eq!(audit_direct, audit_remote);
    let (revokes_direct, revokes_remote) = both(&["audit", "--action", "key.revoke"]);
    assert_eq!(revokes_direct, revokes_remote);
    assert_eq!(revokes_direct["items"].as_array().unwrap().len(), 2);

    // Refusals: the same exit status and message.
    for args in [
        &["keys", "show", "key_0000000000000000000000"][..],
        &["keys", "expire", &id_remote],
        &["keys", "create", "--name", "unconfirmed"],
    ] {
        let (on_store, over_http) = (direct.run(args), remote.run(args));
        assert_eq!(on_store.status.code(), over_http.status.code(), "{args:?}");
        assert_ne!(on_store.status.code(), Some(0), "{args:?}");
        assert_eq!(
            stderr(&on_store).lines().last(),
            stderr(&over_http).lines().last(),
            "{args:?}"
        );
    }
}

#[test]
fn every_management_command_prints_the_same_json_on_the_store_and_over_http_on_sqlite() {
    the_same_json_both_ways(&Atk::sqlite());
}

#[tokio::test]
async fn every_management_command_prints_the_same_json_on_the_store_and_over_http_on_postgres() {
    let Some(atk) = Atk::postgres().await else {
        return;
    };
    tokio::task::spawn_blocking(move || the_same_json_both_ways(&atk))
        .await
        .unwrap();
}

/// Runs `atk args` in a pseudo-terminal (util-linux `script`), typing
/// `typed` at it: what the terminal showed and the exit status.
fn in_a_terminal(atk: &Atk, args: &[&str], typed: &str) -> (String, Option<i32>) {
    use std::io::Write;
    let line = std::iter::once(env!("CARGO_BIN_EXE_atk"))
        .chain(args.iter().copied())
        .map(|word| format!("'{word}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ATK_DATA_DIR", atk.data_dir())
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(typed.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (stdout(&output), output.status.code())
}

#[test]
fn in_a_terminal_a_create_lacking_confirmations_asks_for_each_in_the_consoles_words() {
    let atk = Atk::sqlite();
    atk.json(&[
        "projects",
        "create",
        "project_identity_demo",
        "--name",
        "Demo",
    ]);
    let (shown, status) =
        in_a_terminal(&atk, &["keys", "create", "--name", "Asked"], "y\nyes\nY\n");
    assert_eq!(status, Some(0), "{shown}");
    for asked in [
        "I understand backend-only keys must stay server-side. [y/N]",
        "I understand secrets are shown once. [y/N]",
        "I understand Commerce entitlements may block actions even if key scopes allow them. [y/N]",
    ] {
        assert!(shown.contains(asked), "{asked} in {shown}");
    }
    assert!(shown.contains("Secret (shown once"), "{shown}");

    // Anything but yes refuses, as without a terminal, and creates nothing.
    let (shown, status) = in_a_terminal(&atk, &["keys", "create", "--name", "Declined"], "y\nn\n");
    assert_eq!(status, Some(2), "{shown}");
    assert!(shown.contains("missing confirmations"), "{shown}");
    let listed = atk.json(&["keys", "list"]);
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Asked"]);

    // A rotation asks for what it lacks too.
    let id = listed["items"][0]["id"].as_str().unwrap().to_owned();
    let (shown, status) = in_a_terminal(&atk, &["keys", "rotate", &id, "--grace", "none"], "y\n");
    assert_eq!(status, Some(0), "{shown}");
    assert!(
        shown.contains("I understand secrets are shown once. [y/N]"),
        "{shown}"
    );
}
