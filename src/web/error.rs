//! The one place where errors become HTML responses. Internal detail goes to the log with its
//! cause chain; the client gets a clear message that leaks nothing.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};

use super::views;
use crate::domain::{Refused, RuleError};

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("not found")]
    NotFound,
    #[error("login required")]
    LoginRequired,
    #[error("the form was not sent from this page")]
    Csrf,
    #[error("too many attempts")]
    TooManyRequests { retry_after_seconds: u64 },
    /// Every password worker is busy: try again in a moment.
    #[error("{0}")]
    Busy(crate::domain::Busy),
    /// A rule refused the request: the client's doing, answered with a 4xx in the refusal's
    /// words. (Forms show refusals next to what was typed instead: `form::Problems::of`.)
    #[error(transparent)]
    Refused(#[from] Refused),
    /// A known address asked with a method it does not take.
    #[error("{method} is not taken here")]
    MethodNotAllowed { method: String, allow: String },
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl From<RuleError> for PageError {
    fn from(error: RuleError) -> Self {
        match error {
            RuleError::Refused(Refused::TooMany {
                retry_after_seconds,
            }) => PageError::TooManyRequests {
                retry_after_seconds,
            },
            RuleError::Refused(refused) => PageError::Refused(refused),
            RuleError::Busy(busy) => PageError::Busy(busy),
            RuleError::Failed(error) => PageError::Internal(error),
        }
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(error: crate::store::StoreError) -> Self {
        RuleError::from(error).into()
    }
}

impl From<crate::crypto::CryptoError> for PageError {
    fn from(error: crate::crypto::CryptoError) -> Self {
        PageError::Internal(error.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::LoginRequired => StatusCode::SEE_OTHER,
            PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::TooManyRequests { .. } | PageError::Refused(Refused::TooMany { .. }) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            PageError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Refused(Refused::NotFound(_)) => StatusCode::NOT_FOUND,
            PageError::Refused(Refused::Field(_) | Refused::Invalid(_)) => StatusCode::BAD_REQUEST,
            PageError::Refused(Refused::Conflict(_)) => StatusCode::CONFLICT,
            PageError::Refused(Refused::Forbidden(_)) => StatusCode::FORBIDDEN,
            PageError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let PageError::LoginRequired = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/admin/login"))
                .finish();
        }
        let (title, message) = match self {
            PageError::LoginRequired => ("Login required", "Log in first.".to_string()),
            PageError::NotFound | PageError::Refused(Refused::NotFound(_)) => {
                ("Not found", "There is nothing at this address.".to_string())
            }
            PageError::TooManyRequests { retry_after_seconds }
            | PageError::Refused(Refused::TooMany { retry_after_seconds }) => (
                "Too many attempts",
                format!("Too many attempts. Try again in {}.", views::wait_in_words(*retry_after_seconds)),
            ),
            PageError::Refused(refused) => ("Not done", format!("Nothing was changed: {refused}.")),
            PageError::Csrf => (
                "Form expired",
                "This form has expired or was not sent from an otpgate page. Go back, reload the page and try again."
                    .to_string(),
            ),
            PageError::Busy(busy) => (
                "Busy",
                format!(
                    "otpgate is busy checking other logins right now. Try again in {}.",
                    views::wait_in_words(busy.retry_after_seconds)
                ),
            ),
            PageError::MethodNotAllowed { method, allow } => (
                "Method not allowed",
                format!("This address does not take a {method} request; it takes {allow}."),
            ),
            PageError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                (
                    "Something went wrong",
                    "otpgate could not complete this request. The details are in the server log.".to_string(),
                )
            }
        };
        let mut response = HttpResponse::build(self.status_code());
        if let PageError::TooManyRequests {
            retry_after_seconds,
        }
        | PageError::Refused(Refused::TooMany {
            retry_after_seconds,
        })
        | PageError::Busy(crate::domain::Busy {
            retry_after_seconds,
        }) = self
        {
            response.insert_header((header::RETRY_AFTER, retry_after_seconds.to_string()));
        }
        if let PageError::MethodNotAllowed { allow, .. } = self {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        response
            .content_type("text/html; charset=utf-8")
            .body(views::message_page(title, &message).into_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One refusal of each kind; a new kind must be added here, and so mapped.
    fn every_refusal() -> Vec<Refused> {
        vec![
            Refused::field("name", "too long"),
            Refused::Invalid("names nothing".into()),
            Refused::NotFound("token"),
            Refused::Conflict("taken".into()),
            Refused::Forbidden("not yours".into()),
            Refused::TooMany {
                retry_after_seconds: 61,
            },
        ]
        .into_iter()
        .inspect(|refused| match refused {
            Refused::Field(_)
            | Refused::Invalid(_)
            | Refused::NotFound(_)
            | Refused::Conflict(_)
            | Refused::Forbidden(_)
            | Refused::TooMany { .. } => {}
        })
        .collect()
    }

    #[test]
    fn every_refusal_is_a_4xx_page_in_its_words() {
        for refused in every_refusal() {
            let words = refused.to_string();
            let error = PageError::from(RuleError::from(refused));
            assert!(error.status_code().is_client_error(), "{words}");
            let response = error.error_response();
            assert!(response.status().is_client_error(), "{words}");
        }
    }

    #[test]
    fn a_busy_server_is_a_503_page_that_says_when_to_try_again() {
        let error = PageError::from(RuleError::from(crate::domain::Busy {
            retry_after_seconds: 1,
        }));
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }
}
