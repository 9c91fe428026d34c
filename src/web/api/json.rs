//! A JSON body extractor whose errors name the offending field.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::ApiError;

/// Request bodies larger than this are refused.
const LIMIT: usize = 256 * 1024;

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = Bytes::from_request(request, payload);
        let headers = request.headers();
        let content_type_ok = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(is_json);
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::BadRequest {
                    field: None,
                    message: "the body must be JSON (Content-Type: application/json)".into(),
                });
            }
            if declared.is_some_and(|length| length > LIMIT as u64) {
                return Err(ApiError::TooLarge { limit: LIMIT });
            }
            let bytes = body.await.map_err(|error| {
                match error.as_error::<actix_web::error::PayloadError>() {
                    Some(actix_web::error::PayloadError::Overflow) => {
                        ApiError::TooLarge { limit: LIMIT }
                    }
                    _ => ApiError::BadRequest {
                        field: None,
                        message: "the body could not be read".into(),
                    },
                }
            })?;
            if bytes.len() > LIMIT {
                return Err(ApiError::TooLarge { limit: LIMIT });
            }
            parse(&bytes).map(ApiJson)
        })
    }
}

/// Whether a `Content-Type` names JSON: its media type compared without regard to case
/// (`Application/JSON; Charset=UTF-8` is JSON), its parameters aside.
fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Parses a JSON object, naming the field at fault in the error. Every body of the API is an
/// object: anything else is refused before serde sees it, since serde would take an array for
/// a struct's fields in order (`["x"]` as `{"login": "x"}`).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        let what = match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(serde_json::Value::Array(_)) => "an array",
            Ok(serde_json::Value::String(_)) => "a string",
            Ok(serde_json::Value::Number(_)) => "a number",
            Ok(serde_json::Value::Bool(_)) => "a boolean",
            Ok(serde_json::Value::Null) => "null",
            Ok(serde_json::Value::Object(_)) | Err(_) => {
                return Err(ApiError::BadRequest {
                    field: None,
                    message: "the body is not valid JSON".into(),
                });
            }
        };
        return Err(ApiError::BadRequest {
            field: None,
            message: format!("the body must be a JSON object ({{…}}), not {what}"),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        // serde_json says "missing field `x`" at the object level: name the field itself.
        let field = match message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            Some(missing) if path == "." => missing.to_string(),
            Some(missing) => format!("{path}.{missing}"),
            None if path == "." => String::new(),
            None => path,
        };
        let plain = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        let broken = inner.is_syntax() || inner.is_eof();
        ApiError::BadRequest {
            field: (!field.is_empty() && !broken).then_some(field),
            message: if broken {
                "the body is not valid JSON".to_string()
            } else {
                plain
            },
        }
    })?;
    deserializer.end().map_err(|_| ApiError::BadRequest {
        field: None,
        message: "the body has trailing characters after the JSON value".into(),
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        user: String,
        digits: u32,
    }

    fn field_of(body: &str) -> Option<String> {
        match parse::<Sample>(body.as_bytes()) {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("expected a bad request, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn a_missing_field_is_named() {
        assert_eq!(field_of(r#"{"user":"a"}"#).as_deref(), Some("digits"));
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        assert_eq!(
            field_of(r#"{"user":"a","digits":"six"}"#).as_deref(),
            Some("digits")
        );
    }

    #[test]
    fn an_unknown_field_is_named() {
        assert_eq!(
            field_of(r#"{"user":"a","digits":6,"extra":1}"#).as_deref(),
            Some("extra")
        );
    }

    #[test]
    fn anything_but_an_object_is_refused_as_such() {
        for body in [r#"["a", 6]"#, r#""a""#, "6", "true", "null"] {
            match parse::<Sample>(body.as_bytes()) {
                Err(ApiError::BadRequest { field, message }) => {
                    assert_eq!(field, None, "{body}");
                    assert!(message.contains("JSON object"), "{body}: {message}");
                }
                other => panic!(
                    "{body}: expected a bad request, got {:?}",
                    other.map(|_| ())
                ),
            }
        }
    }

    #[test]
    fn media_types_are_compared_without_regard_to_case() {
        for json in [
            "application/json",
            "Application/JSON; Charset=UTF-8",
            " application/json ;charset=utf-8",
        ] {
            assert!(is_json(json), "{json}");
        }
        for other in [
            "text/plain",
            "application/jsonp",
            "application/x-www-form-urlencoded",
        ] {
            assert!(!is_json(other), "{other}");
        }
    }

    #[test]
    fn broken_json_is_refused_without_a_field() {
        assert_eq!(field_of(r#"{"user":"#), None);
    }
}
