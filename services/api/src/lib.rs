//! `moolai-api`: the operators' side of the Moolai Controller.
//!
//! Serves the dashboard's REST API under `/api/v1` (fleet reads, organizations, independence
//! mode, session configuration, messages, costs, audit log), operator login, a live status
//! stream (SSE) fed by one NATS subscription per process, and the OpenAPI document. Operator
//! writes commit through the [`moolai_store::Store`] trait first, then publish status events
//! and edge commands through [`moolai_bus::Bus`].
//!
//! Modules:
//! - [`settings`]: `ApiSettings` (environment variables) and their validation;
//! - [`startup`]: `launch_with_listener` (tests), `run` and the CLI entry points;
//! - [`admin`]: `admin` subcommands (users, passwords, API tokens from the command line);
//! - [`password`]: argon2id hashing of operator passwords; [`throttle`]: login lockouts;
//! - [`router`]: route groups, authentication per group, the OpenAPI document, layers;
//! - [`routes`]: handlers, one module per area;
//! - [`auth`]: bearer tokens → [`auth::Principal`] with a role and an organization scope;
//! - [`error`], [`extract`], [`validation`], [`responses`]: the HTTP contract;
//! - [`state`]: what handlers share, and how they publish to NATS;
//! - [`report_cache`], [`listings`], [`row_cache`], [`fleet_view`], [`auth_cache`]: what is
//!   kept between requests, and how it is made stale.
//!
//! This crate must not write SQL (that is the store's), hold orchestrator sockets (the
//! edge's), or trust a stored status column (status is derived at read time, by the store or
//! with [`moolai_store::derive_status`] from the facts the fleet view read).
//! It is stateless: replicas share nothing but PostgreSQL and NATS.

// Tests may unwrap: a panic there is a test failure with a line number.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod auth;
pub mod auth_cache;
pub mod error;
pub mod extract;
pub mod fleet_view;
pub mod listings;
pub mod password;
pub mod report_cache;
pub mod responses;
pub mod router;
pub mod routes;
pub mod row_cache;
pub mod settings;
pub mod startup;
pub mod state;
pub mod throttle;
pub mod validation;

pub use error::ApiError;
pub use router::openapi;
pub use settings::{ApiSettings, ENVIRONMENT_HELP};
pub use startup::{
    ApiService, admin_from_env, launch_with_listener, migrate_from_env, print_openapi, run,
    serve_from_env,
};
