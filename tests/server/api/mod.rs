//! The management and authentication API, spoken to as JSON with API keys.

mod addressing;
mod auth;
mod basics;
mod contract;
mod gateway;
mod guessing;
mod import;
mod logins;
mod openapi;
mod radius_clients;
mod refusals;
mod resources;
mod tokens;
mod users;
