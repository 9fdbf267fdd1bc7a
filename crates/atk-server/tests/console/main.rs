//! Console behaviour over HTTP, on SQLite and PostgreSQL: accounts, sessions,
//! CSRF, roles, the create flow's one-time reveal and the security headers.
//! The same flows in a real browser are in `tests/browser`.

#[allow(dead_code)] // Shared with the API tests, which use the rest.
#[path = "../api/helpers.rs"]
mod helpers;

mod client;

use chrono::TimeDelta;
use client::{
    ConsoleClient, DEMO_KEYS, EVERY_CONFIRMATION, MEMBER_PASSWORD, OWNER_EMAIL, OWNER_PASSWORD,
    member, owner,
};
use helpers::TestApp;
use reqwest::StatusCode;

on_both_stores!(
    the_setup_link_creates_the_first_owner_once_and_is_refused_the_second_time,
    the_session_cookie_is_http_only_and_same_site_strict_and_sign_out_ends_the_session_on_the_server,
    a_wrong_password_is_refused_and_audited_and_the_account_is_throttled_after_five_failures,
    a_post_without_its_csrf_token_is_refused_and_changes_nothing,
    a_key_created_through_the_form_verifies_ok_and_a_resubmitted_form_shows_no_secret,
    a_field_error_is_shown_next_to_its_field_and_keeps_what_was_entered,
    a_blocked_marketing_scope_is_named_with_its_reason_in_step_three,
    a_viewer_sees_no_mutating_controls_and_gets_403_when_posting_anyway,
    an_admin_may_not_create_a_service_role_key_but_an_owner_may_with_the_danger_confirmation,
    rotate_revoke_and_expire_from_key_detail_take_effect_and_are_audited,
    an_idle_session_ends_after_two_hours,
    invites_role_changes_and_sign_ins_are_in_the_audit_log,
    a_member_of_one_project_cannot_see_another,
    the_platform_admin_changes_an_entitlement_and_members_only_read_them,
    an_admin_cannot_rotate_a_service_role_key_into_a_new_secret,
    every_console_post_refuses_a_missing_csrf_token_and_changes_nothing,
    a_member_cannot_post_to_another_projects_pages,
    only_owners_invite_and_change_roles,
    a_parallel_burst_of_guesses_is_limited_like_a_sequence,
    an_address_is_throttled_after_twenty_failures_across_accounts,
    a_member_joins_a_second_project_with_their_account_and_switches_between_them,
    unanswered_help_questions_are_listed_for_owners_and_one_holding_a_secret_is_withheld,
);

async fn the_setup_link_creates_the_first_owner_once_and_is_refused_the_second_time(app: TestApp) {
    let link = app.setup_link.clone().unwrap();
    assert!(
        link.starts_with(&format!("{}/console/setup/", app.base)),
        "{link}"
    );
    let first = owner(&app).await;
    let keys = first.get("/console").await;
    assert_eq!(keys.status, StatusCode::SEE_OTHER);
    assert_eq!(keys.location(), DEMO_KEYS);
    let page = first.get(DEMO_KEYS).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("Ana Owner"), "{}", page.text);

    let second = ConsoleClient::new(&app);
    let refused = second.get(&link).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert!(
        refused
            .text
            .contains("This setup link has been used or has expired")
    );
    let form = second.get("/console/sign-in").await;
    let again = second
        .post(
            &link,
            &[
                ("csrf", &form.csrf()),
                ("display_name", "Mallory"),
                ("email", "mallory@example.com"),
                ("password", "a long enough password"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text);
    assert!(second.cookie("atk_session").is_none());
}

async fn the_session_cookie_is_http_only_and_same_site_strict_and_sign_out_ends_the_session_on_the_server(
    app: TestApp,
) {
    let owner = owner(&app).await;
    let session_cookie = owner
        .set_cookies
        .lock()
        .unwrap()
        .iter()
        .find(|c| c.starts_with("atk_session="))
        .cloned()
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session_cookie.contains(attribute), "{session_cookie}");
    }
    assert!(
        !session_cookie.contains("Secure"),
        "plain HTTP by default: {session_cookie}"
    );
    let stolen = owner.cookie("atk_session").unwrap();

    let page = owner.get(DEMO_KEYS).await;
    let out = owner
        .post("/console/sign-out", &[("csrf", &page.csrf())])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/console/sign-in");
    assert!(
        owner.cookie("atk_session").is_none(),
        "the cookie is cleared"
    );

    // The old cookie value no longer opens anything: the session is gone
    // from the store, not just from the browser.
    let replay = ConsoleClient::new(&app);
    replay.set_cookie("atk_session", &stolen);
    let refused = replay.get(DEMO_KEYS).await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert_eq!(refused.location(), "/console/sign-in");

    let back = ConsoleClient::new(&app);
    let signed_in = back.sign_in(OWNER_EMAIL, OWNER_PASSWORD).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text
    );
    assert_eq!(back.get(DEMO_KEYS).await.status, StatusCode::OK);
}

