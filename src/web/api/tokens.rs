//! Token management under `/api/v1/tokens`, for admin keys only: create (with the enrolment
//! URI and QR code shown once), list, read, change, enable and disable, reset, resynchronise,
//! assign to and take from a user, delete, and import seed files.
//!
//! Times are Unix seconds. A request body's secret is base32 unless `secret_format` says
//! `hex`; nothing any endpoint returns carries a seed or a PIN hash.

use std::str::FromStr;

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use serde::{Deserialize, Deserializer, Serialize};

use super::query::QueryParams;
use super::{ApiCaller, ApiError, ApiJson, IdOrName};
use crate::crypto::{self, Keys, Purpose};
use crate::domain::{self, TokenKind, TokenState};
use crate::import::{self, ImportedToken, PskcKey, TokenType};
use crate::otp::{self, Algorithm, Kind, Params, PinPosition};
use crate::store::tokens::{
    Outcome, Refused, StateFilter, TokenChanges, TokenCreation, TokenFilter, TokenRecord,
};
use crate::store::{GeneralSettings, NewToken, StoreError, Token};
use crate::web::AppState;

/// The longest seed accepted, in bytes (a SHA-512 key is 64).
const MAX_SECRET: usize = 128;

/// How a secret in a request is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecretFormat {
    /// RFC 4648 base32, as authenticator apps show it (any case, spaces allowed).
    #[default]
    Base32,
    /// Hexadecimal, as hardware token seed sheets print it.
    Hex,
}

/// The format of a token seed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ImportFormat {
    /// PSKC (RFC 6030) XML.
    Pskc,
    /// `serial,secret[,type,digits,period_or_counter,algorithm]` lines.
    Csv,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub kind: TokenKind,
    pub name: Option<String>,
    /// Generated from the kind and random characters when absent.
    pub serial: Option<String>,
    /// The user (id or login) the token is assigned to.
    pub user: Option<IdOrName>,
    /// A resource (id or name) the token is assigned to together with its user; needs `user`.
    pub resource: Option<IdOrName>,
    /// TOTP and HOTP: the seed, generated when absent.
    pub secret: Option<String>,
    /// TOTP and HOTP: how `secret` is written, base32 (default) or hex.
    pub secret_format: Option<SecretFormat>,
    /// TOTP and HOTP: SHA1 (default), SHA256 or SHA512.
    pub algorithm: Option<String>,
    /// 6 (default) or 8.
    pub digits: Option<u32>,
    /// TOTP: 30 (default) or 60 seconds.
    pub period: Option<u32>,
    /// HOTP: the counter of the next code (default 0).
    pub counter: Option<u64>,
    /// MAIL: an email address; SMS: a phone number in international form. Default: the user's.
    pub destination: Option<String>,
    /// BOT: "telegram" (default).
    pub messenger: Option<String>,
    pub pin: Option<String>,
    /// "before" (default) or "after" the code.
    pub pin_position: Option<String>,
}

impl CreateToken {
    /// A request for a token of `kind` with every other field left to its default.
    pub fn new(kind: TokenKind) -> CreateToken {
        CreateToken {
            kind,
            name: None,
            serial: None,
            user: None,
            resource: None,
            secret: None,
            secret_format: None,
            algorithm: None,
            digits: None,
            period: None,
            counter: None,
            destination: None,
            messenger: None,
            pin: None,
            pin_position: None,
        }
    }
}

