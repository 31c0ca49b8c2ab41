//! rollcall's API with the access tokens rollcall issues: only tokens for the API, the caller's
//! role and status read from the store on every request, "sign out everywhere"; and the
//! brute-force delays with their admin view, on the injectable clock.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use reqwest::{Method, header};
use rollcall::clock::{Clock, ManualClock};
use rollcall::domain::{Role, Status};
use rollcall::oidc::Client;
use rollcall_e2e::{TestApp, assert_problem, spawn_app_with_clock, status_and_json};
use serde_json::{Value, json};

use crate::signin::{
    PASSWORD, browser, exchange, location_params, pkce, public_client, refresh_with, set_cookies,
    sign_in, sign_in_with, user_with_role,
};

/// Signs `login` in with `scope`; returns the token response.
async fn tokens_for(app: &TestApp, client: &Client, login: &str, scope: &str) -> Value {
    let (verifier, challenge) = pkce();
    let resp = sign_in_with(
        app,
        &browser(),
        client,
        &challenge,
        login,
        PASSWORD,
        &[("scope", scope)],
    )
    .await;
    assert_eq!(resp.status(), 303, "{login} signs in");
    let code = location_params(&resp)["code"].clone();
    let (status, body) = exchange(app, client, &code, &verifier).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn access(body: &Value) -> String {
    body["access_token"].as_str().unwrap().to_owned()
}

async fn setup() -> (TestApp, Arc<ManualClock>, Client) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_with_clock(clock.clone()).await;
    let client = public_client(&app).await;
    (app, clock, client)
}

