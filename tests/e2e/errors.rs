//! Bad input never gets a 500: every error is an RFC 9457 problem with a stable code, in the
//! caller's language, naming the fields at fault.

use reqwest::Method;
use rollcall_e2e::{assert_problem, spawn_app};
use serde_json::json;

#[tokio::test]
async fn every_kind_of_bad_request_gets_its_problem() {
    let app = spawn_app().await;
    let url = |p: &str| format!("{}{}", app.base, p);
    let some_id = app.acme.admin.id.to_string();

    // Authentication.
    let resp = app.http.get(url("/users")).send().await.unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"rollcall\""
    );
    assert_problem(resp, 401, "unauthenticated").await;
    let resp = app
        .http
        .get(url("/users"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 401, "invalid_token").await;
    let resp = app
        .http
        .get(url("/users"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 401, "invalid_token").await;

    // Routing.
    let resp = app.as_admin(Method::GET, "/nowhere").send().await.unwrap();
    assert_problem(resp, 404, "route_not_found").await;
    let resp = app.as_admin(Method::PUT, "/users").send().await.unwrap();
    assert_problem(resp, 405, "method_not_allowed").await;
    let resp = app
        .as_admin(Method::GET, "/users/not-a-ulid")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404, "user_not_found").await;
    let resp = app
        .as_admin(Method::GET, "/users/01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404, "user_not_found").await;

    // Bodies.
    let resp = app
        .as_admin(Method::POST, "/users")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 415, "unsupported_media_type").await;
    let resp = app
        .as_admin(Method::POST, "/users")
        .header("content-type", "application/json")
        .body("{\"login_id\": ")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 400, "invalid_json").await;
    let resp = app
        .as_admin(Method::POST, "/users")
        .json(&json!(["an", "array"]))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 400, "invalid_json").await;
    let huge = json!({"login_id": "big", "email": "big@example.com", "name": "Big", "notes": "x".repeat(70_000)});
    let resp = app
        .as_admin(Method::POST, "/users")
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 413, "payload_too_large").await;
    let resp = app
        .as_admin(Method::PATCH, &format!("/users/{some_id}"))
        .header("content-type", "application/json")
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_problem(resp, 400, "invalid_json").await;

    // Headers.
    let resp = app
        .as_admin(Method::POST, "/users")
        .header("idempotency-key", "")
        .json(&json!({"login_id": "k", "email": "k@example.com", "name": "K"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 400, "invalid_request").await;
}

#[tokio::test]
async fn every_invalid_field_is_reported_at_once_by_name_in_the_callers_language() {
    let app = spawn_app().await;
    let resp = app
        .as_admin(Method::POST, "/users")
        .header("accept-language", "ja-JP,ja;q=0.9,en;q=0.5")
        .json(&json!({
            "login_id": "has space",
            "email": "not-an-email",
            "role": "owner",
            "phone": "03-abc",
            "language": "fr",
            "time_zone": "Tokyo",
            "groups": "not-a-list",
            "valid_from": "2026-05-01T00:00:00Z",
            "valid_till": "2026-04-01T00:00:00Z",
            "nickname": "Taro"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-language"], "ja");
    let problem = assert_problem(resp, 422, "validation_failed").await;
    assert_eq!(problem["detail"], "入力内容に誤りがあります。");
    let mut got: Vec<(String, String)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(!e["message"].as_str().unwrap().is_empty());
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let mut expected: Vec<(String, String)> = [
        ("email", "email_invalid"),
        ("groups", "wrong_type"),
        ("language", "language_invalid"),
        ("login_id", "login_id_invalid"),
        ("name", "required"),
        ("nickname", "unknown_field"),
        ("phone", "phone_invalid"),
        ("role", "role_invalid"),
        ("time_zone", "time_zone_invalid"),
        ("valid_till", "validity_window_invalid"),
    ]
    .into_iter()
    .map(|(f, c)| (f.to_owned(), c.to_owned()))
    .collect();
    expected.sort();
    assert_eq!(got, expected);
    let email = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == "email")
        .unwrap();
    assert_eq!(email["message"], "メールアドレスの形式が正しくありません。");
}

#[tokio::test]
async fn english_is_the_default_language_of_problems() {
    let app = spawn_app().await;
    let resp = app
        .as_admin(Method::GET, "/users/01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-language"], "en");
    let problem = assert_problem(resp, 404, "user_not_found").await;
    assert_eq!(problem["detail"], "No such user.");
    assert_eq!(problem["instance"], "/users/01ARZ3NDEKTSV4RRFFQ69G5FAV");
}
