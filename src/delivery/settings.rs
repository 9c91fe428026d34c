//! The channels' settings as a service: checked, stored with their secrets sealed, and
//! audited; the defaults shown before anything was saved; and a test message through a channel.
//! The API and the admin panel both save through here, so both apply the same rules.

use std::collections::BTreeMap;

use super::bot::{self, BotSettings, Telegram};
use super::mail::{self, MailSettings, Security};
use super::sms::{self, AuthKind, BodyFormat, Method, SmsSettings};
use super::{Accepted, SendError};
use crate::clock::UnixTime;
use crate::crypto::{Keys, Purpose};
use crate::domain::{Email, FieldError, Phone, RuleError};
use crate::store::delivery_settings::{ChannelSettings, SecretChange};
use crate::store::{AuditEntry, Store};

/// The MAIL channel's settings before any were saved.
pub fn default_mail() -> MailSettings {
    MailSettings {
        host: String::new(),
        port: 587,
        security: Security::Starttls,
        username: None,
        from_address: String::new(),
        from_name: "otpgate".into(),
        timeout_seconds: 10,
        tls_ca_file: None,
        allow_plaintext_credentials: false,
    }
}

/// The SMS gateway's settings before any were saved.
pub fn default_sms() -> SmsSettings {
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
        allow_plaintext_credentials: false,
    }
}

/// The usual port of an SMTP connection protected this way.
pub fn default_mail_port(security: Security) -> u16 {
    match security {
        Security::None => 25,
        Security::Starttls => 587,
        Security::Tls => 465,
    }
}

/// A channel's stored settings, if any were saved (and still read as this kind of settings).
pub fn stored<T: serde::de::DeserializeOwned>(settings: &ChannelSettings) -> Option<T> {
    settings
        .plain
        .as_deref()
        .and_then(|plain| serde_json::from_str(plain).ok())
}

/// Whether `channel` (`mail`, `sms`, `bot`) is set up, by its stored settings: saved settings
/// for mail and SMS, a bot token for the bot.
pub fn is_configured(channel: &str, settings: &ChannelSettings) -> bool {
    match channel {
        bot::CHANNEL => settings.secrets.contains_key(bot::TOKEN),
        _ => settings.plain.is_some(),
    }
}

/// A secret as given: left out keeps, empty removes, anything else is sealed and stored.
fn secret_change(
    keys: &Keys,
    name: &'static str,
    value: Option<String>,
) -> Result<Vec<(String, SecretChange)>, RuleError> {
    Ok(match value {
        None => Vec::new(),
        Some(value) if value.is_empty() => vec![(name.to_string(), SecretChange::Clear)],
        Some(value) => {
            if value.chars().any(|c| c == '\r' || c == '\n') {
                return Err(FieldError::new(name, "must be one line").into());
            }
            vec![(
                name.to_string(),
                SecretChange::Set(keys.seal(Purpose::Credential, value.as_bytes())?),
            )]
        }
    })
}

/// What an audit line says of a secret change, after the settings' own words.
fn changed(secrets: &[(String, SecretChange)], what: &str) -> String {
    if secrets.is_empty() {
        String::new()
    } else {
        format!("; {what} changed")
    }
}

fn json(settings: &impl serde::Serialize) -> Result<String, RuleError> {
    serde_json::to_string(settings).map_err(|e| RuleError::Failed(e.into()))
}

/// Checks and stores the MAIL channel's settings with the password change (None keeps the
/// stored one, an empty one removes it), and the audit line `entry` with what changed.
pub async fn save_mail(
    store: &Store,
    keys: &Keys,
    settings: MailSettings,
    password: Option<String>,
    now: UnixTime,
    entry: AuditEntry,
) -> Result<(), RuleError> {
    settings.validate()?;
    let secrets = secret_change(keys, mail::PASSWORD, password)?;
    let entry = AuditEntry {
        detail: Some(format!(
            "host={} port={}{}",
            settings.host,
            settings.port,
            changed(&secrets, "password")
        )),
        ..entry
    };
    store
        .save_channel_settings(mail::CHANNEL, json(&settings)?, secrets, now, entry)
        .await?;
    Ok(())
}

