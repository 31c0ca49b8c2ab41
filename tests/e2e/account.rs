//! The account pages over HTTP, the way a browser without scripts uses them: the invitation
//! page, forgot password and the reset page, the account page, the emailed code of the second
//! step, and the API's reset and password change. Mail goes through the real outbox →
//! send-invitations → moto's SES path and is read back from moto.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Duration;
use reqwest::{Method, header};
use rollcall::clock::ManualClock;
use rollcall::domain::{PageSettings, SignInPolicy, Status, TwoStep};
use rollcall_e2e::{
    Page, TestApp, Visitor, assert_problem, mail_to, spawn_app, spawn_app_with_clock,
    status_and_json, unique_address,
};
use serde_json::{Value, json};

use crate::signin::{
    PASSWORD, authorize_query, browser, exchange, location_params, pkce, public_client,
    refresh_with,
};

const NEW_PASSWORD: &str = "Sakura#2027";

/// The one link in the newest mail to `address`.
fn newest_link(mail: &[rollcall_cli::mail::SentMail]) -> String {
    let last = mail.last().expect("a mail");
    let links = last.links();
    assert_eq!(links.len(), 1, "{}", last.body);
    links[0].clone()
}

/// Delivers every queued account mail, as the stream's event source mapping would (from the
/// stream's start: a record delivered again sends nothing twice).
async fn deliver(app: &TestApp) {
    let sender = app.sender().await;
    app.poller().await.poll(&sender).await.expect("a poll");
}

/// Creates a user through the API (an invitation is queued) and returns (id, address).
async fn invite(app: &TestApp, login: &str, extra: Value) -> (String, String) {
    let email = unique_address(login);
    let mut body = json!({"login_id": login, "email": email, "name": format!("{login} san"), "language": "en"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let created = app.create_user(body).await;
    (created["id"].as_str().unwrap().to_owned(), email)
}

/// An invited user who accepted through the page: (id, address).
async fn active_member(app: &TestApp, login: &str, extra: Value) -> (String, String) {
    let (id, email) = invite(app, login, extra).await;
    deliver(app).await;
    let link = newest_link(&mail_to(&email).await);
    let mut v = Visitor::new();
    let page = v.get(&link).await;
    let done = v
        .post(
            &link,
            &page,
            &[("password", PASSWORD), ("confirm", PASSWORD)],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.html);
    (id, email)
}

fn assert_page_protections(page: &Page) {
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    assert!(!page.html.contains("style=\""), "no inline style");
    assert!(!page.html.contains("<script>"), "no inline script");
}

/// The state a rule shows: `met`, `broken` or `` (unchecked).
fn rule_state<'a>(html: &'a str, code: &str) -> &'a str {
    let marker = format!("data-rule=\"{code}\" class=\"");
    let at = html.find(&marker).unwrap_or_else(|| panic!("rule {code}")) + marker.len();
    &html[at..at + html[at..].find('"').unwrap()]
}

