//! Sign-in through the provider over HTTP: discovery, the sign-in page and form, the code
//! exchange with PKCE, the tokens checked against the published keys, userinfo; and every
//! refusal of bad input without a 5xx.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use reqwest::header;
use rollcall::clock::ManualClock;
use rollcall::domain::{
    DisplayName, Email, LoginId, PasswordHash, PasswordPolicy, Profile, Role, Status, User, UserId,
};
use rollcall::oidc::{AuthMethod, Client, ClientId, GrantType, RedirectUri};
use rollcall_e2e::{TestApp, spawn_app, spawn_app_with_clock};
use serde_json::Value;
use std::sync::Arc;

pub const PASSWORD: &str = "Tr0ub4dor&3";
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";
pub const SIGNED_OUT: &str = "https://portal.acme.example/signed-out";

/// An HTTP client that does not follow redirects (the test reads them).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Adds a member with a password to `acme`.
pub async fn member(app: &TestApp, login: &str, status: Status) -> User {
    user_with_role(app, login, status, Role::Member).await
}

/// Adds a user with a password and `role` to `acme`.
pub async fn user_with_role(app: &TestApp, login: &str, status: Status, role: Role) -> User {
    let mut user = User::new(
        app.acme.id.clone(),
        UserId::generate(),
        Profile::minimal(
            LoginId::parse(login).unwrap(),
            Email::parse(&format!("{login}@acme.example")).unwrap(),
            DisplayName::parse(&format!("{login} Example")).unwrap(),
            role,
        ),
        status,
        Utc::now(),
    );
    let password = PasswordPolicy::default()
        .check(PASSWORD, &user.profile.login_id)
        .unwrap();
    user.password_hash = Some(PasswordHash::of(&password).unwrap());
    app.store.create_user(&user, None, None).await.unwrap();
    user
}

/// Registers a public client of `acme` redirecting to [`REDIRECT`].
pub async fn public_client(app: &TestApp) -> Client {
    let client = Client {
        id: ClientId::generate(),
        tenant: app.acme.id.clone(),
        name: DisplayName::parse("Acme Portal").unwrap(),
        redirect_uris: vec![RedirectUri::parse("http://127.0.0.1/callback").unwrap()],
        post_logout_redirect_uris: vec![RedirectUri::parse(SIGNED_OUT).unwrap()],
        auth_method: AuthMethod::None,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        secret_digest: None,
        created_at: Utc::now(),
    };
    app.store.put_client(&client).await.unwrap();
    client
}

pub use rollcall_e2e::{hidden_value, pkce};

pub use rollcall_e2e::set_cookies;

/// The query parameters of a redirect's `Location`.
pub fn location_params(resp: &reqwest::Response) -> HashMap<String, String> {
    let loc = resp.headers()[header::LOCATION].to_str().unwrap();
    let url = reqwest::Url::parse(loc).unwrap();
    url.query_pairs().into_owned().collect()
}

/// The authorization request's query for `client`; `extra` adds parameters or replaces the
/// defaults of the same name.
pub fn authorize_query(client: &Client, challenge: &str, extra: &[(&str, &str)]) -> String {
    let id = client.id.to_string();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("client_id", &id),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid email profile"),
        ("state", "st-1"),
        ("nonce", "n-1"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        match pairs.iter_mut().find(|(name, _)| name == k) {
            Some(pair) => pair.1 = v,
            None => pairs.push((k, v)),
        }
    }
    url_encode(&pairs)
}

fn url_encode(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(&urlencode(v));
    }
    s
}

fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Opens the sign-in page and posts the form; returns the form's response.
pub async fn sign_in(
    app: &TestApp,
    http: &reqwest::Client,
    client: &Client,
    challenge: &str,
    login: &str,
    password: &str,
) -> reqwest::Response {
    sign_in_with(app, http, client, challenge, login, password, &[]).await
}

