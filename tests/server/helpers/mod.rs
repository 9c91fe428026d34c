//! What the tests share: real otpgate servers to talk to, the outside services they deliver
//! to, and the browsers that drive their pages.

pub mod api;
pub mod app;
pub mod auth;
pub mod browser;
pub mod connection;
pub mod delivery;
pub mod directory;
pub mod otp;
pub mod page;
pub mod panel;
pub mod portal;
pub mod process;
pub mod radclient;
pub mod slapd;
pub mod sms_gateway;
pub mod smtp_sink;
pub mod telegram_api;
