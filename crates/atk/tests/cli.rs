//! The `atk` command line, run as a real process against a temporary data
//! directory (SQLite) and, when available, a fresh PostgreSQL database.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

struct Atk {
    dir: tempfile::TempDir,
    database_url: Option<String>,
}

impl Atk {
    fn sqlite() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            database_url: None,
        }
    }

    async fn postgres() -> Option<Self> {
        let url = atk_store::testing::fresh_postgres_url().await?;
        Some(Self {
            dir: tempfile::tempdir().unwrap(),
            database_url: Some(url),
        })
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
    let migrated = atk.json(&["migrate"]);
    assert_eq!(migrated["migrated"], true);
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
    let atk = Atk::sqlite();
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
    atk.json(&["migrate"]);
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
        assert_eq!(event["actor"]["type"], "cli", "{event}");
    }
    let only_revokes = atk.json(&["audit", "--action", "key.revoke"]);
    assert_eq!(only_revokes["items"].as_array().unwrap().len(), 1);
    assert_eq!(only_revokes["items"][0]["details"]["reason"], "testing");
    let text = stdout(&atk.run(&["audit"]));
    assert!(text.contains("key.rotate") && text.contains(&id), "{text}");
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
