//! What a code typed without a password costs the server when it is refused: for a known user
//! whose code is wrong, and for a login no user has. Both must cost the same, or the time of
//! the answer tells an attacker which logins exist. The benchmark calls the authentication
//! decision in-process (the store on a temporary directory, no HTTP, so that microseconds are
//! not lost in the network's noise), alternating the two kinds of attempt, each started at a
//! random moment, and prints the median, mean, 10th and 90th percentiles of each and their
//! differences. It reports and asserts nothing about speed;
//! it fails only when an answer is not a rejection.
//!
//! `cargo bench --bench refusal`; `OTPGATE_BENCH_ATTEMPTS` (default 20,000 of each kind).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use otpgate::attempts::{Guard, Policy};
use otpgate::auth::{Answer, Attempt, Authenticator, Caller};
use otpgate::config::{AuthConfig, LoginsConfig, PasswordsConfig};
use otpgate::crypto::Keys;
use otpgate::domain::{IdOrName, TokenKind, WithoutSecondFactor};
use otpgate::metrics::Metrics;
use otpgate::passwords::PasswordGate;
use otpgate::provision::{self, TokenRequest};
use otpgate::store::auth::AuthTarget;
use otpgate::store::users::UserDraft;
use otpgate::store::{
    AuditEntry, GeneralSettings, NewResource, NewUser, Store, StoreOptions, Synchronous,
};

mod support;
use support::{env_or, percentile, synchronous};

/// A resource's highest failed-attempt limit: each known user takes fewer misses than this, so
/// that every attempt is a wrong code against an open token, never one against a locked token.
const FAIL_LIMIT: i64 = 10;
const MISSES_PER_USER: usize = 8;

async fn provision_users(store: &Store, keys: &Keys, users: usize, now: i64) -> anyhow::Result<()> {
    let entry = || AuditEntry::new(now, "bench", "bench.provision", "ok");
    store
        .create_resource(
            NewResource {
                name: "bench".into(),
                description: String::new(),
                fail_limit: FAIL_LIMIT,
                password_required: false,
                auto_unlock_seconds: None,
                without_second_factor: WithoutSecondFactor::Refuse,
            },
            entry(),
            now,
        )
        .await?;
    for index in 0..users {
        let login = format!("user{index}");
        store
            .create_user(
                UserDraft {
                    user: NewUser {
                        login: login.clone(),
                        first_name: String::new(),
                        last_name: String::new(),
                        email: None,
                        phone: None,
                        password_hash: None,
                    },
                    enabled: true,
                },
                entry(),
                now,
            )
            .await?;
        let request = TokenRequest {
            user: Some(IdOrName::Name(login)),
            resource: Some(IdOrName::Name("bench".into())),
            ..TokenRequest::new(TokenKind::Totp)
        };
        let prepared = provision::prepare(keys, &request, now, &GeneralSettings::default())?;
        store.create_token(prepared.creation, entry()).await??;
    }
    Ok(())
}

/// Median, mean, 10th and 90th percentiles of the timings, in microseconds.
fn summary(timings: &mut [Duration]) -> (f64, f64, f64, f64) {
    timings.sort();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |p: f64| percentile(timings, p).map_or(0.0, micros);
    let mean = timings.iter().copied().map(micros).sum::<f64>() / timings.len().max(1) as f64;
    (at(0.5), mean, at(0.1), at(0.9))
}

