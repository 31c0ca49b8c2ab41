//! Account pages benchmark, written into BENCHMARKS.md (between its `pages` markers): the
//! DynamoDB requests of each page view and form post of the invitation, forgot-password,
//! reset, account and code pages (counted against moto), the requests send-invitations makes
//! per reset and per code mail, and the server time of the forgot-password answer (held to its
//! floor) and of a code check.
//!
//! `make bench` (or `cargo bench -p rollcall-e2e --bench pages`).

use std::collections::BTreeMap;
use std::time::Instant;

use rollcall::domain::SignInPolicy;
use rollcall_e2e::{
    Page, TestApp, Visitor, describe_requests, hidden_fields, machine, mail_to, spawn_app,
    unique_address, write_benchmark_section,
};
use serde_json::json;

const PASSWORD: &str = "Tr0ub4dor&3";
const NEW_PASSWORD: &str = "Sakura#2027";

struct Rows(Vec<(String, String)>);

impl Rows {
    fn add(&mut self, what: &str, counts: &BTreeMap<String, u64>) {
        self.0.push((what.to_owned(), describe_requests(counts)));
    }
}

/// Delivers what the stream has since the last call: only the new records.
async fn deliver(
    app: &TestApp,
    poller: &mut rollcall_cli::streams::StreamPoller,
) -> BTreeMap<String, u64> {
    let sender = app.sender().await;
    let (_, counts) = app.counted(poller.poll(&sender)).await;
    counts
}

fn newest_link(mail: &[rollcall_cli::mail::SentMail]) -> String {
    mail.last().expect("a mail").links()[0].clone()
}