/// Reads a field that may be absent (outer `None`), `null` (inner `None`) or a value.
fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateToken {
    name: Option<String>,
    /// MAIL, SMS and BOT only: a seed token's length is fixed by its provisioning.
    digits: Option<u32>,
    /// A string sets the PIN, `null` removes it.
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<String>)]
    pin: Option<Option<String>>,
    pin_position: Option<String>,
    enabled: Option<bool>,
    /// MAIL and SMS only.
    destination: Option<String>,
}

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
    /// The user by id or login.
    user: IdOrName,
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
    /// Only tokens assigned to this resource (id or name).
    resource: Option<String>,
    /// Only tokens of this user (id or login).
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
            algorithm: seeded.then_some(token.algorithm),
            digits: token.digits,
            period: (token.kind == TokenKind::Totp).then_some(token.period),
            destination: token.destination,
            messenger: token.messenger,
            has_pin: token.pin_hash.is_some(),
            pin_position: token.pin_position,
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
    token: TokenJson,
    /// TOTP and HOTP: the `otpauth://` URI with the seed. Shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    otpauth_uri: Option<String>,
    /// TOTP and HOTP: the URI as an SVG QR code. Shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    qr_code_svg: Option<String>,
    /// BOT: the one-time activation code, its link and QR code. Shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    activation: Option<super::bot::ActivationJson>,
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

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> ApiError {
        match refused {
            Refused::NotFound(what) => ApiError::NotFound(what),
            Refused::Field(field, message) => ApiError::field(field, message),
            Refused::Conflict(message) => ApiError::Conflict(message),
        }
    }
}

/// Unwraps a store answer that may carry a refusal.
fn settled<T>(answer: Result<Outcome<T>, StoreError>) -> Result<T, ApiError> {
    Ok(answer??)
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        field: None,
        message: message.into(),
    }
}

impl From<crate::domain::FieldError> for ApiError {
    fn from(error: crate::domain::FieldError) -> ApiError {
        ApiError::field(error.field, error.message)
    }
}

fn clean_text(text: &str) -> Result<String, ApiError> {
    Ok(domain::token_name(text)?)
}

fn clean_serial(text: &str) -> Result<String, ApiError> {
    Ok(domain::token_serial(text)?)
}

fn check_digits(digits: u32) -> Result<u32, ApiError> {
    Ok(domain::otp_length(digits)?)
}

/// A PIN checked by the general settings' PIN policy, hashed with the server's PIN key.
fn pin_hash(keys: &Keys, pin: &str, policy: &domain::PinPolicy) -> Result<Vec<u8>, ApiError> {
    domain::check_pin(pin, policy)?;
    Ok(keys.pin_hash(pin))
}

fn pin_position(text: &str) -> Result<String, ApiError> {
    Ok(domain::pin_position(text)?)
}

fn destination_for(kind: TokenKind, text: &str) -> Result<String, ApiError> {
    Ok(domain::token_destination(kind, text)?)
}

/// Refuses a field given for a kind it does not apply to, naming it.
fn refuse_for_kind(
    kind: TokenKind,
    field: &str,
    given: bool,
    allowed: &[TokenKind],
) -> Result<(), ApiError> {
    if given && !allowed.contains(&kind) {
        let names: Vec<&str> = allowed.iter().map(|k| k.as_str()).collect();
        return Err(ApiError::field(
            field,
            format!(
                "{field} applies to {} tokens only, not to {}",
                names.join(" and "),
                kind.as_str()
            ),
        ));
    }
    Ok(())
}

/// The OTP parameters of a seed token as stored.
fn stored_params(kind: TokenKind, algorithm: &str, digits: u32, period: u32) -> Option<Params> {
    let kind = match kind {
        TokenKind::Totp => Kind::Totp { period },
        TokenKind::Hotp => Kind::Hotp,
        _ => return None,
    };
    Params::new(Algorithm::from_str(algorithm).ok()?, digits, kind).ok()
}

/// An SVG image of a QR code holding `data`.
pub(super) fn qr_svg(data: &str) -> Result<String, ApiError> {
    let code = qrcode::QrCode::new(data.as_bytes())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot draw a QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build())
}

fn random_seed(algorithm: Algorithm) -> Result<Vec<u8>, ApiError> {
    Ok(match algorithm {
        Algorithm::Sha1 => crypto::random_bytes::<20>()?.to_vec(),
        Algorithm::Sha256 => crypto::random_bytes::<32>()?.to_vec(),
        Algorithm::Sha512 => crypto::random_bytes::<64>()?.to_vec(),
    })
}

/// The seed parameters of a create request: the seed, its parameters and the start counter.
pub struct Seed {
    pub secret: Vec<u8>,
    pub params: Params,
    pub counter: u64,
}