async fn a_wrong_password_is_refused_and_audited_and_the_account_is_throttled_after_five_failures(
    app: TestApp,
) {
    let _owner = owner(&app).await;
    let attacker = ConsoleClient::new(&app);
    for attempt in 1..=5 {
        let refused = attacker
            .sign_in(OWNER_EMAIL, "not the password at all")
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
        assert!(
            refused
                .text
                .contains("That email and password do not match an account.")
        );
        assert!(attacker.cookie("atk_session").is_none());
    }
    // Even the right password is refused now, without being checked.
    let throttled = attacker.sign_in(OWNER_EMAIL, OWNER_PASSWORD).await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        throttled.text
    );
    assert!(throttled.text.contains("Too many failed sign-ins"));
    assert!(attacker.cookie("atk_session").is_none());
    // An unknown account answers exactly like a wrong password.
    let unknown = ConsoleClient::new(&app)
        .sign_in("nobody@example.com", "whatever password")
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);

    let audit = app
        .admin_get("/v1/projects/project_identity_demo/audit?action=console.sign_in_failed")
        .await;
    assert_eq!(
        audit.body["items"].as_array().unwrap().len(),
        5,
        "{}",
        audit.text
    );
    assert_eq!(audit.body["items"][0]["source_ip"], "127.0.0.1");
}

async fn a_post_without_its_csrf_token_is_refused_and_changes_nothing(app: TestApp) {
    let owner = owner(&app).await;
    let form = owner.get(&format!("{DEMO_KEYS}/new")).await;
    let nonce = form.input("form_nonce").unwrap();
    let mut fields = vec![
        ("form_nonce", nonce.as_str()),
        ("name", "Forged"),
        ("environment", "production"),
        ("kind", "project"),
        ("expiration", "90_days"),
        ("scopes", "notification.send"),
    ];
    for confirmation in EVERY_CONFIRMATION {
        fields.push(("confirmations", confirmation));
    }
    let missing = owner.post(DEMO_KEYS, &fields).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN, "{}", missing.text);
    assert!(missing.text.contains("security token"));
    fields.push((
        "csrf",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ));
    let wrong = owner.post(DEMO_KEYS, &fields).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let sign_out = owner.post("/console/sign-out", &[]).await;
    assert_eq!(sign_out.status, StatusCode::FORBIDDEN);
    // The pre-sign-in forms need their cookie-bound token too.
    let stranger = ConsoleClient::new(&app);
    let blind = stranger
        .post(
            "/console/sign-in",
            &[("email", OWNER_EMAIL), ("password", OWNER_PASSWORD)],
        )
        .await;
    assert_eq!(blind.status, StatusCode::FORBIDDEN);

    let keys = app
        .admin_get("/v1/projects/project_identity_demo/keys")
        .await;
    assert_eq!(
        keys.body["items"].as_array().unwrap().len(),
        0,
        "{}",
        keys.text
    );
}

fn create_fields<'a>(name: &'a str, kind: &'a str, scopes: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("name", name),
        ("environment", "production"),
        ("kind", kind),
        ("expiration", "90_days"),
    ];
    for scope in scopes {
        fields.push(("scopes", scope));
    }
    for confirmation in EVERY_CONFIRMATION {
        fields.push(("confirmations", confirmation));
    }
    fields
}

async fn a_key_created_through_the_form_verifies_ok_and_a_resubmitted_form_shows_no_secret(
    app: TestApp,
) {
    let owner = owner(&app).await;
    let form = owner.get(&format!("{DEMO_KEYS}/new")).await;
    let csrf = form.csrf();
    let nonce = form.input("form_nonce").unwrap();
    let mut fields = vec![("csrf", csrf.as_str()), ("form_nonce", nonce.as_str())];
    fields.extend(create_fields(
        "Console key",
        "project",
        &["notification.send"],
    ));
    let created = owner.post(DEMO_KEYS, &fields).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.headers["cache-control"], "no-store");
    let secret = created.secret().expect("the reveal page holds the secret");
    assert!(
        created
            .text
            .contains("This secret is shown once. Store it securely.")
    );
    assert!(created.text.contains(
        "Do not paste secrets into browser apps, mobile apps, public examples, or client bundles."
    ));
    assert!(created.text.contains("Generated preview row"));
    let verified = app.verify(&secret, Some("notification.send")).await;
    assert_eq!(verified["code"], "OK", "{verified}");

    // The same form again (a reload of the post, a double click): no second
    // key, no secret.
    let again = owner.post(DEMO_KEYS, &fields).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.secret(), None);
    assert!(again.text.contains("This form was already submitted"));
    let keys = app
        .admin_get("/v1/projects/project_identity_demo/keys")
        .await;
    assert_eq!(keys.body["items"].as_array().unwrap().len(), 1);

    // No later page shows it: list, detail, audit.
    let key_id = keys.body["items"][0]["id"].as_str().unwrap();
    for path in [DEMO_KEYS.to_owned(), format!("{DEMO_KEYS}/{key_id}")] {
        let page = owner.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            page.text.contains(&secret[secret.len() - 6..]),
            "the preview shows on {path}"
        );
        assert!(!page.text.contains(&secret), "{path} shows the secret");
    }
    let audit = owner
        .get("/console/projects/project_identity_demo/audit")
        .await;
    assert!(audit.text.contains(key_id), "the audit log names the key");
    assert!(
        !audit.text.contains(&secret[9..41]),
        "no part of the secret in the audit log"
    );
}

