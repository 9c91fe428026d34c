//! The SMS channel: a generic HTTP gateway, configurable enough for real providers. The URL
//! and the body are templates with `{phone}` and `{message}`, each encoded for where it
//! stands: percent-encoded in the URL, form-encoded in a form body, JSON-string-escaped in a
//! JSON body. Success is a status class or list and, optionally, a text in the answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Accepted, Channel, SendError, SendFuture, open_secret};
use crate::crypto::Keys;
use crate::domain::FieldError;
use crate::store::delivery_settings::ChannelSettings;

/// The outbox's name of this channel.
pub const CHANNEL: &str = "sms";
/// The name of the sealed gateway credential (basic password or bearer token).
pub const SECRET: &str = "secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
}

/// How the body template is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// No body (the URL carries everything).
    None,
    /// `application/x-www-form-urlencoded`, e.g. `to={phone}&text={message}`.
    Form,
    /// `application/json`, e.g. `{"to": "{phone}", "text": "{message}"}`.
    Json,
}

/// How otpgate identifies itself to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    None,
    /// HTTP basic authentication with `username` and the sealed secret as password.
    Basic,
    /// `Authorization: Bearer` with the sealed secret as token.
    Bearer,
}

/// The stored settings of the SMS channel (the secret is kept apart, sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsSettings {
    pub method: Method,
    pub url: String,
    /// Extra headers; `{secret}` in a value stands for the sealed secret (an API key header).
    pub headers: BTreeMap<String, String>,
    pub body_format: BodyFormat,
    pub body: String,
    pub auth: AuthKind,
    pub username: Option<String>,
    /// `2xx`, or a list such as `200,202` (classes and codes may be mixed).
    pub success_status: String,
    /// A text the answer must contain, when the gateway answers 200 to failures too.
    pub success_body: Option<String>,
    pub timeout_seconds: u64,
    /// A PEM file on the otpgate host with the certificate authority of an internal gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<String>,
    /// Whether the administrator allowed credentials to go to an `http://` gateway. Settings
    /// stored before this rule read as false, so they never send credentials in clear.
    #[serde(default)]
    pub allow_plaintext_credentials: bool,
}

/// Why credentials to an `http://` gateway are refused, in words for the administrator.
pub const CREDENTIALS_IN_CLEAR: &str = "the gateway's credentials would cross the network in clear to an http:// address: \
     use https://, or allow plaintext credentials explicitly for a gateway on this host or a \
     network you trust";

fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// Encodes a value for a URL: every byte but the unreserved ones as `%XX` (so `+` is `%2B`).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Encodes a value for a form body: like [`percent_encode`], with spaces as `+`.
pub fn form_encode(value: &str) -> String {
    percent_encode(value).replace("%20", "+")
}

