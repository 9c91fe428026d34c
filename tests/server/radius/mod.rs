//! The RADIUS server, spoken to by Debian's `radclient` (freeradius-utils) and, where a test
//! needs the very same bytes twice, by the codec's own client over UDP.

mod approvals;
mod challenge;
mod radclient;
mod radsec;
mod reply;
mod server;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::{TestApp, spawn_with, test_config};
use crate::helpers::auth::{Fixture, SEED_BASE32, call, fixture, user_with_token};

pub const SECRET: &str = "radius shared secret 1";
pub const PASSWORD: &str = "user password 1";

/// An application with RADIUS on free ports, the resource "vpn", and "alice" with a HOTP token
/// (RFC 4226's seed) assigned to it.
pub struct Rig {
    pub app: TestApp,
    pub fx: Fixture,
    _temp: tempfile::TempDir,
}

pub async fn rig() -> Rig {
    rig_with(|_| {}).await
}

/// The same, with `adjust` applied to the configuration.
pub async fn rig_with(adjust: impl FnOnce(&mut otpgate::Config)) -> Rig {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(temp.path());
    config.radius.listen = vec!["127.0.0.1:0".into()];
    config.radius.accounting_listen = vec!["127.0.0.1:0".into()];
    adjust(&mut config);
    let app = spawn_with(config).await.expect("the application starts");
    let fx = fixture(&app, 5).await;
    user_with_token(
        &app,
        &fx,
        "alice",
        json!({"kind": "HOTP", "secret": SEED_BASE32}),
    )
    .await;
    Rig {
        app,
        fx,
        _temp: temp,
    }
}

impl Rig {
    /// Makes the RADIUS client "nas" for 127.0.0.1 with `fields` over the defaults.
    pub async fn client(&self, fields: Value) -> Value {
        let mut body = json!({"name": "nas", "address": "127.0.0.1", "secret": SECRET,
                              "resource": "vpn"});
        for (key, value) in fields.as_object().expect("an object") {
            body[key] = value.clone();
        }
        let (status, client) = call(
            &self.app,
            Method::POST,
            "/radius/clients",
            &self.fx.admin,
            body,
        )
        .await;
        assert_eq!(status, 201, "{client}");
        client
    }

    /// Stops the server and starts it again on the same data directory, on the same RADIUS
    /// port when it is still free.
    pub async fn restart(self) -> Rig {
        let Rig { app, fx, _temp } = self;
        let port = app.radius[0].port();
        app.stop().await;
        let config = |listen: String| {
            let mut config = test_config(_temp.path());
            config.radius.listen = vec![listen];
            config.radius.accounting_listen = vec!["127.0.0.1:0".into()];
            config
        };
        let app = match spawn_with(config(format!("127.0.0.1:{port}"))).await {
            Ok(app) => app,
            Err(_) => spawn_with(config("127.0.0.1:0".into()))
                .await
                .expect("the application starts again"),
        };
        Rig { app, fx, _temp }
    }

    pub fn port(&self) -> u16 {
        self.app.radius[0].port()
    }

    pub fn accounting_port(&self) -> u16 {
        self.app.radius_accounting[0].port()
    }

    /// The reasons of the authentication audit lines, oldest first.
    pub fn reasons(&self) -> Vec<(String, Option<String>, String)> {
        let conn = crate::helpers::api::database(&self.app);
        let mut statement = conn
            .prepare(
                "SELECT result, reason, actor FROM audit_log
                 WHERE action = 'auth.authenticate' ORDER BY id",
            )
            .expect("prepare");
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    /// The reason of the newest authentication audit line, if it has one.
    pub fn last_reason(&self) -> Option<String> {
        self.reasons().pop().and_then(|(_, reason, _)| reason)
    }
}

/// The HOTP code of RFC 4226's seed at `counter`.
pub fn hotp(counter: u64) -> String {
    otpgate::otp::hotp(
        crate::helpers::auth::SEED,
        otpgate::otp::Algorithm::Sha1,
        6,
        counter,
    )
}
