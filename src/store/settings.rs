//! Key-value settings of the running system (not the configuration file).

use rusqlite::{Connection, params};

use super::{Result, UnixTime, optional};

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GeneralSettings {
    /// The address users reach otpgate at, used in links (portal addresses, setup links);
    /// empty: the address otpgate worked out at start.
    pub public_url: String,
    /// The OTP length new tokens get unless told otherwise: 6 or 8.
    pub default_otp_length: u32,
    /// How long a code sent by mail, SMS or bot stays valid.
    pub challenge_validity_seconds: u64,
}

/// A general setting that is not acceptable, by field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadGeneralSetting {
    pub field: &'static str,
    pub message: String,
}

/// Challenges live from one minute to half an hour.
pub const CHALLENGE_VALIDITY: std::ops::RangeInclusive<u64> = 60..=1800;

const GENERAL_KEY: &str = "general";

impl GeneralSettings {
    /// Parses the settings as typed in a form.
    pub fn parse(
        public_url: &str,
        default_otp_length: &str,
        challenge_validity_seconds: &str,
    ) -> std::result::Result<GeneralSettings, BadGeneralSetting> {
        let bad = |field: &'static str, message: &str| BadGeneralSetting {
            field,
            message: message.to_string(),
        };
        let public_url = public_url.trim().trim_end_matches('/').to_string();
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
        let default_otp_length = match default_otp_length.trim() {
            "6" => 6,
            "8" => 8,
            _ => return Err(bad("default_otp_length", "a code has 6 or 8 digits")),
        };
        let challenge_validity_seconds = challenge_validity_seconds
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
        Ok(GeneralSettings {
            public_url,
            default_otp_length,
            challenge_validity_seconds,
        })
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

    #[test]
    fn general_settings_are_checked_field_by_field() {
        let good = GeneralSettings::parse("https://otp.example.lan/", "8", "300").expect("valid");
        assert_eq!(good.public_url, "https://otp.example.lan");
        assert_eq!(good.default_otp_length, 8);
        assert!(GeneralSettings::parse("", "6", "60").is_ok());
        let field = |url: &str, len: &str, validity: &str| {
            GeneralSettings::parse(url, len, validity)
                .err()
                .map(|e| e.field)
        };
        assert_eq!(field("ftp://x", "6", "300"), Some("public_url"));
        assert_eq!(field("https://x?a=1", "6", "300"), Some("public_url"));
        assert_eq!(field("", "7", "300"), Some("default_otp_length"));
        assert_eq!(field("", "6", "59"), Some("challenge_validity_seconds"));
        assert_eq!(field("", "6", "soon"), Some("challenge_validity_seconds"));
    }
}
