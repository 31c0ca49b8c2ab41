//! The OpenAPI document and the router describe the same API.

use std::collections::BTreeSet;

use reqwest::Method;
use rollcall_e2e::{spawn_app, status_and_json};

fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_every_documented_operation_is_routed() {
    let app = spawn_app().await;
    let (status, doc) = status_and_json(
        app.http
            .get(format!("{}/openapi.json", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");

    let routed: BTreeSet<(String, String)> = users_api::routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    let documented = documented(&doc);
    let missing: Vec<_> = routed.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.json: {missing:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );

    // And the router really answers each documented operation (not with route_not_found or 405).
    for (method, path) in &documented {
        let path = path.replace("{id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let resp = app.as_admin(method.clone(), &path).send().await.unwrap();
        let status = resp.status().as_u16();
        // Files (the template, an export) are not JSON; problems always are.
        let body: serde_json::Value =
            serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(serde_json::Value::Null);
        assert_ne!(body["code"], "route_not_found", "{method} {path}");
        assert_ne!(status, 405, "{method} {path}");
    }
}

#[test]
fn every_operation_documents_its_problems_and_references_resolve() {
    let doc: serde_json::Value = serde_json::from_str(users_api::OPENAPI).unwrap();
    let text = users_api::OPENAPI;
    for reference in text.split("\"$ref\": \"").skip(1) {
        let target = reference.split('"').next().unwrap();
        let pointer = target.trim_start_matches('#');
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["operationId"].is_string(), "{method} {path}");
            let responses = op["responses"].as_object().unwrap();
            let secured = op.get("security").is_none();
            if secured {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} documents no 401"
                );
            }
        }
    }
}

#[test]
fn the_documented_time_zones_are_exactly_the_ones_the_api_accepts() {
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            rollcall_e2e::workspace_root().join("functions/users-api/openapi.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let documented: Vec<&str> = doc["components"]["schemas"]["TimeZone"]["enum"]
        .as_array()
        .expect("an enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let accepted: Vec<&str> = rollcall::domain::TimeZone::names().collect();
    assert_eq!(documented, accepted);
    for name in &documented {
        assert!(rollcall::domain::TimeZone::parse(name).is_ok(), "{name}");
    }
}

#[tokio::test]
async fn what_the_document_calls_invalid_the_server_refuses_and_the_other_way_round() {
    let app = spawn_app().await;
    let doc: serde_json::Value = serde_json::from_str(users_api::OPENAPI).unwrap();
    let param = |path: &str, name: &str| -> serde_json::Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} {name}"))["schema"]
            .clone()
    };
    // Months from 2000: the document's pattern says so, and the server refuses earlier ones.
    let month =
        doc["paths"]["/billing/snapshots/{month}"]["get"]["parameters"][0]["schema"]["pattern"]
            .as_str()
            .unwrap()
            .to_owned();
    assert!(month.starts_with("^[2-9]"), "{month}");
    let resp = app
        .as_admin(Method::GET, "/billing/snapshots/1413-07")
        .send()
        .await
        .unwrap();
    rollcall_e2e::assert_problem(resp, 400, "invalid_request").await;
    // Exact look-ups carry the patterns of the values they look up.
    assert!(param("/users", "email")["pattern"].is_string());
    assert!(param("/users", "login_id")["pattern"].is_string());
    for query in ["email=0", "login_id="] {
        let resp = app
            .as_admin(Method::GET, &format!("/users?{query}"))
            .send()
            .await
            .unwrap();
        rollcall_e2e::assert_problem(resp, 400, "invalid_request").await;
    }
    // Names: the pattern refuses control characters; so does the server.
    let create = &doc["paths"]["/users"]["post"];
    let name = &create["requestBody"]["content"]["application/json"]["schema"]["properties"]["name"]
        ["pattern"];
    assert!(
        name.as_str().is_some_and(|p| p.contains("\\u0000-\\u001F")),
        "{name}"
    );
    let idempotency = create["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .unwrap();
    assert_eq!(idempotency["schema"]["pattern"], "^[!-~]{1,255}$");

    // `encoding: null` means auto: the document says it may be null.
    let encoding = &doc["paths"]["/imports"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["properties"]["encoding"];
    assert_eq!(encoding["type"], serde_json::json!(["string", "null"]));
    let resp = app
        .as_admin(Method::POST, "/imports")
        .json(&serde_json::json!({"encoding": null, "mode": "apply"}))
        .send()
        .await
        .unwrap();
    let (status, job) = status_and_json(resp).await;
    assert_eq!(
        (status, job["encoding"].as_str()),
        (201, Some("auto")),
        "{job}"
    );

    // If-Match: a malformed one is refused (400), a weak or unknown tag matches nothing (412).
    let me = format!("/users/{}", app.acme.admin.id);
    for (value, status, code) in [
        ("_/", 400, "invalid_request"),
        ("3", 400, "invalid_request"),
        ("\"1\",", 400, "invalid_request"),
        ("W/\"1\"", 412, "precondition_failed"),
        ("\"abc\"", 412, "precondition_failed"),
    ] {
        let resp = app
            .as_admin(Method::PATCH, &me)
            .header("if-match", value)
            .json(&serde_json::json!({"notes": "x"}))
            .send()
            .await
            .unwrap();
        let problem = rollcall_e2e::assert_problem(resp, status, code).await;
        if status == 400 {
            assert_eq!(
                problem["errors"][0]["code"], "if_match_invalid",
                "{problem}"
            );
        }
    }
    let resp = app
        .as_admin(Method::PATCH, &me)
        .header("if-match", "\"0\", \"1\"")
        .json(&serde_json::json!({"notes": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