async fn a_field_error_is_shown_next_to_its_field_and_keeps_what_was_entered(app: TestApp) {
    let owner = owner(&app).await;
    let mut fields = create_fields("Reports", "analytics_read", &["notification.send"]);
    fields.retain(|(name, _)| *name != "confirmations");
    let refused = owner.create_key(&fields).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains(
            r#"id="scopes-error">A Read-only Analytics Key may not carry: notification.send.<"#
        ),
        "{}",
        refused.text
    );
    assert!(refused.text.contains(r#"name="name" value="Reports""#));
    assert!(
        refused
            .text
            .contains(r#"id="kind-analytics_read" value="analytics_read" checked"#)
    );

    let unconfirmed = owner
        .create_key(&[
            ("name", "Reports"),
            ("environment", "staging"),
            ("kind", "analytics_read"),
            ("expiration", "30_days"),
            ("scopes", "analytics.report.read"),
        ])
        .await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        unconfirmed.text.contains(r#"id="confirmations-error">Missing confirmations: backend_only, secret_shown_once, entitlements_may_block.<"#),
        "{}",
        unconfirmed.text
    );
    assert!(
        unconfirmed
            .text
            .contains(r#"<option value="staging" selected>"#)
    );
    assert!(
        unconfirmed
            .text
            .contains(r#"id="expiration-30_days" value="30_days" checked"#)
    );

    let unnamed = owner
        .create_key(&create_fields("   ", "project", &["qr.scan.read"]))
        .await;
    assert!(
        unnamed
            .text
            .contains(r#"id="name-error">Name must be 1 to 100 characters after trimming.<"#),
        "{}",
        unnamed.text
    );
    let keys = app
        .admin_get("/v1/projects/project_identity_demo/keys")
        .await;
    assert_eq!(keys.body["items"].as_array().unwrap().len(), 0);
}

async fn a_blocked_marketing_scope_is_named_with_its_reason_in_step_three(app: TestApp) {
    let owner = owner(&app).await;
    let form = owner.get(&format!("{DEMO_KEYS}/new")).await;
    let step3 = &form.text[form.text.find("Step 3").unwrap()..form.text.find("Step 4").unwrap()];
    assert!(
        step3.contains("<code>marketing.campaign.send</code>: Marketing requires a plan upgrade even when a key scope is selected."),
        "{step3}"
    );
    assert!(
        !step3.contains("<code>notification.send</code>:"),
        "{step3}"
    );
    // The reveal page says it again for the key that was created.
    let created = owner
        .create_key(&create_fields(
            "Campaigns",
            "project",
            &["marketing.campaign.send", "qr.scan.read"],
        ))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert!(
        created
            .text
            .contains("<code>marketing.campaign.send</code>: Marketing requires a plan upgrade")
    );
}

async fn a_viewer_sees_no_mutating_controls_and_gets_403_when_posting_anyway(app: TestApp) {
    let owner = owner(&app).await;
    let created = owner
        .create_key(&create_fields("Shared", "project", &["qr.scan.read"]))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let keys = app
        .admin_get("/v1/projects/project_identity_demo/keys")
        .await;
    let key_id = keys.body["items"][0]["id"].as_str().unwrap().to_owned();
    let viewer = member(&app, &owner, "viewer", "vic@example.com").await;
    let list = viewer.get(DEMO_KEYS).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.text.contains("Shared"));
    assert!(
        !list.text.contains("Create key"),
        "no create button for viewers"
    );
    let detail = viewer.get(&format!("{DEMO_KEYS}/{key_id}")).await;
    assert_eq!(detail.status, StatusCode::OK);
    for control in ["rotate-form", "revoke-form", "expire-form"] {
        assert!(
            !detail.text.contains(control),
            "{control} is shown to a viewer"
        );
    }
    let members = viewer
        .get("/console/projects/project_identity_demo/members")
        .await;
    assert!(!members.text.contains("Create invite link"));

    let csrf = list.csrf();
    let new_form = viewer.get(&format!("{DEMO_KEYS}/new")).await;
    assert_eq!(new_form.status, StatusCode::FORBIDDEN);
    let mut fields = vec![
        ("csrf", csrf.as_str()),
        ("form_nonce", "abcdefghijabcdefghijabcdefghij12"),
    ];
    fields.extend(create_fields("Sneaky", "project", &["qr.scan.read"]));
    assert_eq!(
        viewer.post(DEMO_KEYS, &fields).await.status,
        StatusCode::FORBIDDEN
    );
    let revoke = viewer
        .post(
            &format!("{DEMO_KEYS}/{key_id}/revoke"),
            &[("csrf", &csrf), ("confirm_name", "Shared")],
        )
        .await;
    assert_eq!(revoke.status, StatusCode::FORBIDDEN);
    let expire = viewer
        .post(
            &format!("{DEMO_KEYS}/{key_id}/expire"),
            &[("csrf", &csrf), ("confirm_expire", "yes")],
        )
        .await;
    assert_eq!(expire.status, StatusCode::FORBIDDEN);
    let invite = viewer
        .post(
            "/console/projects/project_identity_demo/members",
            &[("csrf", &csrf), ("role", "owner")],
        )
        .await;
    assert_eq!(invite.status, StatusCode::FORBIDDEN);
    let key = app
        .admin_get(&format!("/v1/projects/project_identity_demo/keys/{key_id}"))
        .await;
    assert_eq!(key.body["status"], "active");
}

async fn an_admin_may_not_create_a_service_role_key_but_an_owner_may_with_the_danger_confirmation(
    app: TestApp,
) {
    let owner = owner(&app).await;
    let admin = member(&app, &owner, "admin", "adam@example.com").await;
    let form = admin.get(&format!("{DEMO_KEYS}/new")).await;
    assert!(
        form.text.contains(r#"value="service_role" disabled"#),
        "{}",
        form.text
    );
    let refused = admin
        .create_key(&create_fields("Root", "service_role", &[]))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    let allowed = admin
        .create_key(&create_fields(
            "Worker",
            "backend_secret",
            &["qr.scan.read"],
        ))
        .await;
    assert_eq!(allowed.status, StatusCode::CREATED);

    let mut fields = create_fields("Root", "service_role", &["access.evaluate", "qr.scan.read"]);
    let unconfirmed = owner.create_key(&fields).await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        unconfirmed
            .text
            .contains("Missing confirmations: service_role_danger."),
        "{}",
        unconfirmed.text
    );
    fields.push(("confirmations", "service_role_danger"));
    let created = owner.create_key(&fields).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let secret = created.secret().unwrap();
    let project = app
        .call(
            reqwest::Method::GET,
            "/v1/projects/project_identity_demo",
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(
        project.status,
        StatusCode::OK,
        "the new service role key administers its project"
    );
}

async fn rotate_revoke_and_expire_from_key_detail_take_effect_and_are_audited(app: TestApp) {
    let owner = owner(&app).await;
    let created = owner
        .create_key(&create_fields("Rotating", "project", &["qr.scan.read"]))
        .await;
    let old_secret = created.secret().unwrap();
    let key_id = created.key_id();
    let detail_path = format!("{DEMO_KEYS}/{key_id}");

    let detail = owner.get(&detail_path).await;
    let csrf = detail.csrf();
    let nonce = detail.input("form_nonce").unwrap();
    let unconfirmed = owner
        .post(
            &format!("{detail_path}/rotate"),
            &[("csrf", &csrf), ("form_nonce", &nonce), ("grace", "none")],
        )
        .await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        unconfirmed
            .text
            .contains("Missing confirmations: secret_shown_once.")
    );
    let nonce = unconfirmed.input("form_nonce").unwrap();
    let rotated = owner
        .post(
            &format!("{detail_path}/rotate"),
            &[
                ("csrf", &csrf),
                ("form_nonce", &nonce),
                ("grace", "none"),
                ("confirmations", "secret_shown_once"),
            ],
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.text);
    let new_secret = rotated.secret().unwrap();
    assert_ne!(new_secret, old_secret);
    assert_eq!(app.verify(&old_secret, None).await["code"], "EXPIRED");
    assert_eq!(
        app.verify(&new_secret, Some("qr.scan.read")).await["code"],
        "OK"
    );

    let new_id = rotated.key_id();
    let new_detail = owner.get(&format!("{DEMO_KEYS}/{new_id}")).await;
    assert!(new_detail.text.contains("Rotation chain"));
    assert!(
        new_detail.text.contains(&key_id),
        "the chain links the old key"
    );

    let wrong_name = owner
        .post(
            &format!("{DEMO_KEYS}/{new_id}/revoke"),
            &[
                ("csrf", &csrf),
                ("reason", "leaked in a log"),
                ("confirm_name", "Rotatin"),
            ],
        )
        .await;
    assert_eq!(wrong_name.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong_name
            .text
            .contains("Type the key name, Rotating, to confirm."),
        "{}",
        wrong_name.text
    );
    assert!(
        wrong_name.text.contains("leaked in a log"),
        "the reason is kept"
    );
    assert_eq!(app.verify(&new_secret, None).await["code"], "OK");
    let revoked = owner
        .post(
            &format!("{DEMO_KEYS}/{new_id}/revoke"),
            &[
                ("csrf", &csrf),
                ("reason", "leaked in a log"),
                ("confirm_name", "Rotating"),
            ],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.text);
    assert_eq!(app.verify(&new_secret, None).await["code"], "REVOKED");

    let other = owner
        .create_key(&create_fields("Expiring", "project", &["qr.scan.read"]))
        .await;
    let other_secret = other.secret().unwrap();
    let other_id = other.key_id();
    let unconfirmed = owner
        .post(
            &format!("{DEMO_KEYS}/{other_id}/expire"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    let expired = owner
        .post(
            &format!("{DEMO_KEYS}/{other_id}/expire"),
            &[("csrf", &csrf), ("confirm_expire", "yes")],
        )
        .await;
    assert_eq!(expired.status, StatusCode::SEE_OTHER);
    assert_eq!(app.verify(&other_secret, None).await["code"], "EXPIRED");

    let audit = app
        .admin_get("/v1/projects/project_identity_demo/audit")
        .await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .take(5)
        .collect();
    assert_eq!(
        actions,
        [
            "key.expire",
            "key.create",
            "key.revoke",
            "key.rotate",
            "key.create"
        ]
    );
    assert_eq!(audit.body["items"][0]["actor"]["type"], "account");
    assert_eq!(
        audit.body["items"][2]["details"]["reason"],
        "leaked in a log"
    );
}

async fn an_idle_session_ends_after_two_hours(app: TestApp) {
    let owner = owner(&app).await;
    app.clock.advance(TimeDelta::minutes(119));
    assert_eq!(
        owner.get(DEMO_KEYS).await.status,
        StatusCode::OK,
        "used within the idle limit"
    );
    app.clock.advance(TimeDelta::minutes(119));
    assert_eq!(
        owner.get(DEMO_KEYS).await.status,
        StatusCode::OK,
        "each use moves the idle limit"
    );
    app.clock.advance(TimeDelta::minutes(121));
    let ended = owner.get(DEMO_KEYS).await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER);
    assert_eq!(ended.location(), "/console/sign-in");
}

async fn invites_role_changes_and_sign_ins_are_in_the_audit_log(app: TestApp) {
    let owner = owner(&app).await;
    let viewer = member(&app, &owner, "viewer", "val@example.com").await;
    let members = owner
        .get("/console/projects/project_identity_demo/members")
        .await;
    assert!(members.text.contains("val@example.com"));
    let start = members.text.find("/members/acc_").unwrap() + "/members/".len();
    let account_id = members.text[start..start + 26].to_owned();
    let changed = owner
        .post(
            &format!("/console/projects/project_identity_demo/members/{account_id}/role"),
            &[("csrf", &members.csrf()), ("role", "admin")],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.text);
    // The new role applies to the member's next request.
    assert!(viewer.get(DEMO_KEYS).await.text.contains("Create key"));

    let again = ConsoleClient::new(&app);
    assert_eq!(
        again
            .sign_in("val@example.com", MEMBER_PASSWORD)
            .await
            .status,
        StatusCode::SEE_OTHER
    );

    let audit = app
        .admin_get("/v1/projects/project_identity_demo/audit")
        .await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        &actions[..5],
        [
            "console.sign_in",
            "member.role_change",
            "account.create",
            "member.invite",
            "account.create"
        ],
        "{actions:?}"
    );
    assert_eq!(audit.body["items"][1]["details"]["from"], "viewer");
    assert_eq!(audit.body["items"][1]["details"]["to"], "admin");
    assert!(
        !audit.text.contains("/console/invite/"),
        "no invite link in the audit log"
    );
}

async fn a_member_of_one_project_cannot_see_another(app: TestApp) {
    app.create_project("project_hidden").await;
    let owner = owner(&app).await;
    let viewer = member(&app, &owner, "viewer", "vera@example.com").await;
    // The first owner owns every project that existed at setup; the viewer
    // only the one they were invited to.
    let hidden = viewer.get("/console/projects/project_hidden/keys").await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert!(
        hidden.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let keys = viewer.get(DEMO_KEYS).await;
    assert!(!keys.text.contains("project_hidden"), "not in the switcher");
    assert!(
        owner.get(DEMO_KEYS).await.text.contains("project_hidden"),
        "the owner can switch"
    );
}

async fn the_platform_admin_changes_an_entitlement_and_members_only_read_them(app: TestApp) {
    let owner = owner(&app).await;
    let created = owner
        .create_key(&create_fields(
            "Campaigns",
            "project",
            &["marketing.campaign.send"],
        ))
        .await;
    let secret = created.secret().unwrap();
    assert_eq!(
        app.verify(&secret, Some("marketing.campaign.send")).await["code"],
        "ENTITLEMENT_UPGRADE_REQUIRED"
    );
    let path = "/console/projects/project_identity_demo/entitlements";
    let page = owner.get(path).await;
    assert!(
        page.text.contains(r#"id="change-marketing""#),
        "the first owner administers the platform"
    );
    let bad_date = owner
        .post(
            &format!("{path}/marketing"),
            &[
                ("csrf", &page.csrf()),
                ("status", "trial"),
                ("trial_ends_on", "31/01/2027"),
            ],
        )
        .await;
    assert_eq!(bad_date.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad_date.text.contains(
            r#"id="error-marketing">Enter the end of the trial as a date like 2027-01-31.<"#
        ),
        "{}",
        bad_date.text
    );
    let not_a_trial = owner
        .post(
            &format!("{path}/marketing"),
            &[
                ("csrf", &page.csrf()),
                ("status", "enabled"),
                ("trial_ends_on", "2027-01-31"),
            ],
        )
        .await;
    assert!(
        not_a_trial
            .text
            .contains(r#"id="error-marketing">Only a trial has an end date.<"#)
    );
    let enabled = owner
        .post(
            &format!("{path}/marketing"),
            &[("csrf", &page.csrf()), ("status", "enabled")],
        )
        .await;
    assert_eq!(enabled.status, StatusCode::SEE_OTHER, "{}", enabled.text);
    assert_eq!(
        app.verify(&secret, Some("marketing.campaign.send")).await["code"],
        "OK"
    );
    let ended = owner
        .post(
            &format!("{path}/verification"),
            &[
                ("csrf", &page.csrf()),
                ("status", "trial"),
                ("trial_ends_on", "2026-06-01"),
            ],
        )
        .await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER);
    let far = owner
        .post(
            &format!("{path}/verification"),
            &[
                ("csrf", &page.csrf()),
                ("status", "trial"),
                ("trial_ends_on", "+20000-01-01"),
            ],
        )
        .await;
    assert_eq!(
        far.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "years past 9999 are refused"
    );
    let far = owner
        .post(
            &format!("{path}/verification"),
            &[
                ("csrf", &page.csrf()),
                ("status", "trial"),
                ("trial_ends_on", "+20000-01-01"),
            ],
        )
        .await;
    assert_eq!(
        far.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "years past 9999 are refused"
    );
    let after = owner.get(path).await;
    assert!(
        after
            .text
            .contains(r#"name="trial_ends_on" value="2026-06-01""#),
        "re-saving keeps the trial's end"
    );
    assert!(
        after
            .text
            .contains("Verification&#39;s trial ended on 2026-06-01 00:00 UTC"),
        "{}",
        after.text
    );

    let viewer = member(&app, &owner, "viewer", "vin@example.com").await;
    let read_only = viewer.get(path).await;
    assert_eq!(read_only.status, StatusCode::OK);
    assert!(!read_only.text.contains(r#"id="change-marketing""#));
    let refused = viewer
        .post(
            &format!("{path}/marketing"),
            &[("csrf", &read_only.csrf()), ("status", "disabled")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.verify(&secret, Some("marketing.campaign.send")).await["code"],
        "OK"
    );
    let audit = app
        .admin_get("/v1/projects/project_identity_demo/audit?action=entitlement.update")
        .await;
    assert_eq!(audit.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(audit.body["items"][1]["actor"]["type"], "account");
}

async fn an_admin_cannot_rotate_a_service_role_key_into_a_new_secret(app: TestApp) {
    let owner = owner(&app).await;
    let mut fields = create_fields("Root", "service_role", &["qr.scan.read"]);
    fields.push(("confirmations", "service_role_danger"));
    let created = owner.create_key(&fields).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let detail_path = format!("{DEMO_KEYS}/{}", created.key_id());
    let admin = member(&app, &owner, "admin", "ada@example.com").await;
    let detail = admin.get(&detail_path).await;
    assert!(
        !detail.text.contains("rotate-form"),
        "no rotate form for an admin here"
    );
    assert!(
        detail.text.contains("revoke-form"),
        "an admin still revokes it"
    );
    let rotated = admin
        .post(
            &format!("{detail_path}/rotate"),
            &[
                ("csrf", &detail.csrf()),
                ("form_nonce", "abcdefghijabcdefghijabcdefghij12"),
                ("grace", "none"),
                ("confirmations", "secret_shown_once"),
            ],
        )
        .await;
    assert_eq!(rotated.status, StatusCode::FORBIDDEN, "{}", rotated.text);
    assert_eq!(rotated.secret(), None);
    let keys = app
        .admin_get("/v1/projects/project_identity_demo/keys")
        .await;
    assert_eq!(
        keys.body["items"].as_array().unwrap().len(),
        1,
        "no new key"
    );
    assert_eq!(keys.body["items"][0]["rotated_to"], serde_json::Value::Null);
}

async fn every_console_post_refuses_a_missing_csrf_token_and_changes_nothing(app: TestApp) {
    let owner = owner(&app).await;
    let created = owner
        .create_key(&create_fields("Kept", "project", &["qr.scan.read"]))
        .await;
    let key = format!("{DEMO_KEYS}/{}", created.key_id());
    let _viewer = member(&app, &owner, "viewer", "vee@example.com").await;
    let members = owner
        .get("/console/projects/project_identity_demo/members")
        .await;
    let start = members.text.find("/members/acc_").unwrap() + "/members/".len();
    let me = members.text[start..start + 26].to_owned();
    let nonce = "abcdefghijabcdefghijabcdefghij12";
    let routes: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/console/sign-out".into(), vec![]),
        (DEMO_KEYS.into(), {
            let mut f = create_fields("Forged", "project", &["qr.scan.read"]);
            f.push(("form_nonce", nonce));
            f
        }),
        (
            format!("{key}/rotate"),
            vec![
                ("form_nonce", nonce),
                ("grace", "none"),
                ("confirmations", "secret_shown_once"),
            ],
        ),
        (format!("{key}/revoke"), vec![("confirm_name", "Kept")]),
        (format!("{key}/expire"), vec![("confirm_expire", "yes")]),
        (
            "/console/projects/project_identity_demo/members".into(),
            vec![("role", "owner")],
        ),
        (
            format!("/console/projects/project_identity_demo/members/{me}/role"),
            vec![("role", "viewer")],
        ),
        (
            "/console/projects/project_identity_demo/entitlements/marketing".into(),
            vec![("status", "enabled")],
        ),
        (
            "/console/help".into(),
            vec![
                ("route", "/project-settings/key-create"),
                ("question", "hi"),
            ],
        ),
    ];
    for (path, fields) in &routes {
        let refused = owner.post(path, fields).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            refused.text
        );
        assert!(refused.text.contains("security token"), "{path}");
    }
    assert_eq!(
        owner.get(DEMO_KEYS).await.status,
        StatusCode::OK,
        "still signed in"
    );
    let keys = app
        .admin_get("/v1/projects/project_identity_demo/keys")
        .await;
    assert_eq!(keys.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(keys.body["items"][0]["status"], "active");
    let entitlements = app
        .admin_get("/v1/projects/project_identity_demo/entitlements")
        .await;
    assert!(
        entitlements
            .text
            .contains(r#""product":"marketing","status":"upgrade_required""#),
        "{}",
        entitlements.text
    );
    let audit = app
        .admin_get("/v1/projects/project_identity_demo/audit")
        .await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "account.create",
            "member.invite",
            "key.create",
            "account.create",
            "project.create"
        ],
        "nothing else was recorded"
    );
}

async fn a_member_cannot_post_to_another_projects_pages(app: TestApp) {
    app.create_project("project_other").await;
    let owner = owner(&app).await;
    let other = app
        .create_key_in(
            "project_other",
            serde_json::json!({"scopes": ["qr.scan.read"]}),
        )
        .await;
    let other_key = other.body["key"]["id"].as_str().unwrap().to_owned();
    let admin = member(&app, &owner, "admin", "amy@example.com").await;
    let csrf = admin.get(DEMO_KEYS).await.csrf();
    let base = "/console/projects/project_other";
    for (path, fields) in [
        (
            format!("{base}/keys"),
            create_fields("Sneaky", "project", &["qr.scan.read"]),
        ),
        (
            format!("{base}/keys/{other_key}/revoke"),
            vec![("confirm_name", "Backend Project API Key")],
        ),
        (
            format!("{base}/keys/{other_key}/expire"),
            vec![("confirm_expire", "yes")],
        ),
        (format!("{base}/members"), vec![("role", "owner")]),
    ] {
        let mut all = vec![
            ("csrf", csrf.as_str()),
            ("form_nonce", "abcdefghijabcdefghijabcdefghij12"),
        ];
        all.extend(fields);
        let refused = admin.post(&path, &all).await;
        assert_eq!(
            refused.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            refused.text
        );
    }
    for path in [
        format!("{base}/keys"),
        format!("{base}/keys/{other_key}"),
        format!("{base}/audit"),
    ] {
        assert_eq!(
            admin.get(&path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let key = app
        .admin_get(&format!("/v1/projects/project_other/keys/{other_key}"))
        .await;
    assert_eq!(key.body["status"], "active");
}

async fn only_owners_invite_and_change_roles(app: TestApp) {
    let owner = owner(&app).await;
    let admin = member(&app, &owner, "admin", "al@example.com").await;
    let viewer = member(&app, &owner, "viewer", "vi@example.com").await;
    let members_path = "/console/projects/project_identity_demo/members";
    let page = owner.get(members_path).await;
    let start = page.text.find("/members/acc_").unwrap() + "/members/".len();
    let someone = page.text[start..start + 26].to_owned();
    for (who, client) in [("admin", &admin), ("viewer", &viewer)] {
        let csrf = client.get(members_path).await.csrf();
        let invite = client
            .post(members_path, &[("csrf", &csrf), ("role", "owner")])
            .await;
        assert_eq!(invite.status, StatusCode::FORBIDDEN, "{who} invites");
        let promote = client
            .post(
                &format!("{members_path}/{someone}/role"),
                &[("csrf", &csrf), ("role", "owner")],
            )
            .await;
        assert_eq!(
            promote.status,
            StatusCode::FORBIDDEN,
            "{who} changes a role"
        );
        let bad_role = client
            .post(members_path, &[("csrf", &csrf), ("role", "emperor")])
            .await;
        assert_eq!(
            bad_role.status,
            StatusCode::FORBIDDEN,
            "{who}: refused before the role is read"
        );
    }
    let audit = app
        .admin_get("/v1/projects/project_identity_demo/audit?action=member.role_change")
        .await;
    assert_eq!(audit.body["items"].as_array().unwrap().len(), 0);
}

async fn a_parallel_burst_of_guesses_is_limited_like_a_sequence(app: TestApp) {
    let _owner = owner(&app).await;
    let attacker = ConsoleClient::new(&app);
    let form = attacker.get("/console/sign-in").await;
    let csrf = form.csrf();
    let guesses = (0..12).map(|i| {
        let password = format!("guess number {i} is wrong");
        let attacker = &attacker;
        let csrf = csrf.clone();
        async move {
            attacker
                .post(
                    "/console/sign-in",
                    &[
                        ("csrf", &csrf),
                        ("email", OWNER_EMAIL),
                        ("password", &password),
                    ],
                )
                .await
                .status
        }
    });
    let statuses = futures_join_all(guesses).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, refused), (5, 7), "{statuses:?}");
}

async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut out = Vec::with_capacity(set.len());
    // Poll them together: all requests are in flight at once.
    let results = std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, future) in set.iter_mut().enumerate() {
            if out.len() <= i {
                out.push(None);
            }
            if out[i].is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => out[i] = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    });
    results.await;
    out.into_iter().map(Option::unwrap).collect()
}

async fn an_address_is_throttled_after_twenty_failures_across_accounts(app: TestApp) {
    let _owner = owner(&app).await;
    let attacker = ConsoleClient::new(&app);
    for i in 0..20 {
        let refused = attacker
            .sign_in(&format!("user{i}@example.com"), "a wrong password")
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let throttled = attacker.sign_in(OWNER_EMAIL, OWNER_PASSWORD).await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        throttled.text
    );
}

async fn a_member_joins_a_second_project_with_their_account_and_switches_between_them(
    app: TestApp,
) {
    app.create_project("project_two").await;
    let owner = owner(&app).await;
    let member_client = member(&app, &owner, "viewer", "mia@example.com").await;
    let members_two = "/console/projects/project_two/members";
    let page = owner.get(members_two).await;
    let invited = owner
        .post(members_two, &[("csrf", &page.csrf()), ("role", "admin")])
        .await;
    assert_eq!(invited.status, StatusCode::CREATED);
    let start = invited.text.find("/console/invite/").unwrap();
    let end = invited.text[start..].find('<').unwrap() + start;
    let link = invited.text[start..end].to_owned();

    // Signed out, the link only offers a new account.
    let stranger = ConsoleClient::new(&app);
    assert!(
        !stranger
            .get(&link)
            .await
            .text
            .contains("Join with this account")
    );
    let blind = stranger.post(&link, &[("join", "yes")]).await;
    assert_eq!(blind.status, StatusCode::SEE_OTHER);
    assert_eq!(blind.location(), "/console/sign-in");

    let offer = member_client.get(&link).await;
    assert!(
        offer
            .text
            .contains("You are signed in as <strong>mia@example.com</strong>"),
        "{}",
        offer.text
    );
    let join_csrf = member_client.get(DEMO_KEYS).await.csrf();
    let forged = member_client.post(&link, &[("join", "yes")]).await;
    assert_eq!(
        forged.status,
        StatusCode::FORBIDDEN,
        "the session's CSRF token is needed"
    );
    let joined = member_client
        .post(&link, &[("csrf", &join_csrf), ("join", "yes")])
        .await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.text);
    assert_eq!(joined.location(), "/console/projects/project_two/keys");
    let again = member_client
        .post(&link, &[("csrf", &join_csrf), ("join", "yes")])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "an invite works once");

    // Both projects in the switcher, each with its own role.
    let keys = member_client.get(DEMO_KEYS).await;
    assert!(
        keys.text.contains(r#"<option value="project_two">"#),
        "{}",
        keys.text
    );
    assert!(
        !keys.text.contains("Create key"),
        "a viewer in the demo project"
    );
    let switched = member_client.get("/console?project=project_two").await;
    assert_eq!(switched.location(), "/console/projects/project_two/keys");
    let two = member_client
        .get("/console/projects/project_two/keys")
        .await;
    assert!(two.text.contains("Create key"), "an admin in project_two");
    let nowhere = member_client
        .get("/console?project=https://evil.example")
        .await;
    assert_eq!(
        nowhere.location(),
        DEMO_KEYS,
        "the switcher goes only to visible projects"
    );
    let audit = app
        .admin_get("/v1/projects/project_two/audit?action=member.role_change")
        .await;
    assert_eq!(audit.body["items"][0]["details"]["via"], "invite");
}

/// Asks Page Help on the API keys page through the widget's form.
async fn ask_help(client: &ConsoleClient, question: &str, mode: &str) -> client::Page {
    let page = client.get(DEMO_KEYS).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    client
        .post(
            "/console/help",
            &[
                ("csrf", &page.csrf()),
                ("route", "/project-settings/api-keys"),
                ("project_id", "project_identity_demo"),
                ("question", question),
                ("mode", mode),
            ],
        )
        .await
}

async fn unanswered_help_questions_are_listed_for_owners_and_one_holding_a_secret_is_withheld(
    app: TestApp,
) {
    let owner = owner(&app).await;
    let viewer = member(&app, &owner, "viewer", "vee@example.com").await;
    let page_fallback = "I can help with this page only. I don&#39;t see that information here.";
    for _ in 0..2 {
        let asked = ask_help(&owner, "how do I set up single sign-on for my team", "page").await;
        assert_eq!(asked.status, StatusCode::OK);
        assert!(asked.text.contains(page_fallback), "{}", asked.text);
    }
    let asked = ask_help(&viewer, "where do I download invoices", "hub").await;
    assert!(
        asked
            .text
            .contains("I don&#39;t see that in the Knowledge Hub yet."),
        "{}",
        asked.text
    );
    let secret_question = "is atk_live_AbCdEf0123456789xyz still good";
    let asked = ask_help(&owner, secret_question, "page").await;
    assert!(asked.text.contains(page_fallback), "{}", asked.text);
    let answered = ask_help(&owner, "What does the secret preview show?", "page").await;
    assert!(!answered.text.contains(page_fallback), "{}", answered.text);

    let gaps_path = "/console/projects/project_identity_demo/help-gaps";
    assert!(owner.get(DEMO_KEYS).await.text.contains(gaps_path));
    let gaps = owner.get(gaps_path).await;
    assert_eq!(gaps.status, StatusCode::OK, "{}", gaps.text);
    let table = &gaps.text[gaps.text.find("id=\"help-gaps\"").unwrap()..];
    let rows: Vec<String> = table
        .split("<tr>")
        .skip(2)
        .map(|row| {
            let cells: Vec<&str> = row
                .split("<td>")
                .skip(1)
                .map(|cell| cell.split("</td>").next().unwrap())
                .collect();
            cells[..3].join(" | ")
        })
        .collect();
    assert_eq!(
        rows,
        [
            "API Keys | how do I set up single sign-on for my team | 2",
            "API Keys | <em>withheld</em> | 1",
            "Knowledge Hub | where do I download invoices | 1",
        ],
        "most asked first, then most recent"
    );
    assert!(
        !gaps.text.contains("AbCdEf0123456789"),
        "the secret is not kept"
    );
    assert!(
        !gaps.text.contains("secret preview"),
        "answered questions are not gaps"
    );

    assert!(!viewer.get(DEMO_KEYS).await.text.contains(gaps_path));
    assert_eq!(viewer.get(gaps_path).await.status, StatusCode::FORBIDDEN);
}
