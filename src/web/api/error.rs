//! The one place where API errors become JSON responses.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::domain::{FieldError, Refused, RuleError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        field: Option<String>,
        message: String,
    },
    #[error("a valid API key is required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("too many requests")]
    TooManyRequests { retry_after_seconds: u64 },
    #[error("{0}")]
    Busy(crate::domain::Busy),
    /// A known address asked with a method it does not take.
    #[error("this address takes {allow}, not {method}")]
    MethodNotAllowed { method: String, allow: String },
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// A directory server (LDAP) did not answer as asked: its reason, in words for an
    /// administrator.
    #[error("{0}")]
    Directory(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "invalid_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Busy(_) => "busy",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::Directory(_) => "directory_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl From<Refused> for ApiError {
    /// Every refusal is the client's doing, so each is a 4xx.
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Field(error) => ApiError::field(error.field, error.message),
            Refused::Invalid(message) => ApiError::BadRequest {
                field: None,
                message,
            },
            Refused::NotFound(what) => ApiError::NotFound(what),
            Refused::Conflict(message) => ApiError::Conflict(message),
            Refused::Forbidden(message) => ApiError::Forbidden(message),
            Refused::TooMany {
                retry_after_seconds,
            } => ApiError::TooManyRequests {
                retry_after_seconds,
            },
        }
    }
}

impl From<RuleError> for ApiError {
    fn from(error: RuleError) -> Self {
        match error {
            RuleError::Refused(refused) => refused.into(),
            RuleError::Busy(busy) => ApiError::Busy(busy),
            RuleError::Failed(error) => ApiError::Internal(error),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        Refused::Field(error).into()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        RuleError::from(error).into()
    }
}

impl From<crate::crypto::CryptoError> for ApiError {
    fn from(error: crate::crypto::CryptoError) -> Self {
        ApiError::Internal(error.into())
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable code: invalid_request, unauthorized, forbidden, not_found, conflict,
    /// method_not_allowed, too_large, rate_limited, busy, directory_unavailable,
    /// internal_error.
    code: &'static str,
    /// What went wrong, for a person.
    message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

/// What every management endpoint may answer besides its own: no valid key, or a key that is
/// not an admin key.
#[derive(utoipa::IntoResponses)]
#[allow(
    dead_code,
    reason = "describes answers for the OpenAPI document; ApiError makes them"
)]
pub enum AdminRefusals {
    /// No valid API key
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Not an admin key
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Directory(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "API request failed");
                "otpgate could not complete this request; the details are in the server log"
                    .to_string()
            }
            other => other.to_string(),
        };
        let field = match self {
            ApiError::BadRequest { field, .. } => field.clone(),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::TooManyRequests {
                retry_after_seconds,
            }
            | ApiError::Busy(crate::domain::Busy {
                retry_after_seconds,
            }) => {
                response.insert_header((header::RETRY_AFTER, retry_after_seconds.to_string()));
            }
            ApiError::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                response.insert_header((header::ALLOW, allow.as_str()));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
                field,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_a_4xx_answer_in_its_words() {
        for refused in [
            Refused::field("name", "too long"),
            Refused::Invalid("names nothing".into()),
            Refused::NotFound("token"),
            Refused::Conflict("taken".into()),
            Refused::Forbidden("not yours".into()),
            Refused::TooMany {
                retry_after_seconds: 3,
            },
        ] {
            let words = refused.to_string();
            let error = ApiError::from(RuleError::from(refused));
            assert!(error.status_code().is_client_error(), "{words}");
            if !matches!(error, ApiError::TooManyRequests { .. }) {
                assert_eq!(error.to_string(), words);
            }
        }
    }

    #[test]
    fn a_busy_server_answers_503_with_retry_after() {
        let error = ApiError::from(RuleError::from(crate::domain::Busy {
            retry_after_seconds: 2,
        }));
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"2"[..])
        );
    }
}