/// [`sign_in`] with more authorization request parameters.
pub async fn sign_in_with(
    app: &TestApp,
    http: &reqwest::Client,
    client: &Client,
    challenge: &str,
    login: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let page = http
        .get(format!(
            "{}/t/acme/authorize?{}",
            app.base,
            authorize_query(client, challenge, extra)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let cookies = set_cookies(&page);
    let csrf = cookies["rollcall_csrf"].clone();
    let html = page.text().await.unwrap();
    assert_eq!(hidden_value(&html, "csrf").as_deref(), Some(csrf.as_str()));
    let mut form: Vec<(String, String)> = [
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
    ]
    .iter()
    .map(|f| (f.to_string(), hidden_value(&html, f).unwrap()))
    .collect();
    form.push(("csrf".into(), csrf.clone()));
    form.push(("login".into(), login.into()));
    form.push(("password".into(), password.into()));
    http.post(format!("{}/t/acme/signin", app.base))
        .header(header::COOKIE, format!("rollcall_csrf={csrf}"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

pub async fn token_request(app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = browser()
        .post(format!("{}/t/acme/token", app.base))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    (status, resp.json().await.unwrap())
}

/// Redeems `code` for `client` (a public client) with `verifier`.
pub async fn exchange(app: &TestApp, client: &Client, code: &str, verifier: &str) -> (u16, Value) {
    token_request(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client.id.to_string()),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// Refreshes with `token` as `client`.
pub async fn refresh_with(app: &TestApp, client: &Client, token: &str) -> (u16, Value) {
    token_request(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", &client.id.to_string()),
        ],
    )
    .await
}

pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn discovery_names_the_tenants_issuer_and_every_endpoint_it_lists_answers() {
    let app = spawn_app().await;
    let doc: Value = reqwest::get(format!(
        "{}/t/acme/.well-known/openid-configuration",
        app.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let iss = format!("{}/t/acme", app.base);
    assert_eq!(doc["issuer"], iss);
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    ] {
        let url = doc[endpoint].as_str().unwrap();
        assert!(url.starts_with(&iss), "{endpoint}: {url}");
        let resp = browser().get(url).send().await.unwrap();
        assert!(
            resp.status().as_u16() < 500 && resp.status() != 404,
            "{endpoint} answers {}",
            resp.status()
        );
    }
    let jwks: Value = reqwest::get(doc["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(key["alg"], "ES256");
    assert!(key.get("d").is_none(), "never the private part");

    let unknown = reqwest::get(format!(
        "{}/t/nobody/.well-known/openid-configuration",
        app.base
    ))
    .await
    .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn a_member_signs_in_with_login_id_or_email_in_any_case_and_the_tokens_verify() {
    let app = spawn_app().await;
    let user = member(&app, "hanako", Status::Active).await;
    let client = public_client(&app).await;
    let iss = format!("{}/t/acme", app.base);

    for typed in ["hanako", "HANAKO", "Hanako@ACME.example"] {
        let http = browser();
        let (verifier, challenge) = pkce();
        let resp = sign_in(&app, &http, &client, &challenge, typed, PASSWORD).await;
        assert_eq!(resp.status(), 303, "{typed}");
        let cookies = set_cookies(&resp);
        assert!(cookies.contains_key("rollcall_session_acme"));
        let loc = resp.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(loc.starts_with(REDIRECT), "{loc}");
        let params = location_params(&resp);
        assert_eq!(params["state"], "st-1");
        assert_eq!(params["iss"], iss);
        let (status, body) = exchange(&app, &client, &params["code"], &verifier).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        let id_token = body["id_token"].as_str().unwrap();

        // The ID token verifies against the published keys, with a library's own check.
        let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(format!("{iss}/jwks.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let header = jsonwebtoken::decode_header(id_token).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
        let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_issuer(&[&iss]);
        validation.set_audience(&[client.id.to_string()]);
        let id = jsonwebtoken::decode::<Value>(
            id_token,
            &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(id["sub"], user.id.to_string());
        assert_eq!(id["nonce"], "n-1");
        assert_eq!(id["amr"], serde_json::json!(["pwd"]));
        assert_eq!(id["email"], "hanako@acme.example");
        assert_eq!(id["preferred_username"], "hanako");
        assert_eq!(id["tenant"], "acme");
        assert!(id["auth_time"].as_i64().is_some());

        let access = body["access_token"].as_str().unwrap();
        let at = claims(access);
        assert_eq!(at["client_id"], client.id.to_string());
        assert_eq!(at["role"], "member");
        assert_eq!(at["aud"], client.id.to_string());
        assert_eq!(
            jsonwebtoken::decode_header(access).unwrap().typ.as_deref(),
            Some("at+jwt")
        );

        let info: Value = browser()
            .get(format!("{iss}/userinfo"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["sub"], user.id.to_string());
        assert_eq!(info["name"], "hanako Example");
        assert_eq!(info["email_verified"], true);
    }
}

#[tokio::test]
async fn every_failed_sign_in_gets_the_same_page_and_no_session() {
    let app = spawn_app().await;
    member(&app, "active", Status::Active).await;
    member(&app, "suspended", Status::Active).await;
    let suspended = app
        .store
        .find_for_sign_in(&app.acme.id, "suspended", "unknown")
        .await
        .unwrap()
        .found
        .unwrap()
        .0;
    let mut after = suspended.clone();
    after.status = after.status.suspend().unwrap();
    app.store.update_user(&suspended, after).await.unwrap();
    let invited = member(&app, "invited", Status::Invited).await;
    assert_eq!(invited.status, Status::Invited);
    let client = public_client(&app).await;

    let mut pages = Vec::new();
    for (login, password) in [
        ("active", "Wrong-passw0rd!"),
        ("nobody", PASSWORD),
        ("suspended", PASSWORD),
        ("invited", PASSWORD),
        ("", ""),
    ] {
        let (_, challenge) = pkce();
        let resp = sign_in(&app, &browser(), &client, &challenge, login, password).await;
        assert_eq!(resp.status(), 200, "{login}");
        assert!(!set_cookies(&resp).contains_key("rollcall_session_acme"));
        let html = resp.text().await.unwrap();
        let error = html
            .split("role=\"alert\"")
            .nth(1)
            .and_then(|s| s.split("</div>").next())
            .unwrap()
            .to_owned();
        pages.push(error);
    }
    // The tenant speaks Japanese and the browser asked for nothing else.
    assert!(pages[0].contains("正しくない"), "{}", pages[0]);
    assert!(pages.iter().all(|p| *p == pages[0]), "{pages:#?}");
}

#[tokio::test]
async fn codes_are_single_use_bound_to_client_redirect_and_verifier() {
    let app = spawn_app().await;
    member(&app, "taro", Status::Active).await;
    let client = public_client(&app).await;
    let other = public_client(&app).await;

    let code_for = |verifier_challenge: (String, String)| {
        let app = &app;
        let client = &client;
        async move {
            let resp = sign_in(
                app,
                &browser(),
                client,
                &verifier_challenge.1,
                "taro",
                PASSWORD,
            )
            .await;
            (location_params(&resp)["code"].clone(), verifier_challenge.0)
        }
    };

    // A wrong verifier, another client, another redirect URI: each refused, none a 5xx.
    let (code, verifier) = code_for(pkce()).await;
    let cid = client.id.to_string();
    let oid = other.id.to_string();
    for (form, what) in [
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", cid.as_str()),
            ],
            "no verifier",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", oid.as_str()),
                ("code_verifier", verifier.as_str()),
            ],
            "another client",
        ),
    ] {
        let (status, body) = token_request(&app, &form).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert!(
            ["invalid_request", "invalid_grant"].contains(&body["error"].as_str().unwrap()),
            "{what}: {body}"
        );
    }

    let (code, verifier) = code_for(pkce()).await;
    let exchange = |code: String, verifier: String, redirect: &'static str| {
        let app = &app;
        let cid = cid.clone();
        async move {
            token_request(
                app,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect),
                    ("client_id", &cid),
                    ("code_verifier", &verifier),
                ],
            )
            .await
        }
    };
    let (status, body) = exchange(code.clone(), "x".repeat(43), REDIRECT).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The failed attempt spent the code.
    let (status, _) = exchange(code, verifier, REDIRECT).await;
    assert_eq!(status, 400);

    let (code, verifier) = code_for(pkce()).await;
    let (status, body) = exchange(code.clone(), verifier.clone(), "http://127.0.0.1:9/other").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let (code, verifier) = code_for(pkce()).await;
    let (status, _) = exchange(code.clone(), verifier.clone(), REDIRECT).await;
    assert_eq!(status, 200);
    let (status, body) = exchange(code, verifier, REDIRECT).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "a replay"
    );
}

#[tokio::test]
async fn a_bad_client_or_redirect_shows_a_page_and_never_redirects() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let (_, challenge) = pkce();
    let http = browser();
    for (query, status) in [
        (
            authorize_query(&client, &challenge, &[])
                .replace(&client.id.to_string(), &ClientId::generate().to_string()),
            400,
        ),
        (
            authorize_query(&client, &challenge, &[]).replace("client_id=", "client_idx="),
            400,
        ),
        (
            authorize_query(&client, &challenge, &[]).replace("%2Fcallback", "%2Fevil"),
            400,
        ),
        (
            authorize_query(&client, &challenge, &[]).replace("127.0.0.1", "evil.example"),
            400,
        ),
    ] {
        let resp = http
            .get(format!("{}/t/acme/authorize?{query}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{query}");
        assert!(resp.headers().get(header::LOCATION).is_none());
        let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"));
    }
    // With the client and redirect checked, errors go back to the client, with state and iss.
    for (extra, error) in [
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("prompt", "none")], "login_required"),
        (vec![("request", "eyJ")], "request_not_supported"),
    ] {
        let mut q = authorize_query(&client, &challenge, &[]);
        for (k, v) in &extra {
            q = q
                .split('&')
                .filter(|p| !p.starts_with(&format!("{k}=")))
                .collect::<Vec<_>>()
                .join("&");
            q.push_str(&format!("&{k}={v}"));
        }
        let resp = http
            .get(format!("{}/t/acme/authorize?{q}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{extra:?}");
        let params = location_params(&resp);
        assert_eq!(params["error"], error, "{extra:?}");
        assert_eq!(params["state"], "st-1");
        assert_eq!(params["iss"], format!("{}/t/acme", app.base));
    }
}

#[tokio::test]
async fn the_sign_in_page_speaks_the_requested_language_and_carries_its_protections() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let (_, challenge) = pkce();
    let resp = browser()
        .get(format!(
            "{}/t/acme/authorize?{}",
            app.base,
            authorize_query(
                &client,
                &challenge,
                &[("ui_locales", "ja"), ("login_hint", "taro")]
            )
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("<html lang=\"ja\">"));
    assert!(html.contains("パスワード"));
    assert!(html.contains("acme Inc."), "the tenant's name");
    assert!(html.contains("Acme Portal"), "the client's name");
    assert!(html.contains("autocomplete=\"username\""));
    assert!(html.contains("autocomplete=\"current-password\""));
    assert!(
        html.contains("value=\"taro\""),
        "login_hint fills the field"
    );
    assert!(!html.contains("<script"), "works without JavaScript");
    assert!(!html.contains("style="), "no inline style");

    let en = browser()
        .get(format!(
            "{}/t/acme/authorize?{}",
            app.base,
            authorize_query(&client, &challenge, &[])
        ))
        .header(header::ACCEPT_LANGUAGE, "en-GB,en;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(en.contains("<html lang=\"en\">") && en.contains("Password"));
}

#[tokio::test]
async fn a_live_session_signs_in_again_without_a_page_unless_prompt_login_or_max_age_says_so() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_with_clock(clock.clone()).await;
    member(&app, "jiro", Status::Active).await;
    let client = public_client(&app).await;
    let (_, challenge) = pkce();
    let resp = sign_in(&app, &browser(), &client, &challenge, "jiro", PASSWORD).await;
    let session = set_cookies(&resp)["rollcall_session_acme"].clone();
    let again = |extra: Vec<(&'static str, &'static str)>| {
        let url = format!(
            "{}/t/acme/authorize?{}",
            app.base,
            authorize_query(&client, &challenge, &extra)
        );
        let session = session.clone();
        async move {
            browser()
                .get(url)
                .header(header::COOKIE, format!("rollcall_session_acme={session}"))
                .send()
                .await
                .unwrap()
        }
    };
    let silent = again(vec![]).await;
    assert_eq!(silent.status(), 303);
    assert!(location_params(&silent).contains_key("code"));
    let none = again(vec![("prompt", "none")]).await;
    assert!(location_params(&none).contains_key("code"));
    assert_eq!(again(vec![("prompt", "login")]).await.status(), 200);

    // Two minutes later: a max_age of one minute wants a fresh sign-in, ten minutes do not.
    clock.advance(chrono::Duration::minutes(2));
    assert_eq!(again(vec![("max_age", "60")]).await.status(), 200);
    assert_eq!(again(vec![("max_age", "600")]).await.status(), 303);
    let stale = again(vec![("max_age", "60"), ("prompt", "none")]).await;
    assert_eq!(location_params(&stale)["error"], "login_required");

    // The session ends after its lifetime: the page again.
    clock.advance(chrono::Duration::hours(12));
    assert_eq!(again(vec![]).await.status(), 200);
}