/// A create request checked and turned into what the store takes, with the seed of a TOTP or
/// HOTP token kept for its enrolment URI.
pub struct PreparedToken {
    pub creation: TokenCreation,
    pub seed: Option<Seed>,
    /// BOT: the one-time activation code (its hash is in `creation`), to show once.
    pub activation_code: Option<String>,
}

fn seed_of(body: &CreateToken) -> Result<Seed, ApiError> {
    let algorithm = match &body.algorithm {
        None => Algorithm::Sha1,
        Some(text) => Algorithm::from_str(text.trim())
            .map_err(|e| ApiError::field("algorithm", e.to_string()))?,
    };
    let digits = check_digits(body.digits.unwrap_or(6))?;
    let kind = match body.kind {
        TokenKind::Hotp => Kind::Hotp,
        _ => Kind::Totp {
            period: body.period.unwrap_or(30),
        },
    };
    let params = Params::new(algorithm, digits, kind).map_err(|e| match e {
        otp::ParamsError::Digits(_) => ApiError::field("digits", e.to_string()),
        otp::ParamsError::Period(_) => ApiError::field("period", e.to_string()),
    })?;
    let counter = body.counter.unwrap_or(0);
    if i64::try_from(counter).is_err() {
        return Err(ApiError::field("counter", "the counter is too large"));
    }
    let secret = match &body.secret {
        None => {
            if body.secret_format.is_some() {
                return Err(ApiError::field(
                    "secret_format",
                    "secret_format describes a given secret; give the secret too",
                ));
            }
            random_seed(algorithm)?
        }
        Some(text) => {
            let decoded = match body.secret_format.unwrap_or_default() {
                SecretFormat::Base32 => otp::decode_base32_secret(text),
                SecretFormat::Hex => otp::decode_hex_secret(text),
            }
            .map_err(|e| ApiError::field("secret", e.to_string()))?;
            if !(import::MIN_SECRET_LEN..=MAX_SECRET).contains(&decoded.len()) {
                return Err(ApiError::field(
                    "secret",
                    format!(
                        "a secret must have {} to {MAX_SECRET} bytes, not {}",
                        import::MIN_SECRET_LEN,
                        decoded.len()
                    ),
                ));
            }
            decoded
        }
    };
    Ok(Seed {
        secret,
        params,
        counter,
    })
}

