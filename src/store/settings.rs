//! Key-value settings of the running system (not the configuration file).

use rusqlite::{Connection, params};

use super::{Result, UnixTime, optional};
use crate::domain::{FieldError, PIN_LENGTHS, PinPolicy};

pub fn get(conn: &Connection, key: &str) -> Result<Option<String>> {
    optional(conn.query_row(
        "SELECT value FROM settings WHERE key = ?1",
        params![key],
        |row| row.get(0),
    ))
}

pub fn set(conn: &Connection, key: &str, value: &str, now: UnixTime) -> Result<()> {
    conn.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![key, value, now],
    )?;
    Ok(())
}

/// The general settings an administrator changes in the panel, stored as one JSON document.
/// Fields added later carry a serde default, so a document saved before them still reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GeneralSettings {
    /// The address users reach otpgate at, used in links (portal addresses, setup links);
    /// empty: the address otpgate worked out at start.
    pub public_url: String,
    /// The OTP length new tokens get unless told otherwise: 6 or 8.
    pub default_otp_length: u32,
    /// How long a code sent by mail, SMS or bot stays valid.
    pub challenge_validity_seconds: u64,
    /// The shortest PIN accepted: 4 to 64.
    #[serde(default = "default_pin_min_length")]
    pub pin_min_length: u32,
    /// The longest PIN accepted: from the shortest to 64.
    #[serde(default = "default_pin_max_length")]
    pub pin_max_length: u32,
    /// Whether a PIN may only have digits.
    #[serde(default)]
    pub pin_digits_only: bool,
    /// A portal session ends after this many minutes without a request: 5 to 240.
    #[serde(default = "default_portal_idle_minutes")]
    pub portal_idle_minutes: u32,
    /// What sending codes may cost: the wait before a token gets another code, and the codes
    /// a user may be sent per hour on each channel.
    #[serde(default)]
    pub sending: SendLimits,
}

/// Codes cost money (an SMS) and attention (a mail, a chat message): how often one user may be
/// sent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SendLimits {
    /// Within this many seconds of a code sent to a token, a new `prepare` re-uses that code
    /// (still valid) and sends nothing: 0 to 600.
    pub resend_cooldown_seconds: u32,
    /// Messages one user may be sent per hour by email, by SMS and through the bot: 1 to 1000.
    pub mail_per_hour: u32,
    pub sms_per_hour: u32,
    pub bot_per_hour: u32,
}

impl Default for SendLimits {
    /// Half a minute between codes, and per hour 20 emails, 20 bot messages and 6 text
    /// messages (SMS costs money, so it is the strictest).
    fn default() -> Self {
        SendLimits {
            resend_cooldown_seconds: 30,
            mail_per_hour: 20,
            sms_per_hour: 6,
            bot_per_hour: 20,
        }
    }
}

impl SendLimits {
    /// The messages a user may be sent per hour through `channel` (`mail`, `sms`, `bot`).
    pub fn per_hour(&self, channel: &str) -> u32 {
        match channel {
            "sms" => self.sms_per_hour,
            "bot" => self.bot_per_hour,
            _ => self.mail_per_hour,
        }
    }
}

/// The wait before another code: up to ten minutes.
pub const RESEND_COOLDOWN: std::ops::RangeInclusive<u32> = 0..=600;
/// Messages per user and hour on one channel.
pub const PER_HOUR: std::ops::RangeInclusive<u32> = 1..=1000;

fn default_pin_min_length() -> u32 {
    PinPolicy::default().min_length
}

fn default_pin_max_length() -> u32 {
    PinPolicy::default().max_length
}

fn default_portal_idle_minutes() -> u32 {
    GeneralSettings::DEFAULT_PORTAL_IDLE_MINUTES
}

/// Challenges live from one minute to half an hour.
pub const CHALLENGE_VALIDITY: std::ops::RangeInclusive<u64> = 60..=1800;
/// A portal session's idle timeout, in minutes.
pub const PORTAL_IDLE_MINUTES: std::ops::RangeInclusive<u32> = 5..=240;

const GENERAL_KEY: &str = "general";

