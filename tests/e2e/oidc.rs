//! The provider driven by a stock OpenID Connect relying-party library (Authlib, pinned in
//! `infra/requirements-dev.txt`): `tests/oidc/rp.py` runs the whole flow against the app.

use chrono::Utc;
use rollcall::domain::{DisplayName, Status};
use rollcall::oidc::{AuthMethod, Client, ClientId, GrantType, RedirectUri};
use rollcall_e2e::{spawn_app, workspace_root};

use crate::signin::{PASSWORD, member};

#[tokio::test]
async fn a_stock_relying_party_library_signs_in_end_to_end() {
    let app = spawn_app().await;
    member(&app, "authlib", Status::Active).await;
    let redirect = "http://127.0.0.1:9/callback";
    let signed_out = "https://portal.acme.example/signed-out";
    let client = Client {
        id: ClientId::generate(),
        tenant: app.acme.id.clone(),
        name: DisplayName::parse("Authlib RP").unwrap(),
        redirect_uris: vec![RedirectUri::parse(redirect).unwrap()],
        post_logout_redirect_uris: vec![RedirectUri::parse(signed_out).unwrap()],
        auth_method: AuthMethod::None,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        secret_digest: None,
        created_at: Utc::now(),
    };
    app.store.put_client(&client).await.unwrap();
    let root = workspace_root();
    let python = rollcall_cli::local::python(&root);
    let issuer = format!("{}/t/acme", app.base);
    let client_id = client.id.to_string();
    let out = tokio::process::Command::new(python)
        .arg(root.join("tests/oidc/rp.py"))
        .args([
            &issuer, &client_id, redirect, signed_out, "authlib", PASSWORD,
        ])
        .output()
        .await
        .expect("running the relying party");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for step in [
        "discovery",
        "sign-in",
        "code exchange",
        "id token",
        "userinfo",
        "refresh rotation",
        "reuse detection",
        "revocation",
        "logout",
    ] {
        assert!(
            stdout.lines().any(|l| l == format!("ok {step}")),
            "{step}: {stdout}"
        );
    }
}
