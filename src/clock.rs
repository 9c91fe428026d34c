//! The wall clock. Only the edges read it (a request handler, a worker's loop, a console
//! command); everything inward takes the time as an argument, so that the rules and the OTP
//! core can be tested at any moment.

/// Seconds since the Unix epoch, as every table stores them.
pub type UnixTime = i64;

/// The current time.
pub fn now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
