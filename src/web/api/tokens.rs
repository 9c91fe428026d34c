//! Token management under `/api/v1/tokens`, for admin keys only: create (with the enrolment
//! URI and QR code shown once), list, read, change, enable and disable, reset, resynchronise,
//! assign to and take from a user, delete, and import seed files.
//!
//! Times are Unix seconds. A request body's secret is base32 unless `secret_format` says
//! `hex`; nothing any endpoint returns carries a seed or a PIN hash.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use serde::{Deserialize, Serialize};

use super::address::{TOKEN_PARAMETER, TokenAt};
use super::error::{AdminRefusals, ErrorBody};
use super::query::QueryParams;
use super::{AdminCaller, ApiError, ApiJson};
use crate::domain::{IdOrName, TokenKind, TokenState};
use crate::notices;
use crate::provision::{self, ImportFormat, PreparedToken, TokenRequest, TokenUpdate};
use crate::store::tokens::{StateFilter, TokenFilter, TokenRecord};
use crate::web::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResyncToken {
    /// A code shown by the token.
    otp1: String,
    /// The code shown right after `otp1`.
    otp2: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignUser {
    /// The user: a number is their id, a string their login.
    user: IdOrName,
    /// MAIL and SMS: where the codes go from now on. Without it, the user's own email address
    /// or phone number; the previous user's address never follows the token.
    #[serde(default)]
    destination: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportTokens {
    format: ImportFormat,
    /// The file's text.
    data: String,
    /// PSKC: the pre-shared AES key in hexadecimal.
    preshared_key: Option<String>,
    /// PSKC: the password the file's key is derived from.
    password: Option<String>,
}

/// The query string of `GET /tokens`, as the OpenAPI document describes it; it is parsed
/// by `QueryParams`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(
    dead_code,
    reason = "describes the query string for the OpenAPI document only"
)]
pub struct TokenQuery {
    /// TOTP, HOTP, MAIL, SMS or BOT.
    kind: Option<String>,
    /// pending, active, reactivate, locked or disabled.
    state: Option<String>,
    /// true: only tokens with a user; false: only tokens without.
    assigned: Option<String>,
    /// Only tokens assigned to this resource: its id (digits) or its name.
    resource: Option<String>,
    /// Only tokens of this user: their id (digits) or their login.
    user: Option<String>,
    /// A part of the serial, the name or the user's login.
    search: Option<String>,
    /// At most this many tokens (default 50, at most 500).
    limit: Option<String>,
    /// Skip this many tokens first.
    offset: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserRef {
    id: i64,
    login: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResourceRef {
    id: i64,
    name: String,
}

/// A token as management sees it: never its seed, never its PIN.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenJson {
    id: i64,
    serial: String,
    name: String,
    kind: TokenKind,
    user: Option<UserRef>,
    /// TOTP and HOTP.
    algorithm: Option<String>,
    digits: u32,
    /// TOTP.
    period: Option<u32>,
    /// MAIL and SMS: the full address.
    destination: Option<String>,
    /// BOT.
    messenger: Option<String>,
    has_pin: bool,
    pin_position: String,
    enabled: bool,
    state: TokenState,
    /// True when the token is locked after too many failed attempts.
    locked: bool,
    fail_count: i64,
    last_used_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl From<TokenRecord> for TokenJson {
    fn from(record: TokenRecord) -> TokenJson {
        let TokenRecord { token, user_login } = record;
        let seeded = matches!(token.kind, TokenKind::Totp | TokenKind::Hotp);
        TokenJson {
            id: token.id,
            serial: token.serial,
            name: token.name,
            kind: token.kind,
            user: match (token.user_id, user_login) {
                (Some(id), Some(login)) => Some(UserRef { id, login }),
                _ => None,
            },
            algorithm: seeded.then(|| token.algorithm.as_str().to_string()),
            digits: token.digits,
            period: (token.kind == TokenKind::Totp).then_some(token.period),
            destination: token.destination,
            messenger: token.messenger,
            has_pin: token.pin_hash.is_some(),
            pin_position: token.pin_position.as_str().to_string(),
            enabled: token.enabled,
            state: token.state,
            locked: token.locked_at.is_some(),
            fail_count: token.fail_count,
            last_used_at: token.last_used_at,
            created_at: token.created_at,
            updated_at: token.updated_at,
        }
    }
}

/// The answer to a create: the token, and for TOTP and HOTP the enrolment data, shown only here.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub(super) token: TokenJson,
    /// TOTP and HOTP: the `otpauth://` URI with the seed. Shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) otpauth_uri: Option<String>,
    /// TOTP and HOTP: the URI as an SVG QR code. Shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) qr_code_svg: Option<String>,
    /// BOT: the one-time activation code, its link and QR code. Shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) activation: Option<super::bot::ActivationJson>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenWithResources {
    #[serde(flatten)]
    token: TokenJson,
    resources: Vec<ResourceRef>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    items: Vec<TokenJson>,
    total: i64,
    limit: i64,
    offset: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportResult {
    imported: usize,
    serials: Vec<String>,
}

/// Creates a token. TOTP and HOTP tokens answer with their enrolment URI and QR code, which no
/// other call ever shows again.
#[utoipa::path(
    tag = "tokens",
    request_body = TokenRequest,
    responses(
        (status = 201, description = "The token was created", body = CreatedToken),
        (status = 400, description = "A field is invalid", body = ErrorBody),
        AdminRefusals,
        (status = 409, description = "The serial is taken", body = ErrorBody),
    )
)]
#[post("/tokens")]
pub(super) async fn create_token(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let now = crate::clock::now();
    let PreparedToken {
        creation,
        seed,
        activation,
    } = provision::prepare(&state.keys, &body.0, now, &state.general().await?)?;
    let mut entry = caller.audit(now, "token.create", "ok");
    entry.notice =
        notices::of_token_created(&state.store, &state.keys, &creation, notices::API, now).await?;
    let record = state.store.create_token(creation, entry).await??;
    let (otpauth_uri, qr_code_svg) = match &seed {
        Some(seed) => {
            let uri =
                provision::enrolment_uri(&state.issuer, &provision::account_of(&record), seed);
            let svg = provision::qr_svg(&uri);
            (Some(uri), svg)
        }
        None => (None, None),
    };
    let activation =
        activation.map(|activation| super::bot::ActivationJson::new(&state, activation));
    Ok(HttpResponse::Created().json(CreatedToken {
        token: record.into(),
        otpauth_uri,
        qr_code_svg,
        activation,
    }))
}

