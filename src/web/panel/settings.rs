//! The admin panel's Settings page: general settings, the MAIL channel (SMTP), the SMS gateway
//! and the Telegram bot with a test send each, and the HTTPS certificate.
//!
//! Secrets (the SMTP password, the gateway's secret, the bot token, the certificate's key) are
//! write-only: the page says whether one is set and never shows it, not even after a form
//! error. The channels are saved through the same functions as the JSON API, so both apply
//! the same rules.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Page, redirect_with_flash};
use crate::clock::now;
use crate::delivery::bot::{self, BotSettings, BotState};
use crate::delivery::mail::{self, MailSettings, Security};
use crate::delivery::settings::{
    default_mail, default_mail_port, default_sms, save_bot, save_mail, save_sms, send_test_message,
    stored,
};
use crate::delivery::sms::{self, AuthKind, BodyFormat, Method, SmsSettings};
use crate::domain::{FieldError, Refused, RuleError};
use crate::store::GeneralSettings;
use crate::tls::CertificateSource;
use crate::web::form::{Problems, with_status};
use crate::web::views::format_time;
use crate::web::{AppState, PageError};

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/admin/settings", web::get().to(show_settings))
        .route("/admin/settings/general", web::post().to(save_general))
        .route("/admin/settings/mail", web::post().to(save_mail_settings))
        .route("/admin/settings/mail/test", web::post().to(test_mail))
        .route("/admin/settings/sms", web::post().to(save_sms_settings))
        .route("/admin/settings/sms/test", web::post().to(test_sms))
        .route("/admin/settings/tls", web::post().to(upload_certificate))
        .route("/admin/settings/telegram", web::post().to(save_telegram))
        .route(
            "/admin/settings/telegram/test",
            web::post().to(test_telegram),
        );
}

// ---------------------------------------------------------------------------------------------
// The forms as typed.

#[derive(Deserialize, Clone, Default)]
pub struct GeneralForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    public_url: String,
    #[serde(default)]
    default_otp_length: String,
    #[serde(default)]
    challenge_validity_seconds: String,
    #[serde(default)]
    pin_min_length: String,
    #[serde(default)]
    pin_max_length: String,
    /// A checkbox: `on` when ticked, absent otherwise.
    #[serde(default)]
    pin_digits_only: String,
    #[serde(default)]
    portal_idle_minutes: String,
    #[serde(default)]
    resend_cooldown_seconds: String,
    #[serde(default)]
    mail_per_hour: String,
    #[serde(default)]
    sms_per_hour: String,
    #[serde(default)]
    bot_per_hour: String,
}

impl GeneralForm {
    /// A field as typed, by the name the settings' errors use.
    fn value(&self, name: &str) -> &str {
        match name {
            "public_url" => &self.public_url,
            "default_otp_length" => &self.default_otp_length,
            "challenge_validity_seconds" => &self.challenge_validity_seconds,
            "pin_min_length" => &self.pin_min_length,
            "pin_max_length" => &self.pin_max_length,
            "pin_digits_only" => &self.pin_digits_only,
            "portal_idle_minutes" => &self.portal_idle_minutes,
            "resend_cooldown_seconds" => &self.resend_cooldown_seconds,
            "mail_per_hour" => &self.mail_per_hour,
            "sms_per_hour" => &self.sms_per_hour,
            "bot_per_hour" => &self.bot_per_hour,
            _ => "",
        }
    }
}

#[derive(Deserialize, Clone, Default)]
pub struct BotForm {
    #[serde(default)]
    csrf: String,
    /// Write-only: empty keeps the stored token.
    #[serde(default)]
    token: String,
    #[serde(default)]
    clear_token: Option<String>,
    #[serde(default)]
    api_url: String,
    #[serde(default)]
    poll_timeout_seconds: String,
    #[serde(default)]
    timeout_seconds: String,
}

fn bot_form(settings: &BotSettings) -> BotForm {
    BotForm {
        api_url: settings.api_url.clone(),
        poll_timeout_seconds: settings.poll_timeout_seconds.to_string(),
        timeout_seconds: settings.timeout_seconds.to_string(),
        ..BotForm::default()
    }
}

#[derive(Deserialize, Clone, Default)]
pub struct MailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    security: String,
    #[serde(default)]
    username: String,
    /// Write-only: empty keeps the stored password.
    #[serde(default)]
    password: String,
    #[serde(default)]
    clear_password: Option<String>,
    #[serde(default)]
    from_address: String,
    #[serde(default)]
    from_name: String,
    #[serde(default)]
    timeout_seconds: String,
    #[serde(default)]
    tls_ca_file: String,
    /// The box that lets credentials cross the network in clear.
    #[serde(default)]
    allow_plaintext_credentials: Option<String>,
}

#[derive(Deserialize, Clone, Default)]
pub struct SmsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    url: String,
    /// One `Name: value` per line.
    #[serde(default)]
    headers: String,
    #[serde(default)]
    body_format: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    /// Write-only: empty keeps the stored secret.
    #[serde(default)]
    secret: String,
    #[serde(default)]
    clear_secret: Option<String>,
    #[serde(default)]
    success_status: String,
    #[serde(default)]
    success_body: String,
    #[serde(default)]
    timeout_seconds: String,
    #[serde(default)]
    tls_ca_file: String,
    /// The box that lets credentials cross the network in clear.
    #[serde(default)]
    allow_plaintext_credentials: Option<String>,
}