/// A whole number typed in a form, `default` when empty, or None when it is no number in `range`.
fn number_in<T>(text: &str, default: T, range: std::ops::RangeInclusive<T>) -> Option<T>
where
    T: std::str::FromStr + PartialOrd,
{
    let text = text.trim();
    let value = if text.is_empty() {
        default
    } else {
        text.parse().ok()?
    };
    range.contains(&value).then_some(value)
}

/// The settings as they are before anyone changes them; the running server takes the public
/// address and the challenges' validity from its configuration instead.
impl Default for GeneralSettings {
    fn default() -> Self {
        GeneralSettings {
            public_url: String::new(),
            default_otp_length: 6,
            challenge_validity_seconds: GeneralSettings::DEFAULT_CHALLENGE_VALIDITY_SECONDS,
            pin_min_length: default_pin_min_length(),
            pin_max_length: default_pin_max_length(),
            pin_digits_only: false,
            portal_idle_minutes: GeneralSettings::DEFAULT_PORTAL_IDLE_MINUTES,
            sending: SendLimits::default(),
        }
    }
}

impl GeneralSettings {
    /// The portal session idle timeout unless an administrator chose another.
    pub const DEFAULT_PORTAL_IDLE_MINUTES: u32 = 15;
    /// How long a code sent stays valid unless the configuration or an administrator says
    /// otherwise.
    pub const DEFAULT_CHALLENGE_VALIDITY_SECONDS: u64 = 300;

