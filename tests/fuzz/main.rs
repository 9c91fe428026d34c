//! Fuzz targets, on proptest (cargo-fuzz needs a nightly toolchain): the PSKC importer, the two
//! CSV importers, the configuration parser, the API's JSON bodies and the RADIUS codec. Each
//! target feeds its code edits of valid samples that know their structure (XML elements, lines
//! and fields, JSON values, packets) and raw bytes, for a given time, and fails with the shrunk
//! input and the seed to replay it when the code panics or breaks a property:
//!
//! ```sh
//! OTPGATE_FUZZ_SECONDS=60 cargo test --release --test fuzz -- pskc --nocapture
//! OTPGATE_FUZZ_SEED=… cargo test --test fuzz -- pskc     # replays a reported failure
//! ```
//!
//! The targets are `pskc`, `token_csv`, `user_csv`, `configuration`, `api_bodies`,
//! `settings_bodies`, `radius_parse` and `radius_round_trip`; without `OTPGATE_FUZZ_SECONDS`
//! each runs for 3 seconds. A crash found here becomes a regression test beside the code it
//! crashed.

// The servers of `api` come from the integration tests' helpers; this binary uses a few of them.
#[allow(dead_code)]
#[path = "../server/helpers/mod.rs"]
mod helpers;

mod api;
mod config;
mod import;
mod mutate;
mod radius;
mod run;