#[derive(Deserialize, Clone, Default)]
pub struct TestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: String,
}

#[derive(Deserialize, Clone, Default)]
pub struct TlsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    certificate: String,
    /// Write-only: never shown again.
    #[serde(default)]
    private_key: String,
}

/// The outcome of a test send, shown under its button.
struct TestOutcome {
    to: String,
    result: Result<String, String>,
}

/// Everything the page shows: the forms (as stored, or as typed when one had errors), the
/// errors of each, and a test result.
#[derive(Default)]
struct SettingsView {
    general: GeneralForm,
    general_errors: Problems,
    mail: MailForm,
    mail_password_set: bool,
    mail_errors: Problems,
    mail_test: Option<TestOutcome>,
    mail_test_to: String,
    sms: SmsForm,
    sms_secret_set: bool,
    sms_errors: Problems,
    sms_test: Option<TestOutcome>,
    sms_test_to: String,
    tls_certificate: String,
    tls_errors: Problems,
    bot: BotForm,
    bot_token_set: bool,
    bot_errors: Problems,
    bot_test: Option<TestOutcome>,
    bot_test_to: String,
    /// The confirmation of a save, shown in the section it is about: (section, message).
    saved: Option<(&'static str, String)>,
}

fn security_name(security: Security) -> &'static str {
    match security {
        Security::None => "none",
        Security::Starttls => "starttls",
        Security::Tls => "tls",
    }
}

/// A checkbox's form value.
fn ticked(on: bool) -> Option<String> {
    on.then(|| "on".to_string())
}

/// The box that allows credentials in clear, and while it is ticked, a warning of what that
/// means.
fn plaintext_credentials(form_value: &Option<String>, label: &str, what: &str) -> Markup {
    html! {
        label.check {
            input type="checkbox" name="allow_plaintext_credentials" value="on" checked[form_value.is_some()];
            (label)
        }
        @if form_value.is_some() {
            p.warning role="alert" {
                strong { "Plaintext credentials are allowed: " }
                (what) " cross the network unencrypted, readable by anyone on the path. Keep this only for a server on this host or a network you trust."
            }
        }
    }
}

fn mail_form(settings: &MailSettings) -> MailForm {
    MailForm {
        host: settings.host.clone(),
        port: settings.port.to_string(),
        security: security_name(settings.security).into(),
        username: settings.username.clone().unwrap_or_default(),
        from_address: settings.from_address.clone(),
        from_name: settings.from_name.clone(),
        timeout_seconds: settings.timeout_seconds.to_string(),
        tls_ca_file: settings.tls_ca_file.clone().unwrap_or_default(),
        allow_plaintext_credentials: ticked(settings.allow_plaintext_credentials),
        ..MailForm::default()
    }
}

fn sms_form(settings: &SmsSettings) -> SmsForm {
    SmsForm {
        method: match settings.method {
            Method::Get => "GET",
            Method::Post => "POST",
        }
        .into(),
        url: settings.url.clone(),
        headers: settings
            .headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .collect::<Vec<_>>()
            .join("\n"),
        body_format: match settings.body_format {
            BodyFormat::None => "none",
            BodyFormat::Form => "form",
            BodyFormat::Json => "json",
        }
        .into(),
        body: settings.body.clone(),
        auth: match settings.auth {
            AuthKind::None => "none",
            AuthKind::Basic => "basic",
            AuthKind::Bearer => "bearer",
        }
        .into(),
        username: settings.username.clone().unwrap_or_default(),
        success_status: settings.success_status.clone(),
        success_body: settings.success_body.clone().unwrap_or_default(),
        timeout_seconds: settings.timeout_seconds.to_string(),
        tls_ca_file: settings.tls_ca_file.clone().unwrap_or_default(),
        allow_plaintext_credentials: ticked(settings.allow_plaintext_credentials),
        ..SmsForm::default()
    }
}

/// The page's forms filled from what is stored.
async fn stored_view(state: &AppState) -> Result<SettingsView, PageError> {
    let general = state
        .store
        .general_settings()
        .await?
        .unwrap_or_else(|| state.general_defaults());
    let mail_stored = state.store.channel_settings(mail::CHANNEL).await?;
    let sms_stored = state.store.channel_settings(sms::CHANNEL).await?;
    let bot_stored = state.store.channel_settings(bot::CHANNEL).await?;
    Ok(SettingsView {
        bot: bot_form(&BotSettings::from_stored(&bot_stored)),
        bot_token_set: bot_stored.secrets.contains_key(bot::TOKEN),
        general: GeneralForm {
            public_url: general.public_url,
            default_otp_length: general.default_otp_length.to_string(),
            challenge_validity_seconds: general.challenge_validity_seconds.to_string(),
            pin_min_length: general.pin_min_length.to_string(),
            pin_max_length: general.pin_max_length.to_string(),
            pin_digits_only: if general.pin_digits_only {
                "on".into()
            } else {
                String::new()
            },
            portal_idle_minutes: general.portal_idle_minutes.to_string(),
            resend_cooldown_seconds: general.sending.resend_cooldown_seconds.to_string(),
            mail_per_hour: general.sending.mail_per_hour.to_string(),
            sms_per_hour: general.sending.sms_per_hour.to_string(),
            bot_per_hour: general.sending.bot_per_hour.to_string(),
            ..GeneralForm::default()
        },
        mail: mail_form(&stored::<MailSettings>(&mail_stored).unwrap_or_else(default_mail)),
        mail_password_set: mail_stored.secrets.contains_key(mail::PASSWORD),
        sms: sms_form(&stored::<SmsSettings>(&sms_stored).unwrap_or_else(default_sms)),
        sms_secret_set: sms_stored.secrets.contains_key(sms::SECRET),
        ..SettingsView::default()
    })
}

