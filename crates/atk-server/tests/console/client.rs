// Shared by the console and browser test binaries, each of which uses a part.
#![allow(dead_code)]

//! A console user without a browser: form posts and cookies by hand, no
//! redirects followed, so each test sees exactly what the server answered.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};

use crate::helpers::TestApp;

pub const OWNER_EMAIL: &str = "ana@example.com";
pub const OWNER_PASSWORD: &str = "correct horse battery staple";
pub const MEMBER_PASSWORD: &str = "another long passphrase";
pub const DEMO_KEYS: &str = "/console/projects/project_identity_demo/keys";
pub const EVERY_CONFIRMATION: [&str; 3] = [
    "backend_only",
    "secret_shown_once",
    "entitlements_may_block",
];

#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Page {
    /// The `value` of the first input named `name`.
    pub fn input(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.text.find(&marker)? + marker.len();
        let end = self.text[start..].find('"')? + start;
        Some(self.text[start..end].to_owned())
    }

    pub fn csrf(&self) -> String {
        self.input("csrf")
            .expect("the page has a form with a CSRF token")
    }

    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The key id in the page's preview row.
    pub fn key_id(&self) -> String {
        let marker = "<dt>Key ID</dt><dd><code>";
        let start = self
            .text
            .find(marker)
            .expect("the page shows a preview row")
            + marker.len();
        self.text[start..start + 26].to_owned()
    }

    /// The secret revealed on the page, if any.
    pub fn secret(&self) -> Option<String> {
        let start = self
            .text
            .find("atk_live_")
            .or(self.text.find("atk_test_"))?;
        Some(self.text[start..start + 47].to_owned())
    }
}

pub struct ConsoleClient {
    pub base: String,
    client: reqwest::Client,
    cookies: Mutex<HashMap<String, String>>,
    /// Every Set-Cookie header seen, for attribute checks.
    pub set_cookies: Mutex<Vec<String>>,
}

impl ConsoleClient {
    pub fn new(app: &TestApp) -> Self {
        Self {
            base: app.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Mutex::new(HashMap::new()),
            set_cookies: Mutex::new(Vec::new()),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.to_owned());
    }

    async fn page(&self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap().to_owned();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let mut cookies = self.cookies.lock().unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
            self.set_cookies.lock().unwrap().push(text);
        }
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        let response = self
            .client
            .get(self.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.page(response).await
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let response = self
            .client
            .post(self.url(path))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.page(response).await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        self.post(
            "/console/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }

    /// Fills the create form with `fields` (on top of its hidden tokens).
    pub async fn create_key(&self, fields: &[(&str, &str)]) -> Page {
        let form = self.get(&format!("{DEMO_KEYS}/new")).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        let csrf = form.csrf();
        let nonce = form.input("form_nonce").unwrap();
        let mut all = vec![("csrf", csrf.as_str()), ("form_nonce", nonce.as_str())];
        all.extend_from_slice(fields);
        self.post(DEMO_KEYS, &all).await
    }
}

/// The first owner, created through the printed setup link, signed in.
pub async fn owner(app: &TestApp) -> ConsoleClient {
    let client = ConsoleClient::new(app);
    let link = app
        .setup_link
        .clone()
        .expect("a fresh deployment prints a setup link");
    let form = client.get(&link).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    let done = client
        .post(
            &link,
            &[
                ("csrf", &form.csrf()),
                ("display_name", "Ana Owner"),
                ("email", OWNER_EMAIL),
                ("password", OWNER_PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    client
}

/// A member with `role` in the demo project, invited by `owner`, signed in.
pub async fn member(
    app: &TestApp,
    owner: &ConsoleClient,
    role: &str,
    email: &str,
) -> ConsoleClient {
    let members = "/console/projects/project_identity_demo/members";
    let page = owner.get(members).await;
    let invited = owner
        .post(members, &[("csrf", &page.csrf()), ("role", role)])
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text);
    let start = invited
        .text
        .find("/console/invite/")
        .expect("the invite link is shown");
    let end = invited.text[start..].find('<').unwrap() + start;
    let path = invited.text[start..end].to_owned();
    let client = ConsoleClient::new(app);
    let form = client.get(&path).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    let done = client
        .post(
            &path,
            &[
                ("csrf", &form.csrf()),
                ("display_name", "Member"),
                ("email", email),
                ("password", MEMBER_PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    client
}
