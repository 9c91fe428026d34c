//! What operators meet: the console commands, the running service's health check, metrics and
//! headers, the data directory and its database, and a server killed in the middle of its work.

mod command_line;
mod crash;
mod passwords;
mod service;
mod storage;
