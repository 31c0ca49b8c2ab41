//! The sample API Gateway HTTP API (payload v2) events in `events/` go through the same path
//! the Lambda runtime takes: JSON → `LambdaRequest` → the router → `LambdaResponse` → JSON.

use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent, Service};
use rollcall_e2e::{TestApp, spawn_app, workspace_root};
use users_api::{AppState, Limits, app};

async fn invoke(test: &TestApp, event_file: &str, token: &str) -> serde_json::Value {
    let raw = std::fs::read_to_string(workspace_root().join("events").join(event_file))
        .expect("reading the event")
        .replace("REPLACE_WITH_TOKEN", token);
    let request: LambdaRequest = serde_json::from_str(&raw).expect("an API Gateway v2 event");
    let state = AppState::new(
        test.store.clone(),
        test.bucket.clone(),
        users_api::auth::TokenVerifier::hs256(&secrecy::SecretString::from(
            rollcall_e2e::TEST_JWT_SECRET,
        )),
        secrecy::SecretString::from("e2e-tests-cursor-key-at-least-32-characters"),
        Limits::default(),
    );
    let mut adapter = Adapter::from(app(state));
    let response = adapter
        .call(LambdaEvent::new(request, Context::default()))
        .await
        .expect("the router never fails");
    serde_json::to_value(response).expect("a Lambda response serialises")
}

#[tokio::test]
async fn the_sample_health_event_is_answered_through_the_lambda_entry_path() {
    let app = spawn_app().await;
    let out = invoke(&app, "users-api-health.json", "").await;
    assert_eq!(out["statusCode"], 200, "{out}");
    let body: serde_json::Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn the_sample_create_user_event_creates_a_user_through_the_lambda_entry_path() {
    let app = spawn_app().await;
    let out = invoke(&app, "users-api-create-user.json", &app.acme.admin_token).await;
    assert_eq!(out["statusCode"], 201, "{out}");
    let body: serde_json::Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["login_id"], "suzuki.ichiro");
    assert_eq!(out["headers"]["etag"], "\"1\"");

    let id = rollcall::domain::UserId::parse(body["id"].as_str().unwrap()).unwrap();
    let stored = app.store.get_user(&app.acme.id, &id).await.unwrap();
    assert_eq!(stored.profile.name.as_str(), "鈴木 一郎");

    // Without the token the same event is a problem document.
    let out = invoke(&app, "users-api-create-user.json", "").await;
    assert_eq!(out["statusCode"], 401, "{out}");
    assert_eq!(out["headers"]["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_sample_discovery_event_is_answered_by_the_sign_in_function() {
    let app = spawn_app().await;
    let raw = std::fs::read_to_string(workspace_root().join("events").join("auth-discovery.json"))
        .expect("reading the event");
    let request: LambdaRequest = serde_json::from_str(&raw).expect("an API Gateway v2 event");
    let mut adapter = Adapter::from(auth::app(app.auth.clone()));
    let response = adapter
        .call(LambdaEvent::new(request, Context::default()))
        .await
        .expect("the router never fails");
    let out = serde_json::to_value(response).expect("a Lambda response serialises");
    assert_eq!(out["statusCode"], 200, "{out}");
    let body: serde_json::Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["issuer"], format!("{}/t/acme", app.base));
    assert_eq!(body["code_challenge_methods_supported"][0], "S256");
}