/// Escapes a value for the inside of a JSON string (the template supplies the quotes).
pub fn json_escape(value: &str) -> String {
    let quoted = serde_json::Value::String(value.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

fn fill(template: &str, phone: &str, message: &str, encode: fn(&str) -> String) -> String {
    template
        .replace("{phone}", &encode(phone))
        .replace("{message}", &encode(message))
}

/// Whether a status matches `2xx`, `200,202`, `2xx,302` …
fn status_matches(rule: &str, status: u16) -> bool {
    rule.split(',').map(str::trim).any(|part| {
        if let Some(class) = part.strip_suffix("xx").or_else(|| part.strip_suffix("XX")) {
            class.parse::<u16>().is_ok_and(|c| status / 100 == c)
        } else {
            part.parse::<u16>().is_ok_and(|c| c == status)
        }
    })
}

fn status_rule_is_valid(rule: &str) -> bool {
    !rule.trim().is_empty()
        && rule.split(',').map(str::trim).all(|part| {
            match part.strip_suffix("xx").or_else(|| part.strip_suffix("XX")) {
                Some(class) => class.parse::<u16>().is_ok_and(|c| (1..=5).contains(&c)),
                None => part.parse::<u16>().is_ok_and(|c| (100..=599).contains(&c)),
            }
        })
}

/// A request as the gateway will get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub url: String,
    pub body: Option<(String, &'static str)>,
}

impl SmsSettings {
    /// The request for one message: the URL and the body with their placeholders filled in.
    pub fn render(&self, phone: &str, message: &str) -> Rendered {
        let url = fill(self.url.trim(), phone, message, percent_encode);
        let body = match self.body_format {
            BodyFormat::None => None,
            BodyFormat::Form => Some((
                fill(&self.body, phone, message, form_encode),
                "application/x-www-form-urlencoded",
            )),
            BodyFormat::Json => Some((
                fill(&self.body, phone, message, json_escape),
                "application/json",
            )),
        };
        Rendered { url, body }
    }

    /// Whether requests carry credentials: basic or bearer authentication, or the secret in a
    /// header.
    pub fn sends_credentials(&self) -> bool {
        self.auth != AuthKind::None || self.headers.values().any(|v| v.contains("{secret}"))
    }

    /// Whether these settings send credentials over plain HTTP.
    pub fn credentials_in_clear(&self) -> bool {
        let url = self.url.trim();
        let plain_http = url
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
        plain_http && self.sends_credentials()
    }

    /// Whether these settings would send credentials in clear without the administrator
    /// having allowed it.
    pub fn refuses_credentials_in_clear(&self) -> bool {
        self.credentials_in_clear() && !self.allow_plaintext_credentials
    }

    pub fn validate(&self, secret_set: bool) -> Result<(), FieldError> {
        let sample = self.render("+10000000000", "123456 \"sample\" & more");
        let url = reqwest::Url::parse(&sample.url)
            .map_err(|e| bad("url", format!("not a URL once filled in: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad(
                "url",
                "the URL must be http:// or https:// with a host",
            ));
        }
        if self.refuses_credentials_in_clear() {
            return Err(bad("url", CREDENTIALS_IN_CLEAR));
        }
        if !self.url.contains("{message}") && !self.body.contains("{message}") {
            return Err(bad(
                "body",
                "put {message} in the URL or the body, or the code goes nowhere",
            ));
        }
        if !self.url.contains("{phone}") && !self.body.contains("{phone}") {
            return Err(bad(
                "body",
                "put {phone} in the URL or the body, or the gateway does not know the recipient",
            ));
        }
        match (self.method, self.body_format) {
            (Method::Get, BodyFormat::Form | BodyFormat::Json) => {
                return Err(bad(
                    "body_format",
                    "a GET request has no body: use POST or put everything in the URL",
                ));
            }
            (_, BodyFormat::None) if !self.body.is_empty() => {
                return Err(bad("body", "give a body_format (form or json) for a body"));
            }
            (_, BodyFormat::Json) => {
                if let Some((body, _)) = &sample.body {
                    serde_json::from_str::<serde_json::Value>(body)
                        .map_err(|e| bad("body", format!("not JSON once filled in: {e}")))?;
                }
            }
            _ => {}
        }
        for (name, value) in &self.headers {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad("headers", format!("{name:?} is not a header name")))?;
            reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| bad("headers", format!("the value of {name} is not valid")))?;
        }
        match self.auth {
            AuthKind::Basic if self.username.as_deref().is_none_or(str::is_empty) => {
                return Err(bad("username", "basic authentication needs a username"));
            }
            AuthKind::Basic | AuthKind::Bearer if !secret_set => {
                return Err(bad(
                    "secret",
                    "this authentication needs a secret (password or token)",
                ));
            }
            _ if !secret_set && self.headers.values().any(|v| v.contains("{secret}")) => {
                return Err(bad(
                    "secret",
                    "this authentication needs a secret (password or token)",
                ));
            }
            _ => {}
        }
        if !status_rule_is_valid(&self.success_status) {
            return Err(bad(
                "success_status",
                "give status codes or classes such as 2xx or 200,202",
            ));
        }
        if !(1..=120).contains(&self.timeout_seconds) {
            return Err(bad(
                "timeout_seconds",
                "the timeout must be between 1 and 120 seconds",
            ));
        }
        if let Some(file) = &self.tls_ca_file {
            read_certificate(file).map_err(|message| bad("tls_ca_file", message))?;
        }
        Ok(())
    }
}

