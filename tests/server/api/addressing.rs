//! Serials, logins and names made of digits never reach another object: in a path, digits are
//! an id and `serial:` (`login:`, `name:`) makes a name of anything; digits with a leading
//! zero are refused rather than guessed; in a JSON body a number is an id and a string a name.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::app::{TestApp, spawn_app};
use crate::helpers::auth::{Fixture, call, fixture};

/// The seeds of the three tokens, so that a code or a resync says which token it reached.
const SEEDS: [&[u8]; 3] = [b"12345678901234567890", &[0x41; 20], &[0x42; 20]];

/// The victim's token, then the owner's tokens whose serials are the victim's token id
/// written as digits and the same digits with a leading zero.
struct Tokens {
    ids: [i64; 3],
    digits: String,
}

fn hex(seed: &[u8]) -> String {
    seed.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn hotp(which: usize, counter: u64) -> String {
    otpgate::otp::hotp(SEEDS[which], otpgate::otp::Algorithm::Sha1, 6, counter)
}

async fn user(app: &TestApp, fx: &Fixture, login: &str) -> i64 {
    let (status, body) = call(
        app,
        Method::POST,
        "/users",
        &fx.admin,
        json!({ "login": login }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().expect("user id")
}

async fn token(app: &TestApp, fx: &Fixture, login: &str, serial: Option<&str>, seed: &[u8]) -> i64 {
    let mut body = json!({"kind": "HOTP", "user": login, "resource": "vpn",
                          "secret": hex(seed), "secret_format": "hex"});
    if let Some(serial) = serial {
        body["serial"] = json!(serial);
    }
    let (status, body) = call(app, Method::POST, "/tokens", &fx.admin, body).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().expect("token id")
}

async fn tokens(app: &TestApp, fx: &Fixture) -> Tokens {
    user(app, fx, "victim").await;
    user(app, fx, "owner").await;
    let victim = token(app, fx, "victim", None, SEEDS[0]).await;
    let digits = victim.to_string();
    let same = token(app, fx, "owner", Some(&digits), SEEDS[1]).await;
    let zero = token(app, fx, "owner", Some(&format!("0{digits}")), SEEDS[2]).await;
    Tokens {
        ids: [victim, same, zero],
        digits,
    }
}

/// The three tokens as the API shows them, to see that a refused call changed nothing.
async fn snapshot(app: &TestApp, fx: &Fixture, tokens: &Tokens) -> Vec<Value> {
    let mut shown = Vec::new();
    for id in tokens.ids {
        let (status, body) = call(
            app,
            Method::GET,
            &format!("/tokens/{id}"),
            &fx.admin,
            Value::Null,
        )
        .await;
        shown.push(if status == 200 { body } else { json!(status) });
    }
    shown
}

/// A token route: its method, its path with `{token}`, and the body for the token `which`.
struct Route {
    method: Method,
    path: &'static str,
    body: fn(usize) -> Value,
}

fn no_body(_: usize) -> Value {
    Value::Null
}

#[tokio::test]
async fn every_token_route_reads_digits_as_an_id_and_serial_colon_as_a_serial() {
    let app = spawn_app().await;
    let fx = fixture(&app, 5).await;
    let tokens = tokens(&app, &fx).await;
    let owner_id = {
        let (_, body) = call(
            &app,
            Method::GET,
            "/users/login:owner",
            &fx.admin,
            Value::Null,
        )
        .await;
        body["id"].as_i64().expect("owner")
    };
    let routes = [
        Route {
            method: Method::GET,
            path: "/tokens/{token}",
            body: no_body,
        },
        Route {
            method: Method::PATCH,
            path: "/tokens/{token}",
            body: |which| json!({ "name": format!("renamed {which}") }),
        },
        Route {
            method: Method::POST,
            path: "/tokens/{token}/disable",
            body: no_body,
        },
        Route {
            method: Method::POST,
            path: "/tokens/{token}/enable",
            body: no_body,
        },
        Route {
            method: Method::POST,
            path: "/tokens/{token}/reset",
            body: no_body,
        },
        Route {
            method: Method::POST,
            path: "/tokens/{token}/resync",
            body: |which| json!({"otp1": hotp(which, 20), "otp2": hotp(which, 21)}),
        },
        Route {
            method: Method::DELETE,
            path: "/tokens/{token}/user",
            body: no_body,
        },
    ];
    for route in &routes {
        // Digits with a leading zero: refused, and nothing changed.
        let before = snapshot(&app, &fx, &tokens).await;
        let path = route
            .path
            .replace("{token}", &format!("0{}", tokens.digits));
        let (status, body) = call(
            &app,
            route.method.clone(),
            &path,
            &fx.admin,
            (route.body)(2),
        )
        .await;
        assert_eq!(status, 400, "{} {path}: {body}", route.method);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("serial:0{}", tokens.digits)),
            "{message}"
        );
        assert_eq!(snapshot(&app, &fx, &tokens).await, before, "{path}");

        for (which, address) in [
            (1, format!("serial:{}", tokens.digits)),
            (2, format!("serial:0{}", tokens.digits)),
            (0, tokens.digits.clone()),
        ] {
            let path = route.path.replace("{token}", &address);
            let (status, body) = call(
                &app,
                route.method.clone(),
                &path,
                &fx.admin,
                (route.body)(which),
            )
            .await;
            assert_eq!(status, 200, "{} {path}: {body}", route.method);
            assert_eq!(
                body["id"], tokens.ids[which],
                "{} {path}: {body}",
                route.method
            );
        }
    }
    let renamed = snapshot(&app, &fx, &tokens).await;
    for (which, token) in renamed.iter().enumerate() {
        assert_eq!(token["name"], format!("renamed {which}"));
        assert!(token["user"].is_null(), "{token}");
    }

    // Giving each token back to a user, by the same rule.
    for (which, address) in [
        (1, format!("serial:{}", tokens.digits)),
        (2, format!("serial:0{}", tokens.digits)),
        (0, tokens.digits.clone()),
    ] {
        let (status, body) = call(
            &app,
            Method::PUT,
            &format!("/tokens/{address}/user"),
            &fx.admin,
            json!({ "user": owner_id }),
        )
        .await;
        assert_eq!(status, 200, "{address}: {body}");
        assert_eq!(body["id"], tokens.ids[which], "{address}");
    }
    let (status, _) = call(
        &app,
        Method::PUT,
        &format!("/tokens/0{}/user", tokens.digits),
        &fx.admin,
        json!({ "user": owner_id }),
    )
    .await;
    assert_eq!(status, 400);

    // Deleting: the leading zero is refused, the serial deletes the owner's token, the id
    // the victim's.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/tokens/0{}", tokens.digits),
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        snapshot(&app, &fx, &tokens)
            .await
            .iter()
            .all(|t| t["id"].is_i64())
    );
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/tokens/serial:{}", tokens.digits),
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(status, 204);
    let left = snapshot(&app, &fx, &tokens).await;
    assert_eq!(
        left[0]["id"], tokens.ids[0],
        "the victim's token is untouched"
    );
    assert_eq!(left[1], json!(404));
    assert_eq!(left[2]["id"], tokens.ids[2]);
    app.stop().await;
}

