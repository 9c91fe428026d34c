//! The admin panel's resources pages.

use actix_web::web;

pub fn routes(_config: &mut web::ServiceConfig) {}