// ---------------------------------------------------------------------------------------------
// The page.

fn secret_state(set: bool) -> Markup {
    html! {
        @if set { span.secret-set { "set" } } @else { span.secret-unset { "not set" } }
    }
}

fn select(name: &str, current: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        select name=(name) {
            @for (value, label) in options {
                option value=(value) selected[*value == current] { (label) }
            }
        }
    }
}

fn test_outcome(outcome: &Option<TestOutcome>) -> Markup {
    html! {
        @if let Some(outcome) = outcome {
            @match &outcome.result {
                Ok(answer) => p.flash role="status" { "Sent to " (outcome.to) ". The server answered: " code { (answer) } },
                Err(error) => p.error role="alert" { "Not sent to " (outcome.to) ": " (error) },
            }
        }
    }
}

/// The confirmation of the last save, when it was about `section`.
fn saved_note(view: &SettingsView, section: &str) -> Markup {
    html! {
        @if let Some((saved, message)) = &view.saved {
            @if *saved == section { p.flash role="status" { (message) } }
        }
    }
}

fn general_section(page: &Page, state: &AppState, view: &SettingsView) -> Markup {
    let form = &view.general;
    let errors = &view.general_errors;
    html! {
        section #general aria-labelledby="general-heading" {
            h2 #general-heading { "General" }
            (saved_note(view, "general"))
            (errors.summary())
            form.stack method="post" action="/admin/settings/general#general" {
                input type="hidden" name="csrf" value=(page.csrf());
                label {
                    "Public address"
                    small { "The address users reach otpgate at, used in links such as portal addresses. Empty: " code { (state.base_url) } "." }
                    input type="url" name="public_url" value=(form.public_url) placeholder="https://otp.example.lan";
                    (errors.note_as_written("public_url"))
                }
                label {
                    "Default OTP length"
                    small { "The number of digits of the codes otpgate sends (MAIL, SMS and BOT tokens) unless chosen otherwise; authenticator apps keep 6, which every app shows." }
                    (select("default_otp_length", &form.default_otp_length, &[("6", "6 digits"), ("8", "8 digits")]))
                    (errors.note_as_written("default_otp_length"))
                }
                label {
                    "Challenge validity (seconds)"
                    small { "How long a code sent by mail, SMS or bot stays valid: 60 to 1800." }
                    input type="number" name="challenge_validity_seconds" value=(form.challenge_validity_seconds) min="60" max="1800" required;
                    (errors.note_as_written("challenge_validity_seconds"))
                }
                fieldset {
                    legend { "PINs" }
                    p.note { "The rule for every PIN set from now on, by administrators, the API and users on the self-service portal. PINs set before keep working." }
                    label {
                        "PIN minimum length"
                        small { "4 to 64 characters. Empty: 4." }
                        input type="number" name="pin_min_length" value=(form.pin_min_length) min="4" max="64";
                        (errors.note_as_written("pin_min_length"))
                    }
                    label {
                        "PIN maximum length"
                        small { "At least the minimum, at most 64. Empty: 64." }
                        input type="number" name="pin_max_length" value=(form.pin_max_length) min="4" max="64";
                        (errors.note_as_written("pin_max_length"))
                    }
                    label.check {
                        input type="checkbox" name="pin_digits_only" value="on" checked[form.pin_digits_only == "on"];
                        "PIN digits only"
                    }
                }
                label {
                    "Portal session idle timeout (minutes)"
                    small { "A self-service portal session ends after this long without use: 5 to 240. Empty: 15." }
                    input type="number" name="portal_idle_minutes" value=(form.portal_idle_minutes) min="5" max="240";
                    (errors.note_as_written("portal_idle_minutes"))
                }
                fieldset {
                    legend { "Sending codes" }
                    p.note { "What codes sent by mail, SMS and bot may cost. Within the wait, a new request for a code re-uses the one just sent (it is still valid) and sends nothing." }
                    label {
                        "Wait before another code (seconds)"
                        small { "0 to 600. Empty: 30." }
                        input type="number" name="resend_cooldown_seconds" value=(form.resend_cooldown_seconds) min="0" max="600";
                        (errors.note_as_written("resend_cooldown_seconds"))
                    }
                    @for (name, label, default) in [
                        ("mail_per_hour", "Emails per user and hour", "20"),
                        ("sms_per_hour", "Text messages per user and hour", "6"),
                        ("bot_per_hour", "Bot messages per user and hour", "20"),
                    ] {
                        label {
                            (label)
                            small { "1 to 1000. Empty: " (default) "." }
                            input type="number" name=(name) value=(form.value(name)) min="1" max="1000";
                            (errors.note_as_written(name))
                        }
                    }
                }
                div { button type="submit" { "Save general settings" } }
            }
        }
    }
}

