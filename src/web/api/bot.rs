//! The Telegram bot: `/settings/bot` (its token, write-only, and where the Bot API is), and
//! the activation of BOT tokens: `POST /tokens/{token}/activation` issues a new one-time code
//! with its deep link and QR code, `GET` tells a page polling it whether the chat is bound.

use actix_web::{HttpResponse, get, post, put, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::address::{TOKEN_PARAMETER, TokenAt};
use super::error::AdminRefusals;
use super::error::ErrorBody;
use super::{AdminCaller, ApiError, ApiJson};
use crate::delivery::bot::{self, BotSettings, BotStatus};
use crate::delivery::settings::save_bot;
use crate::domain::IdOrName;
use crate::store::delivery_settings::ChannelSettings;
use crate::web::AppState;

/// The bot's settings to store; they replace the stored ones and restart the bot.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BotSettingsRequest {
    /// The bot token from @BotFather (`123456:ABC…`): left out keeps the stored one, an empty
    /// string removes it (and stops the bot).
    token: Option<String>,
    /// The Bot API's base URL (default `https://api.telegram.org`; a self-hosted Bot API
    /// server's otherwise).
    api_url: Option<String>,
    /// Seconds one long poll waits for news (1–50, default 25).
    poll_timeout_seconds: Option<u64>,
    /// Seconds one message may take to send (1–120, default 10).
    timeout_seconds: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct BotSettingsView {
    /// False until settings were saved; the other fields are then the defaults.
    configured: bool,
    /// Whether a bot token is stored (it is never shown).
    token_set: bool,
    api_url: String,
    poll_timeout_seconds: u64,
    timeout_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<i64>,
    /// What the bot is doing now, and its username as Telegram reports it.
    status: BotStatus,
}

pub(crate) fn view(state: &AppState, stored: &ChannelSettings) -> BotSettingsView {
    let settings = BotSettings::from_stored(stored);
    BotSettingsView {
        configured: stored.plain.is_some(),
        token_set: stored.secrets.contains_key(bot::TOKEN),
        api_url: settings.api_url,
        poll_timeout_seconds: settings.poll_timeout_seconds,
        timeout_seconds: settings.timeout_seconds,
        updated_at: stored.updated_at,
        status: state.telegram.status(),
    }
}

/// The bot's settings (the token only as `token_set`) and its status.
#[utoipa::path(
    tag = "settings",
    responses(
        (status = 200, description = "The settings and the bot's status", body = BotSettingsView),
        AdminRefusals,
    )
)]
#[get("/settings/bot")]
pub async fn get_bot(
    state: web::Data<AppState>,
    _admin: AdminCaller,
) -> Result<HttpResponse, ApiError> {
    let stored = state.store.channel_settings(bot::CHANNEL).await?;
    Ok(HttpResponse::Ok().json(view(&state, &stored)))
}

/// Replaces the bot's settings and restarts the bot with them, without restarting otpgate.
#[utoipa::path(
    tag = "settings",
    request_body = BotSettingsRequest,
    responses(
        (status = 200, description = "The stored settings", body = BotSettingsView),
        (status = 400, description = "A setting is invalid (named in `field`)", body = ErrorBody),
        AdminRefusals,
    )
)]
#[put("/settings/bot")]
pub async fn put_bot(
    state: web::Data<AppState>,
    caller: AdminCaller,
    body: ApiJson<BotSettingsRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let defaults = BotSettings::default();
    let settings = BotSettings {
        api_url: body
            .api_url
            .map(|url| url.trim().to_string())
            .filter(|url| !url.is_empty())
            .unwrap_or(defaults.api_url),
        poll_timeout_seconds: body
            .poll_timeout_seconds
            .unwrap_or(defaults.poll_timeout_seconds),
        timeout_seconds: body.timeout_seconds.unwrap_or(defaults.timeout_seconds),
    };
    let now = crate::clock::now();
    save_bot(
        &state.store,
        &state.keys,
        &state.telegram,
        settings,
        body.token,
        now,
        caller.audit(now, "settings.bot.update", "ok"),
    )
    .await?;
    let stored = state.store.channel_settings(bot::CHANNEL).await?;
    Ok(HttpResponse::Ok().json(view(&state, &stored)))
}

