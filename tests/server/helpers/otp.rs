//! One-time passwords as an authenticator app computes them, and the clock they follow.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

/// The 6-digit SHA-1 TOTP code `offset` steps from now.
pub fn totp_now(secret: &[u8], offset: i64) -> String {
    let step = (unix_now() / 30) as i64 + offset;
    otpgate::otp::hotp(secret, otpgate::otp::Algorithm::Sha1, 6, step as u64)
}

/// Waits, when needed, so that the current 30-second step lasts at least `margin` seconds
/// more: tests that use a code twice must stay inside one step.
pub async fn wait_for_fresh_step(margin: u64) {
    let into = unix_now() % 30;
    if into + margin >= 30 {
        tokio::time::sleep(Duration::from_secs(30 - into + 1)).await;
    }
}