fn mail_section(page: &Page, view: &SettingsView) -> Markup {
    let form = &view.mail;
    let errors = &view.mail_errors;
    html! {
        section #mail aria-labelledby="mail-heading" {
            h2 #mail-heading { "Mail (SMTP)" }
            (saved_note(view, "mail"))
            (errors.summary())
            form.stack method="post" action="/admin/settings/mail#mail" {
                input type="hidden" name="csrf" value=(page.csrf());
                div.row {
                    label.grow { "SMTP server" input type="text" name="host" value=(form.host) placeholder="smtp.example.lan"; (errors.note_as_written("host")) }
                    label { "Port" small { "Empty: the usual port." } input type="number" name="port" value=(form.port) min="1" max="65535"; (errors.note_as_written("port")) }
                }
                label {
                    "Connection security"
                    (select("security", &form.security, &[("starttls", "STARTTLS (usually port 587)"), ("tls", "TLS from the start (usually port 465)"), ("none", "None (a relay on a trusted network only)")]))
                    (errors.note_as_written("security"))
                }
                div.row {
                    label.grow { "Login" small { "Empty when the server needs none." } input type="text" name="username" value=(form.username) autocomplete="off"; (errors.note_as_written("username")) }
                    label.grow {
                        "Password " (secret_state(view.mail_password_set))
                        small { "Empty keeps the stored password." }
                        input type="password" name="password" autocomplete="new-password";
                        (errors.note_as_written("password"))
                    }
                }
                @if view.mail_password_set {
                    label.check { input type="checkbox" name="clear_password" value="on"; "Remove the stored password" }
                }
                (plaintext_credentials(
                    &form.allow_plaintext_credentials,
                    "Allow the login and password in plaintext",
                    "With connection security None, the SMTP login and password",
                ))
                div.row {
                    label.grow { "Sender address" input type="email" name="from_address" value=(form.from_address) placeholder="otp@example.lan"; (errors.note_as_written("from_address")) }
                    label.grow { "Sender name" input type="text" name="from_name" value=(form.from_name); (errors.note_as_written("from_name")) }
                }
                div.row {
                    label { "Timeout (seconds)" input type="number" name="timeout_seconds" value=(form.timeout_seconds) min="1" max="120"; (errors.note_as_written("timeout_seconds")) }
                    label.grow { "CA certificate file" small { "A PEM file on this host, for a server with an internal certificate authority." } input type="text" name="tls_ca_file" value=(form.tls_ca_file); (errors.note_as_written("tls_ca_file")) }
                }
                div { button type="submit" { "Save mail settings" } }
            }
            form.inline-test #mail-test method="post" action="/admin/settings/mail/test#mail-test" {
                input type="hidden" name="csrf" value=(page.csrf());
                label { "Send a test email to" input type="email" name="to" value=(view.mail_test_to) required; }
                button type="submit" { "Send test email" }
            }
            (test_outcome(&view.mail_test))
        }
    }
}

fn sms_section(page: &Page, view: &SettingsView) -> Markup {
    let form = &view.sms;
    let errors = &view.sms_errors;
    html! {
        section #sms aria-labelledby="sms-heading" {
            h2 #sms-heading { "SMS gateway" }
            (saved_note(view, "sms"))
            p.note { "otpgate calls your SMS provider's HTTP interface. " code { "{phone}" } " and " code { "{message}" } " in the address or the body are replaced, encoded to fit." }
            (errors.summary())
            form.stack method="post" action="/admin/settings/sms#sms" {
                input type="hidden" name="csrf" value=(page.csrf());
                div.row {
                    label { "Method" (select("method", &form.method, &[("POST", "POST"), ("GET", "GET")])) (errors.note_as_written("method")) }
                    label.grow { "Address" input type="text" name="url" value=(form.url) placeholder="https://sms.example.com/send?to={phone}&text={message}"; (errors.note_as_written("url")) }
                }
                label { "Extra headers" small { "One per line: " code { "Name: value" } ". " code { "{secret}" } " stands for the stored secret." } textarea name="headers" rows="2" { (form.headers) } (errors.note_as_written("headers")) }
                div.row {
                    label { "Body format" (select("body_format", &form.body_format, &[("none", "No body"), ("form", "Form"), ("json", "JSON")])) (errors.note_as_written("body_format")) }
                    label.grow { "Body" textarea name="body" rows="2" { (form.body) } (errors.note_as_written("body")) }
                }
                div.row {
                    label { "Authentication" (select("auth", &form.auth, &[("none", "None"), ("basic", "Basic (login and secret)"), ("bearer", "Bearer token (secret)")])) (errors.note_as_written("auth")) }
                    label.grow { "Login" input type="text" name="username" value=(form.username) autocomplete="off"; (errors.note_as_written("username")) }
                    label.grow {
                        "Secret " (secret_state(view.sms_secret_set))
                        small { "Password or token; empty keeps the stored one." }
                        input type="password" name="secret" autocomplete="new-password";
                        (errors.note_as_written("secret"))
                    }
                }
                @if view.sms_secret_set {
                    label.check { input type="checkbox" name="clear_secret" value="on"; "Remove the stored secret" }
                }
                (plaintext_credentials(
                    &form.allow_plaintext_credentials,
                    "Allow the login and secret in plaintext",
                    "To an http:// address, the gateway's login and secret",
                ))
                div.row {
                    label { "Success status" small { "e.g. 2xx or 200,202" } input type="text" name="success_status" value=(form.success_status); (errors.note_as_written("success_status")) }
                    label.grow { "Success text" small { "Optional: a text the answer must contain." } input type="text" name="success_body" value=(form.success_body); (errors.note_as_written("success_body")) }
                    label { "Timeout (seconds)" input type="number" name="timeout_seconds" value=(form.timeout_seconds) min="1" max="120"; (errors.note_as_written("timeout_seconds")) }
                }
                div.row {
                    label.grow { "CA certificate file" small { "A PEM file on this host, for a gateway with an internal certificate authority." } input type="text" name="tls_ca_file" value=(form.tls_ca_file); (errors.note_as_written("tls_ca_file")) }
                }
                div { button type="submit" { "Save SMS settings" } }
            }
            form.inline-test #sms-test method="post" action="/admin/settings/sms/test#sms-test" {
                input type="hidden" name="csrf" value=(page.csrf());
                label { "Send a test SMS to" input type="tel" name="to" value=(view.sms_test_to) required placeholder="+49 151 1234567"; }
                button type="submit" { "Send test SMS" }
            }
            (test_outcome(&view.sms_test))
        }
    }
}

