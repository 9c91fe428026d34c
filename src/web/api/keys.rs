//! `/api-keys`: API keys for applications (resource keys) and scripts (admin keys), as the
//! console and a resource's API keys tab make them. A new key is in the answer that creates it
//! and nowhere else: only its hash is kept. A revoked key is refused from the next request on.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{AdminRefusals, ErrorBody};
use super::query::QueryParams;
use super::{AdminCaller, ApiError, ApiJson, IdOrName};
use crate::clock::now;
use crate::crypto;
use crate::domain::KeyScope;
use crate::store::ApiKeyRecord;
use crate::web::AppState;

/// A key to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// Who uses the key, e.g. "vpn-gateway".
    name: String,
    /// The resource whose authentication endpoints the key may call: its id, or its name.
    /// Absent or null: an admin key, which may manage every object.
    resource: Option<IdOrName>,
}

/// What a key may do.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyScope {
    /// Manage every object.
    Admin,
    /// Call the authentication endpoints of one resource.
    Resource,
}

/// A resource named by id and name.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyResource {
    id: i64,
    name: String,
}

/// An API key as listed: never the key itself.
#[derive(Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct ApiKeyJson {
    id: i64,
    name: String,
    /// How the key begins (`og_` and its public prefix), to tell keys apart.
    begins_with: String,
    scope: ApiKeyScope,
    /// The resource of a resource key.
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<ApiKeyResource>,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds; null while the key works.
    revoked_at: Option<i64>,
}

impl From<ApiKeyRecord> for ApiKeyJson {
    fn from(record: ApiKeyRecord) -> Self {
        let (scope, resource) = match record.scope {
            KeyScope::Admin => (ApiKeyScope::Admin, None),
            KeyScope::Resource(id) => (
                ApiKeyScope::Resource,
                Some(ApiKeyResource {
                    id,
                    name: record.resource_name.unwrap_or_default(),
                }),
            ),
        };
        ApiKeyJson {
            id: record.id,
            name: record.name,
            begins_with: format!("og_{}.", record.prefix),
            scope,
            resource,
            created_at: record.created_at,
            revoked_at: record.revoked_at,
        }
    }
}

/// A key just created, with the key itself: this answer is the only place it is ever shown.
#[derive(Serialize, ToSchema)]
pub struct NewApiKey {
    #[serde(flatten)]
    listed: ApiKeyJson,
    /// The key, to send as `Authorization: Bearer KEY`. Store it now: otpgate keeps only its
    /// hash and cannot show it again.
    key: String,
}

/// Every API key, oldest first.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    items: Vec<ApiKeyJson>,
}

/// Creates an API key and answers it once, with the key itself.
#[utoipa::path(
    tag = "api-keys",
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "The new key, with the key itself (shown only in this answer)", body = NewApiKey),
        (status = 400, description = "A field is missing or invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such resource", body = ErrorBody),
    )
)]
#[post("/api-keys")]
pub(super) async fn create_api_key(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<CreateApiKey>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let name = crate::domain::key_name(&body.name)?;
    let key = crypto::new_api_key()?;
    let created = state
        .store
        .create_api_key(
            name,
            key.prefix,
            key.hash,
            body.resource,
            caller.change("apikey.create"),
            now(),
        )
        .await?
        .ok_or(ApiError::NotFound("resource"))?;
    Ok(HttpResponse::Created().json(NewApiKey {
        listed: created.into(),
        key: key.key,
    }))
}

/// Lists every API key, revoked ones included, oldest first; never the keys themselves.
#[utoipa::path(
    tag = "api-keys",
    responses(
        (status = 200, description = "Every key", body = ApiKeyList),
        (status = 400, description = "An unknown parameter; `field` names it", body = ErrorBody),
        AdminRefusals,
    )
)]
#[get("/api-keys")]
pub(super) async fn list_api_keys(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    QueryParams::parse(&request, &[])?;
    let keys = state.store.api_keys().await?;
    Ok(HttpResponse::Ok().json(ApiKeyList {
        items: keys.into_iter().map(ApiKeyJson::from).collect(),
    }))
}

/// Revokes an API key: from the next request on, it is refused (also when the server had
/// just accepted it). The key stays in the list, revoked.
#[utoipa::path(
    tag = "api-keys",
    params(("key" = i64, Path, description = "The key's id, as listed")),
    responses(
        (status = 204, description = "The key is revoked"),
        AdminRefusals,
        (status = 404, description = "No such key, or it is revoked already", body = ErrorBody),
    )
)]
#[post("/api-keys/{key}/revoke")]
pub(super) async fn revoke_api_key(
    caller: AdminCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let key_id = request
        .match_info()
        .get("key")
        .filter(|text| text.bytes().all(|byte| byte.is_ascii_digit()))
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or(ApiError::NotFound("API key"))?;
    let revoked = state
        .store
        .revoke_api_key(key_id, caller.change("apikey.revoke"), now())
        .await?;
    if !revoked {
        return Err(ApiError::NotFound("API key"));
    }
    Ok(HttpResponse::NoContent().finish())
}
