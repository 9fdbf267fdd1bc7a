//! Headless Debian Chromium driven through chromedriver (WebDriver), one
//! browser per test with its own empty profile. Outside CI a machine
//! without chromium-driver skips these tests with one line; with `CI=true`
//! a missing browser fails them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::{Semaphore, SemaphorePermit};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Two cores: more browsers at once only make each slower.
static BROWSERS_AT_ONCE: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(2));
/// How long a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(20);

pub const WIDE: (u32, u32) = (1280, 900);
pub const NARROW: (u32, u32) = (390, 844);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// `None` (after one line saying why) when no browser is installed, outside CI.
fn browser_available() -> bool {
    static NOTICE: OnceLock<()> = OnceLock::new();
    let present =
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists();
    if !present {
        assert!(
            !in_ci(),
            "CI=true but {CHROMEDRIVER} or {CHROMIUM} is missing (apt-get install chromium chromium-driver)"
        );
        NOTICE.get_or_init(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipping browser tests: {CHROMEDRIVER} or {CHROMIUM} is not installed"
            );
        });
    }
    present
}

/// Where screenshots go: `<target dir>/console-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot folder can be created");
    dir
}

/// axe-core's script, from npm (`.ci/run` installs it). `ATK_AXE_JS` names
/// the file; the default is where `.ci/run` puts it.
pub fn axe_source() -> Option<String> {
    let path = std::env::var("ATK_AXE_JS")
        .unwrap_or_else(|_| "/var/cache/atk-ci/npm/node_modules/axe-core/axe.min.js".to_owned());
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(error) => {
            assert!(
                !in_ci(),
                "CI=true but axe-core is missing at {path}: {error}"
            );
            eprintln!("skipping the accessibility check: no axe-core at {path}");
            None
        }
    }
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: TempDir,
    base: String,
    _slot: SemaphorePermit<'static>,
}

impl Browser {
    /// A fresh headless Chromium at `base` (the test server), or `None` when
    /// browsers are not installed outside CI.
    pub async fn start(base: &str) -> Option<Self> {
        Self::start_with(base, &[]).await
    }

    /// As [`Browser::start`], with more Chromium switches (for example
    /// `--blink-settings=scriptEnabled=false` for a browser without
    /// JavaScript).
    pub async fn start_with(base: &str, switches: &[&str]) -> Option<Self> {
        if !browser_available() {
            return None;
        }
        let slot = BROWSERS_AT_ONCE
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        // chromedriver says when it listens: no sleeping, no polling.
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.contains("started successfully"));
        assert!(ready, "chromedriver did not start");
        std::thread::spawn(move || lines.for_each(drop));

        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.push(format!("--window-size={},{}", WIDE.0, WIDE.1));
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(switches.iter().map(|s| (*s).to_owned()));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session starts");
        Some(Self {
            client,
            driver,
            _profile: profile,
            base: base.to_owned(),
            _slot: slot,
        })
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client.goto(&self.url(path)).await.unwrap();
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Waits until an element matching `css` is on the page.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
    }

    pub async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    pub async fn script(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap()
    }

    /// Presses one key on whatever has focus, as a keyboard would.
    pub async fn press(&self, key: Key) {
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key.into() })
            .then(KeyAction::Up { value: key.into() });
        self.client.perform_actions(actions).await.unwrap();
        self.client.release_actions().await.unwrap();
    }

    /// Types text on whatever has focus.
    pub async fn type_text(&self, text: &str) {
        let mut actions = KeyActions::new("keyboard".into());
        for c in text.chars() {
            actions = actions
                .then(KeyAction::Down { value: c })
                .then(KeyAction::Up { value: c });
        }
        self.client.perform_actions(actions).await.unwrap();
        self.client.release_actions().await.unwrap();
    }

    /// The id of the focused element (empty when it has none).
    pub async fn focused(&self) -> String {
        self.script(
            "return document.activeElement ? document.activeElement.id : '';",
            vec![],
        )
        .await
        .as_str()
        .unwrap_or("")
        .to_owned()
    }

    /// Presses Tab until the element with `id` has focus; fails if it is not
    /// reached within `limit` presses (so it is reachable by keyboard).
    pub async fn tab_to(&self, id: &str, limit: usize) {
        for _ in 0..limit {
            if self.focused().await == id {
                return;
            }
            self.press(Key::Tab).await;
        }
        assert_eq!(self.focused().await, id, "#{id} is not reachable with Tab");
    }

    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// Saves a PNG of the whole page (the window is stretched to the page's
    /// height for the shot) under `target/console-screenshots/`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let (width, height) = self.client.get_window_size().await.unwrap();
        let sizes = self
            .script(
                "return [document.documentElement.scrollHeight, window.innerHeight];",
                vec![],
            )
            .await;
        let page = sizes[0].as_u64().unwrap_or(height);
        let chrome = height.saturating_sub(sizes[1].as_u64().unwrap_or(height));
        let full = (page + chrome).clamp(height, 12_000);
        self.client
            .set_window_size(width as u32, full as u32)
            .await
            .unwrap();
        let png = self.client.screenshot().await.unwrap();
        self.client
            .set_window_size(width as u32, height as u32)
            .await
            .unwrap();
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Runs axe-core on the page; the serious and critical violations.
    pub async fn axe_violations(&self, axe: &str) -> Vec<Value> {
        self.script(axe, vec![]).await;
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] }).then(r => done(
                   r.violations
                     .filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                                  nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }))));",
                vec![],
            )
            .await
            .unwrap();
        result
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("axe-core did not answer with a list: {result}"))
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
