//! `/settings/mail` and `/settings/sms`: how otpgate sends codes, and a test send for each.
//! Secrets (the SMTP password, the gateway's password or token) are written, never read
//! back: answers say only whether one is set.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, post, put, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiCaller, ApiError, ApiJson};
use crate::crypto::Purpose;
use crate::delivery::mail::{self, BadSetting, MailSettings, Security};
use crate::delivery::sms::{self, AuthKind, BodyFormat, Method, SmsSettings};
use crate::delivery::{self, SendError};
use crate::domain::{Email, Phone};
use crate::store::AuditEntry;
use crate::store::delivery_settings::{ChannelSettings, SecretChange};
use crate::web::AppState;

/// The MAIL channel's settings to store; they replace the stored ones.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailSettingsRequest {
    /// The SMTP server's host name or address.
    host: String,
    /// Default: 25 with `none`, 587 with `starttls`, 465 with `tls`.
    port: Option<u16>,
    security: Security,
    /// The SMTP login; leave out for a server that needs none.
    username: Option<String>,
    /// The SMTP password: left out keeps the stored one, an empty string removes it.
    password: Option<String>,
    /// The sender address.
    from_address: String,
    /// The sender name (default "otpgate").
    from_name: Option<String>,
    /// Seconds one whole sending may take, connection included (1–120, default 10).
    timeout_seconds: Option<u64>,
    /// A PEM file on the otpgate host with the certificate authority of an internal server.
    tls_ca_file: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MailSettingsView {
    /// False until settings were saved; the other fields are then the defaults.
    configured: bool,
    host: String,
    port: u16,
    security: Security,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    /// Whether a password is stored (it is never shown).
    password_set: bool,
    from_address: String,
    from_name: String,
    timeout_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_ca_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<i64>,
}

/// The SMS gateway's settings to store; they replace the stored ones.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsSettingsRequest {
    /// GET or POST (default POST).
    method: Option<Method>,
    /// The URL; `{phone}` and `{message}` are percent-encoded where they stand.
    url: String,
    /// Extra headers; `{secret}` in a value stands for the stored secret.
    headers: Option<BTreeMap<String, String>>,
    /// How the body is encoded (default none).
    body_format: Option<BodyFormat>,
    /// The body template: form (`to={phone}&text={message}`) or JSON
    /// (`{"to":"{phone}","text":"{message}"}`), placeholders encoded to match.
    body: Option<String>,
    /// none, basic (username + secret) or bearer (secret); default none.
    auth: Option<AuthKind>,
    username: Option<String>,
    /// The password or token: left out keeps the stored one, an empty string removes it.
    secret: Option<String>,
    /// The statuses that mean success: `2xx` (default) or a list such as `200,202`.
    success_status: Option<String>,
    /// A text the gateway's answer must contain to count as success.
    success_body: Option<String>,
    /// Seconds to wait for the gateway (1–120, default 10).
    timeout_seconds: Option<u64>,
    /// A PEM file on the otpgate host with the certificate authority of an internal gateway.
    tls_ca_file: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SmsSettingsView {
    configured: bool,
    method: Method,
    url: String,
    headers: BTreeMap<String, String>,
    body_format: BodyFormat,
    body: String,
    auth: AuthKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    /// Whether a secret is stored (it is never shown).
    secret_set: bool,
    success_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    success_body: Option<String>,
    timeout_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_ca_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<i64>,
}

/// Where to send a test message.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// An email address (mail) or a phone number (SMS).
    to: String,
}

