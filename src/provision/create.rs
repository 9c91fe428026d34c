//! Creating a token of any kind: which fields apply to it, its code length, PIN, destination,
//! messenger and seed, and for a BOT token its one-time activation code.

use std::str::FromStr;

use serde::Deserialize;

use crate::clock::UnixTime;
use crate::crypto::{self, Keys, Purpose};
use crate::domain::{self, IdOrName, Refused, RuleError, TokenKind};
use crate::import;
use crate::otp::{self, Algorithm, Kind, Params, PinPosition};
use crate::store::tokens::{TokenCreation, TokenRecord};
use crate::store::{GeneralSettings, NewToken};

/// The longest seed accepted, in bytes (a SHA-512 key is 64).
pub const MAX_SECRET: usize = 128;

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

/// A new token as asked for, every field as typed. The API takes it as its request body; the
/// panel's and the portal's forms fill it in.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateToken)]
pub struct TokenRequest {
    pub kind: TokenKind,
    pub name: Option<String>,
    /// Generated from the kind and random characters when absent.
    pub serial: Option<String>,
    /// The user the token is assigned to: a number is their id, a string their login.
    pub user: Option<IdOrName>,
    /// A resource the token is assigned to together with its user (a number is its id, a string
    /// its name); needs `user`.
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

impl TokenRequest {
    /// A request for a token of `kind` with every other field left to its default.
    pub fn new(kind: TokenKind) -> TokenRequest {
        TokenRequest {
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

/// The seed of a new TOTP or HOTP token, its parameters and the counter of its next code.
pub struct Seed {
    pub secret: Vec<u8>,
    pub params: Params,
    pub counter: u64,
}

/// A request checked and turned into what the store takes, with the seed of a TOTP or HOTP
/// token kept for its enrolment URI.
pub struct PreparedToken {
    pub creation: TokenCreation,
    pub seed: Option<Seed>,
    /// BOT: the one-time activation code (its hash is in `creation`), to show once.
    pub activation: Option<super::Activation>,
}

/// Refuses a field given for a kind it does not apply to, naming it.
pub(super) fn refuse_for_kind(
    kind: TokenKind,
    field: &'static str,
    given: bool,
    allowed: &[TokenKind],
) -> Result<(), Refused> {
    if given && !allowed.contains(&kind) {
        let names: Vec<&str> = allowed.iter().map(|k| k.as_str()).collect();
        return Err(Refused::field(
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

/// A PIN checked by the general settings' PIN policy, hashed with the server's PIN key.
pub(super) fn pin_hash(
    keys: &Keys,
    pin: &str,
    policy: &domain::PinPolicy,
) -> Result<Vec<u8>, Refused> {
    domain::check_pin(pin, policy)?;
    Ok(keys.pin_hash(pin))
}

fn random_seed(algorithm: Algorithm) -> Result<Vec<u8>, crypto::CryptoError> {
    Ok(match algorithm {
        Algorithm::Sha1 => crypto::random_bytes::<20>()?.to_vec(),
        Algorithm::Sha256 => crypto::random_bytes::<32>()?.to_vec(),
        Algorithm::Sha512 => crypto::random_bytes::<64>()?.to_vec(),
    })
}

fn seed_of(request: &TokenRequest) -> Result<Seed, RuleError> {
    let algorithm = match &request.algorithm {
        None => Algorithm::Sha1,
        Some(text) => Algorithm::from_str(text.trim())
            .map_err(|e| Refused::field("algorithm", e.to_string()))?,
    };
    let digits = domain::otp_length(request.digits.unwrap_or(6))?;
    let kind = match request.kind {
        TokenKind::Hotp => Kind::Hotp,
        _ => Kind::Totp {
            period: request.period.unwrap_or(30),
        },
    };
    let params = Params::new(algorithm, digits, kind).map_err(|e| match e {
        otp::ParamsError::Digits(_) => Refused::field("digits", e.to_string()),
        otp::ParamsError::Period(_) => Refused::field("period", e.to_string()),
    })?;
    let counter = request.counter.unwrap_or(0);
    if i64::try_from(counter).is_err() {
        return Err(Refused::field("counter", "the counter is too large").into());
    }
    let secret = match &request.secret {
        None => {
            if request.secret_format.is_some() {
                return Err(Refused::field(
                    "secret_format",
                    "secret_format describes a given secret; give the secret too",
                )
                .into());
            }
            random_seed(algorithm)?
        }
        Some(text) => {
            let decoded = match request.secret_format.unwrap_or_default() {
                SecretFormat::Base32 => otp::decode_base32_secret(text),
                SecretFormat::Hex => otp::decode_hex_secret(text),
            }
            .map_err(|e| Refused::field("secret", e.to_string()))?;
            if !(import::MIN_SECRET_LEN..=MAX_SECRET).contains(&decoded.len()) {
                return Err(Refused::field(
                    "secret",
                    format!(
                        "a secret must have {} to {MAX_SECRET} bytes, not {}",
                        import::MIN_SECRET_LEN,
                        decoded.len()
                    ),
                )
                .into());
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

/// Checks a request and turns it into the store's creation: the rules of every kind (which
/// fields apply, code length, PIN, destination, messenger, seed) live here once. From the
/// general settings: the code length of MAIL, SMS and BOT tokens when the request names none
/// (TOTP and HOTP default to 6, which every authenticator app shows), and the PIN policy.
pub fn prepare(
    keys: &Keys,
    request: &TokenRequest,
    now: UnixTime,
    general: &GeneralSettings,
) -> Result<PreparedToken, RuleError> {
    let kind = request.kind;
    use TokenKind::{Bot, Hotp, Mail, Sms, Totp};
    refuse_for_kind(kind, "secret", request.secret.is_some(), &[Totp, Hotp])?;
    refuse_for_kind(
        kind,
        "secret_format",
        request.secret_format.is_some(),
        &[Totp, Hotp],
    )?;
    refuse_for_kind(
        kind,
        "algorithm",
        request.algorithm.is_some(),
        &[Totp, Hotp],
    )?;
    refuse_for_kind(kind, "period", request.period.is_some(), &[Totp])?;
    refuse_for_kind(kind, "counter", request.counter.is_some(), &[Hotp])?;
    refuse_for_kind(
        kind,
        "destination",
        request.destination.is_some(),
        &[Mail, Sms],
    )?;
    refuse_for_kind(kind, "messenger", request.messenger.is_some(), &[Bot])?;

    let name = domain::token_name(request.name.as_deref().unwrap_or(""))?;
    let serial = request
        .serial
        .as_deref()
        .map(domain::token_serial)
        .transpose()?;
    let pin_hash = request
        .pin
        .as_deref()
        .map(|pin| pin_hash(keys, pin, &general.pin_policy()))
        .transpose()?;
    let pin_position = match &request.pin_position {
        Some(text) => domain::pin_position(text)?,
        None => PinPosition::Before,
    };
    let destination = request
        .destination
        .as_deref()
        .map(|text| domain::token_destination(kind, text))
        .transpose()?;
    let messenger = match kind {
        Bot => Some(domain::messenger(request.messenger.as_deref())?),
        _ => None,
    };
    if request.resource.is_some() && request.user.is_none() {
        return Err(Refused::field(
            "resource",
            "a token is assigned to a resource together with its user: give user too",
        )
        .into());
    }
    let seed = match kind {
        Totp | Hotp => Some(seed_of(request)?),
        _ => None,
    };
    let digits = match &seed {
        Some(seed) => seed.params.digits,
        None => domain::otp_length(request.digits.unwrap_or(general.default_otp_length))?,
    };
    let sealed = seed
        .as_ref()
        .map(|seed| keys.seal(Purpose::TokenSecret, &seed.secret))
        .transpose()?;
    let activation = (kind == Bot)
        .then(crate::delivery::bot::new_activation_code)
        .transpose()?;
    let activation_expires_at = now + crate::delivery::bot::ACTIVATION_SECONDS;
    let token = NewToken {
        serial: serial.clone().unwrap_or_default(),
        name,
        kind,
        user_id: None,
        secret: sealed,
        algorithm: seed
            .as_ref()
            .map_or(Algorithm::Sha1, |s| s.params.algorithm),
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
            .map(|(_, hash)| (hash.clone(), activation_expires_at)),
    };
    let creation = TokenCreation {
        token,
        generate_serial: serial.is_none(),
        user: request.user.clone(),
        resource: request.resource.clone(),
    };
    Ok(PreparedToken {
        creation,
        seed,
        activation: activation.map(|(code, _)| super::Activation {
            code,
            expires_at: activation_expires_at,
        }),
    })
}

/// The `otpauth://` URI of a new TOTP or HOTP token, named `account` in the app.
pub fn enrolment_uri(issuer: &str, account: &str, seed: &Seed) -> String {
    otp::otpauth_uri(&seed.secret, &seed.params, issuer, account, seed.counter)
}

/// The account name an authenticator app shows for a token the management created: its user's
/// login, or else its serial.
pub fn account_of(record: &TokenRecord) -> String {
    record
        .user_login
        .clone()
        .unwrap_or_else(|| record.token.serial.clone())
}

/// An SVG image of a QR code holding `data` (an `otpauth://` URI, a bot's deep link); None
/// when the data is too long for a QR code.
pub fn qr_svg(data: &str) -> Option<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(220, 220)
            .quiet_zone(true)
            .build(),
    )
}