/// The Telegram bot's settings: its token (write-only), where the Bot API is, and what the bot
/// is doing now, with its name as Telegram reports it.
fn telegram_section(page: &Page, state: &AppState, view: &SettingsView) -> Markup {
    let form = &view.bot;
    let errors = &view.bot_errors;
    let status = state.telegram.status();
    html! {
        section #telegram aria-labelledby="telegram-heading" {
            h2 #telegram-heading { "Telegram bot" }
            (saved_note(view, "telegram"))
            p.note { "BOT tokens get their codes from otpgate's own Telegram bot. Create one with @BotFather in Telegram and paste its token here. otpgate asks Telegram for news (long polling), so it needs outbound HTTPS only: no webhook, no public address." }
            dl.facts {
                dt { "Status" }
                dd {
                    span class=(if status.state == BotState::Running { "badge badge-ok" } else { "badge badge-off" }) {
                        (super::tokens::bot_state_text(&status))
                    }
                }
                @if let Some(username) = &status.username {
                    dt { "Bot" } dd { a href={ "https://t.me/" (username) } { "@" (username) } }
                }
            }
            (errors.summary())
            form.stack method="post" action="/admin/settings/telegram#telegram" {
                input type="hidden" name="csrf" value=(page.csrf());
                label.grow {
                    "Bot token " (secret_state(view.bot_token_set))
                    small { "From @BotFather, like 123456:ABC-DEF…; empty keeps the stored token." }
                    input type="password" name="token" autocomplete="off";
                    (errors.note_as_written("token"))
                }
                @if view.bot_token_set {
                    label.check { input type="checkbox" name="clear_token" value="on"; "Remove the stored token (stops the bot)" }
                }
                div.row {
                    label.grow { "Bot API address" small { "Telegram's, or a self-hosted Bot API server." } input type="url" name="api_url" value=(form.api_url); (errors.note_as_written("api_url")) }
                    label { "Long poll (seconds)" input type="number" name="poll_timeout_seconds" value=(form.poll_timeout_seconds) min="1" max="50"; (errors.note_as_written("poll_timeout_seconds")) }
                    label { "Send timeout (seconds)" input type="number" name="timeout_seconds" value=(form.timeout_seconds) min="1" max="120"; (errors.note_as_written("timeout_seconds")) }
                }
                div { button type="submit" { "Save and restart the bot" } }
            }
            form.inline-test #telegram-test method="post" action="/admin/settings/telegram/test#telegram-test" {
                input type="hidden" name="csrf" value=(page.csrf());
                label {
                    "Send a test message to chat"
                    small { "The chat's id: a number. The bot can write only to chats that have pressed Start with it." }
                    input type="text" name="to" value=(view.bot_test_to) required inputmode="numeric" placeholder="123456789";
                }
                button type="submit" { "Send test message" }
            }
            (test_outcome(&view.bot_test))
        }
    }
}

fn bot_settings_from(form: &BotForm) -> Result<BotSettings, FieldError> {
    let defaults = BotSettings::default();
    let number = |text: &str, default: u64, field: &'static str| {
        number_or(text, default).ok_or_else(|| FieldError {
            field,
            message: "give a number of seconds".into(),
        })
    };
    Ok(BotSettings {
        api_url: optional_text(&form.api_url).unwrap_or(defaults.api_url),
        poll_timeout_seconds: number(
            &form.poll_timeout_seconds,
            defaults.poll_timeout_seconds,
            "poll_timeout_seconds",
        )?,
        timeout_seconds: number(
            &form.timeout_seconds,
            defaults.timeout_seconds,
            "timeout_seconds",
        )?,
    })
}

