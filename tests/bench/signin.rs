//! Sign-in benchmark, written into BENCHMARKS.md (between its `signin` markers): the DynamoDB
//! and KMS requests of each step of signing in, refreshing and calling rollcall's API with a
//! rollcall token (counted against moto); the server time of a sign-in (median and p99 over
//! `SIGNIN_RUNS`, default 40) with argon2id's share; the time to verify a token; and what
//! that means for sign-ins per second.
//!
//! `make bench` (or `cargo bench -p rollcall-e2e --bench signin`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::header;
use rollcall::domain::{
    DisplayName, Email, LoginId, PasswordHash, PasswordPolicy, Profile, Role, Status, User, UserId,
};
use rollcall::oidc::{AuthMethod, Client, ClientId, GrantType, KeySet, RedirectUri, SigningKey};
use rollcall_e2e::{
    describe_requests, hidden_value, machine, pkce, spawn_app, write_benchmark_section,
};
use serde_json::Value;

const PASSWORD: &str = "Tr0ub4dor&3";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

struct Flow {
    http: reqwest::Client,
    base: String,
    client: String,
}

impl Flow {
    /// The sign-in page and the pieces the form needs.
    async fn page(&self, challenge: &str, scope: &str) -> (String, Vec<(String, String)>) {
        let url = format!(
            "{}/t/acme/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256",
            self.base,
            self.client,
            "http%3A%2F%2F127.0.0.1%3A9%2Fcallback",
            scope.replace(' ', "%20"),
        );
        let resp = self.http.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let csrf = resp
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .find_map(|c| c.to_str().unwrap().strip_prefix("rollcall_csrf="))
            .and_then(|c| c.split(';').next())
            .unwrap()
            .to_owned();
        let html = resp.text().await.unwrap();
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
        .map(|f| (f.to_string(), hidden_value(&html, f).expect(f)))
        .collect();
        form.push(("csrf".into(), csrf.clone()));
        form.push(("login".into(), "bench".into()));
        form.push(("password".into(), PASSWORD.into()));
        (csrf, form)
    }