/// Checks a create request and turns it into the store's creation: the rules of every kind
/// (which fields apply, code length, PIN, destination, messenger, seed) live here once, for the
/// API and the admin panel. From the general settings: the code length of MAIL, SMS and BOT
/// tokens when the body names none (TOTP and HOTP default to 6, which every authenticator app
/// shows), and the PIN policy.
pub fn prepare_token(
    keys: &Keys,
    body: &CreateToken,
    now: i64,
    general: &GeneralSettings,
) -> Result<PreparedToken, ApiError> {
    let default_digits = general.default_otp_length;
    let kind = body.kind;
    use TokenKind::{Bot, Hotp, Mail, Sms, Totp};
    refuse_for_kind(kind, "secret", body.secret.is_some(), &[Totp, Hotp])?;
    refuse_for_kind(
        kind,
        "secret_format",
        body.secret_format.is_some(),
        &[Totp, Hotp],
    )?;
    refuse_for_kind(kind, "algorithm", body.algorithm.is_some(), &[Totp, Hotp])?;
    refuse_for_kind(kind, "period", body.period.is_some(), &[Totp])?;
    refuse_for_kind(kind, "counter", body.counter.is_some(), &[Hotp])?;
    refuse_for_kind(
        kind,
        "destination",
        body.destination.is_some(),
        &[Mail, Sms],
    )?;
    refuse_for_kind(kind, "messenger", body.messenger.is_some(), &[Bot])?;

    let name = clean_text(body.name.as_deref().unwrap_or(""))?;
    let serial = body.serial.as_deref().map(clean_serial).transpose()?;
    let pin_hash = body
        .pin
        .as_deref()
        .map(|pin| pin_hash(keys, pin, &general.pin_policy()))
        .transpose()?;
    let pin_position = match &body.pin_position {
        Some(text) => pin_position(text)?,
        None => PinPosition::Before.as_str().to_string(),
    };
    let destination = body
        .destination
        .as_deref()
        .map(|text| destination_for(kind, text))
        .transpose()?;
    let messenger = match kind {
        Bot => Some(domain::messenger(body.messenger.as_deref())?),
        _ => None,
    };
    if body.resource.is_some() && body.user.is_none() {
        return Err(ApiError::field(
            "resource",
            "a token is assigned to a resource together with its user: give user too",
        ));
    }
    let seed = match kind {
        Totp | Hotp => Some(seed_of(body)?),
        _ => None,
    };
    let digits = match &seed {
        Some(seed) => seed.params.digits,
        None => check_digits(body.digits.unwrap_or(default_digits))?,
    };
    let sealed = seed
        .as_ref()
        .map(|seed| keys.seal(Purpose::TokenSecret, &seed.secret))
        .transpose()?;
    let activation = (kind == Bot)
        .then(crate::delivery::bot::new_activation_code)
        .transpose()?;
    let token = NewToken {
        serial: serial.clone().unwrap_or_default(),
        name,
        kind,
        user_id: None,
        secret: sealed,
        algorithm: seed
            .as_ref()
            .map_or(Algorithm::Sha1, |s| s.params.algorithm)
            .as_str()
            .to_string(),
        digits,
        period: match seed.as_ref().map(|s| s.params.kind) {
            Some(Kind::Totp { period }) => period,
            _ => 30,
        },
        // The counter of the next code is C, so the last one used is C - 1 (none for 0).
        last_step: match (kind, &seed) {
            (Hotp, Some(seed)) if seed.counter > 0 => i64::try_from(seed.counter - 1).ok(),
            _ => None,
        },
        destination,
        messenger,
        pin_hash,
        pin_position,
        state: kind.initial_state(),
        activation: activation
            .as_ref()
            .map(|(_, hash)| (hash.clone(), now + crate::delivery::bot::ACTIVATION_SECONDS)),
    };
    let creation = TokenCreation {
        token,
        generate_serial: serial.is_none(),
        user: body.user.as_ref().map(IdOrName::as_key),
        resource: body.resource.as_ref().map(IdOrName::as_key),
    };
    Ok(PreparedToken {
        creation,
        seed,
        activation_code: activation.map(|(code, _)| code),
    })
}

/// The `otpauth://` URI of a new TOTP or HOTP token, named after its user or else its serial.
pub fn enrolment_uri(issuer: &str, record: &TokenRecord, seed: &Seed) -> String {
    let account = record
        .user_login
        .clone()
        .unwrap_or_else(|| record.token.serial.clone());
    otp::otpauth_uri(&seed.secret, &seed.params, issuer, &account, seed.counter)
}