    /// Parses the settings as typed in a form, whose fields `typed` gives by their names (the
    /// names the errors report): `public_url`, `default_otp_length`,
    /// `challenge_validity_seconds`, `pin_min_length`, `pin_max_length`, `pin_digits_only` (a
    /// checkbox: `on`) and `portal_idle_minutes`. An empty PIN length or idle timeout means its
    /// default.
    pub fn parse<'a>(
        typed: impl Fn(&'static str) -> &'a str,
    ) -> std::result::Result<GeneralSettings, FieldError> {
        let bad = |field: &'static str, message: &str| FieldError {
            field,
            message: message.to_string(),
        };
        let public_url = typed("public_url").trim().trim_end_matches('/').to_string();
        if !public_url.is_empty() {
            let parsed = reqwest::Url::parse(&public_url);
            let acceptable = parsed.as_ref().is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some()
                    && url.query().is_none()
                    && url.fragment().is_none()
                    && url.username().is_empty()
            });
            if !acceptable {
                return Err(bad(
                    "public_url",
                    "give an address such as https://otp.example.lan (or leave it empty)",
                ));
            }
        }
        let default_otp_length = match typed("default_otp_length").trim() {
            "6" => 6,
            "8" => 8,
            _ => return Err(bad("default_otp_length", "a code has 6 or 8 digits")),
        };
        let challenge_validity_seconds = typed("challenge_validity_seconds")
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| CHALLENGE_VALIDITY.contains(s))
            .ok_or_else(|| {
                bad(
                    "challenge_validity_seconds",
                    "give a number of seconds from 60 to 1800",
                )
            })?;
        let pins = PinPolicy::default();
        let pin_min_length = number_in(typed("pin_min_length"), pins.min_length, PIN_LENGTHS)
            .ok_or_else(|| bad("pin_min_length", "give a number from 4 to 64"))?;
        let pin_max_length = number_in(
            typed("pin_max_length"),
            pins.max_length,
            pin_min_length..=*PIN_LENGTHS.end(),
        )
        .ok_or_else(|| {
            bad(
                "pin_max_length",
                &format!(
                    "give a number from the minimum length ({pin_min_length}) to {}",
                    PIN_LENGTHS.end()
                ),
            )
        })?;
        let portal_idle_minutes = number_in(
            typed("portal_idle_minutes"),
            GeneralSettings::DEFAULT_PORTAL_IDLE_MINUTES,
            PORTAL_IDLE_MINUTES,
        )
        .ok_or_else(|| {
            bad(
                "portal_idle_minutes",
                "give a number of minutes from 5 to 240",
            )
        })?;
        let limits = SendLimits::default();
        let per_hour = |field: &'static str, default: u32| {
            number_in(typed(field), default, PER_HOUR)
                .ok_or_else(|| bad(field, "give a number of messages from 1 to 1000"))
        };
        let sending = SendLimits {
            resend_cooldown_seconds: number_in(
                typed("resend_cooldown_seconds"),
                limits.resend_cooldown_seconds,
                RESEND_COOLDOWN,
            )
            .ok_or_else(|| {
                bad(
                    "resend_cooldown_seconds",
                    "give a number of seconds from 0 to 600",
                )
            })?,
            mail_per_hour: per_hour("mail_per_hour", limits.mail_per_hour)?,
            sms_per_hour: per_hour("sms_per_hour", limits.sms_per_hour)?,
            bot_per_hour: per_hour("bot_per_hour", limits.bot_per_hour)?,
        };
        Ok(GeneralSettings {
            public_url,
            default_otp_length,
            challenge_validity_seconds,
            pin_min_length,
            pin_max_length,
            pin_digits_only: typed("pin_digits_only") == "on",
            portal_idle_minutes,
            sending,
        })
    }

    /// The PIN rule every place that sets a PIN obeys.
    pub fn pin_policy(&self) -> PinPolicy {
        PinPolicy {
            min_length: self.pin_min_length,
            max_length: self.pin_max_length,
            digits_only: self.pin_digits_only,
        }
    }

    /// How long a portal session may stay unused.
    pub fn portal_idle_seconds(&self) -> i64 {
        i64::from(self.portal_idle_minutes) * 60
    }

    /// What differs from `before`, in words.
    pub fn changes_from(&self, before: &GeneralSettings) -> Vec<String> {
        let mut changes = Vec::new();
        if self.public_url != before.public_url {
            changes.push(format!(
                "public address {} → {}",
                if before.public_url.is_empty() {
                    "(automatic)"
                } else {
                    &before.public_url
                },
                if self.public_url.is_empty() {
                    "(automatic)"
                } else {
                    &self.public_url
                }
            ));
        }
        if self.default_otp_length != before.default_otp_length {
            changes.push(format!(
                "default OTP length {} → {}",
                before.default_otp_length, self.default_otp_length
            ));
        }
        if self.challenge_validity_seconds != before.challenge_validity_seconds {
            changes.push(format!(
                "challenge validity {} s → {} s",
                before.challenge_validity_seconds, self.challenge_validity_seconds
            ));
        }
        if (self.pin_min_length, self.pin_max_length)
            != (before.pin_min_length, before.pin_max_length)
        {
            changes.push(format!(
                "PIN length {}–{} → {}–{}",
                before.pin_min_length,
                before.pin_max_length,
                self.pin_min_length,
                self.pin_max_length
            ));
        }
        if self.pin_digits_only != before.pin_digits_only {
            changes.push(
                if self.pin_digits_only {
                    "PINs digits only"
                } else {
                    "PINs of any characters"
                }
                .to_string(),
            );
        }
        if self.portal_idle_minutes != before.portal_idle_minutes {
            changes.push(format!(
                "portal session idle timeout {} min → {} min",
                before.portal_idle_minutes, self.portal_idle_minutes
            ));
        }
        let (now, then) = (&self.sending, &before.sending);
        if now.resend_cooldown_seconds != then.resend_cooldown_seconds {
            changes.push(format!(
                "wait before another code {} s → {} s",
                then.resend_cooldown_seconds, now.resend_cooldown_seconds
            ));
        }
        for (what, now, then) in [
            ("emails", now.mail_per_hour, then.mail_per_hour),
            ("text messages", now.sms_per_hour, then.sms_per_hour),
            ("bot messages", now.bot_per_hour, then.bot_per_hour),
        ] {
            if now != then {
                changes.push(format!("{what} per user and hour {then} → {now}"));
            }
        }
        changes
    }
}

fn load_general(conn: &Connection) -> Result<Option<GeneralSettings>> {
    Ok(get(conn, GENERAL_KEY)?.and_then(|json| serde_json::from_str(&json).ok()))
}

impl super::Store {
    /// The stored general settings; None until an administrator saved them.
    pub async fn general_settings(&self) -> Result<Option<GeneralSettings>> {
        self.read(load_general).await
    }

