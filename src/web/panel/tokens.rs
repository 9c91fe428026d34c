//! The admin panel's tokens pages.

use actix_web::web;

pub fn routes(_config: &mut web::ServiceConfig) {}
