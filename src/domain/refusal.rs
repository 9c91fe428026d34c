//! How a rule says no. A refusal is the client's doing (a value that does not fit, an object
//! that does not exist, a clash with what is stored): every front end answers it with a 4xx,
//! in the refusal's own words, and changes nothing. Anything else that stops a rule (a broken
//! disk, a key that cannot open a seal) is a failure, which the front ends log and answer
//! with a 5xx that tells nothing. Between the two, a server too busy to take a request now
//! (`Busy`) answers 503 and says when to try again.

/// A value refused for one field of a form or request: the field's name and why, in words for
/// the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> FieldError {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

/// Why a rule refused a request although everything worked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// One field's value does not fit.
    #[error("{0}")]
    Field(FieldError),
    /// The request as a whole does not fit (no one field is at fault).
    #[error("{0}")]
    Invalid(String),
    /// The addressed object does not exist.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The change clashes with what is stored (a duplicate serial, a token of another user).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this (an API key of another resource).
    #[error("{0}")]
    Forbidden(String),
    /// Too many attempts in a row: the next one is taken after this many seconds.
    #[error("too many attempts; try again in {}", super::words::count(*retry_after_seconds, "second", "seconds"))]
    TooMany { retry_after_seconds: u64 },
}

impl Refused {
    /// A refusal of one field's value.
    pub fn field(field: &'static str, message: impl Into<String>) -> Refused {
        Refused::Field(FieldError::new(field, message))
    }
}

impl From<FieldError> for Refused {
    fn from(error: FieldError) -> Refused {
        Refused::Field(error)
    }
}

/// The server cannot take the request now (every password worker is busy and the line is
/// full): neither the client's doing nor a failure. The client may try again after this many
/// seconds; the front ends answer 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("otpgate is busy; try again in {}", super::words::count(*retry_after_seconds, "second", "seconds"))]
pub struct Busy {
    pub retry_after_seconds: u64,
}

/// What a shared rule answers when it does not succeed: a refusal, the server being too busy
/// to take it now, or a failure.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl From<FieldError> for RuleError {
    fn from(error: FieldError) -> RuleError {
        RuleError::Refused(Refused::Field(error))
    }
}
