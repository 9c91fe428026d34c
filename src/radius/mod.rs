//! RADIUS (RFC 2865, 2866, 3579, 5080, 5997): otpgate answers gateways itself.
//!
//! `packet` (the codec), `dictionary`, `input` (taking a password field apart), `clients`
//! (the rules of a client's fields) and `reply` (what an Access-Accept carries) stand on the
//! core floor: no I/O, no clock, no randomness.
//! `server` is a front end, beside `web` and `cli`: it imports neither; `challenge` (the State
//! of an Access-Challenge, sealed, and what a challenge says) is its part.
//! `radsec` carries the same evaluation over TLS (RFC 6614); `replies` remembers the answers
//! for retransmits; `listen` binds the UDP sockets and RadSec's listeners at start.

pub mod challenge;
pub mod clients;
pub mod dictionary;
pub mod input;
pub mod listen;
pub mod packet;
pub mod radsec;
pub mod replies;
pub mod reply;
pub mod server;
