//! Runs a target for a given time: proptest's runner, in rounds of cases, until the time is up.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// Cases per round: a round is proptest's unit of work, and the time is checked between rounds.
const ROUND: u32 = 32;

/// Seconds per target: `OTPGATE_FUZZ_SECONDS`, else a short run fit for every test run.
fn seconds() -> f64 {
    std::env::var("OTPGATE_FUZZ_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(3.0)
}

/// The seed of the run: `OTPGATE_FUZZ_SEED` replays one, else the clock chooses.
fn seed() -> u64 {
    std::env::var("OTPGATE_FUZZ_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH);
            now.map_or(1, |d| d.as_nanos() as u64)
        })
}

/// Feeds `test` inputs from `strategy` for the configured time, and prints how many it ran. A
/// failing input (an `Err` or a panic) is shrunk by proptest and reported with the seed.
pub fn fuzz<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let seed = seed();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds());
    let (mut executions, mut round) = (0u64, 0u64);
    while round == 0 || Instant::now() < deadline {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        bytes[8..16].copy_from_slice(&round.to_le_bytes());
        let config = Config {
            cases: ROUND,
            failure_persistence: None,
            max_shrink_iters: 4096,
            ..Config::default()
        };
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
        let mut runner = TestRunner::new_with_rng(config, rng);
        if let Err(failure) = runner.run(&strategy, &test) {
            panic!("fuzz {name}: {failure} (OTPGATE_FUZZ_SEED={seed}, round {round})");
        }
        executions += u64::from(ROUND);
        round += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "fuzz {name}: {executions} executions in {elapsed:.1} s ({:.0}/s), no failure (OTPGATE_FUZZ_SEED={seed})",
        executions as f64 / elapsed
    );
}