/// The certificate authority in a PEM file, trusted besides the public ones.
fn read_certificate(file: &str) -> Result<reqwest::Certificate, String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!("{file} holds no PEM certificate"));
    }
    reqwest::Certificate::from_pem(&pem)
        .map_err(|e| format!("{file} holds no usable certificate: {e}"))
}

/// The SMS channel over one HTTP client.
pub struct SmsChannel {
    settings: SmsSettings,
    secret: Option<String>,
    client: reqwest::Client,
}

/// Builds the channel from the stored settings; for the worker's [`super::StoredChannel`].
pub fn build(settings: &ChannelSettings, keys: &Keys) -> Result<Arc<dyn Channel>, SendError> {
    let plain = settings
        .plain
        .as_deref()
        .ok_or_else(|| SendError::Temporary("SMS delivery is not set up yet".into()))?;
    let sms: SmsSettings = serde_json::from_str(plain).map_err(|e| {
        SendError::Temporary(format!("the stored SMS settings are unreadable: {e}"))
    })?;
    let secret = open_secret(settings, keys, SECRET)?;
    Ok(Arc::new(SmsChannel::new(sms, secret)?))
}

impl SmsChannel {
    pub fn new(settings: SmsSettings, secret: Option<String>) -> Result<SmsChannel, SendError> {
        // Settings stored before the rule, or written around it, send nothing in clear.
        if settings.refuses_credentials_in_clear() {
            return Err(SendError::Temporary(format!(
                "not sent: {CREDENTIALS_IN_CLEAR} (then save the SMS settings again)"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_seconds))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(file) = &settings.tls_ca_file {
            builder =
                builder.add_root_certificate(read_certificate(file).map_err(SendError::Temporary)?);
        }
        let client = builder
            .build()
            .map_err(|e| SendError::Temporary(format!("the HTTP client cannot start: {e}")))?;
        Ok(SmsChannel {
            settings,
            secret,
            client,
        })
    }

    async fn deliver(&self, message: &super::Outgoing) -> Result<Accepted, SendError> {
        let settings = &self.settings;
        let rendered = settings.render(&message.recipient, &message.text);
        let method = match settings.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut request = self.client.request(method, &rendered.url);
        if let Some((body, content_type)) = rendered.body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
        }
        let secret = self.secret.clone().unwrap_or_default();
        for (name, value) in &settings.headers {
            request = request.header(name.as_str(), value.replace("{secret}", &secret));
        }
        request = match settings.auth {
            AuthKind::None => request,
            AuthKind::Basic => {
                request.basic_auth(settings.username.clone().unwrap_or_default(), Some(secret))
            }
            AuthKind::Bearer => request.bearer_auth(secret),
        };
        // Errors never carry the URL: it may hold the message.
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                SendError::Temporary(format!(
                    "the gateway did not answer within {} s",
                    settings.timeout_seconds
                ))
            } else {
                SendError::Temporary(format!("cannot reach the gateway: {}", e.without_url()))
            }
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let code = status.as_u16();
        if !status_matches(&settings.success_status, code) {
            let reason = format!(
                "the gateway answered {code} {}",
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_string();
            return Err(if status.is_server_error() || code == 429 || code == 408 {
                SendError::Temporary(reason)
            } else {
                SendError::Permanent(reason)
            });
        }
        if let Some(pattern) = &settings.success_body
            && !text.contains(pattern.as_str())
        {
            return Err(SendError::Permanent(format!(
                "the gateway answered {code} without the success text"
            )));
        }
        let excerpt: String = text.chars().take(200).collect();
        Ok(Accepted(format!("HTTP {code}: {}", excerpt.trim())))
    }
}

impl Channel for SmsChannel {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    fn send<'a>(&'a self, message: &'a super::Outgoing) -> SendFuture<'a> {
        Box::pin(self.deliver(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SmsSettings {
        SmsSettings {
            method: Method::Post,
            url: "https://sms.example.com/send?to={phone}".into(),
            headers: BTreeMap::new(),
            body_format: BodyFormat::Form,
            body: "text={message}&from=otp".into(),
            auth: AuthKind::None,
            username: None,
            success_status: "2xx".into(),
            success_body: None,
            timeout_seconds: 10,
            tls_ca_file: None,
            allow_plaintext_credentials: false,
        }
    }

    #[test]
    fn credentials_to_an_http_gateway_need_plaintext_credentials_allowed() {
        let mut s = settings();
        s.url = "HTTP://sms.example.com/send?to={phone}".into();
        assert_eq!(
            s.validate(false),
            Ok(()),
            "no credentials, nothing in clear"
        );
        s.headers.insert("X-Key".into(), "{secret}".into());
        assert_eq!(s.validate(true).map_err(|e| e.field), Err("url"));
        assert!(SmsChannel::new(s.clone(), Some("k".into())).is_err());
        s.allow_plaintext_credentials = true;
        assert_eq!(s.validate(true), Ok(()));
        let mut s = settings();
        s.auth = AuthKind::Bearer;
        assert_eq!(s.validate(true), Ok(()), "https carries them safely");
    }

    #[test]
    fn a_missing_or_empty_certificate_authority_file_is_refused() {
        let mut s = settings();
        s.tls_ca_file = Some("/nonexistent/ca.pem".into());
        assert_eq!(s.validate(false).map_err(|e| e.field), Err("tls_ca_file"));
        let file = std::env::temp_dir().join(format!("otpgate-not-pem-{}", std::process::id()));
        std::fs::write(&file, "not a certificate").expect("write");
        s.tls_ca_file = Some(file.to_string_lossy().into_owned());
        assert_eq!(s.validate(false).map_err(|e| e.field), Err("tls_ca_file"));
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn placeholders_are_encoded_for_where_they_stand() {
        let rendered = settings().render("+491511234567", "123 & 4=5 ü+");
        assert_eq!(
            rendered.url,
            "https://sms.example.com/send?to=%2B491511234567"
        );
        assert_eq!(
            rendered.body.map(|b| b.0).as_deref(),
            Some("text=123+%26+4%3D5+%C3%BC%2B&from=otp")
        );
        let mut json = settings();
        json.body_format = BodyFormat::Json;
        json.body = r#"{"to":"{phone}","text":"{message}"}"#.into();
        let rendered = json.render("+1", "say \"hi\"\n\\");
        assert_eq!(
            rendered.body.map(|b| b.0).as_deref(),
            Some(r#"{"to":"+1","text":"say \"hi\"\n\\"}"#)
        );
    }

    #[test]
    fn status_rules_accept_classes_and_codes() {
        assert!(status_matches("2xx", 204));
        assert!(!status_matches("2xx", 302));
        assert!(status_matches("200, 302", 302));
        assert!(status_rule_is_valid("2xx,302"));
        assert!(!status_rule_is_valid("ok"));
        assert!(!status_rule_is_valid("7xx"));
    }

    #[test]
    fn bad_settings_name_their_field() {
        assert_eq!(settings().validate(false), Ok(()));
        let mut s = settings();
        s.url = "not a url".into();
        assert_eq!(s.validate(false).map_err(|e| e.field), Err("url"));
        let mut s = settings();
        s.method = Method::Get;
        assert_eq!(s.validate(false).map_err(|e| e.field), Err("body_format"));
        let mut s = settings();
        s.body_format = BodyFormat::Json;
        s.body = "{\"text\": {message}}".into();
        assert_eq!(s.validate(false).map_err(|e| e.field), Err("body"));
        let mut s = settings();
        s.auth = AuthKind::Bearer;
        assert_eq!(s.validate(false).map_err(|e| e.field), Err("secret"));
        assert_eq!(s.validate(true), Ok(()));
        let mut s = settings();
        s.success_status = "fine".into();
        assert_eq!(
            s.validate(false).map_err(|e| e.field),
            Err("success_status")
        );
    }
}
