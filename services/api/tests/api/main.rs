//! Integration tests of the api against the real PostgreSQL (a fresh database per test) and
//! the real NATS (a unique subject prefix per test), over HTTP on 127.0.0.1:0.
//!
//! One test binary with modules, so the suite links once.

// A panic in a test is a failure with a line number.
#![allow(clippy::unwrap_used)]

mod accounts;
mod auth;
mod controller;
mod documented_routes;
mod errors;
mod events;
mod health;
mod helpers;
mod messages;
mod orchestrators;
mod wrapped_store;
