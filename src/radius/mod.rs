//! RADIUS (RFC 2865, 2866, 3579, 5080, 5997): otpgate answers gateways itself.
//!
//! `packet` (the codec), `dictionary` and `input` (taking a password field apart) stand on the
//! core floor: no I/O, no clock, no randomness.

pub mod dictionary;
pub mod input;
pub mod packet;
