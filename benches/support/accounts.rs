//! The end users of a load: their HOTP or TOTP seeds, the codes to send next (right or wrong)
//! computed on this side, and their provisioning through the management API.

use std::sync::Arc;

use hmac::{Hmac, KeyInit};
use reqwest::Client;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use sha1::Sha1;

use super::{create, hotp};

/// The PIN of the tokens that have one, typed before the code.
pub const PIN: &str = "4711";
/// HOTP counters a wrong code must miss: more than the server's look-ahead (10 by default), so
/// a "wrong" code never matches by chance.
const HOTP_SPAN: u64 = 32;
/// Provisioning requests in flight.
const PROVISIONERS: usize = 32;

/// One end user as the load generator sees it: the keyed HMAC state (reused for every code)
/// and what was sent already, so that no code is sent twice.
pub struct Account {
    pub login: String,
    pub secret: String,
    pub mac: Hmac<Sha1>,
    counter: u64,
    last_step: Option<u64>,
    wrong: Option<u32>,
}

impl Account {
    pub fn new(login: String) -> anyhow::Result<Account> {
        let mut seed = [0u8; 20];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let secret = data_encoding::BASE32_NOPAD.encode(&seed);
        let mac = Hmac::new_from_slice(&seed)?;
        let (counter, last_step, wrong) = (0, None, None);
        Ok(Account {
            login,
            secret,
            mac,
            counter,
            last_step,
            wrong,
        })
    }

    /// `count` accounts named `prefix0`, `prefix1`, …
    pub fn many(prefix: &str, count: usize) -> anyhow::Result<Vec<Account>> {
        (0..count)
            .map(|i| Account::new(format!("{prefix}{i}")))
            .collect()
    }

    /// The body of `POST /api/v1/tokens` that gives this account its token in `resource`.
    pub fn token(&self, kind: &str, resource: &str) -> Value {
        json!({ "kind": kind, "secret": self.secret, "user": self.login, "resource": resource })
    }
}

/// The right code plus one (mod 10^6), moved on until it is none of the codes the server could
/// accept for these counters or time steps.
fn wrong_code(mac: &Hmac<Sha1>, right: u32, window: impl Iterator<Item = u64> + Clone) -> u32 {
    let mut code = (right + 1) % 1_000_000;
    while window.clone().any(|c| hotp(mac, c) == code) {
        code = (code + 1) % 1_000_000;
    }
    code
}

#[derive(Clone, Copy, PartialEq)]
pub enum Phase {
    Valid,
    Wrong,
    /// Valid codes after the PIN.
    Pin,
}

/// The one-time password to send next, or None when a TOTP account was used in this step
/// already (the server's replay floor would rightly reject a second code).
pub fn next_otp(account: &mut Account, phase: Phase, totp: bool, step: u64) -> Option<String> {
    let mac = &account.mac;
    let code = match (phase, totp) {
        // A rejection does not move the counter, so one wrong code per account stays wrong.
        (Phase::Wrong, false) => *account.wrong.get_or_insert_with(|| {
            let c = account.counter;
            wrong_code(mac, hotp(mac, c), c..c + HOTP_SPAN)
        }),
        (Phase::Wrong, true) => wrong_code(mac, hotp(mac, step), step - 2..step + 3),
        (_, false) => {
            account.counter += 1;
            hotp(mac, account.counter - 1)
        }
        (_, true) if account.last_step == Some(step) => return None,
        (_, true) => {
            account.last_step = Some(step);
            hotp(mac, step)
        }
    };
    let pin = if phase == Phase::Pin { PIN } else { "" };
    Some(format!("{pin}{code:06}"))
}

/// Creates every user (the body of `POST /api/v1/users`) with its token (the body of
/// `POST /api/v1/tokens`), `PROVISIONERS` at a time, with the admin key.
pub async fn provision(
    client: &Client,
    admin: (String, HeaderValue),
    users: Vec<(Value, Value)>,
) -> anyhow::Result<()> {
    let (admin, users) = (Arc::new(admin), Arc::new(users));
    let mut tasks = Vec::new();
    for first in 0..PROVISIONERS {
        let (client, admin, users) = (client.clone(), admin.clone(), users.clone());
        tasks.push(tokio::spawn(async move {
            for (user, token) in users.iter().skip(first).step_by(PROVISIONERS) {
                create(&client, &admin, "/users", user).await?;
                create(&client, &admin, "/tokens", token).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