    async fn submit(&self, csrf: &str, form: &[(String, String)]) -> String {
        let resp = self
            .http
            .post(format!("{}/t/acme/signin", self.base))
            .header(header::COOKIE, format!("rollcall_csrf={csrf}"))
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303);
        let loc = resp.headers()[header::LOCATION].to_str().unwrap();
        reqwest::Url::parse(loc)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned()
    }

    async fn token(&self, form: &[(&str, &str)]) -> Value {
        let resp = self
            .http
            .post(format!("{}/t/acme/token", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("SIGNIN_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let app = spawn_app().await;
    let mut user = User::new(
        app.acme.id.clone(),
        UserId::generate(),
        Profile::minimal(
            LoginId::parse("bench").unwrap(),
            Email::parse("bench@acme.example").unwrap(),
            DisplayName::parse("Bench").unwrap(),
            Role::Admin,
        ),
        Status::Active,
        Utc::now(),
    );
    let password = PasswordPolicy::default()
        .check(PASSWORD, &user.profile.login_id)
        .unwrap();
    user.password_hash = Some(PasswordHash::of(&password).unwrap());
    app.store.create_user(&user, None, None).await.unwrap();
    let client = Client {
        id: ClientId::generate(),
        tenant: app.acme.id.clone(),
        name: DisplayName::parse("Bench").unwrap(),
        redirect_uris: vec![RedirectUri::parse("http://127.0.0.1/callback").unwrap()],
        post_logout_redirect_uris: vec![],
        auth_method: AuthMethod::None,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        secret_digest: None,
        created_at: Utc::now(),
    };
    app.store.put_client(&client).await.unwrap();
    let flow = Flow {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: app.base.clone(),
        client: client.id.to_string(),
    };
    let cid = client.id.to_string();

    // Requests, step by step. The first token an instance issues opens the key (one KMS
    // Decrypt); it is counted separately, then every step is measured warm.
    let (verifier, challenge) = pkce();
    let scope = "openid rollcall offline_access";
    let (csrf, form) = flow.page(&challenge, scope).await;
    let code = flow.submit(&csrf, &form).await;
    let (_, first_token) = app
        .counted(flow.token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &cid),
            ("code_verifier", &verifier),
        ]))
        .await;
    let cold_kms = first_token.get("Decrypt").copied().unwrap_or(0);

    let mut rows: Vec<(&str, BTreeMap<String, u64>)> = Vec::new();
    let ((csrf, form), c) = app.counted(flow.page(&challenge, scope)).await;
    rows.push(("sign-in page (`GET /authorize`)", c));
    let (code, c) = app.counted(flow.submit(&csrf, &form)).await;
    rows.push(("sign-in form (`POST /signin`), success", c));
    let (tokens, c) = app
        .counted(flow.token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &cid),
            ("code_verifier", &verifier),
        ]))
        .await;
    rows.push(("code exchange with `offline_access`", c));
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let (_, c) = app
        .counted(flow.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &cid),
        ]))
        .await;
    rows.push(("refresh", c));
    // Warm: the keys are read once per instance (and every five minutes), not per request.
    for url in [
        format!("{}/t/acme/userinfo", app.base),
        format!("{}/users/{}", app.base, user.id),
    ] {
        let resp = flow
            .http
            .get(url)
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let health = async {
        let resp = flow
            .http
            .get(format!("{}/t/acme/userinfo", app.base))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    };
    let (_, c) = app.counted(health).await;
    rows.push(("userinfo", c));
    // An API call: `GET /users/{id}` is 1 Query with an HS256 token; the difference is the
    // caller check.
    let path = format!("{}/users/{}", app.base, user.id);
    let api = async {
        let resp = flow
            .http
            .get(&path)
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    };
    let (_, c) = app.counted(api).await;
    rows.push((
        "API call `GET /users/{id}` with a rollcall token (the route's own Query included)",
        c,
    ));
    let (csrf_f, mut failed_form) = flow.page(&challenge, scope).await;
    for (k, v) in failed_form.iter_mut() {
        if k == "password" {
            *v = "Wrong-passw0rd!".into();
        }
    }
    let fail = async {
        let resp = flow
            .http
            .post(format!("{}/t/acme/signin", app.base))
            .header(header::COOKIE, format!("rollcall_csrf={csrf_f}"))
            .form(&failed_form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    };
    let (_, c) = app.counted(fail).await;
    rows.push((
        "sign-in form, wrong password (an unknown name makes the same requests)",
        c,
    ));
    app.store.clear_lock(&app.acme.id, &user.id).await.unwrap();

    // Server time of the sign-in form, over HTTP against moto on loopback.
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (csrf, form) = flow.page(&challenge, scope).await;
        let started = Instant::now();
        flow.submit(&csrf, &form).await;
        times.push(started.elapsed());
    }
    times.sort();
    let median = times[runs / 2];
    let p99 = times[(runs * 99 / 100).min(runs - 1)];

    // An unknown name against a wrong password, interleaved (same page, same work expected).
    // (At most 45 pairs: the address's bound is 100 failures an hour.)
    let pairs = runs.min(45);
    let mut unknown = Vec::with_capacity(pairs);
    let mut wrong = Vec::with_capacity(pairs);
    for i in 0..pairs {
        for (login, times) in [("nobody-here", &mut unknown), ("bench", &mut wrong)] {
            let (csrf, mut form) = flow.page(&challenge, scope).await;
            for (k, v) in form.iter_mut() {
                match k.as_str() {
                    "login" => *v = login.into(),
                    "password" => *v = "Wrong-passw0rd!".into(),
                    _ => {}
                }
            }
            let started = Instant::now();
            let resp = flow
                .http
                .post(format!("{}/t/acme/signin", app.base))
                .header(header::COOKIE, format!("rollcall_csrf={csrf}"))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            times.push(started.elapsed());
        }
        // Stay under the five free failures of the account and the address's hourly bound.
        if i % 4 == 3 {
            app.store.clear_lock(&app.acme.id, &user.id).await.unwrap();
        }
    }
    unknown.sort();
    wrong.sort();

    // argon2id alone (the same parameters, this process, this machine).
    let hash = user.password_hash.clone().unwrap();
    let mut argon = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        assert!(hash.verify(PASSWORD));
        argon.push(started.elapsed());
    }
    argon.sort();
    let argon_median = argon[runs / 2];

    // Verifying an access token (ES256, claims), as rollcall's API does before its one read.
    let key = SigningKey::generate().unwrap();
    let keys = KeySet::new(vec![key.public().clone()]).unwrap();
    let claims = rollcall::oidc::AccessClaims {
        iss: "https://id.example.com/t/acme".into(),
        sub: user.id.to_string(),
        aud: "https://id.example.com".into(),
        exp: Utc::now().timestamp() + 900,
        iat: Utc::now().timestamp(),
        jti: "j".into(),
        client_id: cid.clone(),
        scope: scope.into(),
        auth_time: Utc::now().timestamp(),
        tenant: "acme".into(),
        role: "admin".into(),
        grant_id: Some("g".into()),
    };
    let token =
        rollcall::oidc::tokens::sign(&key, rollcall::oidc::TokenKind::Access, &claims).unwrap();
    let n = 5_000;
    let started = Instant::now();
    for _ in 0..n {
        rollcall::oidc::tokens::verify_for_api(
            &token,
            &keys,
            "https://id.example.com",
            Utc::now().timestamp(),
        )
        .unwrap();
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let started = Instant::now();
    for _ in 0..n {
        rollcall::oidc::tokens::sign(&key, rollcall::oidc::TokenKind::Access, &claims).unwrap();
    }
    let sign_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);

    let mut table = String::from("| step | DynamoDB and KMS requests |\n|---|---|\n");
    for (step, counts) in &rows {
        table.push_str(&format!("| {step} | {} |\n", describe_requests(counts)));
    }
    let per_instance = 1000.0 / ms(median);
    let cpu_bound = 1000.0 / ms(argon_median);
    let body = format!(
        "Measured by `cargo bench -p rollcall-e2e --bench signin` on {machine} against moto on \
         loopback ({runs} sign-ins). Counts are per request, warm (the public keys an instance \
         reads once and then every five minutes are not in them). The server time includes \
         moto's own time per request (a few milliseconds each on loopback, single-threaded); on \
         DynamoDB in-region each request takes single-digit milliseconds.\n\n{table}\n\
         KMS: the first token an instance signs opens the signing key with {cold_kms} × `Decrypt`; \
         no step above calls KMS (every token is signed in memory).\n\n\
         | measure | value |\n|---|---|\n\
         | sign-in form, server time (page already loaded), median | **{:.1} ms** |\n\
         | sign-in form, p99 | {:.1} ms |\n\
         | of which argon2id (m = 19 MiB, t = 2, p = 1), median | {:.1} ms ({:.0} %) |\n\
         | refused sign-in, unknown name, median (p90) | {:.1} ms ({:.1} ms) |\n\
         | refused sign-in, wrong password, median (p90) | {:.1} ms ({:.1} ms) |\n\
         | verifying an access token (ES256 signature and claims) | {verify_us:.0} µs |\n\
         | signing a token (ES256) | {sign_us:.0} µs |\n\
         | sign-ins per second, one instance (one request at a time, as Lambda runs it) | ≈ {per_instance:.0} |\n\
         | sign-ins per second one core sustains (argon2id bound) | ≈ {cpu_bound:.0} |\n\n\
         A refused sign-in makes the same requests and runs argon2id once whatever the reason; \
         what is left between an unknown name and a wrong password is the failure counter's \
         write, which succeeds for a known name and fails its condition for an unknown one: moto \
         answers the failure sooner, DynamoDB evaluates the condition on the storage node as it \
         would a write (not measured on AWS). Either way an observer gets at most 100 samples an \
         hour from one address.\n\n\
         1,000 sign-ins a second take about {:.0} concurrent instances at this latency (Lambda's \
         default account concurrency is 1,000), with nothing else on the path capping it: no \
         KMS call per sign-in, the sign-in routes throttled at 1,000 requests/s each (the \
         template's `RouteSettings`), and each sign-in's writes on the user's own partition and \
         random session and code keys, none on a shared hot key.",
        ms(median),
        ms(p99),
        ms(argon_median),
        100.0 * ms(argon_median) / ms(median),
        ms(unknown[pairs / 2]),
        ms(unknown[pairs * 9 / 10]),
        ms(wrong[pairs / 2]),
        ms(wrong[pairs * 9 / 10]),
        1000.0 / per_instance,
        machine = machine(),
    );
    write_benchmark_section("signin", "Sign-in", &body);
    println!("{body}");
}
