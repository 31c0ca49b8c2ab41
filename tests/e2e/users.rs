//! The life of a user through the API: create, read, edit, suspend, reactivate, delete.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::Method;
use rollcall_e2e::{TestApp, assert_problem, spawn_app, status_and_json};
use serde_json::json;

/// The raw items of a partition, as DynamoDB holds them.
async fn partition(app: &TestApp, pk: &str) -> Vec<HashMap<String, AttributeValue>> {
    app.store
        .client()
        .query()
        .table_name(app.store.table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

fn s<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

#[tokio::test]
async fn a_user_is_created_read_edited_and_deleted() {
    let app = spawn_app().await;

    let created = app
        .create_user(json!({
            "login_id": "taro.yamada",
            "email": "Taro.Yamada@Example.co.jp",
            "name": "山田 太郎",
            "groups": ["営業部", "東京"],
            "phone": "０３-１２３４-５６７８",
            "valid_from": "2026-04-01T00:00:00+09:00"
        }))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "invited");
    assert_eq!(created["role"], "member");
    assert_eq!(created["version"], 1);
    assert_eq!(created["email"], "Taro.Yamada@Example.co.jp");
    assert_eq!(created["phone"], "03-1234-5678");
    assert_eq!(created["valid_from"], "2026-03-31T15:00:00Z");

    // Written with it, in the same transaction: a PENDING invitation in the user's partition
    // and the two uniqueness claims (keyed by the lower-cased values).
    let items = partition(&app, &format!("USER#acme#{id}")).await;
    let invites: Vec<_> = items
        .iter()
        .filter(|i| s(i, "sk").is_some_and(|sk| sk.starts_with("INVITE#")))
        .collect();
    assert_eq!(invites.len(), 1, "{items:?}");
    assert_eq!(s(invites[0], "status"), Some("PENDING"));
    assert_eq!(s(invites[0], "entity"), Some("invitation"));
    assert_eq!(s(invites[0], "user_id"), Some(id.as_str()));
    for claim in [
        "EMAIL#acme#taro.yamada@example.co.jp",
        "LOGIN#acme#taro.yamada",
    ] {
        let c = partition(&app, claim).await;
        assert_eq!(c.len(), 1, "{claim}");
        assert_eq!(s(&c[0], "user_id"), Some(id.as_str()));
    }
    // The bootstrap admin is active: nobody invites them.
    let admin_items = partition(&app, &format!("USER#acme#{}", app.acme.admin.id)).await;
    assert_eq!(admin_items.len(), 1);

    let resp = app
        .as_admin(Method::GET, &format!("/users/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let (status, got) = status_and_json(resp).await;
    assert_eq!(status, 200);
    assert_eq!(got, created);

    let resp = app
        .as_admin(Method::PATCH, &format!("/users/{id}"))
        .header("if-match", "\"1\"")
        .json(&json!({"department": "開発部", "phone": null, "name": "山田 花子"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["etag"], "\"2\"");
    let (status, edited) = status_and_json(resp).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["department"], "開発部");
    assert_eq!(edited["phone"], serde_json::Value::Null);
    assert_eq!(edited["name"], "山田 花子");
    assert_eq!(edited["login_id"], "taro.yamada", "members left out stay");
    assert_eq!(edited["version"], 2);

    let resp = app
        .as_admin(Method::DELETE, &format!("/users/{id}"))
        .header("if-match", "\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    let resp = app
        .as_admin(Method::GET, &format!("/users/{id}"))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404, "user_not_found").await;

    // The tombstone released the claims: the same email and login id can be used again.
    let again = app
        .create_user(json!({"login_id": "TARO.YAMADA", "email": "taro.yamada@example.co.jp", "name": "New Taro"}))
        .await;
    assert_ne!(again["id"], created["id"]);
}

#[tokio::test]
async fn duplicate_emails_and_login_ids_in_any_case_are_conflicts_with_their_codes() {
    let app = spawn_app().await;
    app.create_user(json!({"login_id": "hanako", "email": "hanako@example.com", "name": "Hanako"}))
        .await;

    let resp = app
        .as_admin(Method::POST, "/users")
        .json(&json!({"login_id": "other", "email": "HANAKO@EXAMPLE.COM", "name": "X"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "email_taken").await;

    let resp = app
        .as_admin(Method::POST, "/users")
        .json(&json!({"login_id": "HaNaKo", "email": "x@example.com", "name": "X"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "login_id_taken").await;

    // Editing a user onto someone else's email is the same conflict.
    let other = app
        .create_user(json!({"login_id": "jiro", "email": "jiro@example.com", "name": "Jiro"}))
        .await;
    let resp = app
        .as_admin(
            Method::PATCH,
            &format!("/users/{}", other["id"].as_str().unwrap()),
        )
        .json(&json!({"email": "Hanako@example.com"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "email_taken").await;
}

#[tokio::test]
async fn suspend_and_reactivate_follow_the_lifecycle() {
    let app = spawn_app().await;
    let u = app
        .create_user(json!({"login_id": "saburo", "email": "saburo@example.com", "name": "Saburo"}))
        .await;
    let path = format!("/users/{}", u["id"].as_str().unwrap());

    let (status, body) = status_and_json(
        app.as_admin(Method::POST, &format!("{path}/suspend"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("suspended")));

    let resp = app
        .as_admin(Method::POST, &format!("{path}/suspend"))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "invalid_transition").await;

    // Never set a password, so reactivation returns to invited.
    let (status, body) = status_and_json(
        app.as_admin(Method::POST, &format!("{path}/reactivate"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("invited")));
    assert_eq!(body["version"], 3);

    let resp = app
        .as_admin(Method::POST, &format!("{path}/reactivate"))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "invalid_transition").await;
}

#[tokio::test]
async fn a_stale_if_match_is_refused_with_412_and_changes_nothing() {
    let app = spawn_app().await;
    let u = app
        .create_user(json!({"login_id": "shiro", "email": "shiro@example.com", "name": "Shiro"}))
        .await;
    let path = format!("/users/{}", u["id"].as_str().unwrap());
    let ok = app
        .as_admin(Method::PATCH, &path)
        .header("if-match", "\"1\"")
        .json(&json!({"notes": "first"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    for method in [Method::PATCH, Method::DELETE] {
        let mut req = app
            .as_admin(method.clone(), &path)
            .header("if-match", "\"1\"");
        if method == Method::PATCH {
            req = req.json(&json!({"notes": "second"}));
        }
        assert_problem(req.send().await.unwrap(), 412, "precondition_failed").await;
    }
    let suspend = app
        .as_admin(Method::POST, &format!("{path}/suspend"))
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_problem(suspend, 412, "precondition_failed").await;

    let (_, now) = status_and_json(app.as_admin(Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(now["notes"], "first");
    assert_eq!(now["version"], 2);
    assert_eq!(now["status"], "invited");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response_and_refuses_another_body() {
    let app = spawn_app().await;
    let body = json!({"login_id": "goro", "email": "goro@example.com", "name": "Goro"});
    let send = |b: serde_json::Value| {
        app.as_admin(Method::POST, "/users")
            .header("idempotency-key", "create-goro-1")
            .json(&b)
            .send()
    };
    let (s1, first) = status_and_json(send(body.clone()).await.unwrap()).await;
    assert_eq!(s1, 201);

    // The same body, members in another order: the same request.
    let reordered = json!({"name": "Goro", "email": "goro@example.com", "login_id": "goro"});
    let resp = send(reordered).await.unwrap();
    assert_eq!(resp.headers()["idempotent-replayed"], "true");
    let (s2, second) = status_and_json(resp).await;
    assert_eq!((s2, &second), (201, &first));

    let resp = send(json!({"login_id": "goro2", "email": "goro2@example.com", "name": "Goro"}))
        .await
        .unwrap();
    assert_problem(resp, 422, "idempotency_key_reused").await;

    let (_, page) = status_and_json(
        app.as_admin(Method::GET, "/users?q=goro")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "one user only: {page}"
    );
}

#[tokio::test]
async fn app_roles_must_come_from_the_tenant_catalogue() {
    let app = spawn_app().await;
    // Tenant settings have no API yet: write the catalogue into the tenant item.
    let client = app.store.client();
    client
        .update_item()
        .table_name(app.store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("TENANT#acme".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("TENANT".into()),
        )
        .update_expression("SET role_catalogue = :c")
        .expression_attribute_values(
            ":c",
            aws_sdk_dynamodb::types::AttributeValue::L(vec![
                aws_sdk_dynamodb::types::AttributeValue::S("sales:viewer".into()),
            ]),
        )
        .send()
        .await
        .unwrap();
    let expected =
        rollcall::domain::RoleCatalogue::new([
            rollcall::domain::AppRole::parse("sales:viewer").unwrap()
        ]);
    assert_eq!(
        app.store
            .get_tenant(&app.acme.id)
            .await
            .unwrap()
            .role_catalogue,
        expected
    );

    let ok = app
        .create_user(json!({"login_id": "rin", "email": "rin@example.com", "name": "Rin", "app_roles": ["sales:viewer"]}))
        .await;
    assert_eq!(ok["app_roles"], json!(["sales:viewer"]));

    let resp = app
        .as_admin(Method::POST, "/users")
        .json(&json!({"login_id": "ren", "email": "ren@example.com", "name": "Ren", "app_roles": ["sales:viewer", "hr:admin"]}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(resp, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "app_roles");
    assert_eq!(problem["errors"][0]["code"], "app_role_unknown");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("hr:admin")
    );
}
