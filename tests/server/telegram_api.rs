//! The tests' stand-in for Telegram's Bot API, `helpers/telegram_api.rs`, from where the
//! delivery benchmark takes it into its own build.

#[path = "helpers/telegram_api.rs"]
mod api;

pub use api::*;