/// Creates a token. TOTP and HOTP tokens answer with their enrolment URI and QR code, which no
/// other call ever shows again.
#[utoipa::path(
    tag = "tokens",
    request_body = CreateToken,
    responses(
        (status = 201, description = "The token was created", body = CreatedToken),
        (status = 400, description = "A field is invalid", body = super::error::ErrorBody),
        (status = 401, description = "No valid API key", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin key", body = super::error::ErrorBody),
        (status = 409, description = "The serial is taken", body = super::error::ErrorBody),
    )
)]
#[post("/tokens")]
pub(super) async fn create_token(
    caller: ApiCaller,
    state: web::Data<AppState>,
    body: ApiJson<CreateToken>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let now = crate::web::now();
    let PreparedToken {
        creation,
        seed,
        activation_code,
    } = prepare_token(&state.keys, &body.0, now, &state.general().await?)?;
    let record = settled(
        state
            .store
            .create_token(creation, caller.audit(now, "token.create", "ok"))
            .await,
    )?;
    let (otpauth_uri, qr_code_svg) = match &seed {
        Some(seed) => {
            let uri = enrolment_uri(&state.issuer, &record, seed);
            let svg = qr_svg(&uri)?;
            (Some(uri), Some(svg))
        }
        None => (None, None),
    };
    let activation = activation_code
        .map(|code| {
            super::bot::ActivationJson::new(
                &state,
                code,
                now + crate::delivery::bot::ACTIVATION_SECONDS,
            )
        })
        .transpose()?;
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
        resource: nonempty("resource"),
        user: nonempty("user"),
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
        (status = 400, description = "A query parameter is invalid", body = super::error::ErrorBody),
        (status = 401, description = "No valid API key", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin key", body = super::error::ErrorBody),
    )
)]
#[get("/tokens")]
pub(super) async fn list_tokens(
    caller: ApiCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let filter = parse_query(&request)?;
    let (limit, offset) = (filter.limit, filter.offset);
    let (items, total) = settled(state.store.list_tokens(filter).await)?;
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
    params(("token" = String, Path, description = "The token's id or serial")),
    responses(
        (status = 200, description = "The token", body = TokenWithResources),
        (status = 401, description = "No valid API key", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin key", body = super::error::ErrorBody),
        (status = 404, description = "No such token", body = super::error::ErrorBody),
    )
)]
#[get("/tokens/{token}")]
pub(super) async fn get_token(
    caller: ApiCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let detail = state
        .store
        .token_detail(path.into_inner())
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
    params(("token" = String, Path, description = "The token's id or serial")),
    request_body = UpdateToken,
    responses(
        (status = 200, description = "The changed token", body = TokenJson),
        (status = 400, description = "A field is invalid", body = super::error::ErrorBody),
        (status = 401, description = "No valid API key", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin key", body = super::error::ErrorBody),
        (status = 404, description = "No such token", body = super::error::ErrorBody),
    )
)]
#[patch("/tokens/{token}")]
pub(super) async fn update_token(
    caller: ApiCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: ApiJson<UpdateToken>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let now = crate::web::now();
    let body = body.0;
    let token = state
        .store
        .find_token(path.into_inner())
        .await?
        .ok_or(ApiError::NotFound("token"))?;
    use TokenKind::{Bot, Hotp, Mail, Sms, Totp};
    if body.digits.is_some() && matches!(token.kind, Totp | Hotp) {
        return Err(ApiError::field(
            "digits",
            "the code length of a TOTP or HOTP token is fixed by its seed's provisioning",
        ));
    }
    refuse_for_kind(
        token.kind,
        "digits",
        body.digits.is_some(),
        &[Mail, Sms, Bot],
    )?;
    refuse_for_kind(
        token.kind,
        "destination",
        body.destination.is_some(),
        &[Mail, Sms],
    )?;
    let changes = TokenChanges {
        name: body.name.as_deref().map(clean_text).transpose()?,
        digits: body.digits.map(check_digits).transpose()?,
        pin_hash: match &body.pin {
            None => None,
            Some(None) => Some(None),
            Some(Some(pin)) => Some(Some(pin_hash(
                &state.keys,
                pin,
                &state.general().await?.pin_policy(),
            )?)),
        },
        pin_position: body.pin_position.as_deref().map(pin_position).transpose()?,
        enabled: body.enabled,
        destination: body
            .destination
            .as_deref()
            .map(|text| destination_for(token.kind, text))
            .transpose()?,
    };
    if changes.name.is_none()
        && changes.digits.is_none()
        && changes.pin_hash.is_none()
        && changes.pin_position.is_none()
        && changes.enabled.is_none()
        && changes.destination.is_none()
    {
        return Err(bad_request("the body names nothing to change"));
    }
    let record = settled(
        state
            .store
            .update_token(token.id, changes, caller.audit(now, "token.update", "ok"))
            .await,
    )?;
    Ok(HttpResponse::Ok().json(TokenJson::from(record)))
}

