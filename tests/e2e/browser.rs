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

/// Waits until the page has loaded and `selector` is on it.
async fn wait_for(browser: &Browser, selector: &str) {
    let script = format!(
        "return document.readyState === 'complete' && !!document.querySelector({});",
        json!(selector)
    );
    let found = browser.poll(&script, |v| *v == json!(true), WAIT).await;
    assert_eq!(
        found,
        json!(true),
        "{selector} on {}",
        browser.url().await.unwrap()
    );
}

/// Waits until the page's `<h1>` contains `text`.
async fn wait_for_heading(browser: &Browser, text: &str) {
    let script = "if (document.readyState !== 'complete') return null; \
                  const h = document.querySelector('h1'); return h ? h.textContent : null;";
    let found = browser
        .poll(
            script,
            |v| v.as_str().is_some_and(|h| h.contains(text)),
            WAIT,
        )
        .await;
    assert!(
        found.as_str().is_some_and(|h| h.contains(text)),
        "{text:?}, got {found} at {}",
        browser.url().await.unwrap()
    );
}

async fn fill(browser: &Browser, selector: &str, text: &str) {
    let field = browser.find(selector).await.unwrap();
    browser.clear(&field).await.unwrap();
    browser.type_into(&field, text).await.unwrap();
}

async fn submit(browser: &Browser) {
    browser
        .click(&browser.find("form button[type=submit]").await.unwrap())
        .await
        .unwrap();
}

