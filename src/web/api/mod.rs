//! The JSON API under `/api/v1`: authentication for applications (resource keys) and
//! management of every object (admin keys). `ApiCaller` checks the bearer key and
//! `AdminCaller` requires an admin key; `ApiJson` parses bodies and names the field at fault;
//! `ApiError` is the one mapping of errors to `{"error":{"code","message","field"}}`, with
//! stable codes. The OpenAPI document is generated from the handlers' `#[utoipa::path]`
//! annotations, so it lists exactly the routes served; `constraints` adds the limits the
//! checks enforce.

mod address;
mod audit;
mod auth;
mod bot;
mod caller;
mod constraints;
mod deliveries;
mod directories;
mod enrolment;
mod error;
mod general;
mod json;
mod keys;
mod query;
mod radius;
mod radius_attributes;
mod resources;
mod self_service;
mod settings;
mod tokens;
mod users;

pub use crate::domain::IdOrName;
pub use caller::{AdminCaller, ApiCaller, KeyCache};
pub use constraints::state_constraints;
pub use error::ApiError;
pub use json::ApiJson;

use actix_web::{HttpResponse, get, web};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "otpgate API",
        description = "Authenticate users with one-time passwords and manage users, tokens and resources. \
                       Send an API key as `Authorization: Bearer KEY`: a resource key may call the \
                       authentication endpoints of its resource, an admin key may manage objects. \
                       A body is a JSON object of at most 256 KiB (413 beyond); every GET also \
                       answers HEAD, and a method an address does not take answers 405 with Allow."
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "api_key",
            Vec::<String>::new(),
        )]);
    }
}

/// Registers every API route; each handler carries its OpenAPI annotation.
pub fn configure(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    config.service(openapi_json);
    config.service(auth::prepare);
    config.service(auth::authenticate);
    config.service(users::create_user);
    config.service(users::list_users);
    config.service(users::get_user);
    config.service(users::update_user);
    config.service(users::set_password);
    config.service(users::unlock_user);
    config.service(users::enable_user);
    config.service(users::disable_user);
    config.service(users::delete_user);
    config.service(resources::create_resource);
    config.service(resources::list_resources);
    config.service(resources::get_resource);
    config.service(resources::update_resource);
    config.service(resources::delete_resource);
    config.service(resources::assign_user);
    config.service(resources::unassign_user);
    config.service(resources::resource_users);
    config.service(resources::assign_token);
    config.service(resources::unassign_token);
    config.service(resources::resource_tokens);
    config.service(tokens::import_tokens);
    config.service(tokens::create_token);
    config.service(tokens::list_tokens);
    config.service(tokens::get_token);
    config.service(tokens::update_token);
    config.service(tokens::enable_token);
    config.service(tokens::disable_token);
    config.service(tokens::reset_token);
    config.service(tokens::resync_token);
    config.service(tokens::assign_token_user);
    config.service(tokens::unassign_token_user);
    config.service(tokens::delete_token);
    config.service(settings::get_mail);
    config.service(settings::put_mail);
    config.service(settings::test_mail);
    config.service(settings::get_sms);
    config.service(settings::put_sms);
    config.service(settings::test_sms);
    config.service(bot::get_bot);
    config.service(bot::put_bot);
    config.service(bot::issue_activation);
    config.service(bot::activation_status);
    config.service(deliveries::list_deliveries);
    config.service(radius::create_radius_client);
    config.service(radius::list_radius_clients);
    config.service(radius::get_radius_client);
    config.service(radius::update_radius_client);
    config.service(radius::delete_radius_client);
    configure_keys_and_settings(config);
    configure_audit_and_enrolment(config);
    configure_radius_replies(config);
    configure_directories(config);
}

/// What a resource adds to its RADIUS Access-Accepts, and the dictionary it draws from.
fn configure_radius_replies(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    config.service(radius_attributes::get_radius_attributes);
    config.service(radius_attributes::put_radius_attributes);
    config.service(radius_attributes::radius_dictionary);
}

/// Directories (LDAP, Active Directory): their settings, tests and previews, their people.
fn configure_directories(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    // The fixed addresses before `{directory}`, which would take them as names.
    config.service(directories::test_unsaved_directory);
    config.service(directories::preview_unsaved_directory);
    config.service(directories::create_directory);
    config.service(directories::list_directories);
    config.service(directories::get_directory);
    config.service(directories::update_directory);
    config.service(directories::delete_directory);
    config.service(directories::test_directory);
    config.service(directories::preview_directory);
    config.service(directories::add_directory_user);
    config.service(directories::sync_directory);
    config.service(directories::list_group_mappings);
    config.service(directories::add_group_mapping);
    config.service(directories::remove_group_mapping);
}

/// What the panel's API keys, Self-Service and General settings do, as routes: API keys,
/// a resource's Self-Service settings, the general settings.
fn configure_keys_and_settings(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    config.service(keys::create_api_key);
    config.service(keys::list_api_keys);
    config.service(keys::revoke_api_key);
    config.service(self_service::get_self_service);
    config.service(self_service::put_self_service);
    config.service(general::get_general);
    config.service(general::put_general);
}

/// The audit log and enrolment by the first code.
fn configure_audit_and_enrolment(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    config.service(audit::list_audit);
    config.service(audit::export_audit);
    config.service(enrolment::enrol_token);
    config.service(enrolment::confirm_token);
}

/// The generated OpenAPI document, shared by every worker.
pub struct OpenApiDocument(pub String);

/// The OpenAPI 3 description of this API.
#[utoipa::path(
    tag = "meta",
    security(()),
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
#[get("/openapi.json")]
async fn openapi_json(document: web::Data<OpenApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}

/// The answer to an unknown address under `/api`.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("endpoint"))
}