/// Enables a token.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = "The token's id or serial")),
    responses(
        (status = 200, description = "The enabled token", body = TokenJson),
        (status = 401, description = "No valid API key", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin key", body = super::error::ErrorBody),
        (status = 404, description = "No such token", body = super::error::ErrorBody),
    )
)]
#[post("/tokens/{token}/enable")]
pub(super) async fn enable_token(
    caller: ApiCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let now = crate::web::now();
    let record = settled(
        state
            .store
            .set_token_enabled(
                path.into_inner(),
                true,
                caller.audit(now, "token.enable", "ok"),
            )
            .await,
    )?;
    Ok(HttpResponse::Ok().json(TokenJson::from(record)))
}

/// Disables a token: it no longer authenticates until enabled again.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = "The token's id or serial")),
    responses(
        (status = 200, description = "The disabled token", body = TokenJson),
        (status = 401, description = "No valid API key", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin key", body = super::error::ErrorBody),
        (status = 404, description = "No such token", body = super::error::ErrorBody),
    )
)]
#[post("/tokens/{token}/disable")]
pub(super) async fn disable_token(
    caller: ApiCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let now = crate::web::now();
    let record = settled(
        state
            .store
            .set_token_enabled(
                path.into_inner(),
                false,
                caller.audit(now, "token.disable", "ok"),
            )
            .await,
    )?;
    Ok(HttpResponse::Ok().json(TokenJson::from(record)))
}

/// Sets the fail counter to zero and unlocks the token.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = "The token's id or serial")),
    responses(
        (status = 200, description = "The reset token", body = TokenJson),
        (status = 401, description = "No valid API key", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin key", body = super::error::ErrorBody),
        (status = 404, description = "No such token", body = super::error::ErrorBody),
    )
)]
#[post("/tokens/{token}/reset")]
pub(super) async fn reset_token(
    caller: ApiCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let now = crate::web::now();
    let record = settled(
        state
            .store
            .reset_token(path.into_inner(), caller.audit(now, "token.reset", "ok"))
            .await,
    )?;
    Ok(HttpResponse::Ok().json(TokenJson::from(record)))
}

/// A code as typed: exactly `digits` ASCII digits.
fn check_code(field: &str, code: &str, digits: u32) -> Result<(), ApiError> {
    let code = code.trim();
    if code.len() == digits as usize && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("{field} must be a code of {digits} digits"),
        ))
    }
}

/// Finds where two consecutive codes of a TOTP or HOTP token are: the moving factor of the
/// second and the drift to store. Shared by the API and the admin panel.
pub async fn find_resync(
    state: &AppState,
    token: &Token,
    otp1: &str,
    otp2: &str,
) -> Result<(i64, i64), ApiError> {
    if !matches!(token.kind, TokenKind::Totp | TokenKind::Hotp) {
        return Err(bad_request(
            "only TOTP and HOTP tokens can be resynchronised",
        ));
    }
    let params = stored_params(token.kind, &token.algorithm, token.digits, token.period)
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "token {} has unusable parameters",
                token.id
            ))
        })?;
    check_code("otp1", otp1, params.digits)?;
    check_code("otp2", otp2, params.digits)?;
    let sealed = token
        .secret
        .clone()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("token {} has no seed", token.id)))?;
    let secret = state.keys.open(Purpose::TokenSecret, &sealed)?;
    let search = state.config.auth.resync_search;
    let last_used = token.last_step.and_then(|step| u64::try_from(step).ok());
    let drift = token.drift;
    let now_unix = u64::try_from(crate::web::now()).unwrap_or(0);
    let (otp1, otp2) = (otp1.trim().to_string(), otp2.trim().to_string());
    // Up to twice `search` HMACs: kept off the async threads.
    let found = web::block(move || {
        otp::resync(
            &secret, &params, &otp1, &otp2, search, last_used, drift, now_unix,
        )
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("resync did not finish: {e}")))?;
    let Some(found) = found else {
        return Err(ApiError::field(
            "otp2",
            "the codes were not found as consecutive codes",
        ));
    };
    let step = i64::try_from(found.step)
        .map_err(|_| ApiError::field("otp2", "the codes were not found as consecutive codes"))?;
    // An HOTP counter is absolute, so only a TOTP token keeps a drift.
    let drift = match params.kind {
        Kind::Totp { .. } => found.drift,
        Kind::Hotp => 0,
    };
    Ok((step, drift))
}

