//! The README's console steps, followed in headless Chromium against the
//! real binary: open the printed setup link, create the owner, create a key
//! through the seven steps, reveal and copy the secret, then run the
//! README's `curl` line with it.

mod support;

#[allow(dead_code)] // The browser suite uses the rest.
#[path = "../../atk-server/tests/browser/chrome.rs"]
mod chrome;

use std::process::Command;

use chrome::Browser;
use fantoccini::Locator;
use support::Server;

fn console_section() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("<!-- console:start -->")
        .expect("README marks the console steps");
    let end = readme
        .find("<!-- console:end -->")
        .expect("README marks their end");
    readme[start..end].to_owned()
}

/// The fenced blocks of `section` with their language, indentation removed.
fn blocks(section: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in section.lines() {
        let trimmed = line.trim_start();
        match (&mut current, trimmed.strip_prefix("```")) {
            (None, Some(language)) => current = Some((language.to_owned(), Vec::new())),
            (Some(_), Some(_)) => {
                let (language, lines) = current.take().unwrap();
                blocks.push((language, lines.join("\n")));
            }
            (Some((_, lines)), None) => lines.push(trimmed.to_owned()),
            (None, None) => {}
        }
    }
    blocks
}

/// Clicks the element whose visible text is exactly `text` (a button, a
/// link or a label), as a person following the README would.
async fn press(browser: &Browser, element: &str, text: &str) {
    let xpath = format!("//{element}[normalize-space()='{text}']");
    browser
        .client
        .find(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|e| panic!("no {element} saying {text:?}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Types into the field whose label says `label`.
async fn fill(browser: &Browser, label: &str, value: &str) {
    let xpath = format!("//label[normalize-space()='{label}']");
    let label = browser.client.find(Locator::XPath(&xpath)).await.unwrap();
    let id = label
        .attr("for")
        .await
        .unwrap()
        .expect("labels name their field");
    browser.fill(&format!("#{id}"), value).await;
}

#[tokio::test]
async fn the_readme_console_steps_work_as_written() {
    let section = console_section();
    // The names the steps tell a person to look for are the page's own.
    let said: Vec<&str> = [
        "Your name",
        "Email",
        "Password",
        "Create owner account",
        "Project Settings / API Keys",
        "Create key",
        "Create key and reveal the secret once",
        "Reveal secret",
        "Copy secret",
    ]
    .into_iter()
    .inspect(|name| {
        assert!(
            section.contains(&format!("**{name}**")),
            "the README names {name}"
        )
    })
    .collect();
    let blocks = blocks(&section);
    assert_eq!(
        blocks[0],
        ("sh".into(), "cargo run --release -- serve".into())
    );
    let notice = &blocks[1].1;
    let curl = &blocks[2].1;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("atk-data"), &[]);
    let printed = server.printed.join("\n");
    let first_line = notice.lines().next().unwrap();
    assert!(
        printed.contains(first_line),
        "serve prints {first_line:?}: {printed}"
    );
    let link = server
        .printed
        .iter()
        .find_map(|line| {
            line.trim()
                .strip_prefix("http://")
                .map(|rest| format!("http://{rest}"))
        })
        .filter(|link| link.contains("/console/setup/"))
        .expect("serve prints the setup link");
    let Some(browser) = Browser::start(&server.url("")).await else {
        return;
    };

    // Step 2: the setup link creates the owner.
    browser.goto(&link).await;
    fill(&browser, said[0], "Ana Owner").await;
    fill(&browser, said[1], "ana@example.com").await;
    fill(&browser, said[2], "correct horse battery staple").await;
    press(&browser, "button", said[3]).await;
    browser.wait_for("table#keys").await;
    assert!(browser.text("main").await.contains(said[4]));

    // Step 3: the seven steps, keeping the defaults.
    press(&browser, "a", said[5]).await;
    browser.wait_for("form#create-key").await;
    let page = browser.text("main").await;
    for step in 1..=7 {
        assert!(
            page.contains(&format!("STEP {step}")) || page.contains(&format!("Step {step}")),
            "step {step}: {page}"
        );
    }
    assert!(
        page.contains("marketing.campaign.send: Marketing requires a plan upgrade"),
        "{page}"
    );
    for confirmation in browser
        .client
        .find_all(Locator::Css("input[name=confirmations]"))
        .await
        .unwrap()
    {
        if confirmation.is_displayed().await.unwrap() {
            confirmation.click().await.unwrap();
        }
    }
    press(&browser, "button", said[6]).await;

    // Step 4: reveal, copy.
    browser.wait_for("#secret").await;
    press(&browser, "summary", said[7]).await;
    press(&browser, "button", said[8]).await;
    let secret = browser.text("#secret").await;
    assert_eq!(secret.len(), 47, "{secret}");
    assert!(
        browser
            .text("#preview-row")
            .await
            .contains(&secret[secret.len() - 6..])
    );
    browser.screenshot("readme-console-secret-revealed").await;
    browser.close().await;

    // Step 5: the README's curl line, with the secret pasted in.
    let script = curl
        .replace("paste-the-secret-here", &secret)
        .replace("127.0.0.1:8080", &server.address);
    let output = Command::new("timeout")
        .args(["60", "bash", "-euo", "pipefail", "-c", &script])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}");
    assert!(said.contains(r#""code":"OK""#), "{said}");
    assert!(server.stop().success());
}
