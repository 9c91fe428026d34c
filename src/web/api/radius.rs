//! Managing RADIUS clients through the API (admin keys only): the gateways that may ask, the
//! resource each authenticates for, and how its users type. The shared secret is write-only.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};

use super::address::{RADIUS_CLIENT_PARAMETER, RadiusClientAt};
use super::error::{AdminRefusals, ErrorBody};
use super::users::present;
use super::{AdminCaller, ApiError, ApiJson, IdOrName};
use crate::clock::now;
use crate::crypto::Purpose;
use crate::radius::clients::{
    DEFAULT_APPROVAL_WAIT, DEFAULT_CODE_LENGTH, Network, check_approval_wait, check_code_length,
    check_secret, name_taken, parse_approval_word, parse_client_name, parse_input_mode,
    parse_separator,
};
use crate::store::radius::{NewRadiusClient, RadiusClient, RadiusClientChanges, Saved};
use crate::web::AppState;

/// A RADIUS client as the API shows it; its shared secret is never shown.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = RadiusClient)]
pub struct RadiusClientJson {
    id: i64,
    name: String,
    /// The address or network (CIDR) its requests come from.
    address: String,
    /// The resource its users authenticate for.
    resource: ResourceRef,
    /// Requests without a Message-Authenticator are dropped.
    require_message_authenticator: bool,
    /// `password_code`, `code_password`, `static_challenge`, `code_only` or `challenge`
    /// (password first, then the code asked for by an Access-Challenge).
    input_mode: String,
    /// Between password and code in `password_code` and `code_password`; null: none, the
    /// code being the last (or first) `code_length` characters.
    separator: Option<String>,
    code_length: i64,
    /// Seconds an Access-Request is held for the user's decision in Telegram (Approve in
    /// Telegram); the gateway's own RADIUS timeout must be longer.
    approval_wait: i64,
    /// The word (`push`) that asks for an approval: typed after the password in the one-field
    /// modes, in the second box of OpenVPN's static challenge, as the answer to the challenge;
    /// null: the password alone (or an empty answer) asks.
    approval_word: Option<String>,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    updated_at: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ResourceRef {
    id: i64,
    name: String,
}

impl From<RadiusClient> for RadiusClientJson {
    fn from(client: RadiusClient) -> Self {
        RadiusClientJson {
            id: client.id,
            name: client.name,
            address: client.network,
            resource: ResourceRef {
                id: client.resource_id,
                name: client.resource_name,
            },
            require_message_authenticator: client.require_message_authenticator,
            input_mode: client.input_mode,
            separator: client.separator,
            code_length: client.code_length,
            approval_wait: client.approval_wait_seconds,
            approval_word: client.approval_word,
            created_at: client.created_at,
            updated_at: client.updated_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RadiusClientList {
    items: Vec<RadiusClientJson>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRadiusClient {
    /// 1–100 characters, not a number; unique regardless of case.
    name: String,
    /// An IPv4 or IPv6 address, or a network in CIDR form (`10.0.0.0/24`).
    address: String,
    /// The shared secret: 8–128 printable ASCII characters, 16 or more advised.
    secret: String,
    /// The resource: a number is its id, a string its name.
    resource: IdOrName,
    /// True when absent.
    #[serde(default)]
    require_message_authenticator: Option<bool>,
    /// `password_code` (when absent), `code_password`, `static_challenge`, `code_only` or
    /// `challenge` (password first, then the code asked for by an Access-Challenge).
    #[serde(default)]
    input_mode: Option<String>,
    /// Up to 8 characters; absent or empty: none.
    #[serde(default)]
    separator: Option<String>,
    /// 4–10, 6 when absent: the code's length when there is no separator.
    #[serde(default)]
    code_length: Option<i64>,
    /// 5–120 seconds, 25 when absent: how long an Access-Request is held for an approval in
    /// Telegram; below the gateway's own timeout.
    #[serde(default)]
    approval_wait: Option<i64>,
    /// Up to 16 letters (`push`); absent or empty: none, the password alone asks.
    #[serde(default)]
    approval_word: Option<String>,
}

/// Changes to a client: an absent field stays as it is.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRadiusClient {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
    /// A new shared secret.
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    resource: Option<IdOrName>,
    #[serde(default)]
    require_message_authenticator: Option<bool>,
    /// `password_code`, `code_password`, `static_challenge`, `code_only` or `challenge`.
    #[serde(default)]
    input_mode: Option<String>,
    /// Up to 8 characters; empty or null: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    separator: Option<Option<String>>,
    #[serde(default)]
    code_length: Option<i64>,
    /// 5–120 seconds.
    #[serde(default)]
    approval_wait: Option<i64>,
    /// Up to 16 letters; empty or null: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    approval_word: Option<Option<String>>,
}

fn name(text: &str) -> Result<String, ApiError> {
    parse_client_name(text).map_err(|e| ApiError::field("name", e.0))
}

fn network(text: &str) -> Result<String, ApiError> {
    text.parse::<Network>()
        .map(|network| network.to_string())
        .map_err(|e| ApiError::field("address", e.0))
}

fn sealed_secret(state: &AppState, text: &str) -> Result<Vec<u8>, ApiError> {
    check_secret(text).map_err(|e| ApiError::field("secret", e.0))?;
    Ok(state.keys.seal(Purpose::Credential, text.as_bytes())?)
}

fn input_mode(text: &str) -> Result<String, ApiError> {
    parse_input_mode(text)
        .map(str::to_string)
        .map_err(|e| ApiError::field("input_mode", e.0))
}

fn separator(text: &str) -> Result<Option<String>, ApiError> {
    parse_separator(text).map_err(|e| ApiError::field("separator", e.0))
}

fn code_length(value: i64) -> Result<i64, ApiError> {
    check_code_length(value)
        .map(i64::from)
        .map_err(|e| ApiError::field("code_length", e.0))
}

fn approval_wait(value: i64) -> Result<i64, ApiError> {
    check_approval_wait(value).map_err(|e| ApiError::field("approval_wait", e.0))
}

fn approval_word(text: &str) -> Result<Option<String>, ApiError> {
    parse_approval_word(text).map_err(|e| ApiError::field("approval_word", e.0))
}

fn saved(saved: Saved<RadiusClient>) -> Result<RadiusClient, ApiError> {
    match saved {
        Saved::Done(client) => Ok(client),
        Saved::NoSuchClient => Err(ApiError::NotFound("RADIUS client")),
        Saved::NoSuchResource => Err(ApiError::field("resource", "no such resource")),
    }
}

/// Turns a violated uniqueness into a 409 naming the client.
fn duplicate_name(name: Option<String>) -> impl FnOnce(crate::store::StoreError) -> ApiError {
    move |error| {
        if error.is_unique_violation() {
            ApiError::Conflict(name_taken(&name.unwrap_or_default()))
        } else {
            error.into()
        }
    }
}

/// Creates a RADIUS client.
#[utoipa::path(
    tag = "radius",
    request_body = CreateRadiusClient,
    responses(
        (status = 201, description = "The new client (without its secret)", body = RadiusClientJson),
        (status = 400, description = "A field is missing or invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
        (status = 409, description = "The name is taken", body = ErrorBody),
    )
)]
#[post("/radius/clients")]
pub(super) async fn create_radius_client(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<CreateRadiusClient>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let client = NewRadiusClient {
        name: name(&body.name)?,
        network: network(&body.address)?,
        secret_sealed: sealed_secret(&state, &body.secret)?,
        resource: body.resource,
        require_message_authenticator: body.require_message_authenticator.unwrap_or(true),
        input_mode: input_mode(body.input_mode.as_deref().unwrap_or("password_code"))?,
        separator: separator(body.separator.as_deref().unwrap_or(""))?,
        code_length: code_length(body.code_length.unwrap_or(i64::from(DEFAULT_CODE_LENGTH)))?,
        approval_wait_seconds: approval_wait(body.approval_wait.unwrap_or(DEFAULT_APPROVAL_WAIT))?,
        approval_word: approval_word(body.approval_word.as_deref().unwrap_or(""))?,
    };
    let client_name = client.name.clone();
    let client = state
        .store
        .create_radius_client(client, caller.change("radius_client.create"), now())
        .await
        .map_err(duplicate_name(Some(client_name)))?;
    Ok(HttpResponse::Created().json(RadiusClientJson::from(saved(client)?)))
}

/// Lists the RADIUS clients by name.
#[utoipa::path(
    tag = "radius",
    responses(
        (status = 200, description = "Every client (without secrets)", body = RadiusClientList),
        AdminRefusals,
    )
)]
#[get("/radius/clients")]
pub(super) async fn list_radius_clients(
    _admin: AdminCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let clients = state.store.radius_clients().await?;
    Ok(HttpResponse::Ok().json(RadiusClientList {
        items: clients.into_iter().map(RadiusClientJson::from).collect(),
    }))
}

/// Shows a RADIUS client.
#[utoipa::path(
    tag = "radius",
    params(("client" = String, Path, description = RADIUS_CLIENT_PARAMETER)),
    responses(
        (status = 200, description = "The client (without its secret)", body = RadiusClientJson),
        AdminRefusals,
        (status = 404, description = "No such client", body = ErrorBody),
    )
)]
#[get("/radius/clients/{client}")]
pub(super) async fn get_radius_client(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    client: RadiusClientAt,
) -> Result<HttpResponse, ApiError> {
    let client = state
        .store
        .radius_client(client.into_inner())
        .await?
        .ok_or(ApiError::NotFound("RADIUS client"))?;
    Ok(HttpResponse::Ok().json(RadiusClientJson::from(client)))
}

