//! The admin panel over HTTPS with its forms and CSRF tokens: the first-start setup, the
//! administrators' login, and each of its pages.

mod admins;
mod approvals;
mod audit;
mod cookies;
mod directories;
mod directory_users;
mod login;
mod radius;
mod radius_attributes;
mod refusals;
mod resources;
mod settings;
mod setup;
mod tokens;
mod users;
