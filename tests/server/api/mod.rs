//! The management and authentication API, spoken to as JSON with API keys.

mod addressing;
mod audit;
mod auth;
mod basics;
mod contract;
mod directories;
mod directory_sync;
mod directory_users;
mod enrolment;
mod gateway;
mod guessing;
mod import;
mod logins;
mod openapi;
mod radius_attributes;
mod radius_clients;
mod readme;
mod refusals;
mod resources;
mod tokens;
mod users;
// API keys, Self-Service and the general settings.
mod general_settings;
mod keys;
mod self_service;