fn parse_query(request: &HttpRequest) -> Result<TokenFilter, ApiError> {
    let query = QueryParams::parse(
        request,
        &[
            "kind", "state", "assigned", "resource", "user", "search", "limit", "offset",
        ],
    )?;
    let kind = query
        .text("kind")
        .map(|text| {
            TokenKind::parse(text.trim())
                .ok_or_else(|| ApiError::field("kind", "kind must be TOTP, HOTP, MAIL, SMS or BOT"))
        })
        .transpose()?;
    let state = query
        .text("state")
        .map(|text| match text.trim() {
            "locked" => Ok(StateFilter::Locked),
            "disabled" => Ok(StateFilter::Disabled),
            other => TokenState::parse(other)
                .map(StateFilter::State)
                .ok_or_else(|| {
                    ApiError::field(
                        "state",
                        "state must be pending, active, reactivate, locked or disabled",
                    )
                }),
        })
        .transpose()?;
    let page = query.page()?;
    let nonempty = |name: &str| {
        query
            .text(name)
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    Ok(TokenFilter {
        kind,
        state,
        assigned: query.boolean("assigned")?,
        resource: query.named("resource", "name")?,
        user: query.named("user", "login")?,
        search: nonempty("search"),
        limit: page.limit,
        offset: page.offset,
    })
}

/// Lists tokens, narrowed by the query, oldest first.
#[utoipa::path(
    tag = "tokens",
    params(TokenQuery),
    responses(
        (status = 200, description = "A page of tokens", body = TokenList),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        AdminRefusals,
    )
)]
#[get("/tokens")]
pub(super) async fn list_tokens(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let filter = parse_query(&request)?;
    let (limit, offset) = (filter.limit, filter.offset);
    let (items, total) = state.store.list_tokens(filter).await??;
    Ok(HttpResponse::Ok().json(TokenList {
        items: items.into_iter().map(TokenJson::from).collect(),
        total,
        limit,
        offset,
    }))
}