/// The ids of the tokens assigned to `vpn`, in order.
async fn assigned(app: &TestApp, fx: &Fixture) -> Vec<i64> {
    let (status, body) = call(
        app,
        Method::GET,
        "/resources/vpn/tokens",
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut ids: Vec<i64> = body
        .as_array()
        .expect("a list")
        .iter()
        .map(|token| token["id"].as_i64().expect("id"))
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn assignments_and_bodies_read_a_number_as_an_id_and_a_string_as_a_serial() {
    let app = spawn_app().await;
    let fx = fixture(&app, 5).await;
    let tokens = tokens(&app, &fx).await;
    assert_eq!(assigned(&app, &fx).await, tokens.ids.to_vec());

    // Taking tokens from the resource: by serial in the path.
    let (status, body) = call(
        &app,
        Method::DELETE,
        &format!("/resources/vpn/tokens/0{}", tokens.digits),
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/resources/vpn/tokens/serial:{}", tokens.digits),
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        assigned(&app, &fx).await,
        vec![tokens.ids[0], tokens.ids[2]]
    );
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/resources/vpn/tokens/{}", tokens.digits),
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(assigned(&app, &fx).await, vec![tokens.ids[2]]);

    // Giving them back: a string is a serial, a number an id.
    for body in [
        json!({"token": tokens.digits}),
        json!({"token": tokens.ids[0]}),
    ] {
        let (status, answer) =
            call(&app, Method::POST, "/resources/vpn/tokens", &fx.admin, body).await;
        assert!(status == 200 || status == 204, "{answer}");
    }
    assert_eq!(assigned(&app, &fx).await, tokens.ids.to_vec());

    // A token-only authentication: the string is the owner's serial.
    for (which, token) in [
        (1, json!(tokens.digits)),
        (2, json!(format!("0{}", tokens.digits))),
        (0, json!(tokens.ids[0])),
    ] {
        let (status, body) = call(
            &app,
            Method::POST,
            "/auth/authenticate",
            &fx.app_key,
            json!({"token": token, "otp": hotp(which, 0)}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"], "accepted", "{token}: {body}");
        assert_eq!(body["token"]["id"], tokens.ids[which], "{token}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_string_of_digits_names_no_user_and_digits_with_a_leading_zero_no_resource() {
    let app = spawn_app().await;
    let fx = fixture(&app, 5).await;
    let victim = user(&app, &fx, "victim").await;
    let digits = victim.to_string();
    // Logins and resource names are never numbers, so a string of digits in a body names no
    // user, where it used to name the user with that id.
    let (status, body) = call(
        &app,
        Method::POST,
        "/resources/vpn/users",
        &fx.admin,
        json!({ "user": digits }),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = call(
        &app,
        Method::POST,
        "/tokens",
        &fx.admin,
        json!({"kind": "HOTP", "user": digits}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "user");
    let (_, body) = call(
        &app,
        Method::GET,
        "/resources/vpn/users",
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(body["total"], 0, "{body}");
    let (status, body) = call(
        &app,
        Method::POST,
        "/resources/vpn/users",
        &fx.admin,
        json!({ "user": victim }),
    )
    .await;
    assert!(status == 200 || status == 204, "{body}");

    let (_, body) = call(
        &app,
        Method::GET,
        &format!("/users/{digits}"),
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(body["login"], "victim");
    for path in [format!("/users/0{digits}"), "/resources/01".to_string()] {
        let (status, body) = call(&app, Method::GET, &path, &fx.admin, Value::Null).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    let (_, body) = call(
        &app,
        Method::GET,
        "/users/login:victim",
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(body["id"], victim);
    let (_, body) = call(
        &app,
        Method::GET,
        "/resources/name:vpn",
        &fx.admin,
        Value::Null,
    )
    .await;
    assert_eq!(body["name"], "vpn");

    // On the command line, the same rule.
    let create_key = |resource: &str| {
        crate::helpers::process::otpgate_command(&app.data_dir)
            .args([
                "apikey",
                "create",
                "--name",
                "gateway",
                "--resource",
                resource,
            ])
            .output()
            .expect("create")
    };
    for resource in ["1", "vpn", "name:vpn"] {
        let output = create_key(resource);
        assert!(
            output.status.success(),
            "{resource}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let output = create_key("01");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("name:01"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    app.stop().await;
}
