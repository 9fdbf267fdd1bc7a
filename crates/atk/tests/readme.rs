//! The README's walk-through runs verbatim: the first block's server start
//! is done with the built binary (on a free port instead of 8080), and every
//! following block runs in bash exactly as written.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn walkthrough_blocks() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("README marks the walk-through");
    let end = readme
        .find("<!-- walkthrough:end -->")
        .expect("README marks the walk-through end");
    let section = &readme[start..end];
    section
        .split("```sh\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    let address = format!("127.0.0.1:{}", free_port());
    let mut server = Command::new(env!("CARGO_BIN_EXE_atk"))
        .arg("serve")
        .env("ATK_ADMIN_TOKEN", token)
        .env("ATK_LISTEN", &address)
        .env("ATK_DATA_DIR", dir.path().join("atk-data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    // Ready once it says where it listens: no sleeping, no polling.
    let listening = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|line| line.contains("listening on"))
        .expect("the server starts");
    assert!(listening.contains(&address), "{listening}");

    let script = blocks[1..].join("\n").replace("127.0.0.1:8080", &address);
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let exit = server.wait().unwrap();

    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the walk-through failed: {said}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        r#""code":"OK""#,
        r#""code":"ENTITLEMENT_UPGRADE_REQUIRED""#,
        r#""code":"SCOPE_MISSING""#,
        r#""missing_scopes":["notification.send"]"#,
        r#""blocked_scopes":["marketing.campaign.send"]"#,
        r#""name":"QR worker""#,
    ] {
        assert!(
            said.contains(expected),
            "the walk-through should show {expected}: {said}"
        );
    }
    assert!(exit.success(), "serve stops cleanly on SIGTERM: {exit:?}");
    assert!(
        !dir.path().join("created.json").exists(),
        "the walk-through cleans up"
    );
}