/// One token with the resources it is assigned to.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = TOKEN_PARAMETER)),
    responses(
        (status = 200, description = "The token", body = TokenWithResources),
        AdminRefusals,
        (status = 404, description = "No such token", body = ErrorBody),
    )
)]
#[get("/tokens/{token}")]
pub(super) async fn get_token(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    token: TokenAt,
) -> Result<HttpResponse, ApiError> {
    let detail = state
        .store
        .token_detail(token.into_inner())
        .await?
        .ok_or(ApiError::NotFound("token"))?;
    Ok(HttpResponse::Ok().json(TokenWithResources {
        token: detail.record.into(),
        resources: detail
            .resources
            .into_iter()
            .map(|(id, name)| ResourceRef { id, name })
            .collect(),
    }))
}

/// Changes a token's name, code length (MAIL, SMS, BOT), PIN, PIN position, enabled flag or
/// destination (MAIL, SMS).
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = TOKEN_PARAMETER)),
    request_body = TokenUpdate,
    responses(
        (status = 200, description = "The changed token", body = TokenJson),
        (status = 400, description = "A field is invalid", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such token", body = ErrorBody),
    )
)]
#[patch("/tokens/{token}")]
pub(super) async fn update_token(
    caller: AdminCaller,
    state: web::Data<AppState>,
    token: TokenAt,
    body: ApiJson<TokenUpdate>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let token = state
        .store
        .find_token(token.into_inner())
        .await?
        .ok_or(ApiError::NotFound("token"))?;
    let pins = state.general().await?.pin_policy();
    let changes = provision::changes(&state.keys, &token, &body, &pins)?;
    let record = state
        .store
        .update_token(token.id, changes, caller.change("token.update"))
        .await??;
    Ok(HttpResponse::Ok().json(TokenJson::from(record)))
}

/// Enables a token.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = TOKEN_PARAMETER)),
    responses(
        (status = 200, description = "The enabled token", body = TokenJson),
        AdminRefusals,
        (status = 404, description = "No such token", body = ErrorBody),
    )
)]
#[post("/tokens/{token}/enable")]
pub(super) async fn enable_token(
    caller: AdminCaller,
    state: web::Data<AppState>,
    token: TokenAt,
) -> Result<HttpResponse, ApiError> {
    let record = state
        .store
        .set_token_enabled(token.into_inner(), true, caller.change("token.enable"))
        .await??;
    Ok(HttpResponse::Ok().json(TokenJson::from(record)))
}

/// Disables a token: it no longer authenticates until enabled again.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = TOKEN_PARAMETER)),
    responses(
        (status = 200, description = "The disabled token", body = TokenJson),
        AdminRefusals,
        (status = 404, description = "No such token", body = ErrorBody),
    )
)]
#[post("/tokens/{token}/disable")]
pub(super) async fn disable_token(
    caller: AdminCaller,
    state: web::Data<AppState>,
    token: TokenAt,
) -> Result<HttpResponse, ApiError> {
    let record = state
        .store
        .set_token_enabled(token.into_inner(), false, caller.change("token.disable"))
        .await??;
    Ok(HttpResponse::Ok().json(TokenJson::from(record)))
}

/// Sets the fail counter to zero and unlocks the token.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = TOKEN_PARAMETER)),
    responses(
        (status = 200, description = "The reset token", body = TokenJson),
        AdminRefusals,
        (status = 404, description = "No such token", body = ErrorBody),
    )
)]
#[post("/tokens/{token}/reset")]
pub(super) async fn reset_token(
    caller: AdminCaller,
    state: web::Data<AppState>,
    token: TokenAt,
) -> Result<HttpResponse, ApiError> {
    let record = state
        .store
        .reset_token(token.into_inner(), caller.change("token.reset"))
        .await??;
    Ok(HttpResponse::Ok().json(TokenJson::from(record)))
}

/// Resynchronises a TOTP or HOTP token from two consecutive codes, for a token that drifted
/// beyond the verification window.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = TOKEN_PARAMETER)),
    request_body = ResyncToken,
    responses(
        (status = 200, description = "The token follows the codes now", body = TokenJson),
        (status = 400, description = "The codes were not found one after the other", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such token", body = ErrorBody),
        (status = 409, description = "The token was used meanwhile", body = ErrorBody),
    )
)]
#[post("/tokens/{token}/resync")]
pub(super) async fn resync_token(
    caller: AdminCaller,
    state: web::Data<AppState>,
    token: TokenAt,
    body: ApiJson<ResyncToken>,
) -> Result<HttpResponse, ApiError> {
    let now = crate::clock::now();
    let body = body.0;
    let token = state
        .store
        .find_token(token.into_inner())
        .await?
        .ok_or(ApiError::NotFound("token"))?;
    let found = provision::resync(
        state.keys.clone(),
        &token,
        &body.otp1,
        &body.otp2,
        state.config.auth.resync_search,
        now,
    )
    .await?;
    let record = state
        .store
        .resync_token(
            token.id,
            found.step,
            found.drift,
            caller.audit(now, "token.resync", "ok"),
        )
        .await??;
    Ok(HttpResponse::Ok().json(TokenJson::from(record)))
}

