//! Importing the seed file of a batch of hardware tokens (PSKC or CSV): every token of the
//! file sealed and unassigned, or none.

use serde::{Deserialize, Serialize};

use crate::crypto::{Keys, Purpose};
use crate::domain::{Refused, RuleError, TokenKind, TokenState};
use crate::import::{self, ImportedToken, PskcKey, TokenType};
use crate::otp::{self, PinPosition};
use crate::store::NewToken;

/// The format of a token seed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportFormat {
    /// PSKC (RFC 6030) XML.
    Pskc,
    /// `serial,secret[,type,digits,period_or_counter,algorithm]` lines.
    Csv,
}

impl ImportFormat {
    /// The format a file name's extension tells, if it tells one.
    pub fn from_file_name(name: &str) -> Option<ImportFormat> {
        let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match extension.as_str() {
            "xml" | "pskc" | "pskcxml" => Some(ImportFormat::Pskc),
            "csv" => Some(ImportFormat::Csv),
            _ => None,
        }
    }

    /// The format of a file's contents: XML is PSKC, anything else CSV.
    pub fn from_contents(data: &str) -> ImportFormat {
        if data
            .trim_start_matches('\u{feff}')
            .trim_start()
            .starts_with('<')
        {
            ImportFormat::Pskc
        } else {
            ImportFormat::Csv
        }
    }
}

/// Turns a seed file into sealed, unassigned, active tokens, all or none; the refusals name
/// the request field at fault (`data`, `preshared_key`, `password`). CPU-heavy (key
/// derivation, decryption, sealing thousands of seeds): callers run it off the async threads.
pub fn prepare(
    keys: &Keys,
    format: ImportFormat,
    data: &[u8],
    preshared_key: Option<&str>,
    password: Option<&str>,
) -> Result<Vec<NewToken>, RuleError> {
    let parsed = match format {
        ImportFormat::Csv => {
            if preshared_key.is_some() {
                return Err(Refused::field(
                    "preshared_key",
                    "a CSV file has no encryption: leave out the pre-shared key",
                )
                .into());
            }
            if password.is_some() {
                return Err(Refused::field(
                    "password",
                    "a CSV file has no encryption: leave out the password",
                )
                .into());
            }
            let text = std::str::from_utf8(data)
                .map_err(|_| Refused::field("data", "the CSV file is not UTF-8 text"))?;
            import::parse_csv(text)
        }
        ImportFormat::Pskc => {
            let preshared = preshared_key
                .map(|hex| {
                    otp::decode_hex_secret(hex).map_err(|_| {
                        Refused::field("preshared_key", "the pre-shared key must be hexadecimal")
                    })
                })
                .transpose()?;
            let key = match (&preshared, password) {
                (Some(_), Some(_)) => {
                    return Err(Refused::field(
                        "password",
                        "give either the pre-shared key or the password, not both",
                    )
                    .into());
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
            Refused::Conflict(format!("the file was not imported: {e}"))
        } else {
            Refused::field("data", format!("the file was not imported: {e}"))
        }
    })?;
    if parsed.is_empty() {
        return Err(Refused::field("data", "the file holds no tokens").into());
    }
    parsed
        .iter()
        .map(|imported| imported_token(keys, imported))
        .collect()
}

fn imported_token(keys: &Keys, imported: &ImportedToken) -> Result<NewToken, RuleError> {
    let kind = match imported.token_type {
        TokenType::Hotp => TokenKind::Hotp,
        TokenType::Totp => TokenKind::Totp,
    };
    let algorithm = imported.algorithm.parse().map_err(|_| {
        anyhow::anyhow!(
            "the importer passed an unknown algorithm {:?}",
            imported.algorithm
        )
    })?;
    Ok(NewToken {
        serial: imported.serial.clone(),
        name: String::new(),
        kind,
        user_id: None,
        secret: Some(keys.seal(Purpose::TokenSecret, &imported.secret)?),
        algorithm,
        digits: imported.digits,
        period: imported.period,
        last_step: match kind {
            TokenKind::Hotp if imported.counter > 0 => i64::try_from(imported.counter - 1).ok(),
            _ => None,
        },
        destination: None,
        messenger: None,
        pin_hash: None,
        pin_position: PinPosition::Before,
        state: TokenState::Active,
        activation: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_told_by_the_extension_or_else_by_the_contents() {
        assert_eq!(
            ImportFormat::from_file_name("batch.PSKCXML"),
            Some(ImportFormat::Pskc)
        );
        assert_eq!(
            ImportFormat::from_file_name("seeds.csv"),
            Some(ImportFormat::Csv)
        );
        assert_eq!(ImportFormat::from_file_name("seeds"), None);
        assert_eq!(
            ImportFormat::from_contents("\u{feff}  <?xml version"),
            ImportFormat::Pskc
        );
        assert_eq!(ImportFormat::from_contents("a,b"), ImportFormat::Csv);
    }
}
