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

/// A small deterministic generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn string(&mut self) -> String {
        const PIECES: [&str; 16] = [
            "a",
            "Z",
            "0",
            "@",
            ".",
            " ",
            "\n",
            "\r",
            "\u{0}",
            "髙",
            "ｱ",
            "=",
            "<script>",
            "|",
            "+81",
            "2026-04-01T00:00:00Z",
        ];
        let len = match self.below(10) {
            0 => 300,
            1 => 0,
            _ => self.below(12),
        };
        (0..len).map(|_| PIECES[self.below(16) as usize]).collect()
    }
    fn value(&mut self, depth: u32) -> serde_json::Value {
        match self.below(if depth > 1 { 5 } else { 7 }) {
            0 => serde_json::Value::Null,
            1 => json!(self.below(2) == 0),
            2 => json!(self.next() as i64),
            3 | 4 => json!(self.string()),
            5 => serde_json::Value::Array(
                (0..self.below(4)).map(|_| self.value(depth + 1)).collect(),
            ),
            _ => json!({ "k": self.value(depth + 1) }),
        }
    }
}

#[tokio::test]
async fn random_bodies_never_get_a_500() {
    const FIELDS: [&str; 16] = [
        "login_id",
        "email",
        "name",
        "role",
        "app_roles",
        "groups",
        "organization",
        "department",
        "phone",
        "notes",
        "language",
        "time_zone",
        "valid_from",
        "valid_till",
        "status",
        "id",
    ];
    let app = spawn_app().await;
    let target = app
        .create_user(json!({"login_id": "fuzz", "email": "fuzz@example.com", "name": "Fuzz"}))
        .await;
    let patch_path = format!("/users/{}", target["id"].as_str().unwrap());
    let mut rng = XorShift(0x5eed_2026_1121);
    for i in 0..300 {
        let mut body = serde_json::Map::new();
        for _ in 0..rng.below(8) {
            let key = FIELDS[rng.below(FIELDS.len() as u64) as usize].to_owned();
            let value = if rng.below(3) == 0 {
                rng.value(0)
            } else {
                json!(rng.string())
            };
            body.insert(key, value);
        }
        let (method, path) = if i % 2 == 0 {
            (Method::POST, "/users")
        } else {
            (Method::PATCH, patch_path.as_str())
        };
        let resp = app
            .as_admin(method.clone(), path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(
            [200, 201, 400, 403, 409, 412, 413, 415, 422].contains(&status),
            "{method} {path} {} -> {status} {text}",
            serde_json::Value::Object(body)
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("a JSON body");
        if status >= 400 {
            assert!(parsed["code"].is_string(), "{text}");
        }
    }
}

#[tokio::test]
async fn random_query_strings_never_get_a_500() {
    const NAMES: [&str; 10] = [
        "sort", "order", "status", "q", "email", "login_id", "limit", "cursor", "x", "",
    ];
    let app = spawn_app().await;
    let mut rng = XorShift(0x0dd_c0de_2026);
    for _ in 0..200 {
        let query: Vec<String> = (0..rng.below(5))
            .map(|_| {
                let name = NAMES[rng.below(NAMES.len() as u64) as usize];
                let value: String = rng.string().bytes().map(|b| format!("%{b:02X}")).collect();
                format!("{name}={value}")
            })
            .collect();
        let path = format!("/users?{}", query.join("&"));
        let resp = app.as_admin(Method::GET, &path).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.expect("a JSON body");
        assert!([200, 400].contains(&status), "{path} -> {status} {body}");
    }
}

#[tokio::test]
async fn an_empty_optional_field_means_none_and_is_never_called_required() {
    let app = spawn_app().await;
    let created = app
        .create_user(json!({
            "login_id": "blank", "email": "blank@acme.example", "name": "Blank",
            "organization": "", "department": " ", "notes": "", "phone": "",
            "valid_from": "", "valid_till": "", "time_zone": "", "language": ""
        }))
        .await;
    for field in ["organization", "department", "notes", "phone", "valid_till"] {
        assert!(created[field].is_null(), "{field}: {created}");
    }
    // On an edit, "" clears a value as null does.
    let id = created["id"].as_str().unwrap();
    let resp = app
        .as_admin(Method::PATCH, &format!("/users/{id}"))
        .json(&json!({"department": "営業部"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .as_admin(Method::PATCH, &format!("/users/{id}"))
        .json(&json!({"department": ""}))
        .send()
        .await
        .unwrap();
    let (status, body) = rollcall_e2e::status_and_json(resp).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["department"].is_null(), "{body}");
    // A required field stays required.
    let resp = app
        .as_admin(Method::POST, "/users")
        .json(&json!({"login_id": "nameless", "email": "nameless@acme.example", "name": ""}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(resp, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "name", "{problem}");
    assert_eq!(problem["errors"][0]["code"], "required", "{problem}");
}

#[tokio::test]
async fn a_token_naming_a_tenant_that_does_not_exist_gets_tenant_not_found() {
    let app = spawn_app().await;
    let ghost = rollcall::domain::TenantId::parse("ghost-tenant").unwrap();
    let token = rollcall_e2e::token(
        &ghost,
        &rollcall::domain::UserId::generate(),
        rollcall::domain::Role::Admin,
    );
    for path in [
        "/users",
        "/users?status=active&sort=created",
        "/users?email=someone@example.com",
        "/users?login_id=someone",
        "/imports",
        "/billing/snapshots",
        "/billing/snapshots?from=2026-01&to=2026-03",
        "/billing/current",
    ] {
        let resp = app.request(Method::GET, path, &token).send().await.unwrap();
        assert_problem(resp, 404, "tenant_not_found").await;
    }
}

#[tokio::test]
async fn names_that_spoof_and_bodies_that_name_a_member_twice_are_refused() {
    let app = spawn_app().await;
    for (name, code) in [
        ("\u{200B}\u{200C}\u{200D}", "invisible_only"),
        ("admin\u{202E}gpj.exe", "bidi_control"),
        ("\u{2067}Taro", "bidi_control"),
        ("Taro\u{E0041}", "hidden_character"),
        ("Taro\u{FFFF}", "hidden_character"),
    ] {
        let resp = app
            .as_admin(Method::POST, "/users")
            .json(&json!({"login_id": "spoof", "email": "spoof@acme.example", "name": name}))
            .send()
            .await
            .unwrap();
        let problem = assert_problem(resp, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "name", "{problem}");
        assert_eq!(problem["errors"][0]["code"], code, "{name:?}: {problem}");
    }
    // The same rule for departments and notes, and through the import.
    let resp = app
        .as_admin(Method::POST, "/users")
        .json(&json!({"login_id": "spoof", "email": "spoof@acme.example", "name": "Taro", "department": "\u{202E}部業営"}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(resp, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "department", "{problem}");
    // Real names are unaffected.
    app.create_user(
        json!({"login_id": "real", "email": "real@acme.example", "name": "髙橋 健二 👩\u{200D}💻"}),
    )
    .await;

    let resp = app
        .as_admin(Method::POST, "/users")
        .header("content-type", "application/json")
        .body(r#"{"login_id":"a","login_id":"b","email":"ab@acme.example","name":"AB"}"#)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(resp, 400, "invalid_json").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("login_id")),
        "{problem}"
    );
}
