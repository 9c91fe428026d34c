//! The admin panel's admins pages.

use actix_web::web;

pub fn routes(_config: &mut web::ServiceConfig) {}