async fn save_telegram(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<BotForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let outcome = match bot_settings_from(&form) {
        Ok(settings) => {
            save_bot(
                &state.store,
                &state.keys,
                &state.telegram,
                settings,
                secret_input(&form.token, form.clear_token.is_some()),
                now(),
                page.audit(&request, "settings.bot.update", "ok"),
            )
            .await
        }
        Err(bad) => Err(RuleError::from(bad)),
    };
    match outcome {
        Ok(()) => Ok(redirect_with_flash(
            &state,
            "/admin/settings?saved=telegram#telegram",
            "Telegram bot settings saved: the bot restarts with them.",
        )),
        Err(error) => {
            let problems = problems_of(error)?;
            let mut view = stored_view(&state).await?;
            view.bot = BotForm {
                token: String::new(),
                ..form.into_inner()
            };
            view.bot_errors = problems;
            Ok(with_status(
                settings_page(&page, &state, &view),
                StatusCode::BAD_REQUEST,
            ))
        }
    }
}

fn tls_section(page: &Page, state: &AppState, view: &SettingsView) -> Markup {
    let errors = &view.tls_errors;
    let info = state.tls.as_ref().and_then(|live| live.info());
    let configured = state.config.tls.cert_file.is_some() && state.config.tls.key_file.is_some();
    html! {
        section #tls aria-labelledby="tls-heading" {
            h2 #tls-heading { "HTTPS certificate" }
            (saved_note(view, "tls"))
            @match &info {
                None => p.note { "otpgate serves plain HTTP: HTTPS is off in the configuration file, so a reverse proxy in front of it provides the certificate." },
                Some(info) => {
                    dl.facts {
                        dt { "Names" } dd { (info.names.join(", ")) }
                        dt { "SHA-256 fingerprint" } dd { code.fingerprint { (info.fingerprint) } }
                        dt { "Valid from (UTC)" } dd { (format_time(info.not_before)) }
                        dt { "Expires (UTC)" } dd class=(if info.not_after - now() < 30 * 86_400 { "result-fail" } else { "" }) { (format_time(info.not_after)) }
                        dt { "Source" } dd { (match info.source {
                            CertificateSource::Configured => "the configuration file (tls.cert_file)",
                            CertificateSource::Generated => "self-signed, generated by otpgate",
                            CertificateSource::Uploaded => "uploaded here",
                        }) }
                    }
                    @if configured {
                        p.note { "The certificate is set in the configuration file; replace the files named there and restart otpgate to change it." }
                    } @else {
                        h3 { "Replace the certificate" }
                        p.note { "Paste the new certificate (with its intermediate certificates after it) and its private key, both in PEM. They are checked — readable, belonging together, valid now — before they replace the current ones; new connections use them at once, without a restart." }
                        (errors.summary())
                        form.stack method="post" action="/admin/settings/tls#tls" {
                            input type="hidden" name="csrf" value=(page.csrf());
                            label { "Certificate (PEM)" textarea.pem name="certificate" rows="6" placeholder="-----BEGIN CERTIFICATE-----" { (view.tls_certificate) } (errors.note_as_written("certificate")) }
                            label { "Private key (PEM)" small { "Never shown again." } textarea.pem name="private_key" rows="6" autocomplete="off" placeholder="-----BEGIN PRIVATE KEY-----" {} (errors.note_as_written("private_key")) }
                            div { button type="submit" { "Check and use this certificate" } }
                        }
                    }
                }
            }
        }
    }
}

/// The whole page. It is long, so every form posts to an address ending in its section's
/// fragment (`#mail`, or `#mail-test` for the test message): the answer (inline errors, a
/// test's outcome) opens where the administrator was, not at the top of the page.
fn settings_page(page: &Page, state: &AppState, view: &SettingsView) -> HttpResponse {
    let body = html! {
        nav.tabs aria-label="Settings sections" {
            a href="#general" { "General" }
            a href="#mail" { "Mail" }
            a href="#sms" { "SMS" }
            a href="#telegram" { "Telegram" }
            a href="#tls" { "HTTPS" }
            a href="/admin/settings/directories" { "Directories" }
        }
        (general_section(page, state, view))
        (mail_section(page, view))
        (sms_section(page, view))
        (telegram_section(page, state, view))
        (tls_section(page, state, view))
    };
    page.render(state, "Settings", "Settings", body)
}

/// The sections of the page, by the ids their links and `?saved=` use.
const SECTIONS: [&str; 5] = ["general", "mail", "sms", "telegram", "tls"];

#[derive(Deserialize, Default)]
pub struct SettingsQuery {
    /// The section just saved: its confirmation is shown there, where the page opens (the
    /// redirect's `#section`), instead of on top of the page, out of sight.
    #[serde(default)]
    saved: String,
}

async fn show_settings(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<SettingsQuery>,
) -> Result<HttpResponse, PageError> {
    let mut page = Page::open(&state, &request).await?;
    let mut view = stored_view(&state).await?;
    if let Some(section) = SECTIONS.into_iter().find(|s| *s == query.saved) {
        view.saved = page.take_flash().map(|message| (section, message));
    }
    Ok(settings_page(&page, &state, &view))
}

// ---------------------------------------------------------------------------------------------
// Saving.