#[tokio::test]
async fn a_token_for_the_api_administers_and_the_role_is_read_from_the_store_each_time() {
    let (app, _, client) = setup().await;
    let keiko = user_with_role(&app, "keiko", Status::Active, Role::Admin).await;
    let body = tokens_for(&app, &client, "keiko", "openid rollcall").await;
    let token = access(&body);
    let resp = app
        .request(Method::GET, "/users", &token)
        .send()
        .await
        .unwrap();
    let (status, problem) = status_and_json(resp).await;
    assert_eq!(status, 200, "{problem}");

    // A token issued for an application (no `rollcall` scope) does not open the API.
    let for_app = access(&tokens_for(&app, &client, "keiko", "openid").await);
    assert_problem(
        app.request(Method::GET, "/users", &for_app)
            .send()
            .await
            .unwrap(),
        401,
        "invalid_token",
    )
    .await;

    // Demoted by another admin: the same token is a member's at its very next request.
    let current = app.store.get_user(&app.acme.id, &keiko.id).await.unwrap();
    let resp = app
        .as_admin(Method::PATCH, &format!("/users/{}", keiko.id))
        .header(header::IF_MATCH, format!("\"{}\"", current.version))
        .json(&json!({"role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .request(Method::GET, "/users", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // Suspended: refused as revoked.
    let resp = app
        .as_admin(Method::POST, &format!("/users/{}/suspend", keiko.id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_problem(
        app.request(Method::GET, &format!("/users/{}", keiko.id), &token)
            .send()
            .await
            .unwrap(),
        401,
        "token_revoked",
    )
    .await;
}

#[tokio::test]
async fn signing_out_everywhere_ends_access_tokens_refresh_tokens_and_sessions_at_once() {
    let (app, clock, client) = setup().await;
    let aiko = user_with_role(&app, "aiko", Status::Active, Role::Member).await;
    let (_, challenge) = pkce();
    let page = sign_in(&app, &browser(), &client, &challenge, "aiko", PASSWORD).await;
    let session = set_cookies(&page)["rollcall_session_acme"].clone();
    let body = tokens_for(&app, &client, "aiko", "openid rollcall offline_access").await;
    let token = access(&body);
    let own = format!("/users/{}", aiko.id);
    assert_eq!(
        app.request(Method::GET, &own, &token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The member signs themselves out everywhere.
    let resp = app
        .request(Method::POST, &format!("{own}/sessions/revoke"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_problem(
        app.request(Method::GET, &own, &token).send().await.unwrap(),
        401,
        "token_revoked",
    )
    .await;
    let (status, _) = refresh_with(&app, &client, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "the refresh family is void");
    let again = browser()
        .get(format!(
            "{}/t/acme/authorize?{}",
            app.base,
            crate::signin::authorize_query(&client, &challenge, &[("prompt", "none")])
        ))
        .header(header::COOKIE, format!("rollcall_session_acme={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        location_params(&again)["error"],
        "login_required",
        "the session is void"
    );

    // A member can't sign another user out; an admin can. (A while later: what is issued in
    // the second of the revocation counts as before it.)
    clock.advance(chrono::Duration::seconds(2));
    let other = user_with_role(&app, "other", Status::Active, Role::Member).await;
    let fresh = access(&tokens_for(&app, &client, "aiko", "openid rollcall").await);
    let resp = app
        .request(
            Method::POST,
            &format!("/users/{}/sessions/revoke", other.id),
            &fresh,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = app
        .as_admin(
            Method::POST,
            &format!("/users/{}/sessions/revoke", other.id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

#[tokio::test]
async fn a_token_of_one_tenant_is_refused_at_another_tenants_issuer() {
    let (app, _, client) = setup().await;
    app.add_tenant("globex").await;
    user_with_role(&app, "ren", Status::Active, Role::Member).await;
    let token = access(&tokens_for(&app, &client, "ren", "openid").await);
    let at = |tenant: &str| {
        browser()
            .get(format!("{}/t/{tenant}/userinfo", app.base))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(at("acme").await.unwrap().status(), 200);
    let other = at("globex").await.unwrap();
    assert_eq!(other.status(), 401);
    assert!(
        other.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    // And malformed tokens anywhere: 401, never a 5xx.
    for bad in ["x", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        let resp = browser()
            .get(format!("{}/t/acme/userinfo", app.base))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{bad}");
        let resp = app
            .request(Method::GET, "/users", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{bad}");
    }
}

#[tokio::test]
async fn after_five_failures_each_attempt_waits_a_doubling_delay_that_an_admin_can_clear() {
    let (app, clock, client) = setup().await;
    let sora = user_with_role(&app, "sora", Status::Active, Role::Member).await;
    let attempt = |password: &'static str| {
        let app = &app;
        let client = &client;
        async move {
            let (_, challenge) = pkce();
            sign_in(app, &browser(), client, &challenge, "sora", password)
                .await
                .status()
                .as_u16()
        }
    };
    for _ in 0..4 {
        assert_eq!(attempt("Wrong-passw0rd!").await, 200);
    }
    // Four failures: no delay yet.
    assert_eq!(attempt(PASSWORD).await, 303);
    for _ in 0..5 {
        assert_eq!(attempt("Wrong-passw0rd!").await, 200);
    }
    // The fifth failure in a row earns one second: even the right password waits.
    assert_eq!(attempt(PASSWORD).await, 200);
    clock.advance(chrono::Duration::seconds(1));
    assert_eq!(attempt("Wrong-passw0rd!").await, 200, "sixth failure: 2 s");
    clock.advance(chrono::Duration::milliseconds(1500));
    assert_eq!(attempt(PASSWORD).await, 200, "still inside the 2 s");
    clock.advance(chrono::Duration::milliseconds(600));
    assert_eq!(attempt(PASSWORD).await, 303, "a success resets the count");
    // Counted from zero again.
    for _ in 0..4 {
        assert_eq!(attempt("Wrong-passw0rd!").await, 200);
    }
    assert_eq!(attempt(PASSWORD).await, 303);

    // Ten failures in a row (the clock stepping past each delay): the admin sees the delay
    // and clears it.
    for i in 0..10 {
        assert_eq!(attempt("Wrong-passw0rd!").await, 200);
        if i < 9 {
            clock.advance(chrono::Duration::seconds(1 << i.min(10)));
        }
    }
    let (status, view) = status_and_json(
        app.as_admin(Method::GET, &format!("/users/{}", sora.id))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(view["locked_until"].is_string(), "{view}");
    assert!(view["last_signed_in_at"].is_string(), "{view}");
    assert_eq!(attempt(PASSWORD).await, 200, "locked");
    let resp = app
        .as_admin(Method::POST, &format!("/users/{}/unlock", sora.id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(attempt(PASSWORD).await, 303, "cleared");
}

#[tokio::test]
async fn an_unknown_name_takes_as_long_as_a_wrong_password() {
    let (app, _, client) = setup().await;
    user_with_role(&app, "timing", Status::Active, Role::Member).await;
    let time = |login: &'static str| {
        let app = &app;
        let client = &client;
        async move {
            let (_, challenge) = pkce();
            let started = Instant::now();
            let status = sign_in(
                app,
                &browser(),
                client,
                &challenge,
                login,
                "Wrong-passw0rd!",
            )
            .await
            .status();
            assert_eq!(status, 200);
            started.elapsed()
        }
    };
    // Interleaved, so a slow moment of the machine hits both alike; four of each stays under
    // the five free failures.
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..4 {
        known.push(time("timing").await);
        unknown.push(time("nobody-here").await);
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[1].as_secs_f64(), unknown[1].as_secs_f64());
    // Skipping argon2id for unknown names would make them many times faster; the bound is wide
    // enough that scheduling noise can't cross it.
    assert!(
        u > k / 2.0 && u < k * 2.0,
        "unknown {unknown:?} vs wrong password {known:?}"
    );
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn after_a_rotation_tokens_of_the_previous_key_verify_until_they_expire() {
    let (app, clock, client) = setup().await;
    user_with_role(&app, "rotor", Status::Active, Role::Admin).await;
    let old = access(&tokens_for(&app, &client, "rotor", "openid rollcall").await);
    let jwks_kids = || async {
        let jwks: Value = reqwest::get(format!("{}/t/acme/jwks.json", app.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let first = kid(&old);
    assert_eq!(jwks_kids().await, vec![first.clone()]);
    assert_eq!(
        app.request(Method::GET, "/users", &old)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A day later a new key is published at once, but signs only ten minutes after that.
    clock.advance(chrono::Duration::days(1));
    let old = access(&tokens_for(&app, &client, "rotor", "openid rollcall").await);
    let second = auth::keyring::rotate(&app.store, &app.sealer)
        .await
        .unwrap();
    app.auth.published.for_kid(Some(&second)).await.unwrap();
    let listed = jwks_kids().await;
    assert!(
        listed.contains(&first) && listed.contains(&second),
        "{listed:?}"
    );
    app.auth.keys.forget().await;
    let still_old = access(&tokens_for(&app, &client, "rotor", "openid rollcall").await);
    assert_eq!(kid(&still_old), first);

    clock.advance(chrono::Duration::minutes(10));
    app.auth.keys.forget().await;
    let new = access(&tokens_for(&app, &client, "rotor", "openid rollcall").await);
    assert_eq!(kid(&new), second);
    // Both verify: at the API (which reads the keys at once for an unknown kid) and at userinfo.
    for token in [&old, &new] {
        assert_eq!(
            app.request(Method::GET, "/users", token)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let info = browser()
            .get(format!("{}/t/acme/userinfo", app.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(info.status(), 200);
    }
    // The old token lives its 15 minutes and no more.
    clock.advance(chrono::Duration::minutes(6));
    assert_problem(
        app.request(Method::GET, "/users", &old)
            .send()
            .await
            .unwrap(),
        401,
        "token_expired",
    )
    .await;
    // Once no token of the first key can be alive, the next rotation drops it.
    clock.advance(chrono::Duration::minutes(60));
    let third = auth::keyring::rotate(&app.store, &app.sealer)
        .await
        .unwrap();
    // (Read from the store: the served set follows within minutes.)
    let listed: Vec<String> = app
        .store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.public.kid)
        .collect();
    assert!(!listed.contains(&first), "{listed:?}");
    assert!(
        listed.contains(&second) && listed.contains(&third),
        "{listed:?}"
    );
}

#[tokio::test]
async fn outside_login_hours_sign_in_refresh_and_api_calls_are_refused() {
    use chrono::TimeZone as _;
    // Monday 2030-01-07, 09:00 in Tokyo (the tenant's zone).
    let monday_9 = chrono_tz::Asia::Tokyo
        .with_ymd_and_hms(2030, 1, 7, 9, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(monday_9));
    let app = spawn_app_with_clock(clock.clone()).await;
    let client = public_client(&app).await;
    let kinmu = user_with_role(&app, "kinmu", Status::Active, Role::Admin).await;

    // Set through the API, exactly as documented; a wrong form is named.
    let path = format!("/users/{}", kinmu.id);
    let bad = app
        .as_admin(Method::PATCH, &path)
        .json(&json!({"login_hours": "月-金 08:00-20:00"}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(bad, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "login_hours", "{problem}");
    let resp = app
        .as_admin(Method::PATCH, &path)
        .json(&json!({"login_hours": "Mon-Fri 08:00-20:00"}))
        .send()
        .await
        .unwrap();
    let (status, view) = status_and_json(resp).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["login_hours"], "Mon-Fri 08:00-20:00");

    // 19:55: inside the hours, a token works.
    clock.advance(chrono::Duration::minutes(10 * 60 + 55));
    let body = tokens_for(&app, &client, "kinmu", "openid rollcall offline_access").await;
    let token = access(&body);
    assert_eq!(
        app.request(Method::GET, "/users", &token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // 20:05 on Monday: past the hours. The API, the refresh and a new sign-in all refuse.
    clock.advance(chrono::Duration::minutes(10));
    assert_problem(
        app.request(Method::GET, "/users", &token)
            .send()
            .await
            .unwrap(),
        401,
        "token_revoked",
    )
    .await;
    let (status, _) = refresh_with(&app, &client, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    let (_, challenge) = pkce();
    let refused = sign_in(&app, &browser(), &client, &challenge, "kinmu", PASSWORD).await;
    assert_eq!(
        refused.status(),
        200,
        "the sign-in page again, with the one message"
    );

    // Tuesday 08:00: inside again.
    clock.advance(chrono::Duration::minutes(11 * 60 + 55));
    let (_, challenge) = pkce();
    let ok = sign_in(&app, &browser(), &client, &challenge, "kinmu", PASSWORD).await;
    assert_eq!(ok.status(), 303);
    // Saturday: outside.
    clock.advance(chrono::Duration::days(4));
    let (_, challenge) = pkce();
    let weekend = sign_in(&app, &browser(), &client, &challenge, "kinmu", PASSWORD).await;
    assert_eq!(weekend.status(), 200);
}

#[tokio::test]
async fn one_address_may_fail_a_hundred_times_an_hour_then_even_the_right_password_waits() {
    let (app, clock, client) = setup().await;
    user_with_role(&app, "target", Status::Active, Role::Member).await;
    let attempt = |login: String, password: &'static str| {
        let app = &app;
        let client = &client;
        async move {
            let (_, challenge) = pkce();
            sign_in(app, &browser(), client, &challenge, &login, password)
                .await
                .status()
                .as_u16()
        }
    };
    // A hundred failures spread over names that don't exist (no account's own delay starts).
    for i in 0..rollcall::oidc::throttle::ADDRESS_FAILURES_PER_HOUR {
        assert_eq!(attempt(format!("nobody{i}"), "Wrong-passw0rd!").await, 200);
    }
    assert_eq!(
        attempt("target".into(), PASSWORD).await,
        200,
        "the address is over its bound"
    );
    // The next hour the address starts afresh.
    clock.advance(chrono::Duration::hours(1));
    assert_eq!(attempt("target".into(), PASSWORD).await, 303);
}

#[tokio::test]
async fn outside_the_validity_window_nobody_signs_in_and_an_old_code_is_dead() {
    let (app, clock, client) = setup().await;
    let ends = user_with_role(&app, "ends", Status::Active, Role::Member).await;
    let mut after = ends.clone();
    after.profile.validity =
        rollcall::domain::ValidityWindow::new(None, Some(clock.now() + chrono::Duration::hours(1)))
            .unwrap();
    app.store.update_user(&ends, after).await.unwrap();
    let (verifier, challenge) = pkce();
    let resp = sign_in(&app, &browser(), &client, &challenge, "ends", PASSWORD).await;
    assert_eq!(resp.status(), 303, "inside the window");
    let code = location_params(&resp)["code"].clone();
    // A code lives 60 seconds.
    clock.advance(chrono::Duration::seconds(61));
    let (status, body) = exchange(&app, &client, &code, &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    clock.advance(chrono::Duration::hours(1));
    let (_, challenge) = pkce();
    let resp = sign_in(&app, &browser(), &client, &challenge, "ends", PASSWORD).await;
    assert_eq!(resp.status(), 200, "the window has closed");
}
