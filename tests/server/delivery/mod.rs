//! Codes delivered by email, SMS and the Telegram bot, end to end against real servers on
//! loopback that stand in for the mail server, the SMS gateway and Telegram.

mod approvals;
mod bot;
mod credentials;
mod mail;
mod sms;
