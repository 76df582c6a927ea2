//! Handlers, one module per area. Every handler carries `#[utoipa::path]`, so the router and
//! the OpenAPI document are built from the same list (see [`crate::router`]).

pub mod auth;
pub mod controller;
pub mod docs;
pub mod events;
pub mod health;
pub mod messages;
pub mod orchestrators;
pub mod tokens;
pub mod users;