/// Changes a RADIUS client; a new `secret` replaces the old one.
#[utoipa::path(
    tag = "radius",
    params(("client" = String, Path, description = RADIUS_CLIENT_PARAMETER)),
    request_body = UpdateRadiusClient,
    responses(
        (status = 200, description = "The changed client (without its secret)", body = RadiusClientJson),
        (status = 400, description = "A field is invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such client", body = ErrorBody),
        (status = 409, description = "The new name is taken", body = ErrorBody),
    )
)]
#[patch("/radius/clients/{client}")]
pub(super) async fn update_radius_client(
    caller: AdminCaller,
    state: web::Data<AppState>,
    client: RadiusClientAt,
    body: ApiJson<UpdateRadiusClient>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let changes = RadiusClientChanges {
        name: body.name.as_deref().map(name).transpose()?,
        network: body.address.as_deref().map(network).transpose()?,
        secret_sealed: body
            .secret
            .as_deref()
            .map(|secret| sealed_secret(&state, secret))
            .transpose()?,
        resource: body.resource,
        require_message_authenticator: body.require_message_authenticator,
        input_mode: body.input_mode.as_deref().map(input_mode).transpose()?,
        separator: body
            .separator
            .map(|text| separator(text.as_deref().unwrap_or("")))
            .transpose()?,
        code_length: body.code_length.map(code_length).transpose()?,
        approval_wait_seconds: body.approval_wait.map(approval_wait).transpose()?,
        approval_word: body
            .approval_word
            .map(|text| approval_word(text.as_deref().unwrap_or("")))
            .transpose()?,
    };
    let new_name = changes.name.clone();
    let client = state
        .store
        .update_radius_client(
            client.into_inner(),
            changes,
            caller.change("radius_client.update"),
            now(),
        )
        .await
        .map_err(duplicate_name(new_name))?;
    Ok(HttpResponse::Ok().json(RadiusClientJson::from(saved(client)?)))
}

/// Deletes a RADIUS client: its requests are dropped from then on.
#[utoipa::path(
    tag = "radius",
    params(("client" = String, Path, description = RADIUS_CLIENT_PARAMETER)),
    responses(
        (status = 204, description = "Deleted"),
        AdminRefusals,
        (status = 404, description = "No such client", body = ErrorBody),
    )
)]
#[delete("/radius/clients/{client}")]
pub(super) async fn delete_radius_client(
    caller: AdminCaller,
    state: web::Data<AppState>,
    client: RadiusClientAt,
) -> Result<HttpResponse, ApiError> {
    if state
        .store
        .delete_radius_client(client.into_inner(), caller.change("radius_client.delete"))
        .await?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound("RADIUS client"))
    }
}
