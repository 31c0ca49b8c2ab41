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