    /// Stores the general settings and records what changed compared with `defaults` (what
    /// applied while none were stored) or the stored ones. Returns the changes in words.
    pub async fn save_general_settings(
        &self,
        settings: GeneralSettings,
        defaults: GeneralSettings,
        entry: super::AuditEntry,
        now: UnixTime,
    ) -> Result<Vec<String>> {
        self.write(move |conn| {
            let before = load_general(conn)?.unwrap_or(defaults);
            let changes = settings.changes_from(&before);
            if changes.is_empty() {
                return Ok(changes);
            }
            let json = serde_json::to_string(&settings)
                .map_err(|e| super::StoreError::Conflict(e.to_string()))?;
            set(conn, GENERAL_KEY, &json, now)?;
            super::audit::insert(conn, &entry.detail(changes.join("; ")))?;
            Ok(changes)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings parsed from `fields`, the others empty.
    fn parse_fields(
        fields: &[(&'static str, &'static str)],
    ) -> std::result::Result<GeneralSettings, FieldError> {
        GeneralSettings::parse(|name| {
            fields
                .iter()
                .find(|(field, _)| *field == name)
                .map_or("", |(_, value)| *value)
        })
    }

    #[test]
    fn general_settings_are_checked_field_by_field() {
        let good = parse_fields(&[
            ("public_url", "https://otp.example.lan/"),
            ("default_otp_length", "8"),
            ("challenge_validity_seconds", "300"),
        ])
        .expect("valid");
        assert_eq!(good.public_url, "https://otp.example.lan");
        assert_eq!(good.default_otp_length, 8);
        assert_eq!(
            good.pin_policy(),
            PinPolicy::default(),
            "empty: the defaults"
        );
        assert_eq!(good.portal_idle_minutes, 15);
        let field = |extra: &[(&'static str, &'static str)]| {
            let mut fields = vec![
                ("default_otp_length", "6"),
                ("challenge_validity_seconds", "300"),
            ];
            fields.extend_from_slice(extra);
            parse_fields(&fields).err().map(|e| e.field)
        };
        assert_eq!(field(&[]), None);
        assert_eq!(field(&[("public_url", "ftp://x")]), Some("public_url"));
        assert_eq!(
            field(&[("public_url", "https://x?a=1")]),
            Some("public_url")
        );
        assert_eq!(
            parse_fields(&[
                ("default_otp_length", "7"),
                ("challenge_validity_seconds", "300")
            ])
            .err()
            .map(|e| e.field),
            Some("default_otp_length")
        );
        assert_eq!(
            parse_fields(&[
                ("default_otp_length", "6"),
                ("challenge_validity_seconds", "59")
            ])
            .err()
            .map(|e| e.field),
            Some("challenge_validity_seconds")
        );
        assert_eq!(field(&[("pin_min_length", "3")]), Some("pin_min_length"));
        assert_eq!(field(&[("pin_min_length", "65")]), Some("pin_min_length"));
        assert_eq!(field(&[("pin_min_length", "four")]), Some("pin_min_length"));
        assert_eq!(
            field(&[("pin_min_length", "6"), ("pin_max_length", "5")]),
            Some("pin_max_length")
        );
        assert_eq!(field(&[("pin_max_length", "65")]), Some("pin_max_length"));
        assert_eq!(
            field(&[("portal_idle_minutes", "4")]),
            Some("portal_idle_minutes")
        );
        assert_eq!(
            field(&[("portal_idle_minutes", "241")]),
            Some("portal_idle_minutes")
        );
        let set = parse_fields(&[
            ("default_otp_length", "6"),
            ("challenge_validity_seconds", "300"),
            ("pin_min_length", "6"),
            ("pin_max_length", "6"),
            ("pin_digits_only", "on"),
            ("portal_idle_minutes", "240"),
        ])
        .expect("valid");
        assert_eq!(set.pin_policy().describe(), "exactly 6 digits");
        assert_eq!(set.portal_idle_seconds(), 240 * 60);
    }

    #[test]
    fn settings_saved_before_the_pin_and_idle_fields_read_with_their_defaults() {
        let old = r#"{"public_url":"","default_otp_length":8,"challenge_validity_seconds":300}"#;
        let read: GeneralSettings = serde_json::from_str(old).expect("an old document reads");
        assert_eq!(read.default_otp_length, 8);
        assert_eq!(read.pin_policy(), PinPolicy::default());
        assert_eq!(
            read.portal_idle_minutes,
            GeneralSettings::DEFAULT_PORTAL_IDLE_MINUTES
        );
    }
}