/// The rule's class as the page shows it now.
async fn rule_class(browser: &Browser, code: &str) -> String {
    browser
        .execute(
            "const li = document.querySelector(`[data-rule=${arguments[0]}]`); return li ? li.className : null;",
            json!([code]),
        )
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Opens `url` in both languages (`lang=` or `ui_locales=`), checking each with axe and taking
/// its screenshot as `{name}-{lang}`; ends on the English one.
async fn both_languages(browser: &Browser, url: &str, param: &str, name: &str) {
    for lang in ["ja", "en"] {
        let sep = if url.contains('?') { '&' } else { '?' };
        browser
            .goto(&format!("{url}{sep}{param}={lang}"))
            .await
            .unwrap();
        wait_for(browser, &format!("html[lang={lang}] h1")).await;
        check_page(browser, &format!("{name}-{lang}")).await;
    }
}

#[tokio::test]
async fn the_account_pages_in_a_real_browser_from_invitation_to_code_to_reset() {
    use rollcall::clock::ManualClock;
    use rollcall::domain::PageSettings;
    use std::sync::Arc;

    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = rollcall_e2e::spawn_app_with_clock(clock.clone()).await;
    let client = public_client(&app).await;
    let start = sign_in_url(&app, &client, "en");
    app.store
        .set_page_settings(
            &app.acme.id,
            &PageSettings {
                app_url: Some(start.clone()),
                accent_colour: Some("#0b6e4f".into()),
                ..PageSettings::default()
            }
            .check()
            .unwrap(),
        )
        .await
        .unwrap();
    let email = rollcall_e2e::unique_address("aoi");
    app.create_user(json!({"login_id": "aoi", "email": email, "name": "青井 葵", "language": "en", "two_step": true}))
        .await;
    let deliver = || async {
        let sender = app.sender().await;
        app.poller().await.poll(&sender).await.expect("a poll");
    };
    deliver().await;
    let newest = |mail: Vec<rollcall_cli::mail::SentMail>| mail.last().expect("a mail").clone();
    let invitation = newest(rollcall_e2e::mail_to(&email).await).links()[0].clone();

    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.session(1280, 900).await.expect("a browser");

    // The invitation page: with scripts on, the rules tick as the person types.
    both_languages(&browser, &invitation, "lang", "invitation").await;
    fill(&browser, "#password", "sakura").await;
    assert_eq!(rule_class(&browser, "password_needs_lower").await, "met");
    assert_eq!(rule_class(&browser, "password_needs_upper").await, "broken");
    fill(&browser, "#password", "Sakura#2026").await;
    assert_eq!(rule_class(&browser, "password_needs_upper").await, "met");
    assert_eq!(rule_class(&browser, "password_too_short").await, "met");
    // A weak one submitted anyway is refused, announced, each broken rule marked (in each
    // language: the page keeps the one it was in).
    for lang in ["ja", "en"] {
        browser
            .goto(&format!("{invitation}?lang={lang}"))
            .await
            .unwrap();
        wait_for(&browser, &format!("html[lang={lang}] #password")).await;
        fill(&browser, "#password", "sakura").await;
        fill(&browser, "#confirm", "sakura").await;
        submit(&browser).await;
        let refused = browser
            .poll(
                &format!(
                    "if (document.readyState !== 'complete' || document.documentElement.lang !== '{lang}') return null;\
                     const e = document.getElementById('form-error');\
                     return e && e.textContent.trim().length > 0;"
                ),
                |v| *v == json!(true),
                WAIT,
            )
            .await;
        assert_eq!(refused, json!(true), "{lang}");
        assert_eq!(
            rule_class(&browser, "password_needs_symbol").await,
            "broken"
        );
        check_page(&browser, &format!("invitation-refused-{lang}")).await;
    }
    // A good one: signed in, at the client's redirect with a code.
    fill(&browser, "#password", PASSWORD).await;
    fill(&browser, "#confirm", PASSWORD).await;
    submit(&browser).await;
    let landed = browser
        .wait_for_url(|u| u.starts_with(REDIRECT), WAIT)
        .await
        .unwrap();
    assert!(landed.contains("code="), "{landed}");

    // The account page while signed in.
    both_languages(
        &browser,
        &format!("{}/t/acme/account", app.base),
        "lang",
        "account",
    )
    .await;

    // Sign out, then in again: the password, then the code from the mail.
    browser
        .goto(&format!("{}/t/acme/logout", app.base))
        .await
        .unwrap();
    wait_for(&browser, "form button[type=submit]").await;
    submit(&browser).await;
    browser
        .poll(
            "return document.readyState === 'complete' && !document.querySelector('form');",
            |v| *v == json!(true),
            WAIT,
        )
        .await;
    browser.goto(&start).await.unwrap();
    wait_for(&browser, "#login").await;
    fill(&browser, "#login", "aoi").await;
    fill(&browser, "#password", PASSWORD).await;
    submit(&browser).await;
    wait_for(&browser, "#code").await;
    check_page(&browser, "code-en").await;
    // The page in Japanese and back (a link; it mails nothing).
    let ja = browser
        .execute(
            "return document.querySelector('a[hreflang=ja]').href;",
            json!([]),
        )
        .await
        .unwrap();
    browser.goto(ja.as_str().unwrap()).await.unwrap();
    wait_for(&browser, "html[lang=ja] #code").await;
    check_page(&browser, "code-ja").await;
    deliver().await;
    let code_mails: Vec<_> = rollcall_e2e::mail_to(&email)
        .await
        .into_iter()
        .filter_map(|m| m.code())
        .collect();
    assert_eq!(
        code_mails.len(),
        1,
        "one code mailed, none for the language switch"
    );
    fill(&browser, "#code", &code_mails[0]).await;
    submit(&browser).await;
    let landed = browser
        .wait_for_url(|u| u.starts_with(REDIRECT), WAIT)
        .await
        .unwrap();
    assert!(landed.contains("code="), "{landed}");

    // Forgot password, from the sign-in page's link to the mail and the reset page.
    browser
        .goto(&sign_in_url(&app, &client, "en").replace("&state=", "&prompt=login&state="))
        .await
        .unwrap();
    wait_for(&browser, "a[href*=forgot]").await;
    browser
        .click(&browser.find("a[href*=forgot]").await.unwrap())
        .await
        .unwrap();
    wait_for(&browser, "#login").await;
    let forgot = browser.url().await.unwrap();
    // Asks for a reset on the forgot-password page and returns the link the mail carries.
    let reset_link = || async {
        browser.goto(&forgot).await.unwrap();
        wait_for(&browser, "#login").await;
        fill(&browser, "#login", "aoi").await;
        submit(&browser).await;
        wait_for_heading(&browser, "Check your mail").await;
        deliver().await;
        newest(rollcall_e2e::mail_to(&email).await).links()[0].clone()
    };
    both_languages(
        &browser,
        &forgot.replace("lang=en", "x=1"),
        "lang",
        "forgot",
    )
    .await;
    // Asked for in Japanese, then in English: the newer link is the one that works.
    browser
        .goto(&format!("{}&lang=ja", forgot.replace("lang=en", "x=1")))
        .await
        .unwrap();
    wait_for(&browser, "html[lang=ja] #login").await;
    fill(&browser, "#login", "aoi").await;
    submit(&browser).await;
    wait_for_heading(&browser, "メールを確認してください").await;
    check_page(&browser, "forgot-sent-ja").await;
    deliver().await;
    browser.goto(&forgot).await.unwrap();
    wait_for(&browser, "html[lang=en] #login").await;
    fill(&browser, "#login", "aoi").await;
    submit(&browser).await;
    wait_for_heading(&browser, "Check your mail").await;
    check_page(&browser, "forgot-sent-en").await;
    deliver().await;
    let reset = newest(rollcall_e2e::mail_to(&email).await).links()[0].clone();
    assert!(reset.contains("/t/acme/reset/"), "{reset}");
    both_languages(&browser, &reset, "lang", "reset").await;
    fill(&browser, "#password", "Hinata#2027").await;
    fill(&browser, "#confirm", "Hinata#2027").await;
    submit(&browser).await;
    wait_for_heading(&browser, "Your password was changed").await;
    check_page(&browser, "reset-done-en").await;

    // An expired link: its own page, with the next step.
    clock.advance(chrono::Duration::seconds(1));
    let late = reset_link().await;
    clock.advance(chrono::Duration::minutes(61));
    both_languages(&browser, &late, "lang", "link-expired").await;
    assert!(browser.source().await.unwrap().contains("expired"));
    // A new one, set in Japanese.
    let fresh = reset_link().await;
    browser.goto(&format!("{fresh}?lang=ja")).await.unwrap();
    wait_for(&browser, "html[lang=ja] #password").await;
    fill(&browser, "#password", "Hinata#2028").await;
    fill(&browser, "#confirm", "Hinata#2028").await;
    submit(&browser).await;
    wait_for_heading(&browser, "パスワードを変更しました").await;
    check_page(&browser, "reset-done-ja").await;
    browser.quit().await.unwrap();

    // 200 % zoom: the password page fits half the width.
    let zoomed = driver.session(640, 450).await.expect("a browser");
    zoomed
        .goto(&format!("{}/t/acme/forgot?lang=ja", app.base))
        .await
        .unwrap();
    wait_for(&zoomed, "#login").await;
    assert!(
        fits_without_horizontal_scrolling(&zoomed).await,
        "forgot at 200 %"
    );
    check_page(&zoomed, "forgot-ja-200").await;
    zoomed.quit().await.unwrap();
}
