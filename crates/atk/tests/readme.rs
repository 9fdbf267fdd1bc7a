//! The README's walk-through runs verbatim: the first block's server start
//! is done with the built binary (on a free port instead of 8080), and every
//! following block runs in bash exactly as written.

mod support;

use std::process::Command;

use support::Server;

fn walkthrough_blocks() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("README marks the walk-through");
    let end = readme
        .find("<!-- walkthrough:end -->")
        .expect("README marks the walk-through end");
    readme[start..end]
        .split("```sh\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_readme_walkthrough_runs_verbatim() {
    let blocks = walkthrough_blocks();
    assert!(blocks.len() >= 5, "the walk-through has its blocks");
    let server_block = &blocks[0];
    assert!(
        server_block.contains("cargo run --release -- serve"),
        "{server_block}"
    );
    let token = server_block
        .lines()
        .find_map(|line| line.strip_prefix("export ATK_ADMIN_TOKEN="))
        .expect("the walk-through chooses its admin token");

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("atk-data"), &[("ATK_ADMIN_TOKEN", token)]);
    let script = blocks[1..]
        .join("\n")
        .replace("127.0.0.1:8080", &server.address);
    // `timeout`: a hung server fails the test instead of hanging it.
    let output = Command::new("timeout")
        .args(["120", "bash", "-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let exit = server.stop();

    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the walk-through failed: {said}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The first key verifies OK once, then old and new secret after the
    // rotation: three answers, each checked, not just "somewhere".
    assert_eq!(said.matches(r#""code":"OK""#).count(), 3, "{said}");
    for expected in [
        r#""code":"OK""#,
        r#""code":"ENTITLEMENT_UPGRADE_REQUIRED""#,
        r#""code":"SCOPE_MISSING""#,
        r#""missing_scopes":["notification.send"]"#,
        r#""blocked_scopes":["marketing.campaign.send"]"#,
        r#""name":"QR worker""#,
        r#""previous":"#,
        r#""code":"REVOKED""#,
        r#""by_action":{"marketing.campaign.send":1,"notification.send":1}"#,
        r#""action":"key.revoke""#,
        r#""action":"key.rotate""#,
    ] {
        assert!(
            said.contains(expected),
            "the walk-through should show {expected}: {said}"
        );
    }
    assert!(exit.success(), "serve stops cleanly on SIGTERM: {exit:?}");
    for file in ["created.json", "scoped.json", "rotated.json"] {
        assert!(
            !dir.path().join(file).exists(),
            "the walk-through cleans up {file}"
        );
    }
}

#[test]
fn the_protect_your_service_code_is_the_example_that_ci_builds() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let start = readme
        .find("<!-- protect-your-service:start -->\n```rust\n")
        .expect("README marks the Protect your service code");
    let code = &readme[start..];
    let code = &code[code.find("```rust\n").unwrap() + "```rust\n".len()..];
    let code = &code[..code
        .find("```\n<!-- protect-your-service:end -->")
        .expect("README marks its end")];
    let example =
        std::fs::read_to_string(format!("{root}/examples/notification-send/src/lib.rs")).unwrap();
    assert_eq!(
        code, example,
        "the README shows examples/notification-send/src/lib.rs as it is"
    );
}
