//! End-to-end tests: the real router over HTTP, the real AWS SDK, against moto on loopback.
//! Each test has its own table, so they run in parallel.

mod access;
mod api_tokens;
mod billing;
mod browser;
mod clients;
mod concurrency;
mod errors;
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
