//! End-to-end tests: the real application on port 0, spoken to over HTTPS.

mod api;
mod browser;
mod delivery;
mod helpers;
mod ops;
mod panel;
mod portal;
mod radius;