/// Assigns a token to a user. A token belongs to at most one user: a token of another user
/// must be unassigned first. A MAIL or SMS token sends to the `destination` given, or else to
/// the user's own address (refused when the user has none). Unassigning a BOT token forgot its
/// chat: it waits for a new activation.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = TOKEN_PARAMETER)),
    request_body = AssignUser,
    responses(
        (status = 200, description = "The assigned token", body = TokenJson),
        (status = 400, description = "No such user", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such token", body = ErrorBody),
        (status = 409, description = "The token has another user", body = ErrorBody),
    )
)]
#[put("/tokens/{token}/user")]
pub(super) async fn assign_token_user(
    caller: AdminCaller,
    state: web::Data<AppState>,
    token: TokenAt,
    body: ApiJson<AssignUser>,
) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    let mut entry = caller.change("token.assign");
    entry.notice = notices::of_token_given(
        &state.store,
        &state.keys,
        &token,
        &body.0.user,
        notices::API,
        entry.at,
    )
    .await?;
    let record = state
        .store
        .assign_token_user(token, body.0.user, body.0.destination, entry)
        .await??;
    state.delivery.wake();
    Ok(HttpResponse::Ok().json(TokenJson::from(record)))
}

/// Takes a token from its user and from every resource it was assigned to.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = TOKEN_PARAMETER)),
    responses(
        (status = 200, description = "The unassigned token", body = TokenJson),
        AdminRefusals,
        (status = 404, description = "No such token", body = ErrorBody),
    )
)]
#[delete("/tokens/{token}/user")]
pub(super) async fn unassign_token_user(
    caller: AdminCaller,
    state: web::Data<AppState>,
    token: TokenAt,
) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    let mut entry = caller.change("token.unassign");
    entry.notice =
        notices::of_token_taken(&state.store, &state.keys, &token, notices::API, entry.at).await?;
    let record = state.store.unassign_token_user(token, entry).await??;
    state.delivery.wake();
    Ok(HttpResponse::Ok().json(TokenJson::from(record)))
}

/// Deletes a token.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = TOKEN_PARAMETER)),
    responses(
        (status = 204, description = "The token is gone"),
        AdminRefusals,
        (status = 404, description = "No such token", body = ErrorBody),
    )
)]
#[delete("/tokens/{token}")]
pub(super) async fn delete_token(
    caller: AdminCaller,
    state: web::Data<AppState>,
    token: TokenAt,
) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    let mut entry = caller.change("token.delete");
    entry.notice =
        notices::of_token_taken(&state.store, &state.keys, &token, notices::API, entry.at).await?;
    state.store.delete_token(token, entry).await??;
    state.delivery.wake();
    Ok(HttpResponse::NoContent().finish())
}

/// Imports the tokens of a PSKC or CSV seed file: all of them or, on any error or duplicate
/// serial, none.
#[utoipa::path(
    tag = "tokens",
    request_body = ImportTokens,
    responses(
        (status = 201, description = "Every token of the file was imported", body = ImportResult),
        (status = 400, description = "The file or a key is invalid; nothing was imported", body = ErrorBody),
        AdminRefusals,
        (status = 409, description = "A serial exists already; nothing was imported", body = ErrorBody),
    )
)]
#[post("/tokens/import")]
pub(super) async fn import_tokens(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<ImportTokens>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let worker_state = state.clone();
    // Password derivation, decryption and sealing of up to thousands of seeds: off the async threads.
    let tokens = web::block(move || {
        provision::prepare_import(
            &worker_state.keys,
            body.format,
            body.data.as_bytes(),
            body.preshared_key.as_deref(),
            body.password.as_deref(),
        )
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("the import did not finish: {e}")))??;
    let serials = state
        .store
        .import_tokens(tokens, caller.change("token.import"))
        .await??;
    Ok(HttpResponse::Created().json(ImportResult {
        imported: serials.len(),
        serials,
    }))
}
