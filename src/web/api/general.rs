//! `/settings/general`: the general settings of the panel's Settings page (the public address,
//! the default code length, the challenge validity, the PIN rule, the portal's idle timeout and
//! what sending codes may cost), read and replaced with the panel's checks and words: the
//! request's fields are the form's, and one rule (`GeneralSettings::parse`) reads both.

use actix_web::{HttpResponse, get, put, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{AdminRefusals, ErrorBody};
use super::{AdminCaller, ApiError, ApiJson};
use crate::clock::now;
use crate::store::GeneralSettings;
use crate::web::AppState;

/// The general settings to store; they replace the stored ones. A field left out takes its
/// default, as an empty field of the panel's form does.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneralSettingsRequest {
    /// The address users reach otpgate at, used in links such as portal addresses (`http` or
    /// `https`, a host, no query, fragment or user name). Absent, null or empty: the address
    /// otpgate works out at start.
    public_url: Option<String>,
    /// The number of digits of the codes otpgate sends (MAIL, SMS and BOT tokens) unless
    /// chosen otherwise.
    default_otp_length: i64,
    /// How long a code sent by mail, SMS or bot stays valid, in seconds.
    challenge_validity_seconds: i64,
    /// The shortest PIN accepted (default 4).
    pin_min_length: Option<i64>,
    /// The longest PIN accepted: at least `pin_min_length` (default 64).
    pin_max_length: Option<i64>,
    /// Whether a PIN may only have digits (default false).
    #[serde(default)]
    pin_digits_only: bool,
    /// A self-service portal session ends after this many minutes without use (default 15).
    portal_idle_minutes: Option<i64>,
    /// Within this many seconds of a code sent to a token, a new `prepare` re-uses that code
    /// and sends nothing (default 30).
    resend_cooldown_seconds: Option<i64>,
    /// Emails one user may be sent per hour (default 20).
    mail_per_hour: Option<i64>,
    /// Text messages one user may be sent per hour (default 6).
    sms_per_hour: Option<i64>,
    /// Bot messages one user may be sent per hour (default 20).
    bot_per_hour: Option<i64>,
}

/// The general settings in force.
#[derive(Serialize, ToSchema)]
pub struct GeneralSettingsView {
    /// False until settings were saved; the others are then the defaults.
    configured: bool,
    /// Empty: the address otpgate worked out at start.
    public_url: String,
    default_otp_length: u32,
    challenge_validity_seconds: u64,
    pin_min_length: u32,
    pin_max_length: u32,
    pin_digits_only: bool,
    portal_idle_minutes: u32,
    resend_cooldown_seconds: u32,
    mail_per_hour: u32,
    sms_per_hour: u32,
    bot_per_hour: u32,
}

/// What saving changed, and the settings now in force.
#[derive(Serialize, ToSchema)]
pub struct GeneralSettingsSaved {
    /// The changes in words, as the audit log has them; empty when nothing changed.
    changes: Vec<String>,
    settings: GeneralSettingsView,
}

fn view(settings: GeneralSettings, configured: bool) -> GeneralSettingsView {
    GeneralSettingsView {
        configured,
        public_url: settings.public_url,
        default_otp_length: settings.default_otp_length,
        challenge_validity_seconds: settings.challenge_validity_seconds,
        pin_min_length: settings.pin_min_length,
        pin_max_length: settings.pin_max_length,
        pin_digits_only: settings.pin_digits_only,
        portal_idle_minutes: settings.portal_idle_minutes,
        resend_cooldown_seconds: settings.sending.resend_cooldown_seconds,
        mail_per_hour: settings.sending.mail_per_hour,
        sms_per_hour: settings.sending.sms_per_hour,
        bot_per_hour: settings.sending.bot_per_hour,
    }
}

/// The request as the panel's form would carry it: each field as text, empty when left out.
fn as_typed(body: &GeneralSettingsRequest) -> Vec<(&'static str, String)> {
    let number = |value: Option<i64>| value.map(|value| value.to_string()).unwrap_or_default();
    vec![
        ("public_url", body.public_url.clone().unwrap_or_default()),
        ("default_otp_length", body.default_otp_length.to_string()),
        (
            "challenge_validity_seconds",
            body.challenge_validity_seconds.to_string(),
        ),
        ("pin_min_length", number(body.pin_min_length)),
        ("pin_max_length", number(body.pin_max_length)),
        (
            "pin_digits_only",
            if body.pin_digits_only { "on" } else { "" }.to_string(),
        ),
        ("portal_idle_minutes", number(body.portal_idle_minutes)),
        (
            "resend_cooldown_seconds",
            number(body.resend_cooldown_seconds),
        ),
        ("mail_per_hour", number(body.mail_per_hour)),
        ("sms_per_hour", number(body.sms_per_hour)),
        ("bot_per_hour", number(body.bot_per_hour)),
    ]
}

async fn in_force(state: &AppState) -> Result<GeneralSettingsView, ApiError> {
    let stored = state.store.general_settings().await?;
    let configured = stored.is_some();
    Ok(view(
        stored.unwrap_or_else(|| state.general_defaults()),
        configured,
    ))
}

/// The general settings in force.
#[utoipa::path(
    tag = "settings",
    responses(
        (status = 200, description = "The settings", body = GeneralSettingsView),
        AdminRefusals,
    )
)]
#[get("/settings/general")]
pub(super) async fn get_general(
    _admin: AdminCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(in_force(&state).await?))
}

/// Replaces the general settings, with the panel's checks and words; they apply from the
/// next request on.
#[utoipa::path(
    tag = "settings",
    request_body = GeneralSettingsRequest,
    responses(
        (status = 200, description = "What changed, and the settings now in force", body = GeneralSettingsSaved),
        (status = 400, description = "A setting is missing or invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
    )
)]
#[put("/settings/general")]
pub(super) async fn put_general(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<GeneralSettingsRequest>,
) -> Result<HttpResponse, ApiError> {
    let typed = as_typed(&body.0);
    let settings = GeneralSettings::parse(|name| {
        typed
            .iter()
            .find(|(field, _)| *field == name)
            .map_or("", |(_, value)| value.as_str())
    })?;
    let changes = state
        .store
        .save_general_settings(
            settings,
            state.general_defaults(),
            caller.change("settings.general.update"),
            now(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(GeneralSettingsSaved {
        changes,
        settings: in_force(&state).await?,
    }))
}