#[tokio::test]
async fn the_invitation_page_refuses_a_weak_password_rule_by_rule_then_signs_in() {
    let app = spawn_app().await;
    let (id, email) = invite(&app, "hana", json!({})).await;
    deliver(&app).await;
    let mail = mail_to(&email).await;
    let link = newest_link(&mail);
    assert!(
        link.starts_with(&format!("{}/t/acme/invitations/", app.base)),
        "{link}"
    );

    let mut v = Visitor::new();
    let page = v.get(&link).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert_page_protections(&page);
    assert!(page.html.contains("hana"), "the login id is shown");
    assert_eq!(
        page.html.matches("autocomplete=\"new-password\"").count(),
        2
    );
    assert!(
        page.html
            .contains("name=\"username\" value=\"hana\" autocomplete=\"username\" hidden")
    );
    assert!(page.html.contains("<label for=\"password\">"));
    assert!(page.html.contains("src=\"/t/acme/assets/password.js\""));
    assert_eq!(
        rule_state(&page.html, "password_needs_symbol"),
        "",
        "unchecked at first"
    );
    // Opening the page (twice) never uses the link.
    v.get(&link).await;
    let api = rollcall_cli::mail::invitation_api_url(&link);
    let (_, state) = status_and_json(app.http.get(&api).send().await.unwrap()).await;
    assert_eq!(state["status"], "valid");

    // Scripts off: a weak password comes back with each rule marked.
    let weak = v
        .post(
            &link,
            &page,
            &[("password", "sakura"), ("confirm", "sakura")],
        )
        .await;
    assert_eq!(weak.status, 422);
    assert!(weak.html.contains("role=\"alert\""));
    assert!(weak.html.contains("aria-invalid=\"true\""));
    for broken in [
        "password_too_short",
        "password_needs_upper",
        "password_needs_digit",
        "password_needs_symbol",
    ] {
        assert_eq!(rule_state(&weak.html, broken), "broken", "{broken}");
    }
    for met in ["password_needs_lower", "password_disallowed_character"] {
        assert_eq!(rule_state(&weak.html, met), "met", "{met}");
    }
    assert!(weak.html.contains("(not met)"));
    assert!(
        !weak.html.contains("value=\"sakura\""),
        "a password is never echoed"
    );

    // Two different passwords, and a form without its CSRF cookie.
    let mismatch = v
        .post(
            &link,
            &weak,
            &[("password", NEW_PASSWORD), ("confirm", "Other#2027")],
        )
        .await;
    assert_eq!(mismatch.status, 422);
    assert!(mismatch.html.contains("id=\"confirm-error\""));
    let mut stranger = Visitor::new();
    let forged = stranger
        .post(
            &link,
            &mismatch,
            &[("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(forged.status, 400);
    let (_, state) = status_and_json(app.http.get(&api).send().await.unwrap()).await;
    assert_eq!(
        state["status"], "valid",
        "refused posts leave the link unused"
    );

    // A good one: the account is active and this browser is signed in.
    let done = v
        .post(
            &link,
            &mismatch,
            &[("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(v.cookies.contains_key("rollcall_session_acme"));
    assert!(done.html.contains("/t/acme/account"));
    let (_, user) = status_and_json(
        app.as_admin(Method::GET, &format!("/users/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(user["status"], "active");
    let account = v.get(&format!("{}/t/acme/account", app.base)).await;
    assert_eq!(account.status, 200);
    assert!(account.html.contains("autocomplete=\"current-password\""));

    // The link is spent: its page says so and what to do.
    let again = Visitor::new().get(&link).await;
    assert_eq!(again.status, 410);
    assert!(again.html.contains("already used"), "{}", again.html);
}

#[tokio::test]
async fn with_an_app_url_the_invitation_ends_at_the_clients_redirect_with_a_code() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let (verifier, challenge) = pkce();
    let start = format!(
        "{}/t/acme/authorize?{}",
        app.base,
        authorize_query(&client, &challenge, &[])
    );
    app.store
        .set_page_settings(
            &app.acme.id,
            &PageSettings {
                app_url: Some(start.clone()),
                ..PageSettings::default()
            }
            .check()
            .unwrap(),
        )
        .await
        .unwrap();
    let (_, email) = invite(&app, "kenta", json!({})).await;
    deliver(&app).await;
    let link = newest_link(&mail_to(&email).await);
    let mut v = Visitor::new();
    let page = v.get(&link).await;
    let done = v
        .post(
            &link,
            &page,
            &[("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)],
        )
        .await;
    // The page goes on by itself (a new navigation, not a redirect of the form's POST).
    assert_eq!(done.status, 200);
    let escaped = start.replace('&', "&#38;");
    assert!(
        done.html.contains(&format!(
            "<meta http-equiv=\"refresh\" content=\"0;url={escaped}\">"
        )),
        "{}",
        done.html
    );
    // The application starts its sign-in; the session from the invitation answers it.
    let back = v.get(&start).await;
    assert_eq!(back.status, 303, "{}", back.html);
    let code = reqwest::Url::parse(back.location.as_deref().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let (status, tokens) = exchange(&app, &client, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
}

#[tokio::test]
async fn expired_and_withdrawn_invitation_links_each_have_their_own_page() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(clock.clone()).await;
    let (id, email) = invite(&app, "late", json!({})).await;
    deliver(&app).await;
    let first = newest_link(&mail_to(&email).await);
    let resent = app
        .as_admin(Method::POST, &format!("/users/{id}/invitation"))
        .send()
        .await
        .unwrap();
    assert_eq!(resent.status(), 202);
    deliver(&app).await;
    let second = newest_link(&mail_to(&email).await);
    let withdrawn = Visitor::new().get(&first).await;
    assert_eq!(withdrawn.status, 410);
    assert!(withdrawn.html.contains("withdrawn"), "{}", withdrawn.html);

    clock.advance(Duration::hours(73));
    let expired = Visitor::new().get(&second).await;
    assert_eq!(expired.status, 410);
    assert!(expired.html.contains("expired"), "{}", expired.html);
    assert!(expired.html.contains("administrator"));
    let ja = Visitor::new().get(&format!("{second}?lang=ja")).await;
    assert!(ja.html.contains("有効期限が切れています"), "{}", ja.html);

    let unknown = Visitor::new()
        .get(&format!(
            "{}/t/acme/invitations/{}",
            app.base,
            "A".repeat(43)
        ))
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn forgot_password_answers_the_same_for_anyone_and_its_link_works_once_and_signs_out_everywhere()
 {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let (_, email) = active_member(&app, "mika", json!({})).await;
    // A signed-in session with a refresh token, to see it end.
    let (verifier, challenge) = pkce();
    let signed_in = crate::signin::sign_in_with(
        &app,
        &browser(),
        &client,
        &challenge,
        "mika",
        PASSWORD,
        &[("scope", "openid offline_access")],
    )
    .await;
    let code = location_params(&signed_in)["code"].clone();
    let (_, tokens) = exchange(&app, &client, &code, &verifier).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    let forgot = format!("{}/t/acme/forgot", app.base);
    let mut v = Visitor::new();
    let form = v.get(&format!("{forgot}?lang=en")).await;
    assert_eq!(form.status, 200);
    assert_page_protections(&form);
    let known = v
        .post(&forgot, &form, &[("login", "MIKA"), ("lang", "en")])
        .await;
    let unknown = v
        .post(&forgot, &form, &[("login", "nobody"), ("lang", "en")])
        .await;
    assert_eq!((known.status, unknown.status), (200, 200));
    assert_eq!(
        known.html, unknown.html,
        "one answer whether or not the account exists"
    );
    deliver(&app).await;
    let by_mail = v
        .post(&forgot, &form, &[("login", &email), ("lang", "en")])
        .await;
    assert_eq!(by_mail.status, 200);
    deliver(&app).await;
    let mail = mail_to(&email).await;
    let resets: Vec<_> = mail
        .iter()
        .filter(|m| m.subject.contains("Reset"))
        .collect();
    assert_eq!(resets.len(), 2, "two requests, two mails");
    // The newer link revoked the older one.
    let older = resets[0].links()[0].clone();
    let link = resets[1].links()[0].clone();
    assert!(
        link.starts_with(&format!("{}/t/acme/reset/", app.base)),
        "{link}"
    );
    assert_eq!(Visitor::new().get(&older).await.status, 410);

    let mut r = Visitor::new();
    let page = r.get(&link).await;
    assert_eq!(page.status, 200);
    let weak = r
        .post(&link, &page, &[("password", "short"), ("confirm", "short")])
        .await;
    assert_eq!(weak.status, 422);
    let done = r
        .post(
            &link,
            &weak,
            &[("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(
        done.html.contains("signed out everywhere else"),
        "{}",
        done.html
    );

    // The old refresh token is dead, the old password refused, the new one works.
    let (status, body) = refresh_with(&app, &client, &refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let old = crate::signin::sign_in(&app, &browser(), &client, &challenge, "mika", PASSWORD).await;
    assert_eq!(old.status(), 200, "refused: the sign-in page again");
    let new =
        crate::signin::sign_in(&app, &browser(), &client, &challenge, "mika", NEW_PASSWORD).await;
    assert_eq!(new.status(), 303);
    // Used once.
    assert_eq!(Visitor::new().get(&link).await.status, 410);
}

#[tokio::test]
async fn reset_mails_are_bounded_per_account_and_a_password_change_kills_older_links() {
    let app = spawn_app().await;
    let (id, email) = active_member(&app, "sora", json!({})).await;
    let forgot = format!("{}/t/acme/forgot", app.base);
    let mut v = Visitor::new();
    let form = v.get(&forgot).await;
    for _ in 0..7 {
        let answer = v.post(&forgot, &form, &[("login", "sora")]).await;
        assert_eq!(answer.status, 200);
        deliver(&app).await;
    }
    let resets = mail_to(&email)
        .await
        .into_iter()
        .filter(|m| m.links().iter().any(|l| l.contains("/reset/")))
        .count();
    assert_eq!(resets, 5, "at most 5 reset mails an hour");
    // The admin's reset is bounded by the same count.
    let refused = app
        .as_admin(Method::POST, &format!("/users/{id}/password/reset"))
        .send()
        .await
        .unwrap();
    assert!(refused.headers().contains_key(header::RETRY_AFTER));
    assert_problem(refused, 429, "too_many_resets").await;

    // The newest link stands until the password changes on the account page.
    let link = newest_link(
        &mail_to(&email)
            .await
            .into_iter()
            .filter(|m| m.links().iter().any(|l| l.contains("/reset/")))
            .collect::<Vec<_>>(),
    );
    assert_eq!(Visitor::new().get(&link).await.status, 200);
    let mut me = signed_in_visitor(&app, "sora", PASSWORD).await;
    let account = me.get(&format!("{}/t/acme/account", app.base)).await;
    let wrong = me
        .post(
            &format!("{}/t/acme/account", app.base),
            &account,
            &[
                ("current", "Wrong#2026"),
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422);
    let changed = me
        .post(
            &format!("{}/t/acme/account", app.base),
            &wrong,
            &[
                ("current", PASSWORD),
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.html);
    let dead = Visitor::new().get(&link).await;
    assert_eq!(dead.status, 410);
    assert!(dead.html.contains("password was changed"), "{}", dead.html);
    // This browser stays signed in.
    assert_eq!(
        me.get(&format!("{}/t/acme/account", app.base)).await.status,
        200
    );
}

/// Opens the sign-in page of `client` (in English, with `extra` parameters) and posts `login`
/// with `password`: the code page or the redirect to the client.
async fn password_step(
    v: &mut Visitor,
    app: &TestApp,
    client: &rollcall::oidc::Client,
    challenge: &str,
    extra: &[(&str, &str)],
    login: &str,
    password: &str,
) -> Page {
    let mut params = vec![("ui_locales", "en")];
    params.extend_from_slice(extra);
    let start = v
        .get(&format!(
            "{}/t/acme/authorize?{}",
            app.base,
            authorize_query(client, challenge, &params)
        ))
        .await;
    let mut fields = crate::signin_fields(&start.html);
    fields.push(("login", login.into()));
    fields.push(("password", password.into()));
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    v.post(&format!("{}/t/acme/signin", app.base), &start, &refs)
        .await
}

/// Posts `typed` on the code page `page` (to `/code`, or `/code/resend` when `typed` is
/// `None`), carrying its authorization request.
async fn code_step(v: &mut Visitor, app: &TestApp, page: &Page, typed: Option<&str>) -> Page {
    let mut fields = crate::signin_fields(&page.html);
    let url = match typed {
        Some(code) => {
            fields.push(("code", code.to_owned()));
            format!("{}/t/acme/code", app.base)
        }
        None => format!("{}/t/acme/code/resend", app.base),
    };
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    v.post(&url, page, &refs).await
}

/// A code that is not `right`.
fn other_than(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// The code in the newest mail to `address`.
async fn newest_code(address: &str) -> String {
    mail_to(address)
        .await
        .last()
        .and_then(|m| m.code())
        .expect("a code in the newest mail")
}

/// A visitor signed in at `acme` (through the sign-in page of a public client).
async fn signed_in_visitor(app: &TestApp, login: &str, password: &str) -> Visitor {
    let client = public_client(app).await;
    let (_, challenge) = pkce();
    let mut v = Visitor::new();
    let done = password_step(&mut v, app, &client, &challenge, &[], login, password).await;
    assert_eq!(done.status, 303, "{}", done.html);
    v
}

#[tokio::test]
async fn the_second_step_mails_a_code_with_five_tries_a_minute_between_resends_and_amr_otp() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(clock.clone()).await;
    let client = public_client(&app).await;
    let (id, email) = active_member(&app, "yui", json!({"two_step": true})).await;
    let (_, user) = status_and_json(
        app.as_admin(Method::GET, &format!("/users/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(user["two_step"], true, "admins see two-step");

    let (verifier, challenge) = pkce();
    let mut v = Visitor::new();
    let code_page = password_step(&mut v, &app, &client, &challenge, &[], "yui", PASSWORD).await;
    assert_eq!(code_page.status, 200, "the code page, no redirect yet");
    assert!(code_page.html.contains("autocomplete=\"one-time-code\""));
    assert!(
        !v.cookies.contains_key("rollcall_session_acme"),
        "no session yet"
    );
    assert_page_protections(&code_page);
    deliver(&app).await;
    let mail = mail_to(&email).await;
    assert!(
        mail.last().unwrap().links().is_empty(),
        "a code mail has no link"
    );
    let code = newest_code(&email).await;

    let wrong = code_step(&mut v, &app, &code_page, Some(other_than(&code))).await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.html.contains("4 tries left"), "{}", wrong.html);
    // A resend inside the minute is refused and says when.
    let early = code_step(&mut v, &app, &wrong, None).await;
    assert_eq!(early.status, 429);
    // Full-width digits, as a Japanese input method types them, are the same code.
    let wide: String = code
        .chars()
        .map(|c| char::from_u32(u32::from(c) - u32::from('0') + u32::from('０')).unwrap())
        .collect();
    let done = code_step(&mut v, &app, &early, Some(&wide)).await;
    assert_eq!(done.status, 303, "{}", done.html);
    let params: HashMap<String, String> = reqwest::Url::parse(done.location.as_deref().unwrap())
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let (status, tokens) = exchange(&app, &client, &params["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = crate::signin::claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
    assert!(v.cookies.contains_key("rollcall_session_acme"));

    // Five wrong tries kill a code, even against the right one after; a resend after a minute
    // brings a new one.
    let again = [("prompt", "login")];
    let mut w = Visitor::new();
    let mut last = password_step(&mut w, &app, &client, &challenge, &again, "yui", PASSWORD).await;
    deliver(&app).await;
    let second = newest_code(&email).await;
    for n in 1..=5 {
        last = code_step(&mut w, &app, &last, Some(other_than(&second))).await;
        assert_eq!(last.status, 422, "try {n}");
    }
    assert!(last.html.contains("Too many wrong codes"), "{}", last.html);
    let dead = code_step(&mut w, &app, &last, Some(&second)).await;
    assert_eq!(
        dead.status, 410,
        "the right code after five wrong ones: dead"
    );
    clock.advance(Duration::seconds(61));
    let resent = code_step(&mut w, &app, &dead, None).await;
    assert_eq!(resent.status, 200, "{}", resent.html);
    deliver(&app).await;
    let third = newest_code(&email).await;
    let ok = code_step(&mut w, &app, &resent, Some(&third)).await;
    assert_eq!(ok.status, 303, "{}", ok.html);
    // A code works once, and only for the sign-in that asked for it.
    let mut y = Visitor::new();
    let page = password_step(&mut y, &app, &client, &challenge, &again, "yui", PASSWORD).await;
    assert_ne!(
        code_step(&mut y, &app, &page, Some(&third)).await.status,
        303
    );

    // A code lives ten minutes.
    let mut x = Visitor::new();
    let page = password_step(&mut x, &app, &client, &challenge, &again, "yui", PASSWORD).await;
    deliver(&app).await;
    let fourth = newest_code(&email).await;
    clock.advance(Duration::minutes(11));
    let late = code_step(&mut x, &app, &page, Some(&fourth)).await;
    assert_ne!(late.status, 303, "eleven minutes on, the code is dead");
}

#[tokio::test]
async fn the_tenants_two_step_policy_covers_admins_without_a_setting_of_their_own() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let policy = SignInPolicy {
        two_step: TwoStep::Admins,
        ..SignInPolicy::default()
    };
    app.store
        .set_sign_in_policy(&app.acme.id, policy)
        .await
        .unwrap();
    let admin =
        crate::signin::user_with_role(&app, "boss", Status::Active, rollcall::domain::Role::Admin)
            .await;
    assert!(!admin.profile.two_step);
    let member = crate::signin::member(&app, "staff", Status::Active).await;
    let (_, challenge) = pkce();
    let boss =
        crate::signin::sign_in(&app, &browser(), &client, &challenge, "boss", PASSWORD).await;
    assert_eq!(boss.status(), 200, "the admin gets the code page");
    assert!(boss.text().await.unwrap().contains("one-time-code"));
    let staff =
        crate::signin::sign_in(&app, &browser(), &client, &challenge, "staff", PASSWORD).await;
    assert_eq!(staff.status(), 303, "a member signs in with the password");
    drop(member);
}

#[tokio::test]
async fn the_api_changes_ones_own_password_and_admins_send_reset_links() {
    let app = spawn_app().await;
    let (id, email) = active_member(&app, "riku", json!({})).await;
    let member_token = rollcall_e2e::token(
        &app.acme.id,
        &rollcall::domain::UserId::parse(&id).unwrap(),
        rollcall::domain::Role::Member,
    );
    // Another user can't be reset by a member; an invited one can't be reset at all.
    let forbidden = app
        .request(
            Method::POST,
            &format!("/users/{id}/password/reset"),
            &member_token,
        )
        .send()
        .await
        .unwrap();
    assert_problem(forbidden, 403, "forbidden").await;
    let (invited, _) = invite(&app, "newbie", json!({})).await;
    let not_yet = app
        .as_admin(Method::POST, &format!("/users/{invited}/password/reset"))
        .send()
        .await
        .unwrap();
    assert_problem(not_yet, 409, "not_resettable").await;
    let sent = app
        .as_admin(Method::POST, &format!("/users/{id}/password/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    deliver(&app).await;
    let mail = mail_to(&email).await;
    assert!(mail.last().unwrap().links()[0].contains("/t/acme/reset/"));
    assert!(
        !mail.last().unwrap().body.contains(PASSWORD),
        "never a password by mail"
    );

    let change = |current: &str, new: &str| {
        app.request(Method::POST, "/account/password", &member_token)
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
    };
    assert_problem(
        change("Wrong#2026", NEW_PASSWORD).await.unwrap(),
        422,
        "current_password_wrong",
    )
    .await;
    let weak = assert_problem(
        change(PASSWORD, "weak").await.unwrap(),
        422,
        "password_rejected",
    )
    .await;
    assert!(weak["errors"].as_array().unwrap().len() >= 3, "{weak}");
    assert_eq!(change(PASSWORD, NEW_PASSWORD).await.unwrap().status(), 204);
    let client = public_client(&app).await;
    let (_, challenge) = pkce();
    let new =
        crate::signin::sign_in(&app, &browser(), &client, &challenge, "riku", NEW_PASSWORD).await;
    assert_eq!(new.status(), 303);
    // The reset link mailed before the change no longer works.
    assert_eq!(
        Visitor::new()
            .get(&mail.last().unwrap().links()[0])
            .await
            .status,
        410
    );
}

#[tokio::test]
async fn forgot_password_takes_as_long_for_an_unknown_name_as_for_an_account() {
    let app = spawn_app().await;
    active_member(&app, "timer", json!({})).await;
    let forgot = format!("{}/t/acme/forgot", app.base);
    let mut v = Visitor::new();
    let form = v.get(&forgot).await;
    let mut time = async |login: &str| {
        let started = std::time::Instant::now();
        let page = v.post(&forgot, &form, &[("login", login)]).await;
        assert_eq!(page.status, 200);
        (started.elapsed(), page.html)
    };
    // Interleaved, so a slow moment of the machine hits both alike; four of each stays under
    // the account's five reset mails an hour.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        let (k, known_page) = time("timer").await;
        let (u, unknown_page) = time("nobody-here").await;
        assert_eq!(known_page, unknown_page);
        known.push(k);
        unknown.push(u);
    }
    known.sort();
    unknown.sort();
    let floor = auth::forgot::FORGOT_ANSWER_FLOOR;
    assert!(
        known[0] >= floor && unknown[0] >= floor,
        "no answer before the floor"
    );
    let (k, u) = (known[1].as_secs_f64(), unknown[1].as_secs_f64());
    // The floor is well above the work behind either answer: the two differ by noise only.
    assert!(
        u > k / 1.5 && u < k * 1.5,
        "unknown {unknown:?} vs account {known:?}"
    );
}

#[tokio::test]
async fn one_address_asking_too_often_gets_the_same_answer_and_no_more_mail() {
    let app = spawn_app().await;
    let (_, email) = active_member(&app, "busy", json!({})).await;
    let forgot = format!("{}/t/acme/forgot", app.base);
    let mut v = Visitor::new();
    let form = v.get(&forgot).await;
    // Every request of this test comes from one address: fill its hour with other names.
    let bound = auth::forgot::RESETS_PER_ADDRESS_HOUR;
    let asks: Vec<_> = (0..bound)
        .map(|n| {
            let http = browser();
            let url = forgot.clone();
            let csrf = rollcall_e2e::hidden_value(&form.html, "csrf").unwrap();
            async move {
                http.post(&url)
                    .header(header::COOKIE, format!("rollcall_csrf={csrf}"))
                    .form(&[("login", format!("someone-{n}")), ("csrf", csrf)])
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        })
        .collect();
    for status in rollcall_e2e::join_spawned(asks).await {
        assert_eq!(status, 200);
    }
    let over = v.post(&forgot, &form, &[("login", "busy")]).await;
    assert_eq!(over.status, 200, "the same answer");
    deliver(&app).await;
    let resets = mail_to(&email)
        .await
        .into_iter()
        .filter(|m| m.links().iter().any(|l| l.contains("/reset/")))
        .count();
    assert_eq!(resets, 0, "over the address bound: no mail");
}