/// Resynchronises a TOTP or HOTP token from two consecutive codes, for a token that drifted
/// beyond the verification window.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = "The token's id or serial")),
    request_body = ResyncToken,
    responses(
        (status = 200, description = "The token follows the codes now", body = TokenJson),
        (status = 400, description = "The codes were not found one after the other", body = super::error::ErrorBody),
        (status = 401, description = "No valid API key", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin key", body = super::error::ErrorBody),
        (status = 404, description = "No such token", body = super::error::ErrorBody),
        (status = 409, description = "The token was used meanwhile", body = super::error::ErrorBody),
    )
)]
#[post("/tokens/{token}/resync")]
pub(super) async fn resync_token(
    caller: ApiCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: ApiJson<ResyncToken>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let now = crate::web::now();
    let body = body.0;
    let token = state
        .store
        .find_token(path.into_inner())
        .await?
        .ok_or(ApiError::NotFound("token"))?;
    let (step, drift) = find_resync(&state, &token, &body.otp1, &body.otp2).await?;
    let record = settled(
        state
            .store
            .resync_token(
                token.id,
                step,
                drift,
                caller.audit(now, "token.resync", "ok"),
            )
            .await,
    )?;
    Ok(HttpResponse::Ok().json(TokenJson::from(record)))
}

/// Assigns a token to a user. A token belongs to at most one user: a token of another user
/// must be unassigned first.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = "The token's id or serial")),
    request_body = AssignUser,
    responses(
        (status = 200, description = "The assigned token", body = TokenJson),
        (status = 400, description = "No such user", body = super::error::ErrorBody),
        (status = 401, description = "No valid API key", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin key", body = super::error::ErrorBody),
        (status = 404, description = "No such token", body = super::error::ErrorBody),
        (status = 409, description = "The token has another user", body = super::error::ErrorBody),
    )
)]
#[put("/tokens/{token}/user")]
pub(super) async fn assign_token_user(
    caller: ApiCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: ApiJson<AssignUser>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let now = crate::web::now();
    let record = settled(
        state
            .store
            .assign_token_user(
                path.into_inner(),
                body.0.user.as_key(),
                caller.audit(now, "token.assign", "ok"),
            )
            .await,
    )?;
    Ok(HttpResponse::Ok().json(TokenJson::from(record)))
}

/// Takes a token from its user and from every resource it was assigned to.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = "The token's id or serial")),
    responses(
        (status = 200, description = "The unassigned token", body = TokenJson),
        (status = 401, description = "No valid API key", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin key", body = super::error::ErrorBody),
        (status = 404, description = "No such token", body = super::error::ErrorBody),
    )
)]
#[delete("/tokens/{token}/user")]
pub(super) async fn unassign_token_user(
    caller: ApiCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let now = crate::web::now();
    let record = settled(
        state
            .store
            .unassign_token_user(path.into_inner(), caller.audit(now, "token.unassign", "ok"))
            .await,
    )?;
    Ok(HttpResponse::Ok().json(TokenJson::from(record)))
}

/// Deletes a token.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = "The token's id or serial")),
    responses(
        (status = 204, description = "The token is gone"),
        (status = 401, description = "No valid API key", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin key", body = super::error::ErrorBody),
        (status = 404, description = "No such token", body = super::error::ErrorBody),
    )
)]
#[delete("/tokens/{token}")]
pub(super) async fn delete_token(
    caller: ApiCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let now = crate::web::now();
    settled(
        state
            .store
            .delete_token(path.into_inner(), caller.audit(now, "token.delete", "ok"))
            .await,
    )?;
    Ok(HttpResponse::NoContent().finish())
}

