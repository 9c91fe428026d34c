//! The management and authentication API, spoken to as JSON with API keys.

mod auth;
mod basics;
mod import;
mod logins;
mod openapi;
mod refusals;
mod resources;
mod tokens;
mod users;
