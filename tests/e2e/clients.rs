//! `/clients` over HTTP: registering applications in RFC 7591's names, the secret shown once,
//! admins only, every bad field named; and a confidential client at the token endpoint.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, header};
use rollcall::domain::{Role, Status};
use rollcall::oidc::ClientId;
use rollcall_e2e::{assert_problem, spawn_app, status_and_json, token};
use serde_json::json;

use crate::signin::{PASSWORD, REDIRECT, browser, location_params, member, pkce, sign_in};

#[tokio::test]
async fn admins_register_list_read_and_remove_clients_and_see_a_secret_once() {
    let app = spawn_app().await;
    let resp = app
        .as_admin(Method::POST, "/clients")
        .json(&json!({
            "client_name": "Acme Portal",
            "redirect_uris": ["https://portal.acme.example/cb", "http://127.0.0.1/cb"],
            "post_logout_redirect_uris": ["https://portal.acme.example/bye"],
            "grant_types": ["authorization_code", "refresh_token"]
        }))
        .send()
        .await
        .unwrap();
    let (status, confidential) = status_and_json(resp).await;
    assert_eq!(status, 201, "{confidential}");
    assert_eq!(
        confidential["token_endpoint_auth_method"], "client_secret_basic",
        "RFC 7591 default"
    );
    assert_eq!(confidential["client_secret"].as_str().unwrap().len(), 43);
    assert_eq!(confidential["client_secret_expires_at"], 0);
    let id = confidential["client_id"].as_str().unwrap().to_owned();

    let resp = app
        .as_admin(Method::POST, "/clients")
        .json(&json!({
            "client_name": "Acme CLI",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none"
        }))
        .send()
        .await
        .unwrap();
    let (status, public) = status_and_json(resp).await;
    assert_eq!(status, 201);
    assert!(public.get("client_secret").is_none());
    assert_eq!(public["grant_types"], json!(["authorization_code"]));

    let (status, list) =
        status_and_json(app.as_admin(Method::GET, "/clients").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(list["clients"].as_array().unwrap().len(), 2);
    assert!(
        list.to_string().find("client_secret\"").is_none(),
        "never the secret again"
    );

    let (status, one) = status_and_json(
        app.as_admin(Method::GET, &format!("/clients/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["redirect_uris"][1], "http://127.0.0.1/cb");
    assert!(one.get("client_secret").is_none());

    let resp = app
        .as_admin(Method::DELETE, &format!("/clients/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_problem(
        app.as_admin(Method::GET, &format!("/clients/{id}"))
            .send()
            .await
            .unwrap(),
        404,
        "client_not_found",
    )
    .await;
    assert_problem(
        app.as_admin(Method::DELETE, &format!("/clients/{id}"))
            .send()
            .await
            .unwrap(),
        404,
        "client_not_found",
    )
    .await;
    assert_problem(
        app.as_admin(Method::GET, "/clients/not-an-id")
            .send()
            .await
            .unwrap(),
        404,
        "client_not_found",
    )
    .await;
}

#[tokio::test]
async fn bad_client_metadata_is_refused_field_by_field_and_members_are_forbidden() {
    let app = spawn_app().await;
    let resp = app
        .as_admin(Method::POST, "/clients")
        .json(&json!({
            "client_name": "",
            "redirect_uris": ["http://portal.acme.example/cb", "https://ok.example/cb#frag", "https://ok.example/a", "https://ok.example/a"],
            "token_endpoint_auth_method": "private_key_jwt",
            "grant_types": ["refresh_token", "implicit"],
            "logo": "x"
        }))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(resp, 422, "validation_failed").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "client_name",
        "redirect_uris[0]",
        "redirect_uris[1]",
        "redirect_uris[3]",
        "token_endpoint_auth_method",
        "grant_types[1]",
        "grant_types",
        "logo",
    ] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }

    let member = member(&app, "kazu", Status::Active).await;
    let member_token = token(&app.acme.id, &member.id, Role::Member);
    for (method, path) in [(Method::GET, "/clients"), (Method::POST, "/clients")] {
        let resp = app
            .request(method, path, &member_token)
            .json(&json!({"client_name": "x", "redirect_uris": ["https://x.example/cb"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
    }
}

#[tokio::test]
async fn a_confidential_client_redeems_its_code_only_with_its_secret_by_basic_auth() {
    let app = spawn_app().await;
    member(&app, "mika", Status::Active).await;
    let resp = app
        .as_admin(Method::POST, "/clients")
        .json(
            &json!({"client_name": "Acme Server", "redirect_uris": ["http://127.0.0.1/callback"]}),
        )
        .send()
        .await
        .unwrap();
    let (_, created) = status_and_json(resp).await;
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let client = app
        .store
        .get_client(&app.acme.id, &ClientId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();

    let exchange = |auth: Option<String>, extra: Vec<(&'static str, String)>| {
        let app = &app;
        let client = &client;
        async move {
            let (verifier, challenge) = pkce();
            let resp = sign_in(app, &browser(), client, &challenge, "mika", PASSWORD).await;
            let code = location_params(&resp)["code"].clone();
            let mut form = vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("redirect_uri", REDIRECT.to_owned()),
                ("code_verifier", verifier),
            ];
            form.extend(extra);
            let mut req = browser()
                .post(format!("{}/t/acme/token", app.base))
                .form(&form);
            if let Some(a) = auth {
                req = req.header(header::AUTHORIZATION, a);
            }
            req.send().await.unwrap()
        }
    };
    let basic =
        |id: &str, secret: &str| format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));

    let ok = exchange(Some(basic(&id, &secret)), vec![]).await;
    assert_eq!(ok.status(), 200);

    let wrong = exchange(Some(basic(&id, &"x".repeat(43))), vec![]).await;
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(
        wrong.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_client"
    );

    // As a public client (no secret), or with the secret in the body: refused.
    let public = exchange(None, vec![("client_id", id.clone())]).await;
    assert_eq!(public.status(), 401);
    let posted = exchange(
        None,
        vec![("client_id", id.clone()), ("client_secret", secret.clone())],
    )
    .await;
    assert_eq!(posted.status(), 401);
}