async fn run() -> anyhow::Result<()> {
    let attempts: usize = env_or("OTPGATE_BENCH_ATTEMPTS", 20_000)?;
    let dir = tempfile::tempdir()?;
    let mut options = StoreOptions::default();
    if let Some(mode) = synchronous()? {
        options.synchronous = match mode.as_str() {
            "normal" => Synchronous::Normal,
            _ => Synchronous::Full,
        };
    }
    let store = Store::open(&dir.path().join(otpgate::store::DATABASE_FILE), options)?;
    let keys = Arc::new(Keys::load_or_create(
        &dir.path().join(otpgate::crypto::KEY_FILE),
        true,
    )?);
    let now = otpgate::clock::now();
    let users = attempts.div_ceil(MISSES_PER_USER);
    let started = Instant::now();
    provision_users(&store, &keys, users, now).await?;
    println!(
        "provisioned {users} users with a TOTP token each in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let config = AuthConfig::default();
    let metrics = Arc::new(Metrics::default());
    let wakeup = otpgate::delivery::Wakeup::default();
    let waiters = otpgate::waiters::Waiters::new(1);
    let passwords = PasswordGate::start(PasswordsConfig::default().gate_size(), metrics.clone())?;
    // No waits between a user's misses: every attempt of both kinds is checked in full.
    let logins = LoginsConfig {
        free_failures: 100,
        max_delay_seconds: 900,
        lock_after: 100,
    };
    let guard = Arc::new(Guard::new(Policy::of(&logins), metrics.clone()));
    let directories = Arc::new(otpgate::directories::Service::new(metrics.clone()));
    let authenticator = Authenticator {
        store: &store,
        keys: &keys,
        config: &config,
        metrics: &metrics,
        passwords: &passwords,
        guard: &guard,
        per_account: None,
        wakeup: &wakeup,
        directories: &directories,
        waiters: &waiters,
    };
    let caller = Caller {
        key_id: None,
        actor: "bench".into(),
        resource_scope: None,
        client_ip: None,
        detail: None,
    };
    let attempt = |login: String| Attempt {
        target: AuthTarget {
            resource: IdOrName::Name("bench".into()),
            user: Some(IdOrName::Name(login)),
            token: None,
            transaction: None,
            address: None,
        },
        password: None,
        // Not a code any TOTP token shows: six digits are needed to be checked at all.
        otp: Some("000000".into()),
        end_user_ip: None,
        first_factor_checked: false,
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    // A warm-up round of each, then the measured ones, alternating so that both meet the same
    // state of caches and of the database.
    for round in 0..attempts + 100 {
        for (login, timings) in [
            (format!("user{}", round % users), &mut known),
            (format!("ghost{round}"), &mut unknown),
        ] {
            // A rejection is held until a time that the runtime's timer rounds up to its next
            // millisecond: each attempt starts at a random moment within a millisecond, as
            // attempts from the network do, rather than just after the previous answer's tick.
            let mut random = [0u8; 2];
            getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            std::thread::sleep(Duration::from_micros(
                u64::from(u16::from_le_bytes(random)) % 1000,
            ));
            let at = Instant::now();
            let answer = authenticator
                .authenticate(&caller, attempt(login.clone()), otpgate::clock::now())
                .await
                .with_context(|| format!("authenticating {login}"))?;
            let took = at.elapsed();
            if !matches!(answer, Answer::Rejected) {
                bail!("{login}: expected a rejection, got {answer:?}");
            }
            if round >= 100 {
                timings.push(took);
            }
        }
    }
    let (known_median, known_mean, known_p10, known_p90) = summary(&mut known);
    let (unknown_median, unknown_mean, unknown_p10, unknown_p90) = summary(&mut unknown);
    println!(
        "code without a password, {attempts} attempts of each kind (every rejection held until \
         {} µs after its attempt began, rounded up to the timer's millisecond):",
        otpgate::auth::REJECTION_FLOOR.as_micros()
    );
    println!(
        "    known user, wrong code:  median {known_median:.1} µs, mean {known_mean:.1} µs, \
         p10 {known_p10:.1} µs, p90 {known_p90:.1} µs"
    );
    println!(
        "    unknown login:           median {unknown_median:.1} µs, mean {unknown_mean:.1} µs, \
         p10 {unknown_p10:.1} µs, p90 {unknown_p90:.1} µs"
    );
    println!(
        "    unknown - known:         median {:+.1} µs, mean {:+.1} µs, p10 {:+.1} µs, p90 {:+.1} µs",
        unknown_median - known_median,
        unknown_mean - known_mean,
        unknown_p10 - known_p10,
        unknown_p90 - known_p90,
    );
    store.close();
    Ok(())
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("the benchmark could not run: {e:#}");
            ExitCode::FAILURE
        }
    }
}