async fn sign_in_form(
    v: &mut Visitor,
    app: &TestApp,
    client: &str,
    login: &str,
) -> (Page, Vec<(&'static str, String)>) {
    let (_, challenge) = rollcall_e2e::pkce();
    let page = v
        .get(&format!(
            "{}/t/acme/authorize?response_type=code&client_id={client}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&scope=openid&state=s&code_challenge={challenge}&code_challenge_method=S256&prompt=login",
            app.base
        ))
        .await;
    let mut fields: Vec<(&'static str, String)> = hidden_fields(&page.html)
        .into_iter()
        .filter(|(k, _)| *k != "csrf")
        .collect();
    fields.push(("login", login.to_owned()));
    fields.push(("password", PASSWORD.to_owned()));
    (page, fields)
}

fn refs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let app = spawn_app().await;
    let client = rollcall_cli::bootstrap::register_cli_client(&app.store, &app.acme.id)
        .await
        .unwrap()
        .to_string();
    let mut rows = Rows(Vec::new());
    let mut poller = app.poller().await;

    // The invitation page.
    let email = unique_address("pages");
    app.create_user(
        json!({"login_id": "pages", "email": email, "name": "Pages", "language": "en"}),
    )
    .await;
    deliver(&app, &mut poller).await;
    let link = newest_link(&mail_to(&email).await);
    let mut v = Visitor::new();
    let (page, c) = app.counted(v.get(&link)).await;
    rows.add("invitation page (GET)", &c);
    let (weak, c) = app
        .counted(v.post(&link, &page, &[("password", "weak"), ("confirm", "weak")]))
        .await;
    assert_eq!(weak.status, 422);
    rows.add("invitation form, password refused", &c);
    let (done, c) = app
        .counted(v.post(
            &link,
            &weak,
            &[("password", PASSWORD), ("confirm", PASSWORD)],
        ))
        .await;
    assert_eq!(done.status, 200);
    rows.add("invitation form, password set and signed in", &c);

    // The account page.
    let account = format!("{}/t/acme/account", app.base);
    let (page, c) = app.counted(v.get(&account)).await;
    assert_eq!(page.status, 200);
    rows.add("account page (GET, signed in)", &c);
    let (changed, c) = app
        .counted(v.post(
            &account,
            &page,
            &[
                ("current", PASSWORD),
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
            ],
        ))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.html);
    rows.add("account form, password changed", &c);

    // Forgot password and the reset page.
    let forgot = format!("{}/t/acme/forgot", app.base);
    let mut f = Visitor::new();
    let (form, c) = app.counted(f.get(&forgot)).await;
    rows.add("forgot-password page (GET)", &c);
    let started = Instant::now();
    let (_, c) = app
        .counted(f.post(&forgot, &form, &[("login", "pages")]))
        .await;
    let known_time = started.elapsed();
    rows.add("forgot-password form, an account (mail queued)", &c);
    let reset_mail = deliver(&app, &mut poller).await;
    let started = Instant::now();
    let (_, c) = app
        .counted(f.post(&forgot, &form, &[("login", "nobody")]))
        .await;
    let unknown_time = started.elapsed();
    rows.add("forgot-password form, no such account", &c);
    let reset = newest_link(&mail_to(&email).await);
    let mut r = Visitor::new();
    let (page, c) = app.counted(r.get(&reset)).await;
    rows.add("reset page (GET)", &c);
    let (done, c) = app
        .counted(r.post(
            &reset,
            &page,
            &[("password", PASSWORD), ("confirm", PASSWORD)],
        ))
        .await;
    assert_eq!(done.status, 200);
    rows.add("reset form, password set, sessions revoked", &c);

    // The second step.
    app.store
        .set_sign_in_policy(
            &app.acme.id,
            SignInPolicy {
                two_step: rollcall::domain::TwoStep::Everyone,
                ..SignInPolicy::default()
            },
        )
        .await
        .unwrap();
    let mut s = Visitor::new();
    let (start, fields) = sign_in_form(&mut s, &app, &client, "pages").await;
    let signin = format!("{}/t/acme/signin", app.base);
    let (code_page, c) = app.counted(s.post(&signin, &start, &refs(&fields))).await;
    assert_eq!(code_page.status, 200);
    rows.add("sign-in form, password right, code mail queued", &c);
    let code_mail = deliver(&app, &mut poller).await;
    let code = mail_to(&email).await.last().unwrap().code().unwrap();
    let carried: Vec<(&'static str, String)> = hidden_fields(&code_page.html)
        .into_iter()
        .filter(|(k, _)| *k != "csrf")
        .collect();
    let mut wrong = carried.clone();
    wrong.push((
        "code",
        if code == "000000" { "111111" } else { "000000" }.into(),
    ));
    let code_url = format!("{}/t/acme/code", app.base);
    let (refused, c) = app
        .counted(s.post(&code_url, &code_page, &refs(&wrong)))
        .await;
    assert_eq!(refused.status, 422);
    rows.add("code form, wrong code", &c);
    let mut right = carried.clone();
    right.push(("code", code));
    let started = Instant::now();
    let (done, c) = app
        .counted(s.post(&code_url, &refused, &refs(&right)))
        .await;
    let code_time = started.elapsed();
    assert_eq!(done.status, 303, "{}", done.html);
    rows.add("code form, right code (session, authorization code)", &c);

    let table: String = rows
        .0
        .iter()
        .map(|(what, counts)| format!("| {what} | {counts} |\n"))
        .collect();
    let body = format!(
        "Measured on {machine}, against moto (`cargo bench -p rollcall-e2e --bench pages`). \
         DynamoDB requests per page view and form post, as a browser without scripts makes \
         them (the stylesheet and the script are static and cached; they touch nothing):\n\n\
         | step | requests |\n|---|---|\n{table}\n\
         Account mails take the invitations' path (outbox item → stream → send-invitations → \
         SES), so they cost what an invitation costs:\n\n\
         | mail | DynamoDB requests per mail (send-invitations) |\n|---|---|\n\
         | reset link | {reset_mail} |\n| sign-in code | {code_mail} |\n\n\
         Server time: the forgot-password answer took {known:.0} ms for an account and \
         {unknown:.0} ms for no account — both held to the {floor} ms floor, which is what \
         keeps them alike (the work behind either is far shorter). A right code took \
         {code_ms:.0} ms (no argon2id: the code's digest is compared, then one conditional \
         write spends it).\n",
        machine = machine(),
        reset_mail = describe_requests(&reset_mail),
        code_mail = describe_requests(&code_mail),
        known = ms(known_time),
        unknown = ms(unknown_time),
        floor = auth::forgot::FORGOT_ANSWER_FLOOR.as_millis(),
        code_ms = ms(code_time),
    );
    write_benchmark_section("pages", "Account pages", &body);
    println!("{body}");
}
