//! What operators meet: the console commands, the bounds on connections, the running service's
//! health check, metrics and headers, the data directory and its database, how browsers and
//! scrapers are told to reach it, and a server killed in the middle of its work.

mod command_line;
mod connections;
mod crash;
mod manners;
mod passwords;
mod power_cut;
mod service;
mod storage;
mod transport;
