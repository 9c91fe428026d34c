//! The admin panel's users pages.

use actix_web::web;

pub fn routes(_config: &mut web::ServiceConfig) {}
