//! The self-service portal over HTTPS, as a user's browser speaks to it: logging in, enrolling
//! and managing tokens, and changing one's own details within what the administrators allow.

mod account;
pub mod approvals;
mod directory_users;
mod enrol;
mod flash;
mod login;
mod policy;
mod refusals;
mod reissue;
mod rollout;
mod tokens;