/// A BOT token's activation: the one-time code, the link that opens the bot's chat with it,
/// and that link as a QR code. Shown once: a new request makes a new code.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivationJson {
    /// The one-time code (URL-safe, 32 characters).
    pub code: String,
    /// What to send the bot by hand when the link cannot be opened: `/start CODE`.
    pub start_command: String,
    /// `https://t.me/<bot>?start=<code>`; absent while the bot's name is not known (no bot
    /// token set, or Telegram not reached yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The link as an SVG QR code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_code_svg: Option<String>,
    /// When the code stops working (unix seconds).
    pub expires_at: i64,
}

impl ActivationJson {
    pub fn new(state: &AppState, activation: crate::provision::Activation) -> ActivationJson {
        let crate::provision::Activation { code, expires_at } = activation;
        let link = state
            .telegram
            .username()
            .map(|username| bot::deep_link(&username, &code));
        let qr_code_svg = link.as_deref().and_then(crate::provision::qr_svg);
        ActivationJson {
            start_command: format!("/start {code}"),
            code,
            link,
            qr_code_svg,
            expires_at,
        }
    }
}

/// Where a BOT token's activation stands, for a page waiting for it.
#[derive(Serialize, ToSchema)]
pub struct ActivationStatusJson {
    /// pending, active or reactivate.
    state: String,
    enabled: bool,
    /// Whether a Telegram chat is bound to the token.
    bound: bool,
    /// When the outstanding activation code expires; absent when none is outstanding.
    #[serde(skip_serializing_if = "Option::is_none")]
    code_expires_at: Option<i64>,
    /// The bot itself.
    bot: BotStatus,
}

async fn token_id(state: &AppState, key: IdOrName) -> Result<i64, ApiError> {
    Ok(state
        .store
        .token_detail(key)
        .await?
        .ok_or(ApiError::NotFound("token"))?
        .record
        .token
        .id)
}

/// Issues a new activation code for a BOT token (the previous one stops working): for a new
/// phone, a code that expired, or a token that needs re-activation.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = TOKEN_PARAMETER)),
    responses(
        (status = 200, description = "The new code, its link and QR code", body = ActivationJson),
        AdminRefusals,
        (status = 404, description = "No such token", body = ErrorBody),
        (status = 409, description = "Not a BOT token", body = ErrorBody),
    )
)]
#[post("/tokens/{token}/activation")]
pub async fn issue_activation(
    state: web::Data<AppState>,
    caller: AdminCaller,
    token: TokenAt,
) -> Result<HttpResponse, ApiError> {
    let id = token_id(&state, token.into_inner()).await?;
    let now = crate::clock::now();
    let entry = crate::store::AuditEntry {
        token_id: Some(id),
        ..caller.audit(now, "token.bot_activation", "ok")
    };
    let activation = crate::provision::issue_activation(&state.store, id, now, entry).await?;
    Ok(HttpResponse::Ok().json(ActivationJson::new(&state, activation)))
}

/// Whether a BOT token's chat is bound yet: a page showing the QR code polls this.
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = TOKEN_PARAMETER)),
    responses(
        (status = 200, description = "The token's activation state", body = ActivationStatusJson),
        AdminRefusals,
        (status = 404, description = "No such BOT token", body = ErrorBody),
    )
)]
#[get("/tokens/{token}/activation")]
pub async fn activation_status(
    state: web::Data<AppState>,
    _admin: AdminCaller,
    token: TokenAt,
) -> Result<HttpResponse, ApiError> {
    let id = token_id(&state, token.into_inner()).await?;
    let status = state
        .store
        .bot_activation_status(id)
        .await?
        .ok_or(ApiError::NotFound("BOT token"))?;
    let now = crate::clock::now();
    Ok(HttpResponse::Ok().json(ActivationStatusJson {
        state: status.state,
        enabled: status.enabled,
        bound: status.bound,
        code_expires_at: status.code_expires_at.filter(|at| *at > now),
        bot: state.telegram.status(),
    }))
}
