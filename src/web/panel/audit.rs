//! The admin panel's audit pages.

use actix_web::web;

pub fn routes(_config: &mut web::ServiceConfig) {}