/// Turns a seed file into sealed, unassigned, active tokens, all or none. Shared by the API
/// and the console command; the errors name the request field at fault.
pub fn prepare_import(
    keys: &Keys,
    format: ImportFormat,
    data: &[u8],
    preshared_key: Option<&str>,
    password: Option<&str>,
) -> Result<Vec<NewToken>, ApiError> {
    let parsed = match format {
        ImportFormat::Csv => {
            if preshared_key.is_some() {
                return Err(ApiError::field(
                    "preshared_key",
                    "a CSV file has no encryption: leave out the pre-shared key",
                ));
            }
            if password.is_some() {
                return Err(ApiError::field(
                    "password",
                    "a CSV file has no encryption: leave out the password",
                ));
            }
            let text = std::str::from_utf8(data)
                .map_err(|_| ApiError::field("data", "the CSV file is not UTF-8 text"))?;
            import::parse_csv(text)
        }
        ImportFormat::Pskc => {
            let preshared = preshared_key
                .map(|hex| {
                    otp::decode_hex_secret(hex).map_err(|_| {
                        ApiError::field("preshared_key", "the pre-shared key must be hexadecimal")
                    })
                })
                .transpose()?;
            let key = match (&preshared, password) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::field(
                        "password",
                        "give either the pre-shared key or the password, not both",
                    ));
                }
                (Some(key), None) => PskcKey::PreShared(key),
                (None, Some(password)) => PskcKey::Password(password),
                (None, None) => PskcKey::None,
            };
            import::parse_pskc(data, key)
        }
    }
    .map_err(|e| {
        // The parsers refuse a serial used twice in the file: a conflict, like one already stored.
        if e.reason.starts_with("duplicate serial") {
            ApiError::Conflict(format!("the file was not imported: {e}"))
        } else {
            ApiError::field("data", format!("the file was not imported: {e}"))
        }
    })?;
    if parsed.is_empty() {
        return Err(ApiError::field("data", "the file holds no tokens"));
    }
    parsed
        .iter()
        .map(|imported| imported_token(keys, imported))
        .collect()
}

fn imported_token(keys: &Keys, imported: &ImportedToken) -> Result<NewToken, ApiError> {
    let kind = match imported.token_type {
        TokenType::Hotp => TokenKind::Hotp,
        TokenType::Totp => TokenKind::Totp,
    };
    Ok(NewToken {
        serial: imported.serial.clone(),
        name: String::new(),
        kind,
        user_id: None,
        secret: Some(keys.seal(Purpose::TokenSecret, &imported.secret)?),
        algorithm: imported.algorithm.clone(),
        digits: imported.digits,
        period: imported.period,
        last_step: match kind {
            TokenKind::Hotp if imported.counter > 0 => i64::try_from(imported.counter - 1).ok(),
            _ => None,
        },
        destination: None,
        messenger: None,
        pin_hash: None,
        pin_position: PinPosition::Before.as_str().to_string(),
        state: TokenState::Active,
        activation: None,
    })
}

/// Imports the tokens of a PSKC or CSV seed file: all of them or, on any error or duplicate
/// serial, none.
#[utoipa::path(
    tag = "tokens",
    request_body = ImportTokens,
    responses(
        (status = 201, description = "Every token of the file was imported", body = ImportResult),
        (status = 400, description = "The file or a key is invalid; nothing was imported", body = super::error::ErrorBody),
        (status = 401, description = "No valid API key", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin key", body = super::error::ErrorBody),
        (status = 409, description = "A serial exists already; nothing was imported", body = super::error::ErrorBody),
    )
)]
#[post("/tokens/import")]
pub(super) async fn import_tokens(
    caller: ApiCaller,
    state: web::Data<AppState>,
    body: ApiJson<ImportTokens>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let now = crate::web::now();
    let body = body.0;
    let worker_state = state.clone();
    // Password derivation, decryption and sealing of up to thousands of seeds: off the async threads.
    let tokens = web::block(move || {
        prepare_import(
            &worker_state.keys,
            body.format,
            body.data.as_bytes(),
            body.preshared_key.as_deref(),
            body.password.as_deref(),
        )
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("the import did not finish: {e}")))??;
    let serials = settled(
        state
            .store
            .import_tokens(tokens, caller.audit(now, "token.import", "ok"))
            .await,
    )?;
    Ok(HttpResponse::Created().json(ImportResult {
        imported: serials.len(),
        serials,
    }))
}
