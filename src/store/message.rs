//! A message to queue in the outbox, as the rules hand it to the store: a portal's
//! confirmation code, a notice to a user.

use super::UnixTime;

/// A message to queue in the outbox, sealed (it carries a code).
#[derive(Debug, Clone)]
pub struct Message {
    pub channel: &'static str,
    pub recipient: String,
    pub subject: String,
    pub sealed_body: Vec<u8>,
    pub expires_at: UnixTime,
}
