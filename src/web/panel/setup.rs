//! First start: while no administrator exists, the link printed in the server log opens the
//! setup of the first one (login, password, then the authenticator app); `/` leads to the panel.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::login::{check_totp, enrol_form, html_page, start_session};
use crate::crypto::{self, Purpose};
use crate::store::{NewAdmin, SessionStage};
use crate::web::form::{self, see_other};
use crate::web::session;
use crate::web::{AppState, PageError, views};

/// The first-start setup, kept in memory while no administrator exists. The link's code is
/// random and stored only as a hash; a new one is made at every start until setup is done.
pub struct SetupState {
    code_hash: Vec<u8>,
    totp_secret: [u8; 20],
    pending: Option<PendingAdmin>,
}

struct PendingAdmin {
    login: String,
    password_hash: String,
}

impl SetupState {
    /// A fresh setup and the code for its link.
    pub fn new() -> Result<(SetupState, String), crypto::CryptoError> {
        let code = crypto::random_token::<24>()?;
        let state = SetupState {
            code_hash: crypto::sha256(code.as_bytes()),
            totp_secret: crypto::random_bytes::<20>()?,
            pending: None,
        };
        Ok((state, code))
    }

    fn accepts(&self, code: &str) -> bool {
        crypto::constant_time_eq(&self.code_hash, &crypto::sha256(code.as_bytes()))
    }
}

pub async fn root() -> HttpResponse {
    see_other("/admin")
}

#[derive(Deserialize)]
pub struct SetupQuery {
    #[serde(default)]
    code: String,
}

fn setup_gone() -> HttpResponse {
    HttpResponse::Gone()
        .content_type("text/html; charset=utf-8")
        .body(
            views::message_page(
                "Setup link not valid",
                "This setup link is not valid: setup is done, or the link comes from an earlier start of otpgate. \
                 Log in, or use the newest link from the server log.",
            )
            .into_string(),
        )
}

/// Whether the setup with this code is open; None when the link is not (or no longer) valid.
async fn open_setup(state: &AppState, code: &str) -> Result<bool, PageError> {
    let valid = state
        .setup
        .lock()
        .map(|setup| setup.as_ref().is_some_and(|s| s.accepts(code)))
        .unwrap_or(false);
    Ok(valid && state.store.admin_count().await? == 0)
}

fn setup_form(code: &str, csrf: &str, login: &str, error: Option<&str>) -> Markup {
    views::bare_page(
        "Set up otpgate",
        html! {
            p { "Create the first administrator. You will then link an authenticator app to this account." }
            (form::error_line(error))
            form.stack method="post" action="/setup" {
                input type="hidden" name="code" value=(code);
                input type="hidden" name="csrf" value=(csrf);
                label { "Login name" input type="text" name="login" value=(login) required autocomplete="username" autofocus; }
                label { "Password" small { "At least 10 characters." }
                    input type="password" name="password" required autocomplete="new-password"; }
                label { "Password again" input type="password" name="password_confirm" required autocomplete="new-password"; }
                button type="submit" { "Next" }
            }
        },
    )
}

pub async fn show_setup(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<SetupQuery>,
) -> Result<HttpResponse, PageError> {
    if !open_setup(&state, &query.code).await? {
        return Ok(setup_gone());
    }
    session::pre_session_page(&state, &request, |csrf| {
        html_page(setup_form(&query.code, csrf, "", None))
    })
}

#[derive(Deserialize)]
pub struct SetupForm {
    code: String,
    csrf: String,
    login: String,
    password: String,
    password_confirm: String,
}

pub async fn submit_setup(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<SetupForm>,
) -> Result<HttpResponse, PageError> {
    session::check_pre_session_csrf(&state, &request, &form.csrf)?;
    if !open_setup(&state, &form.code).await? {
        return Ok(setup_gone());
    }
    let login =
        match crate::domain::admin_credentials(&form.login, &form.password, &form.password_confirm)
        {
            Ok(login) => login,
            Err(problem) => {
                return Ok(html_page(setup_form(
                    &form.code,
                    &form.csrf,
                    form.login.trim(),
                    Some(&problem.message),
                )));
            }
        };
    let password_hash = state.passwords.hash(form.password.clone()).await?;
    if let Ok(mut setup) = state.setup.lock()
        && let Some(setup) = setup.as_mut()
    {
        setup.pending = Some(PendingAdmin {
            login,
            password_hash,
        });
    }
    Ok(see_other(&format!("/setup/totp?code={}", form.code)))
}

pub async fn show_setup_totp(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<SetupQuery>,
) -> Result<HttpResponse, PageError> {
    if !open_setup(&state, &query.code).await? {
        return Ok(setup_gone());
    }
    let pending = state.setup.lock().ok().and_then(|setup| {
        setup
            .as_ref()
            .and_then(|s| s.pending.as_ref().map(|p| (p.login.clone(), s.totp_secret)))
    });
    let Some((login, secret)) = pending else {
        return Ok(see_other(&format!("/setup?code={}", query.code)));
    };
    session::pre_session_page(&state, &request, |csrf| {
        let markup = enrol_form(
            "/setup/totp",
            &[("code", &query.code), ("csrf", csrf)],
            &state.issuer,
            &login,
            &secret,
            None,
        );
        html_page(markup)
    })
}

#[derive(Deserialize)]
pub struct SetupTotpForm {
    code: String,
    csrf: String,
    otp: String,
}

pub async fn submit_setup_totp(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<SetupTotpForm>,
) -> Result<HttpResponse, PageError> {
    session::check_pre_session_csrf(&state, &request, &form.csrf)?;
    if !open_setup(&state, &form.code).await? {
        return Ok(setup_gone());
    }
    let pending = state.setup.lock().ok().and_then(|setup| {
        setup.as_ref().and_then(|s| {
            s.pending
                .as_ref()
                .map(|p| (p.login.clone(), p.password_hash.clone(), s.totp_secret))
        })
    });
    let Some((login, password_hash, secret)) = pending else {
        return Ok(see_other(&format!("/setup?code={}", form.code)));
    };
    let Some(step) = check_totp(&secret, &form.otp, None) else {
        let markup = enrol_form(
            "/setup/totp",
            &[("code", &form.code), ("csrf", &form.csrf)],
            &state.issuer,
            &login,
            &secret,
            Some("That code is not right. Check the time on your phone and try the current code."),
        );
        return Ok(html_page(markup));
    };
    let now = crate::clock::now();
    let sealed = state.keys.seal(Purpose::AdminTotp, &secret)?;
    let created = state
        .store
        .create_first_admin(
            NewAdmin {
                login: login.clone(),
                password_hash,
                totp_secret: Some(sealed),
                totp_last_step: Some(step),
            },
            now,
        )
        .await;
    let admin_id = match created {
        Ok(id) => id,
        Err(crate::store::StoreError::Conflict(_)) => return Ok(setup_gone()),
        Err(e) => return Err(e.into()),
    };
    if let Ok(mut setup) = state.setup.lock() {
        setup.take();
    }
    tracing::info!(login = %login, "first administrator created; setup is closed");
    let cookie = start_session(&state, &request, admin_id, SessionStage::Full, None).await?;
    let mut response = see_other("/admin");
    response
        .add_cookie(&cookie)
        .map_err(|e| PageError::Internal(e.into()))?;
    Ok(response)
}