/// The outcome of a test send: the server's answer, or its error.
#[derive(Serialize, ToSchema)]
pub struct TestResult {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn bad_setting(error: BadSetting) -> ApiError {
    ApiError::field(error.field, error.message)
}

pub(crate) fn default_mail() -> MailSettings {
    MailSettings {
        host: String::new(),
        port: 587,
        security: Security::Starttls,
        username: None,
        from_address: String::new(),
        from_name: "otpgate".into(),
        timeout_seconds: 10,
        tls_ca_file: None,
    }
}

pub(crate) fn default_sms() -> SmsSettings {
    SmsSettings {
        method: Method::Post,
        url: String::new(),
        headers: BTreeMap::new(),
        body_format: BodyFormat::None,
        body: String::new(),
        auth: AuthKind::None,
        username: None,
        success_status: "2xx".into(),
        success_body: None,
        timeout_seconds: 10,
        tls_ca_file: None,
    }
}

pub(crate) fn stored<T: serde::de::DeserializeOwned>(settings: &ChannelSettings) -> Option<T> {
    settings
        .plain
        .as_deref()
        .and_then(|plain| serde_json::from_str(plain).ok())
}

fn mail_view(settings: &ChannelSettings) -> MailSettingsView {
    let configured = stored::<MailSettings>(settings);
    let mail = configured.clone().unwrap_or_else(default_mail);
    MailSettingsView {
        configured: configured.is_some(),
        host: mail.host,
        port: mail.port,
        security: mail.security,
        username: mail.username,
        password_set: settings.secrets.contains_key(mail::PASSWORD),
        from_address: mail.from_address,
        from_name: mail.from_name,
        timeout_seconds: mail.timeout_seconds,
        tls_ca_file: mail.tls_ca_file,
        updated_at: settings.updated_at,
    }
}

fn sms_view(settings: &ChannelSettings) -> SmsSettingsView {
    let configured = stored::<SmsSettings>(settings);
    let sms = configured.clone().unwrap_or_else(default_sms);
    SmsSettingsView {
        configured: configured.is_some(),
        method: sms.method,
        url: sms.url,
        headers: sms.headers,
        body_format: sms.body_format,
        body: sms.body,
        auth: sms.auth,
        username: sms.username,
        secret_set: settings.secrets.contains_key(sms::SECRET),
        success_status: sms.success_status,
        success_body: sms.success_body,
        timeout_seconds: sms.timeout_seconds,
        tls_ca_file: sms.tls_ca_file,
        updated_at: settings.updated_at,
    }
}

/// Why settings could not be saved or a test not sent.
pub(crate) enum SettingsError {
    /// A setting is not acceptable; nothing was stored.
    Bad(BadSetting),
    Failed(anyhow::Error),
}

impl From<SettingsError> for ApiError {
    fn from(error: SettingsError) -> Self {
        match error {
            SettingsError::Bad(bad) => bad_setting(bad),
            SettingsError::Failed(error) => ApiError::Internal(error),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for SettingsError {
    fn from(error: E) -> Self {
        SettingsError::Failed(error.into())
    }
}

/// A secret as given: left out keeps, empty removes, anything else is sealed and stored.
fn secret_change(
    state: &AppState,
    name: &'static str,
    value: Option<String>,
) -> Result<Vec<(String, SecretChange)>, SettingsError> {
    Ok(match value {
        None => Vec::new(),
        Some(value) if value.is_empty() => vec![(name.to_string(), SecretChange::Clear)],
        Some(value) => {
            if value.chars().any(|c| c == '\r' || c == '\n') {
                return Err(SettingsError::Bad(BadSetting {
                    field: name,
                    message: "must be one line".into(),
                }));
            }
            vec![(
                name.to_string(),
                SecretChange::Set(state.keys.seal(Purpose::Credential, value.as_bytes())?),
            )]
        }
    })
}

/// The usual port of an SMTP connection protected this way.
pub(crate) fn default_mail_port(security: Security) -> u16 {
    match security {
        Security::None => 25,
        Security::Starttls => 587,
        Security::Tls => 465,
    }
}

/// Checks and stores the MAIL channel's settings with the password change (None keeps the
/// stored one, an empty one removes it), and the audit line `entry` with what changed. The
/// API and the admin panel both save through here.
pub(crate) async fn save_mail(
    state: &AppState,
    settings: MailSettings,
    password: Option<String>,
    entry: AuditEntry,
) -> Result<(), SettingsError> {
    settings.validate().map_err(SettingsError::Bad)?;
    let secrets = secret_change(state, mail::PASSWORD, password)?;
    let plain = serde_json::to_string(&settings)?;
    let entry = AuditEntry {
        detail: Some(format!(
            "host={} port={}{}",
            settings.host,
            settings.port,
            if secrets.is_empty() {
                ""
            } else {
                "; password changed"
            }
        )),
        ..entry
    };
    state
        .store
        .save_channel_settings(mail::CHANNEL, plain, secrets, crate::web::now(), entry)
        .await?;
    Ok(())
}

/// Checks and stores the SMS gateway's settings with the secret change (None keeps the stored
/// one, an empty one removes it), and the audit line `entry`.
pub(crate) async fn save_sms(
    state: &AppState,
    settings: SmsSettings,
    secret: Option<String>,
    entry: AuditEntry,
) -> Result<(), SettingsError> {
    let current = state.store.channel_settings(sms::CHANNEL).await?;
    let secret_set = match &secret {
        Some(secret) => !secret.is_empty(),
        None => current.secrets.contains_key(sms::SECRET),
    };
    settings.validate(secret_set).map_err(SettingsError::Bad)?;
    let secrets = secret_change(state, sms::SECRET, secret)?;
    let plain = serde_json::to_string(&settings)?;
    let host = reqwest::Url::parse(&settings.render("+1", "x").url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let entry = AuditEntry {
        detail: Some(format!(
            "gateway={host}{}",
            if secrets.is_empty() {
                ""
            } else {
                "; secret changed"
            }
        )),
        ..entry
    };
    state
        .store
        .save_channel_settings(sms::CHANNEL, plain, secrets, crate::web::now(), entry)
        .await?;
    Ok(())
}

/// Sends a test message through `channel` (mail or sms) to `to`, an email address or a phone
/// number, and records it with `entry` (its result becomes ok or failed).
pub(crate) async fn send_test_message(
    state: &AppState,
    channel: &'static str,
    to: &str,
    entry: AuditEntry,
) -> Result<Result<delivery::Accepted, SendError>, SettingsError> {
    let recipient = if channel == sms::CHANNEL {
        Phone::parse(to)
            .map(|phone| phone.as_str().to_string())
            .map_err(|e| e.0)
    } else {
        Email::parse(to).map(Email::into_string).map_err(|e| e.0)
    }
    .map_err(|message| {
        SettingsError::Bad(BadSetting {
            field: "to",
            message,
        })
    })?;
    let result = delivery::send_test(&state.store, &state.keys, channel, recipient).await;
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    state
        .store
        .audit(AuditEntry {
            result: outcome.into(),
            ..entry
        })
        .await?;
    Ok(result)
}

fn optional_text(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn test_result(result: Result<delivery::Accepted, SendError>) -> TestResult {
    match result {
        Ok(accepted) => TestResult {
            ok: true,
            answer: Some(accepted.0),
            error: None,
        },
        Err(error) => TestResult {
            ok: false,
            answer: None,
            error: Some(error.to_string()),
        },
    }
}

/// The MAIL channel's settings (the password only as `password_set`).
#[utoipa::path(
    tag = "settings",
    responses(
        (status = 200, description = "The settings", body = MailSettingsView),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    )
)]
#[get("/settings/mail")]
pub async fn get_mail(
    state: web::Data<AppState>,
    caller: ApiCaller,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let settings = state.store.channel_settings(mail::CHANNEL).await?;
    Ok(HttpResponse::Ok().json(mail_view(&settings)))
}

/// Replaces the MAIL channel's settings; the next email uses them, without a restart.
#[utoipa::path(
    tag = "settings",
    request_body = MailSettingsRequest,
    responses(
        (status = 200, description = "The stored settings", body = MailSettingsView),
        (status = 400, description = "A setting is missing or invalid (named in `field`)", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    )
)]
#[put("/settings/mail")]
pub async fn put_mail(
    state: web::Data<AppState>,
    caller: ApiCaller,
    body: ApiJson<MailSettingsRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let body = body.0;
    let settings = MailSettings {
        host: body.host.trim().to_string(),
        port: body.port.unwrap_or(default_mail_port(body.security)),
        security: body.security,
        username: optional_text(body.username),
        from_address: body.from_address.trim().to_string(),
        from_name: body
            .from_name
            .map(|n| n.trim().to_string())
            .unwrap_or_else(|| "otpgate".into()),
        timeout_seconds: body.timeout_seconds.unwrap_or(10),
        tls_ca_file: optional_text(body.tls_ca_file),
    };
    save_mail(
        &state,
        settings,
        body.password,
        caller.audit(crate::web::now(), "settings.mail.update", "ok"),
    )
    .await?;
    let stored = state.store.channel_settings(mail::CHANNEL).await?;
    Ok(HttpResponse::Ok().json(mail_view(&stored)))
}

/// Sends a test email with the stored settings and reports the SMTP server's answer.
#[utoipa::path(
    tag = "settings",
    request_body = TestRequest,
    responses(
        (status = 200, description = "Whether the server accepted the email, with its answer or error", body = TestResult),
        (status = 400, description = "`to` is not an email address", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    )
)]
#[post("/settings/mail/test")]
pub async fn test_mail(
    state: web::Data<AppState>,
    caller: ApiCaller,
    body: ApiJson<TestRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let result = send_test_message(
        &state,
        mail::CHANNEL,
        &body.0.to,
        caller.audit(crate::web::now(), "settings.mail.test", "ok"),
    )
    .await?;
    Ok(HttpResponse::Ok().json(test_result(result)))
}

/// The SMS gateway's settings (the secret only as `secret_set`).
#[utoipa::path(
    tag = "settings",
    responses(
        (status = 200, description = "The settings", body = SmsSettingsView),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    )
)]
#[get("/settings/sms")]
pub async fn get_sms(
    state: web::Data<AppState>,
    caller: ApiCaller,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let settings = state.store.channel_settings(sms::CHANNEL).await?;
    Ok(HttpResponse::Ok().json(sms_view(&settings)))
}

