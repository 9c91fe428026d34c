//! `/settings/mail` and `/settings/sms`: how otpgate sends codes, and a test send for each.
//! Secrets (the SMTP password, the gateway's password or token) are written, never read
//! back: answers say only whether one is set.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, post, put, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::AdminRefusals;
use super::error::ErrorBody;
use super::{AdminCaller, ApiError, ApiJson};
use crate::delivery::mail::{self, MailSettings, Security};
use crate::delivery::settings::{
    default_mail, default_mail_port, default_sms, save_mail, save_sms, send_test_message, stored,
};
use crate::delivery::sms::{self, AuthKind, BodyFormat, Method, SmsSettings};
use crate::delivery::{self, SendError};
use crate::store::delivery_settings::ChannelSettings;
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
    /// Required (true) for a login with security `none`: the login and password then cross
    /// the network in clear. Default false.
    #[serde(default)]
    allow_plaintext_credentials: bool,
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
    /// Whether credentials may cross the network in clear.
    allow_plaintext_credentials: bool,
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
    /// Required (true) to send credentials (basic, bearer, or `{secret}` in a header) to an
    /// `http://` URL: they then cross the network in clear. Default false.
    #[serde(default)]
    allow_plaintext_credentials: bool,
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
    /// Whether credentials may cross the network in clear.
    allow_plaintext_credentials: bool,
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
        allow_plaintext_credentials: mail.allow_plaintext_credentials,
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
        allow_plaintext_credentials: sms.allow_plaintext_credentials,
        updated_at: settings.updated_at,
    }
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
        AdminRefusals,
    )
)]
#[get("/settings/mail")]
pub async fn get_mail(
    state: web::Data<AppState>,
    _admin: AdminCaller,
) -> Result<HttpResponse, ApiError> {
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
        AdminRefusals,
    )
)]
#[put("/settings/mail")]
pub async fn put_mail(
    state: web::Data<AppState>,
    caller: AdminCaller,
    body: ApiJson<MailSettingsRequest>,
) -> Result<HttpResponse, ApiError> {
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
        allow_plaintext_credentials: body.allow_plaintext_credentials,
    };
    let now = crate::clock::now();
    save_mail(
        &state.store,
        &state.keys,
        settings,
        body.password,
        now,
        caller.audit(now, "settings.mail.update", "ok"),
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
        AdminRefusals,
    )
)]
#[post("/settings/mail/test")]
pub async fn test_mail(
    state: web::Data<AppState>,
    caller: AdminCaller,
    body: ApiJson<TestRequest>,
) -> Result<HttpResponse, ApiError> {
    let result = send_test_message(
        &state.store,
        &state.keys,
        mail::CHANNEL,
        &body.0.to,
        caller.change("settings.mail.test"),
    )
    .await?;
    Ok(HttpResponse::Ok().json(test_result(result)))
}

/// The SMS gateway's settings (the secret only as `secret_set`).
#[utoipa::path(
    tag = "settings",
    responses(
        (status = 200, description = "The settings", body = SmsSettingsView),
        AdminRefusals,
    )
)]
#[get("/settings/sms")]
pub async fn get_sms(
    state: web::Data<AppState>,
    _admin: AdminCaller,
) -> Result<HttpResponse, ApiError> {
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
        AdminRefusals,
    )
)]
#[put("/settings/sms")]
pub async fn put_sms(
    state: web::Data<AppState>,
    caller: AdminCaller,
    body: ApiJson<SmsSettingsRequest>,
) -> Result<HttpResponse, ApiError> {
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
        allow_plaintext_credentials: body.allow_plaintext_credentials,
    };
    let now = crate::clock::now();
    save_sms(
        &state.store,
        &state.keys,
        settings,
        body.secret,
        now,
        caller.audit(now, "settings.sms.update", "ok"),
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
        AdminRefusals,
    )
)]
#[post("/settings/sms/test")]
pub async fn test_sms(
    state: web::Data<AppState>,
    caller: AdminCaller,
    body: ApiJson<TestRequest>,
) -> Result<HttpResponse, ApiError> {
    let result = send_test_message(
        &state.store,
        &state.keys,
        sms::CHANNEL,
        &body.0.to,
        caller.change("settings.sms.test"),
    )
    .await?;
    Ok(HttpResponse::Ok().json(test_result(result)))
}
