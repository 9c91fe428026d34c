//! The admin panel's settings pages.

use actix_web::web;

pub fn routes(_config: &mut web::ServiceConfig) {}