/// Replaces the SMS gateway's settings; the next text message uses them, without a restart.
#[utoipa::path(
    tag = "settings",
    request_body = SmsSettingsRequest,
    responses(
        (status = 200, description = "The stored settings", body = SmsSettingsView),
        (status = 400, description = "A setting is missing or invalid (named in `field`)", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    )
)]
#[put("/settings/sms")]
pub async fn put_sms(
    state: web::Data<AppState>,
    caller: ApiCaller,
    body: ApiJson<SmsSettingsRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let body = body.0;
    let settings = SmsSettings {
        method: body.method.unwrap_or(Method::Post),
        url: body.url.trim().to_string(),
        headers: body.headers.unwrap_or_default(),
        body_format: body.body_format.unwrap_or(BodyFormat::None),
        body: body.body.unwrap_or_default(),
        auth: body.auth.unwrap_or(AuthKind::None),
        username: optional_text(body.username),
        success_status: body
            .success_status
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "2xx".into()),
        success_body: body.success_body.filter(|s| !s.is_empty()),
        timeout_seconds: body.timeout_seconds.unwrap_or(10),
        tls_ca_file: optional_text(body.tls_ca_file),
    };
    save_sms(
        &state,
        settings,
        body.secret,
        caller.audit(crate::web::now(), "settings.sms.update", "ok"),
    )
    .await?;
    let stored = state.store.channel_settings(sms::CHANNEL).await?;
    Ok(HttpResponse::Ok().json(sms_view(&stored)))
}

/// Sends a test text message with the stored settings and reports the gateway's answer.
#[utoipa::path(
    tag = "settings",
    request_body = TestRequest,
    responses(
        (status = 200, description = "Whether the gateway accepted the message, with its answer or error", body = TestResult),
        (status = 400, description = "`to` is not a phone number", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    )
)]
#[post("/settings/sms/test")]
pub async fn test_sms(
    state: web::Data<AppState>,
    caller: ApiCaller,
    body: ApiJson<TestRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let result = send_test_message(
        &state,
        sms::CHANNEL,
        &body.0.to,
        caller.audit(crate::web::now(), "settings.sms.test", "ok"),
    )
    .await?;
    Ok(HttpResponse::Ok().json(test_result(result)))
}
