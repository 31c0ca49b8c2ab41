//! Who may do what: tenant isolation, the role matrix, self-protection, the last admin, and the
//! import lock.

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::Method;
use rollcall::domain::{Role, UserId};
use rollcall_e2e::{TestApp, assert_problem, spawn_app, status_and_json, token};
use serde_json::json;

async fn member(app: &TestApp, login: &str) -> (String, String) {
    let u = app
        .create_user(
            json!({"login_id": login, "email": format!("{login}@example.com"), "name": login}),
        )
        .await;
    let id = u["id"].as_str().unwrap().to_owned();
    let t = token(&app.acme.id, &UserId::parse(&id).unwrap(), Role::Member);
    (id, t)
}

#[tokio::test]
async fn every_route_tried_across_tenants_is_404_and_changes_nothing() {
    let app = spawn_app().await;
    let globex = app.add_tenant("globex").await;
    let (victim, _) = member(&app, "victim").await;
    let path = format!("/users/{victim}");

    let attempts: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(json!({"name": "pwned"}))),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/suspend"), None),
        (Method::POST, format!("{path}/reactivate"), None),
    ];
    for (method, p, body) in attempts {
        let mut req = app.request(method.clone(), &p, &globex.admin_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        assert_problem(req.send().await.unwrap(), 404, "user_not_found").await;
    }

    // Listing and exact look-ups see only the caller's tenant.
    for q in [
        "/users",
        "/users?email=victim@example.com",
        "/users?login_id=victim",
        "/users?q=victim",
    ] {
        let (status, page) = status_and_json(
            app.request(Method::GET, q, &globex.admin_token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        let ids: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap())
            .collect();
        assert!(!ids.contains(&victim.as_str()), "{q}: {page}");
    }

    // A cursor from one tenant is refused by another.
    for i in 0..3 {
        member(&app, &format!("m{i}")).await;
    }
    let (_, page) = status_and_json(
        app.as_admin(Method::GET, "/users?limit=1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let resp = app
        .request(
            Method::GET,
            &format!("/users?limit=1&cursor={cursor}"),
            &globex.admin_token,
        )
        .send()
        .await
        .unwrap();
    assert_problem(resp, 400, "invalid_cursor").await;

    // The same email may exist in both tenants: uniqueness is per tenant.
    let resp = app
        .request(Method::POST, "/users", &globex.admin_token)
        .json(&json!({"login_id": "victim", "email": "victim@example.com", "name": "Other victim"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    let (status, still) =
        status_and_json(app.as_admin(Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(
        (status, still["name"].as_str(), still["version"].as_u64()),
        (200, Some("victim"), Some(1))
    );
}

#[tokio::test]
async fn members_read_only_themselves() {
    let app = spawn_app().await;
    let (me, my_token) = member(&app, "me").await;
    let (other, _) = member(&app, "other").await;

    let resp = app
        .request(Method::GET, &format!("/users/{me}"), &my_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    for (method, path) in [
        (Method::GET, format!("/users/{other}")),
        (Method::GET, "/users".to_owned()),
        (Method::DELETE, format!("/users/{other}")),
        (Method::POST, format!("/users/{other}/suspend")),
    ] {
        let resp = app.request(method, &path, &my_token).send().await.unwrap();
        assert_problem(resp, 403, "forbidden").await;
    }
    let resp = app
        .request(Method::PATCH, &format!("/users/{me}"), &my_token)
        .json(&json!({"name": "promoted?", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 403, "forbidden").await;
    let resp = app
        .request(Method::POST, "/users", &my_token)
        .json(&json!({"login_id": "x", "email": "x@example.com", "name": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 403, "forbidden").await;
}

#[tokio::test]
async fn managers_manage_members_but_not_admins_or_managers() {
    let app = spawn_app().await;
    let mgr = app
        .create_user(json!({"login_id": "mgr", "email": "mgr@example.com", "name": "Manager", "role": "manager"}))
        .await;
    let mgr_id = UserId::parse(mgr["id"].as_str().unwrap()).unwrap();
    let mgr_token = token(&app.acme.id, &mgr_id, Role::Manager);
    let (member_id, _) = member(&app, "staff").await;
    let admin_id = app.acme.admin.id.to_string();

    // Reads everyone.
    let resp = app
        .request(Method::GET, "/users", &mgr_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .request(Method::GET, &format!("/users/{admin_id}"), &mgr_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Creates members, not managers or admins.
    let resp = app
        .request(Method::POST, "/users", &mgr_token)
        .json(&json!({"login_id": "new1", "email": "new1@example.com", "name": "New"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    for role in ["manager", "admin"] {
        let resp = app
            .request(Method::POST, "/users", &mgr_token)
            .json(&json!({"login_id": format!("n-{role}"), "email": format!("{role}@example.net"), "name": "N", "role": role}))
            .send()
            .await
            .unwrap();
        assert_problem(resp, 403, "forbidden").await;
    }

    // Edits and suspends members; can't promote them.
    let resp = app
        .request(Method::PATCH, &format!("/users/{member_id}"), &mgr_token)
        .json(&json!({"department": "総務部"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .request(Method::PATCH, &format!("/users/{member_id}"), &mgr_token)
        .json(&json!({"role": "manager"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 403, "forbidden").await;
    let resp = app
        .request(
            Method::POST,
            &format!("/users/{member_id}/suspend"),
            &mgr_token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Leaves admins alone.
    for (method, path) in [
        (Method::DELETE, format!("/users/{admin_id}")),
        (Method::POST, format!("/users/{admin_id}/suspend")),
    ] {
        let resp = app.request(method, &path, &mgr_token).send().await.unwrap();
        assert_problem(resp, 403, "forbidden").await;
    }
    let resp = app
        .request(Method::PATCH, &format!("/users/{admin_id}"), &mgr_token)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 403, "forbidden").await;
}

#[tokio::test]
async fn nobody_deletes_suspends_or_demotes_themselves() {
    let app = spawn_app().await;
    let me = app.acme.admin.id.to_string();
    for (method, path) in [
        (Method::DELETE, format!("/users/{me}")),
        (Method::POST, format!("/users/{me}/suspend")),
    ] {
        let resp = app.as_admin(method, &path).send().await.unwrap();
        assert_problem(resp, 403, "self_action_forbidden").await;
    }
    let resp = app
        .as_admin(Method::PATCH, &format!("/users/{me}"))
        .json(&json!({"role": "member"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 403, "self_action_forbidden").await;

    // Editing one's own profile is fine.
    let resp = app
        .as_admin(Method::PATCH, &format!("/users/{me}"))
        .json(&json!({"department": "情報システム部"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_removed_by_any_path() {
    let app = spawn_app().await;
    // A break-glass token (an admin of the identity provider with no directory entry) is the
    // only caller that could remove the tenant's only admin: even it is refused.
    let operator = token(&app.acme.id, &UserId::generate(), Role::Admin);
    let admin = app.acme.admin.id.to_string();
    for (method, path, body) in [
        (Method::DELETE, format!("/users/{admin}"), None),
        (Method::POST, format!("/users/{admin}/suspend"), None),
        (
            Method::PATCH,
            format!("/users/{admin}"),
            Some(json!({"role": "manager"})),
        ),
    ] {
        let mut req = app.request(method, &path, &operator);
        if let Some(b) = body {
            req = req.json(&b);
        }
        assert_problem(req.send().await.unwrap(), 409, "last_admin").await;
    }
    let (_, still) = status_and_json(
        app.as_admin(Method::GET, &format!("/users/{admin}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (still["status"].as_str(), still["role"].as_str()),
        (Some("active"), Some("admin"))
    );
}

#[tokio::test]
async fn while_an_import_holds_the_tenant_api_writes_get_409_and_a_dead_lease_frees_it() {
    let app = spawn_app().await;
    let (victim, _) = member(&app, "locked").await;
    let put_lock = |lease_ms: i64| {
        app.store
            .client()
            .put_item()
            .table_name(app.store.table())
            .item("pk", AttributeValue::S("TENANT#acme".into()))
            .item("sk", AttributeValue::S("LOCK#IMPORT".into()))
            .item("entity", AttributeValue::S("lock".into()))
            .item(
                "job_id",
                AttributeValue::S("01JOBJOBJOBJOBJOBJOBJOBJOB".into()),
            )
            .item("lease_expires_at", AttributeValue::N(lease_ms.to_string()))
            .send()
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    put_lock(now_ms + 60_000).await.unwrap();

    let resp = app
        .as_admin(Method::POST, "/users")
        .json(&json!({"login_id": "during", "email": "during@example.com", "name": "During"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "import_in_progress").await;
    for (method, path) in [
        (Method::DELETE, format!("/users/{victim}")),
        (Method::POST, format!("/users/{victim}/suspend")),
    ] {
        assert_problem(
            app.as_admin(method, &path).send().await.unwrap(),
            409,
            "import_in_progress",
        )
        .await;
    }
    // Reads still work.
    let resp = app
        .as_admin(Method::GET, &format!("/users/{victim}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // A lease that ran out (the import died) no longer blocks.
    put_lock(now_ms - 1).await.unwrap();
    let resp = app
        .as_admin(Method::POST, "/users")
        .json(&json!({"login_id": "after", "email": "after@example.com", "name": "After"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}
