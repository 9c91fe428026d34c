//! End-to-end tests: the real application on port 0, spoken to over HTTPS.

mod admin_login;
mod api_auth;
mod api_basics;
mod api_import;
mod api_openapi;
mod api_resources;
mod api_tokens;
mod api_users;
mod command_line;
mod crash;
mod delivery_mail;
mod delivery_sms;
mod delivery_support;
mod helpers;
mod operations;
mod panel_admins;
mod panel_audit;
mod panel_resources;
mod panel_settings;
mod panel_tokens;
mod panel_users;
mod setup;
mod sms_gateway;
mod smtp_sink;
mod storage;
