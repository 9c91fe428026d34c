//! otpgate: an on-premise two-factor authentication server in one executable.
//!
//! See ARCHITECTURE.md for the map of the modules and their invariants.

pub mod app;
pub mod attempts;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod codes;
pub mod config;
pub mod confirm;
pub mod crypto;
pub mod delivery;
pub mod directories;
pub mod domain;
pub mod forwarded;
pub mod import;
pub mod ldap;
pub mod limiter;
pub mod listener;
pub mod metrics;
pub mod notices;
pub mod otp;
pub mod passwords;
pub mod provision;
pub mod radius;
pub mod self_service;
pub mod store;
pub mod tls;
pub mod waiters;
pub mod web;

pub use app::Application;
pub use config::Config;