async fn save_general(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<GeneralForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let parsed = GeneralSettings::parse(|name| form.value(name));
    let settings = match parsed {
        Ok(settings) => settings,
        Err(bad) => {
            let mut view = stored_view(&state).await?;
            view.general = form.into_inner();
            view.general_errors.field(bad);
            return Ok(with_status(
                settings_page(&page, &state, &view),
                StatusCode::BAD_REQUEST,
            ));
        }
    };
    let changes = state
        .store
        .save_general_settings(
            settings,
            state.general_defaults(),
            page.audit(&request, "settings.general.update", "ok"),
            now(),
        )
        .await?;
    let message = if changes.is_empty() {
        "General settings saved: nothing changed.".to_string()
    } else {
        format!("General settings saved: {}.", changes.join("; "))
    };
    Ok(redirect_with_flash(
        &state,
        "/admin/settings?saved=general#general",
        &message,
    ))
}

/// A number typed in a form; empty gives `default`.
fn number_or<T: std::str::FromStr>(text: &str, default: T) -> Option<T> {
    let text = text.trim();
    if text.is_empty() {
        Some(default)
    } else {
        text.parse().ok()
    }
}

fn optional_text(text: &str) -> Option<String> {
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

fn mail_settings_from(form: &MailForm) -> Result<MailSettings, FieldError> {
    let bad = |field: &'static str, message: &str| FieldError {
        field,
        message: message.to_string(),
    };
    let security = match form.security.as_str() {
        "none" => Security::None,
        "starttls" => Security::Starttls,
        "tls" => Security::Tls,
        _ => return Err(bad("security", "choose how the connection is protected")),
    };
    Ok(MailSettings {
        host: form.host.trim().to_string(),
        port: number_or(&form.port, default_mail_port(security))
            .ok_or_else(|| bad("port", "the port must be a number between 1 and 65535"))?,
        security,
        username: optional_text(&form.username),
        from_address: form.from_address.trim().to_string(),
        from_name: optional_text(&form.from_name).unwrap_or_else(|| "otpgate".into()),
        timeout_seconds: number_or(&form.timeout_seconds, 10)
            .ok_or_else(|| bad("timeout_seconds", "the timeout must be a number of seconds"))?,
        tls_ca_file: optional_text(&form.tls_ca_file),
        allow_plaintext_credentials: form.allow_plaintext_credentials.is_some(),
    })
}

/// A write-only secret as typed: the removal box wins, an empty field keeps the stored one.
fn secret_input(value: &str, clear: bool) -> Option<String> {
    if clear {
        Some(String::new())
    } else if value.is_empty() {
        None
    } else {
        Some(value.to_string())
    }
}

/// A message as a sentence: a capital first letter and a full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// A refusal of the settings as their section's problems, each message a sentence; a
/// failure stays a failure.
fn problems_of(error: RuleError) -> Result<Problems, PageError> {
    match error {
        RuleError::Refused(Refused::Field(bad)) => Ok(Problems::one(FieldError::new(
            bad.field,
            sentence(&bad.message),
        ))),
        other => Problems::of(other),
    }
}

async fn save_mail_settings(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<MailForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let outcome = match mail_settings_from(&form) {
        Ok(settings) => {
            save_mail(
                &state.store,
                &state.keys,
                settings,
                secret_input(&form.password, form.clear_password.is_some()),
                now(),
                page.audit(&request, "settings.mail.update", "ok"),
            )
            .await
        }
        Err(bad) => Err(RuleError::from(bad)),
    };
    match outcome {
        Ok(()) => Ok(redirect_with_flash(
            &state,
            "/admin/settings?saved=mail#mail",
            "Mail settings saved. The next email uses them.",
        )),
        Err(error) => {
            let problems = problems_of(error)?;
            let mut view = stored_view(&state).await?;
            view.mail = MailForm {
                password: String::new(),
                ..form.into_inner()
            };
            view.mail_errors = problems;
            Ok(with_status(
                settings_page(&page, &state, &view),
                StatusCode::BAD_REQUEST,
            ))
        }
    }
}

fn sms_settings_from(form: &SmsForm) -> Result<SmsSettings, FieldError> {
    let bad = |field: &'static str, message: String| FieldError { field, message };
    let method = match form.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        _ => return Err(bad("method", "choose GET or POST".into())),
    };
    let body_format = match form.body_format.as_str() {
        "none" => BodyFormat::None,
        "form" => BodyFormat::Form,
        "json" => BodyFormat::Json,
        _ => return Err(bad("body_format", "choose a body format".into())),
    };
    let auth = match form.auth.as_str() {
        "none" => AuthKind::None,
        "basic" => AuthKind::Basic,
        "bearer" => AuthKind::Bearer,
        _ => return Err(bad("auth", "choose an authentication".into())),
    };
    let mut headers = BTreeMap::new();
    for line in form
        .headers
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(
                "headers",
                format!("write each header as Name: value, not {line:?}"),
            ));
        };
        headers.insert(name.trim().to_string(), value.trim().to_string());
    }
    Ok(SmsSettings {
        method,
        url: form.url.trim().to_string(),
        headers,
        body_format,
        body: form.body.replace("\r\n", "\n"),
        auth,
        username: optional_text(&form.username),
        success_status: optional_text(&form.success_status).unwrap_or_else(|| "2xx".into()),
        success_body: Some(form.success_body.clone()).filter(|s| !s.is_empty()),
        timeout_seconds: number_or(&form.timeout_seconds, 10).ok_or_else(|| {
            bad(
                "timeout_seconds",
                "the timeout must be a number of seconds".into(),
            )
        })?,
        tls_ca_file: optional_text(&form.tls_ca_file),
        allow_plaintext_credentials: form.allow_plaintext_credentials.is_some(),
    })
}