/// Checks and stores the SMS gateway's settings with the secret change (None keeps the stored
/// one, an empty one removes it), and the audit line `entry`.
pub async fn save_sms(
    store: &Store,
    keys: &Keys,
    settings: SmsSettings,
    secret: Option<String>,
    now: UnixTime,
    entry: AuditEntry,
) -> Result<(), RuleError> {
    let current = store.channel_settings(sms::CHANNEL).await?;
    let secret_set = match &secret {
        Some(secret) => !secret.is_empty(),
        None => current.secrets.contains_key(sms::SECRET),
    };
    settings.validate(secret_set)?;
    let secrets = secret_change(keys, sms::SECRET, secret)?;
    let host = reqwest::Url::parse(&settings.render("+1", "x").url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let entry = AuditEntry {
        detail: Some(format!("gateway={host}{}", changed(&secrets, "secret"))),
        ..entry
    };
    store
        .save_channel_settings(sms::CHANNEL, json(&settings)?, secrets, now, entry)
        .await?;
    Ok(())
}

/// Checks and stores the bot's settings with the token change (None keeps the stored one, an
/// empty one removes it) and the audit line `entry`, then restarts the bot with them.
pub async fn save_bot(
    store: &Store,
    keys: &Keys,
    telegram: &Telegram,
    settings: BotSettings,
    token: Option<String>,
    now: UnixTime,
    entry: AuditEntry,
) -> Result<(), RuleError> {
    settings.validate()?;
    let token = token.map(|t| t.trim().to_string());
    if let Some(token) = token.as_deref()
        && !token.is_empty()
        && !bot::valid_token(token)
    {
        return Err(FieldError::new(
            "token",
            "token must be a bot token as @BotFather gives it (digits, a colon, then letters, digits, - and _)",
        )
        .into());
    }
    let secrets = secret_change(keys, bot::TOKEN, token)?;
    let entry = AuditEntry {
        detail: Some(format!(
            "api_url={}{}",
            settings.api_url,
            changed(&secrets, "token")
        )),
        ..entry
    };
    store
        .save_channel_settings(bot::CHANNEL, json(&settings)?, secrets, now, entry)
        .await?;
    telegram.reload();
    Ok(())
}

/// A Telegram chat to send a test message to: its id, a whole number (negative for a group).
pub fn chat_id(text: &str) -> Result<String, FieldError> {
    text.trim()
        .parse::<i64>()
        .map(|id| id.to_string())
        .map_err(|_| {
            FieldError::new(
                "to",
                format!(
                    "{:?} is not a Telegram chat id: the number the chat has, like 123456789",
                    text.trim()
                ),
            )
        })
}

/// Sends a test message through `channel` (mail, sms or bot) to `to`, an email address, a phone
/// number or a Telegram chat id, and records it with `entry` (its result becomes ok or failed).
pub async fn send_test_message(
    store: &Store,
    keys: &Keys,
    channel: &'static str,
    to: &str,
    entry: AuditEntry,
) -> Result<Result<Accepted, SendError>, RuleError> {
    let recipient = if channel == bot::CHANNEL {
        chat_id(to)?
    } else if channel == sms::CHANNEL {
        Phone::parse(to)
            .map(Phone::into_string)
            .map_err(|invalid| FieldError::new("to", invalid.0))?
    } else {
        Email::parse(to)
            .map(Email::into_string)
            .map_err(|invalid| FieldError::new("to", invalid.0))?
    };
    let result = super::send_test(store, keys, channel, recipient).await;
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    store
        .audit(AuditEntry {
            result: outcome.into(),
            ..entry
        })
        .await?;
    Ok(result)
}
