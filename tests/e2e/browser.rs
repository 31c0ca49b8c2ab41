//! The hosted pages in a real browser (Debian's headless Chromium through ChromeDriver, see
//! `rollcall_e2e::webdriver`): axe-core finds no WCAG 2.2 A/AA violation in either language,
//! the page fits a 200 % zoom, a refused sign-in is announced next to the fields, a good one
//! lands at the client with a code. Screenshots go to `target/pages/` (the current ones are
//! committed under `docs/pages/`).

use rollcall::domain::Status;
use rollcall_e2e::webdriver::{Browser, Driver};
use rollcall_e2e::{TestApp, spawn_app, workspace_root};
use serde_json::json;

/// How long a page may take to come.
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

use crate::signin::{PASSWORD, REDIRECT, authorize_query, member, pkce, public_client};

async fn check_page(browser: &Browser, name: &str) {
    let violations = browser.axe_violations().await.expect("axe ran");
    let summary: Vec<String> = violations
        .iter()
        .map(|v| format!("{}: {}", v["id"], v["help"]))
        .collect();
    assert!(summary.is_empty(), "{name}: {summary:#?}");
    browser
        .screenshot(
            &workspace_root()
                .join("target/pages")
                .join(format!("{name}.png")),
        )
        .await
        .expect("a screenshot");
}

async fn fits_without_horizontal_scrolling(browser: &Browser) -> bool {
    browser
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            json!([]),
        )
        .await
        .expect("script")
        .as_bool()
        .unwrap_or(false)
}

fn sign_in_url(app: &TestApp, client: &rollcall::oidc::Client, lang: &str) -> String {
    let (_, challenge) = pkce();
    format!(
        "{}/t/acme/authorize?{}",
        app.base,
        authorize_query(client, &challenge, &[("ui_locales", lang)])
    )
}

#[tokio::test]
async fn the_sign_in_page_in_a_real_browser_is_accessible_in_both_languages_and_signs_in() {
    let app = spawn_app().await;
    member(&app, "hanako", Status::Active).await;
    let client = public_client(&app).await;
    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.session(1280, 900).await.expect("a browser");

    // axe finds what it should: an image without alternative text on a page without a language.
    browser
        .goto("data:text/html,<title>t</title><img src='x.png'>")
        .await
        .unwrap();
    let found = browser.axe_violations().await.unwrap();
    assert!(
        found.iter().any(|v| v["id"] == "image-alt"),
        "axe can fail: {found:?}"
    );

    for lang in ["ja", "en"] {
        browser
            .goto(&sign_in_url(&app, &client, lang))
            .await
            .unwrap();
        assert!(
            browser
                .source()
                .await
                .unwrap()
                .contains(&format!("lang=\"{lang}\""))
        );
        check_page(&browser, &format!("signin-{lang}")).await;

        // A refused attempt: the page again, the message announced and tied to the fields.
        let login = browser.find("#login").await.unwrap();
        browser.clear(&login).await.unwrap();
        browser.type_into(&login, "hanako").await.unwrap();
        let password = browser.find("#password").await.unwrap();
        browser
            .type_into(&password, "Wrong-passw0rd!")
            .await
            .unwrap();
        browser
            .click(&browser.find("button[type=submit]").await.unwrap())
            .await
            .unwrap();
        let expected = json!(["alert", true, "true", "form-error"]);
        let refused = browser
            .poll(
                "if (document.readyState !== 'complete') return null;\
                 const e = document.getElementById('form-error');\
                 const p = document.getElementById('password');\
                 if (!e || !p) return null;\
                 return [e.getAttribute('role'), e.textContent.trim().length > 0,\
                         p.getAttribute('aria-invalid'), p.getAttribute('aria-describedby')];",
                |v| *v == expected,
                WAIT,
            )
            .await;
        assert_eq!(refused, expected, "{lang}");
        check_page(&browser, &format!("signin-refused-{lang}")).await;
    }

    // Signed in: the browser is sent to the client's redirect URI with a code.
    let password = browser.find("#password").await.unwrap();
    browser.type_into(&password, PASSWORD).await.unwrap();
    browser
        .click(&browser.find("button[type=submit]").await.unwrap())
        .await
        .unwrap();
    let landed = browser
        .wait_for_url(|u| u.starts_with(REDIRECT), WAIT)
        .await
        .unwrap();
    assert!(
        landed.contains("code=") && landed.contains("state=st-1"),
        "{landed}"
    );

    // An unknown client: an error page, itself accessible.
    browser
        .goto(&format!(
            "{}/t/acme/authorize?client_id=01J00000000000000000000000",
            app.base
        ))
        .await
        .unwrap();
    check_page(&browser, "error-en").await;
    browser.quit().await.unwrap();

    // 200 % zoom: the same page in half the width (CSS pixels) still fits, nothing cut off.
    let zoomed = driver.session(640, 450).await.expect("a browser");
    for lang in ["ja", "en"] {
        zoomed
            .goto(&sign_in_url(&app, &client, lang))
            .await
            .unwrap();
        assert!(
            fits_without_horizontal_scrolling(&zoomed).await,
            "{lang} at 200 %"
        );
        check_page(&zoomed, &format!("signin-{lang}-200")).await;
    }
    zoomed.quit().await.unwrap();
}
