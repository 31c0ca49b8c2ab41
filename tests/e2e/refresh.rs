//! Refresh tokens over HTTP on the injectable clock: rotation, the grace period, reuse
//! detection, idle and absolute lifetimes, revocation (RFC 7009), a replayed code, and
//! RP-initiated logout.

use std::sync::Arc;

use chrono::Utc;
use reqwest::header;
use rollcall::clock::ManualClock;
use rollcall::domain::Status;
use rollcall::oidc::Client;
use rollcall_e2e::{TestApp, spawn_app_with_clock};
use serde_json::Value;

use crate::signin::{
    PASSWORD, REDIRECT, SIGNED_OUT, browser, exchange, location_params, member, pkce,
    public_client, refresh_with, set_cookies, sign_in_with, token_request,
};

struct Signed {
    app: TestApp,
    clock: Arc<ManualClock>,
    client: Client,
}

async fn setup() -> Signed {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_with_clock(clock.clone()).await;
    member(&app, "yuki", Status::Active).await;
    let client = public_client(&app).await;
    Signed { app, clock, client }
}

/// Signs in with `scope` and exchanges the code; returns the token response.
async fn tokens(s: &Signed, scope: &str) -> Value {
    let (verifier, challenge) = pkce();
    let resp = sign_in_with(
        &s.app,
        &browser(),
        &s.client,
        &challenge,
        "yuki",
        PASSWORD,
        &[("scope", scope)],
    )
    .await;
    let code = location_params(&resp)["code"].clone();
    let (status, body) = exchange(&s.app, &s.client, &code, &verifier).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn refresh(s: &Signed, token: &str) -> (u16, Value) {
    refresh_with(&s.app, &s.client, token).await
}

fn refresh_token(body: &Value) -> String {
    body["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

#[tokio::test]
async fn only_offline_access_gets_a_refresh_token() {
    let s = setup().await;
    assert!(tokens(&s, "openid").await.get("refresh_token").is_none());
    let body = tokens(&s, "openid offline_access").await;
    assert_eq!(body["scope"], "openid offline_access");
    assert_eq!(refresh_token(&body).len(), 43);
}

#[tokio::test]
async fn every_refresh_rotates_and_a_spent_token_inside_the_grace_period_works_once() {
    let s = setup().await;
    let t0 = refresh_token(&tokens(&s, "openid offline_access").await);
    let (status, body) = refresh(&s, &t0).await;
    assert_eq!(status, 200, "{body}");
    let t1 = refresh_token(&body);
    assert_ne!(t0, t1, "rotated");
    assert!(body["id_token"].is_string(), "OIDC Core §12.2");

    // A second tab refreshes with t0 ten seconds later: inside the 30 s grace, once.
    s.clock.advance(chrono::Duration::seconds(10));
    let (status, body) = refresh(&s, &t0).await;
    assert_eq!(status, 200, "{body}");
    let t2 = refresh_token(&body);
    // Both tabs go on refreshing with their own tokens.
    let (status, body) = refresh(&s, &t1).await;
    assert_eq!(status, 200, "{body}");
    let t1b = refresh_token(&body);
    let (status, body) = refresh(&s, &t2).await;
    assert_eq!(status, 200, "{body}");
    let t2b = refresh_token(&body);

    // t0 a third time is reuse: the whole family dies.
    let (status, body) = refresh(&s, &t0).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    for live in [&t1b, &t2b] {
        let (status, body) = refresh(&s, live).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_spent_token_after_the_grace_period_revokes_the_family() {
    let s = setup().await;
    let t0 = refresh_token(&tokens(&s, "openid offline_access").await);
    let (_, body) = refresh(&s, &t0).await;
    let t1 = refresh_token(&body);
    s.clock.advance(chrono::Duration::seconds(31));
    let (status, _) = refresh(&s, &t0).await;
    assert_eq!(status, 400);
    let (status, body) = refresh(&s, &t1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn idle_and_absolute_lifetimes_end_refreshing() {
    let s = setup().await;
    // Idle: unused for the tenant's 7 days.
    let t = refresh_token(&tokens(&s, "openid offline_access").await);
    s.clock.advance(chrono::Duration::days(7));
    assert_eq!(refresh(&s, &t).await.0, 400);

    // Absolute: used every 6 days, the family still ends 30 days after sign-in.
    let mut t = refresh_token(&tokens(&s, "openid offline_access").await);
    for _ in 0..4 {
        s.clock.advance(chrono::Duration::days(6));
        let (status, body) = refresh(&s, &t).await;
        assert_eq!(status, 200, "{body}");
        t = refresh_token(&body);
    }
    s.clock.advance(chrono::Duration::days(6));
    let (status, body) = refresh(&s, &t).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "day 30"
    );
}

#[tokio::test]
async fn a_suspended_user_can_not_refresh() {
    let s = setup().await;
    let t = refresh_token(&tokens(&s, "openid offline_access").await);
    let user = s
        .app
        .store
        .find_for_sign_in(&s.app.acme.id, "yuki", "unknown")
        .await
        .unwrap()
        .found
        .unwrap()
        .0;
    let mut after = user.clone();
    after.status = after.status.suspend().unwrap();
    s.app.store.update_user(&user, after).await.unwrap();
    let (status, body) = refresh(&s, &t).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn revoking_a_refresh_or_access_token_ends_the_grant_and_unknown_tokens_get_200() {
    let s = setup().await;
    let revoke = |token: String| {
        let app = &s.app;
        let cid = s.client.id.to_string();
        async move {
            browser()
                .post(format!("{}/t/acme/revoke", app.base))
                .form(&[("token", token.as_str()), ("client_id", cid.as_str())])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let body = tokens(&s, "openid offline_access").await;
    assert_eq!(revoke(refresh_token(&body)).await, 200);
    assert_eq!(refresh(&s, &refresh_token(&body)).await.0, 400);

    let body = tokens(&s, "openid offline_access").await;
    assert_eq!(
        revoke(body["access_token"].as_str().unwrap().to_owned()).await,
        200
    );
    assert_eq!(refresh(&s, &refresh_token(&body)).await.0, 400);

    assert_eq!(revoke("unknown".repeat(10)).await, 200);
    assert_eq!(revoke("not.a.jwt".into()).await, 200);
}

#[tokio::test]
async fn a_replayed_code_revokes_the_refresh_tokens_it_issued() {
    let s = setup().await;
    let (verifier, challenge) = pkce();
    let resp = sign_in_with(
        &s.app,
        &browser(),
        &s.client,
        &challenge,
        "yuki",
        PASSWORD,
        &[("scope", "openid offline_access")],
    )
    .await;
    let code = location_params(&resp)["code"].clone();
    let cid = s.client.id.to_string();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", cid.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, body) = token_request(&s.app, &form).await;
    assert_eq!(status, 200);
    let (status, _) = token_request(&s.app, &form).await;
    assert_eq!(status, 400, "the replay");
    let (status, _) = refresh(&s, &refresh_token(&body)).await;
    assert_eq!(status, 400, "what the code issued is revoked");
}

#[tokio::test]
async fn logout_with_a_hint_ends_the_session_and_returns_only_to_a_registered_uri() {
    let s = setup().await;
    let (verifier, challenge) = pkce();
    let resp = sign_in_with(
        &s.app,
        &browser(),
        &s.client,
        &challenge,
        "yuki",
        PASSWORD,
        &[],
    )
    .await;
    let session = set_cookies(&resp)["rollcall_session_acme"].clone();
    let code = location_params(&resp)["code"].clone();
    let (_, body) = exchange(&s.app, &s.client, &code, &verifier).await;
    let id_token = body["id_token"].as_str().unwrap().to_owned();
    let cookie = format!("rollcall_session_acme={session}");
    let logout = |query: String| {
        let url = format!("{}/t/acme/logout?{query}", s.app.base);
        let cookie = cookie.clone();
        async move {
            browser()
                .get(url)
                .header(header::COOKIE, cookie)
                .send()
                .await
                .unwrap()
        }
    };
    let unregistered = logout(format!(
        "id_token_hint={id_token}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"
    ))
    .await;
    assert_eq!(unregistered.status(), 400);
    assert!(unregistered.headers().get(header::LOCATION).is_none());

    let unhinted =
        logout("post_logout_redirect_uri=https%3A%2F%2Fportal.acme.example%2Fsigned-out".into())
            .await;
    assert_eq!(
        unhinted.status(),
        400,
        "no client named: the URI can't be checked"
    );
    let asks = logout(String::new()).await;
    assert_eq!(
        asks.status(),
        200,
        "without a hint the person is asked first"
    );
    assert!(asks.text().await.unwrap().contains("name=\"confirm\""));

    let done = logout(format!(
        "id_token_hint={id_token}&post_logout_redirect_uri=https%3A%2F%2Fportal.acme.example%2Fsigned-out&state=bye"
    ))
    .await;
    assert_eq!(done.status(), 303);
    let loc = done.headers()[header::LOCATION].to_str().unwrap();
    assert_eq!(loc, format!("{SIGNED_OUT}?state=bye"));
    assert!(
        done.headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("rollcall_session_acme=;"))
    );
    // The old cookie no longer signs anybody in.
    let again = browser()
        .get(format!(
            "{}/t/acme/authorize?{}",
            s.app.base,
            crate::signin::authorize_query(&s.client, &challenge, &[("prompt", "none")])
        ))
        .header(header::COOKIE, format!("rollcall_session_acme={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(location_params(&again)["error"], "login_required");
}
