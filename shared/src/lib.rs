//! # rollcall
//!
//! The library every rollcall function stands on: the domain values that make invalid users
//! impossible to build ([`domain`]), the single-table DynamoDB store that keeps them
//! ([`store`]), the mail it sends ([`mail`]), typed configuration read once at start-up ([`config`]), the clock everything asks
//! for "now" ([`clock`]) and log set-up ([`telemetry`]).
//!
//! Functions convert their input (HTTP bodies, CSV rows, events) into domain values once, at the
//! edge, and hand those to the store; nothing past the edge re-validates.
#![warn(missing_docs)]

pub mod account;
pub mod clock;
pub mod config;
pub mod csv;
pub mod digest;
pub mod domain;
pub mod files;
pub mod import;
pub mod mail;
pub mod oidc;
pub mod retry;
pub mod store;
pub mod telemetry;
