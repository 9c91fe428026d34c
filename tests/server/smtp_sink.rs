//! The tests' SMTP server, `helpers/smtp_sink.rs`, from where the delivery benchmark takes it
//! into its own build.

#[path = "helpers/smtp_sink.rs"]
mod sink;

pub use sink::*;
