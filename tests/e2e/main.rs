//! End-to-end tests: the real router over HTTP, the real AWS SDK, against moto on loopback.
//! Each test has its own table, so they run in parallel.

mod access;
mod account;
mod api_tokens;
mod billing;
mod browser;
mod clients;
mod concurrency;
mod errors;
mod import_chunks;
mod imports;
mod invitations;
mod lambda;
mod listing;
mod oidc;
mod openapi;
mod refresh;
mod requests;
mod signin;
mod template;
mod users;

/// The hidden fields of a page's first form but its CSRF token (the authorization request the
/// sign-in and code forms carry), in order.
pub fn signin_fields(html: &str) -> Vec<(&'static str, String)> {
    rollcall_e2e::hidden_fields(html)
        .into_iter()
        .filter(|(k, _)| *k != "csrf")
        .collect()
}