async fn save_sms_settings(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<SmsForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let outcome = match sms_settings_from(&form) {
        Ok(settings) => {
            save_sms(
                &state.store,
                &state.keys,
                settings,
                secret_input(&form.secret, form.clear_secret.is_some()),
                now(),
                page.audit(&request, "settings.sms.update", "ok"),
            )
            .await
        }
        Err(bad) => Err(RuleError::from(bad)),
    };
    match outcome {
        Ok(()) => Ok(redirect_with_flash(
            &state,
            "/admin/settings?saved=sms#sms",
            "SMS settings saved. The next text message uses them.",
        )),
        Err(error) => {
            let problems = problems_of(error)?;
            let mut view = stored_view(&state).await?;
            view.sms = SmsForm {
                secret: String::new(),
                ..form.into_inner()
            };
            view.sms_errors = problems;
            Ok(with_status(
                settings_page(&page, &state, &view),
                StatusCode::BAD_REQUEST,
            ))
        }
    }
}

/// Sends a test message and shows the page with the server's answer under the button.
async fn run_test(
    state: &web::Data<AppState>,
    request: &HttpRequest,
    form: TestForm,
    channel: &'static str,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(state, request).await?;
    page.check_csrf(&form.csrf)?;
    let action = match channel {
        sms::CHANNEL => "settings.sms.test",
        bot::CHANNEL => "settings.bot.test",
        _ => "settings.mail.test",
    };
    let result = send_test_message(
        &state.store,
        &state.keys,
        channel,
        &form.to,
        page.audit(request, action, "ok"),
    )
    .await;
    let mut view = stored_view(state).await?;
    let (outcome, status) = match result {
        Ok(sent) => (
            Some(TestOutcome {
                to: form.to.trim().to_string(),
                result: sent.map(|a| a.0).map_err(|e| e.to_string()),
            }),
            StatusCode::OK,
        ),
        Err(error) => {
            let problems = problems_of(error)?;
            (
                Some(TestOutcome {
                    to: form.to.trim().to_string(),
                    result: Err(problems.first().unwrap_or_default().to_string()),
                }),
                StatusCode::BAD_REQUEST,
            )
        }
    };
    match channel {
        sms::CHANNEL => {
            view.sms_test = outcome;
            view.sms_test_to = form.to;
        }
        bot::CHANNEL => {
            view.bot_test = outcome;
            view.bot_test_to = form.to;
        }
        _ => {
            view.mail_test = outcome;
            view.mail_test_to = form.to;
        }
    }
    Ok(with_status(settings_page(&page, state, &view), status))
}

async fn test_mail(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<TestForm>,
) -> Result<HttpResponse, PageError> {
    run_test(&state, &request, form.into_inner(), mail::CHANNEL).await
}

async fn test_sms(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<TestForm>,
) -> Result<HttpResponse, PageError> {
    run_test(&state, &request, form.into_inner(), sms::CHANNEL).await
}

async fn test_telegram(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<TestForm>,
) -> Result<HttpResponse, PageError> {
    run_test(&state, &request, form.into_inner(), bot::CHANNEL).await
}

async fn upload_certificate(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<TlsForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let configured = state.config.tls.cert_file.is_some() && state.config.tls.key_file.is_some();
    let Some(live) = state.tls.clone().filter(|_| !configured) else {
        return Err(PageError::NotFound);
    };
    let data_dir = crate::config::resolve_data_dir(&state.config)
        .map_err(|e| PageError::Internal(e.into()))?;
    let certificate = form.certificate.clone();
    let key = form.private_key.clone();
    let installed =
        web::block(move || crate::tls::install_upload(&data_dir, &certificate, &key, now(), &live))
            .await
            .map_err(|e| PageError::Internal(e.into()))?;
    match installed {
        Ok(info) => {
            state
                .store
                .audit(
                    page.audit(&request, "settings.tls.update", "ok")
                        .detail(format!("{} ({})", info.fingerprint, info.names.join(", "))),
                )
                .await?;
            Ok(redirect_with_flash(
                &state,
                "/admin/settings?saved=tls#tls",
                &format!(
                    "New certificate in use for new connections: {}; expires {} UTC.",
                    info.names.join(", "),
                    format_time(info.not_after)
                ),
            ))
        }
        Err(error) => {
            let field = match error {
                crate::tls::UploadError::Key(_) => "private_key",
                _ => "certificate",
            };
            let mut view = stored_view(&state).await?;
            view.tls_certificate = form.certificate.clone();
            view.tls_errors.at(field, sentence(&error.to_string()));
            Ok(with_status(
                settings_page(&page, &state, &view),
                StatusCode::BAD_REQUEST,
            ))
        }
    }
}
