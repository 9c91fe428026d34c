//! Add Token: software tokens (authenticator app, MAIL, SMS, BOT) and hardware tokens (TOTP or
//! HOTP by serial and seed), each with the PIN option and, from a user's Assign Token → New,
//! assigned to that user in the same step; and the import of PSKC or CSV seed files with a
//! preview. The rules are the shared ones of `provision`, as in the API and the console.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::tokens::{confirm_form, pin_position_select};
use super::{Page, redirect_with_flash};
use crate::crypto::Purpose;
use crate::domain::{IdOrName, TokenKind, TokenState};
use crate::provision::{self, ImportFormat, SecretFormat, TokenRequest};
use crate::store::User;
use crate::web::form::{Problems, invalid, path_id, read_upload, with_status};
use crate::web::{AppState, PageError, views};

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/admin/tokens/new", web::get().to(choose_kind))
        .route("/admin/tokens/new/{kind}", web::get().to(show_add))
        .route("/admin/tokens/new/{kind}", web::post().to(submit_add))
        .route("/admin/tokens/import", web::get().to(show_import))
        .route("/admin/tokens/import", web::post().to(upload_import))
        .route(
            "/admin/tokens/import/confirm",
            web::post().to(confirm_import),
        );
}

/// The Add Token choices: the address piece, the title and what it is.
const CHOICES: &[(&str, &str, &str)] = &[
    (
        "app",
        "Authenticator app (TOTP)",
        "A code from an app on the user's phone; scan a QR code once.",
    ),
    (
        "mail",
        "MAIL",
        "otpgate emails a code to the user at each login.",
    ),
    (
        "sms",
        "SMS",
        "otpgate sends a code by text message at each login.",
    ),
    (
        "bot",
        "BOT",
        "otpgate sends a code through a Telegram chat with its bot.",
    ),
    (
        "hardware",
        "Hardware token",
        "A TOTP or HOTP key fob, enrolled by its serial and seed.",
    ),
];

fn choice_title(choice: &str) -> Option<&'static str> {
    CHOICES
        .iter()
        .find(|(name, _, _)| *name == choice)
        .map(|(_, title, _)| *title)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserQuery {
    user: String,
}

/// The user a new token is for, from `?user=` or the form: None when not given; 404 when the
/// user does not exist.
async fn user_for(state: &AppState, text: &str) -> Result<Option<User>, PageError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let id = path_id(text)?;
    state
        .store
        .find_user(IdOrName::Id(id))
        .await?
        .filter(|user| user.id == id)
        .map(Some)
        .ok_or(PageError::NotFound)
}

pub async fn choose_kind(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<UserQuery>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let user = user_for(&state, &query.user).await?;
    let suffix = user
        .as_ref()
        .map(|u| format!("?user={}", u.id))
        .unwrap_or_default();
    let body = html! {
        @if let Some(user) = &user { p { "The new token is assigned to " strong { (user.login) } "." } }
        h2 { "Software tokens" }
        ul.choices {
            @for (name, title, what) in &CHOICES[..4] {
                li { a href={ "/admin/tokens/new/" (name) (suffix) } { (title) } " — " (what) }
            }
        }
        h2 { "Hardware tokens" }
        ul.choices {
            li { a href={ "/admin/tokens/new/hardware" (suffix) } { "TOTP or HOTP by serial and seed" } " — " (CHOICES[4].2) }
            li { a href="/admin/tokens/import" { "Import a PSKC or CSV seed file" } " — the vendor's file for a batch of tokens, unassigned." }
        }
    };
    Ok(page.render(&state, "Add Token", "Tokens", body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AddForm {
    csrf: String,
    user: String,
    name: String,
    destination: String,
    digits: String,
    messenger: String,
    pin: String,
    pin_position: String,
    /// Hardware: TOTP or HOTP.
    kind: String,
    serial: String,
    secret: String,
    secret_format: String,
    algorithm: String,
    period: String,
    counter: String,
}

fn option(value: &str, label: &str, current: &str) -> Markup {
    html! {
        @if value == current { option value=(value) selected { (label) } } @else { option value=(value) { (label) } }
    }
}

fn digits_select(current: &str) -> Markup {
    html! {
        label { "OTP length"
            select name="digits" {
                (option("6", "6 digits", current))
                (option("8", "8 digits", current))
            }
        }
    }
}

fn add_form(
    page: &Page,
    choice: &str,
    user: Option<&User>,
    form: &AddForm,
    problems: &Problems,
) -> Markup {
    html! {
        (problems.summary())
        @if let Some(user) = user { p { "The new token is assigned to " strong { (user.login) } "." } }
        form.stack.narrow method="post" action={ "/admin/tokens/new/" (choice) } {
            (page.csrf_field())
            @if let Some(user) = user { input type="hidden" name="user" value=(user.id); }
            (problems.note("user"))
            @if choice == "hardware" {
                label { "Type"
                    select name="kind" {
                        (option("TOTP", "TOTP (time-based)", &form.kind))
                        (option("HOTP", "HOTP (event-based)", &form.kind))
                    }
                    (problems.note("kind"))
                }
                label { "Serial" small { "As printed on the token." }
                    input type="text" name="serial" value=(form.serial) required; (problems.note("serial")) }
                label { "Seed" small { "From the vendor's seed sheet; never shown again." }
                    input type="password" name="secret" autocomplete="off" required; (problems.note("secret")) }
                label { "Seed written as"
                    select name="secret_format" {
                        (option("base32", "Base32", &form.secret_format))
                        (option("hex", "Hexadecimal", &form.secret_format))
                    }
                    (problems.note("secret_format"))
                }
                label { "Algorithm"
                    select name="algorithm" {
                        (option("SHA1", "SHA-1", &form.algorithm))
                        (option("SHA256", "SHA-256", &form.algorithm))
                        (option("SHA512", "SHA-512", &form.algorithm))
                    }
                    (problems.note("algorithm"))
                }
                label { "Time step (TOTP)"
                    select name="period" {
                        (option("30", "30 seconds", &form.period))
                        (option("60", "60 seconds", &form.period))
                    }
                    (problems.note("period"))
                }
                label { "Counter of the next code (HOTP)" small { "Usually 0 for a new token." }
                    input type="text" name="counter" inputmode="numeric" value=(form.counter); (problems.note("counter")) }
            }
            label { "Token name" input type="text" name="name" value=(form.name); (problems.note("name")) }
            @if choice == "mail" {
                label { "Email address" small { "Leave empty to use the user's address." }
                    input type="email" name="destination" value=(form.destination); (problems.note("destination")) }
            }
            @if choice == "sms" {
                label { "Phone number" small { "International form; leave empty to use the user's number." }
                    input type="tel" name="destination" value=(form.destination); (problems.note("destination")) }
            }
            @if choice == "bot" {
                label { "Messenger"
                    select name="messenger" { (option("telegram", "Telegram", &form.messenger)) }
                    (problems.note("messenger"))
                }
            }
            (digits_select(&form.digits))
            (problems.note("digits"))
            fieldset {
                legend { "PIN (optional)" }
                p.note { "The user types the PIN and the one-time password as one string." }
                label { "PIN" small { "The PIN rule is set under " a href="/admin/settings#general" { "Settings → General" } "." }
                    input type="password" name="pin" autocomplete="new-password"; (problems.note("pin")) }
                (pin_position_select(if form.pin_position.is_empty() { "before" } else { &form.pin_position }))
                (problems.note("pin_position"))
            }
            div.buttons {
                button type="submit" { "Save" }
                a href="/admin/tokens/new" { "Back" }
            }
        }
    }
}

pub async fn show_add(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<UserQuery>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let choice = path.into_inner();
    let title = choice_title(&choice).ok_or(PageError::NotFound)?;
    let user = user_for(&state, &query.user).await?;
    let body = add_form(
        &page,
        &choice,
        user.as_ref(),
        &AddForm::default(),
        &Problems::default(),
    );
    Ok(page.render(&state, &format!("Add Token: {title}"), "Tokens", body))
}

fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The create request of the form; problems of the form's own shape come back too.
fn request_of(choice: &str, form: &AddForm, user: Option<&User>) -> Result<TokenRequest, Problems> {
    let mut problems = Problems::default();
    let kind = match choice {
        "app" => TokenKind::Totp,
        "mail" => TokenKind::Mail,
        "sms" => TokenKind::Sms,
        "bot" => TokenKind::Bot,
        _ => match TokenKind::parse(form.kind.trim()) {
            Some(kind @ (TokenKind::Totp | TokenKind::Hotp)) => kind,
            _ => {
                problems.at("kind", "choose TOTP or HOTP");
                TokenKind::Totp
            }
        },
    };
    let mut request = TokenRequest::new(kind);
    request.name = Some(form.name.clone());
    request.user = user.map(|u| IdOrName::Id(u.id));
    request.digits = match form.digits.trim() {
        "" => None,
        text => match text.parse::<u32>() {
            Ok(digits) => Some(digits),
            Err(_) => {
                problems.at("digits", "choose 6 or 8 digits");
                None
            }
        },
    };
    if !form.pin.is_empty() {
        request.pin = Some(form.pin.clone());
        request.pin_position = non_empty(&form.pin_position);
    }
    match choice {
        "mail" | "sms" => request.destination = non_empty(&form.destination),
        "bot" => request.messenger = non_empty(&form.messenger),
        "hardware" => {
            if form.serial.trim().is_empty() {
                problems.at("serial", "give the serial printed on the token");
            }
            if form.secret.trim().is_empty() {
                problems.at("secret", "give the token's seed from the vendor's sheet");
            }
            request.serial = non_empty(&form.serial);
            request.secret = non_empty(&form.secret);
            request.secret_format = Some(if form.secret_format == "hex" {
                SecretFormat::Hex
            } else {
                SecretFormat::Base32
            });
            request.algorithm = non_empty(&form.algorithm);
            if kind == TokenKind::Totp {
                request.period = match form.period.trim() {
                    "" => None,
                    text => match text.parse::<u32>() {
                        Ok(period) => Some(period),
                        Err(_) => {
                            problems.at("period", "choose 30 or 60 seconds");
                            None
                        }
                    },
                };
            } else {
                request.counter = match form.counter.trim() {
                    "" => None,
                    text => match text.parse::<u64>() {
                        Ok(counter) => Some(counter),
                        Err(_) => {
                            problems.at("counter", "the counter is a whole number, usually 0");
                            None
                        }
                    },
                };
            }
        }
        _ => {}
    }
    if problems.is_empty() {
        Ok(request)
    } else {
        Err(problems)
    }
}

/// The page that shows a new authenticator app's QR code, once, with the form for the first
/// code.
pub(super) fn app_enrolment(
    page: &Page,
    token_id: i64,
    uri: &str,
    secret: &[u8],
    problems: &Problems,
) -> Markup {
    html! {
        (problems.summary())
        p { "Scan this QR code with the authenticator app. It is shown only now: otpgate keeps the seed sealed and never displays it again." }
        (views::app_enrolment(uri, secret, "QR code of the new token for an authenticator app"))
        p { "Then type the code the app shows to confirm it; until then the token stays pending and cannot be used." }
        (confirm_form(page, token_id, problems))
    }
}

pub async fn submit_add(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<AddForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let choice = path.into_inner();
    let title = format!(
        "Add Token: {}",
        choice_title(&choice).ok_or(PageError::NotFound)?
    );
    let form = form.into_inner();
    let user = user_for(&state, &form.user).await?;
    let render_again = |problems: Problems| {
        invalid(page.render(
            &state,
            &title,
            "Tokens",
            add_form(&page, &choice, user.as_ref(), &form, &problems),
        ))
    };
    let create = match request_of(&choice, &form, user.as_ref()) {
        Ok(create) => create,
        Err(problems) => return Ok(render_again(problems)),
    };
    let general = state.general().await?;
    let now = crate::clock::now();
    let mut prepared = match provision::prepare(&state.keys, &create, now, &general) {
        Ok(prepared) => prepared,
        Err(error) => return Ok(render_again(Problems::of(error)?)),
    };
    if choice == "app" {
        // An authenticator app is confirmed by its first code before it counts.
        prepared.creation.token.state = TokenState::Pending;
    }
    let activation = prepared.activation.take();
    let mut entry = page.audit(&request, "token.create", "ok");
    entry.notice = crate::notices::of_token_created(
        &state.store,
        &state.keys,
        &prepared.creation,
        crate::notices::PANEL,
        now,
    )
    .await?;
    let record = match state.store.create_token(prepared.creation, entry).await? {
        Ok(record) => record,
        Err(refused) => return Ok(render_again(Problems::of(refused)?)),
    };
    if let (Some(seed), "app") = (&prepared.seed, choice.as_str()) {
        let uri = provision::enrolment_uri(&state.issuer, &provision::account_of(&record), seed);
        let body = app_enrolment(
            &page,
            record.token.id,
            &uri,
            &seed.secret,
            &Problems::default(),
        );
        return Ok(page.render(&state, "Scan the QR code", "Tokens", body));
    }
    if let Some(activation) = activation {
        let body = html! {
            p.flash role="status" { "BOT token " (record.token.serial) " created. It becomes active when its user opens the activation link." }
            (super::tokens::activation_code_view(&state, &record.token, &activation))
        };
        return Ok(page.render(&state, "Activate the token", "Tokens", body));
    }
    let message = match &record.user_login {
        Some(login) => format!(
            "{} token {} created and assigned to {login}.",
            record.token.kind.as_str(),
            record.token.serial
        ),
        None => format!(
            "{} token {} created.",
            record.token.kind.as_str(),
            record.token.serial
        ),
    };
    Ok(redirect_with_flash(
        &state,
        &format!("/admin/tokens/{}", record.token.id),
        &message,
    ))
}

// ---------------------------------------------------------------------------
// Seed-file import
// ---------------------------------------------------------------------------

/// What the preview hands to the confirmation: the file and its keys, sealed with the server's
/// key so that neither the seeds nor the file's password ever appear in the page.
#[derive(Serialize, Deserialize)]
struct PendingImport {
    format: ImportFormat,
    data: String,
    preshared_key: Option<String>,
    password: Option<String>,
}

fn import_form(page: &Page, problems: &Problems) -> Markup {
    html! {
        (problems.summary())
        p { "The vendor's seed file for a batch of hardware tokens: PSKC (RFC 6030, plain or encrypted) or CSV ("
            code { "serial,secret[,type,digits,period_or_counter,algorithm]" } "). The tokens are imported unassigned; assign them from a user's page." }
        form.stack.narrow method="post" action="/admin/tokens/import" enctype="multipart/form-data" {
            (page.csrf_field())
            label { "Seed file" input type="file" name="file" required; (problems.note("data")) }
            label { "Format"
                select name="format" {
                    option value="auto" selected { "Recognise from the file" }
                    option value="pskc" { "PSKC (XML)" }
                    option value="csv" { "CSV" }
                }
            }
            fieldset {
                legend { "Encrypted PSKC only" }
                label { "Pre-shared key (hexadecimal)" input type="password" name="preshared_key" autocomplete="off"; (problems.note("preshared_key")) }
                label { "Password" input type="password" name="password" autocomplete="off"; (problems.note("password")) }
            }
            div.buttons {
                button type="submit" { "Preview" }
                a href="/admin/tokens/new" { "Back" }
            }
        }
    }
}

pub async fn show_import(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let body = import_form(&page, &Problems::default());
    Ok(page.render(&state, "Import seed file", "Tokens", body))
}

/// Reads and seals every token of the file off the async threads (PBKDF2, decryption).
async fn prepare(
    state: &web::Data<AppState>,
    pending: &PendingImport,
) -> Result<Result<Vec<crate::store::NewToken>, Problems>, PageError> {
    let worker_state = state.clone();
    let format = pending.format;
    let data = pending.data.clone().into_bytes();
    let (preshared_key, password) = (pending.preshared_key.clone(), pending.password.clone());
    let prepared = web::block(move || {
        provision::prepare_import(
            &worker_state.keys,
            format,
            &data,
            preshared_key.as_deref(),
            password.as_deref(),
        )
    })
    .await
    .map_err(|e| PageError::Internal(anyhow::anyhow!("the import did not finish: {e}")))?;
    match prepared {
        Ok(tokens) => Ok(Ok(tokens)),
        Err(error) => Ok(Err(Problems::of(error)?)),
    }
}

fn import_preview(page: &Page, tokens: &[crate::store::NewToken], sealed: &str) -> Markup {
    html! {
        p { "The file holds " (views::plural(tokens.len(), "token", "tokens")) ". Check them, then import them all; if one serial exists already, none is imported." }
        table {
            thead { tr { th { "Serial" } th { "Type" } th { "Algorithm" } th { "Digits" } th { "Time step" } } }
            tbody {
                @for token in tokens {
                    tr {
                        td { (token.serial) }
                        td { (token.kind.as_str()) }
                        td { (token.algorithm) }
                        td { (token.digits) }
                        td { @if token.kind == TokenKind::Totp { (token.period) " s" } @else { "—" } }
                    }
                }
            }
        }
        form.stack.narrow method="post" action="/admin/tokens/import/confirm" {
            (page.csrf_field())
            input type="hidden" name="sealed" value=(sealed);
            div.buttons {
                button type="submit" { "Import " (views::plural(tokens.len(), "token", "tokens")) }
                a href="/admin/tokens/import" { "Choose another file" }
            }
        }
    }
}

pub async fn upload_import(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let render_again = |problems: Problems| {
        invalid(page.render(
            &state,
            "Import seed file",
            "Tokens",
            import_form(&page, &problems),
        ))
    };
    let upload = match read_upload(&request, payload).await {
        Ok(upload) => upload,
        Err(problem) => {
            let mut problems = Problems::default();
            problems.general(problem.message());
            return Ok(with_status(render_again(problems), problem.status()));
        }
    };
    page.check_csrf(&upload.text("csrf"))?;
    let Ok(data) = String::from_utf8(upload.bytes("file").to_vec()) else {
        let mut problems = Problems::default();
        problems.at(
            "data",
            "the file is not text: choose the PSKC (XML) or CSV file",
        );
        return Ok(render_again(problems));
    };
    if data.trim().is_empty() {
        let mut problems = Problems::default();
        problems.at("data", "choose a seed file that is not empty");
        return Ok(render_again(problems));
    }
    let format = match upload.text("format").as_str() {
        "pskc" => ImportFormat::Pskc,
        "csv" => ImportFormat::Csv,
        _ => ImportFormat::from_contents(&data),
    };
    let pending = PendingImport {
        format,
        data,
        preshared_key: non_empty(&upload.text("preshared_key")),
        password: (!upload.text("password").is_empty()).then(|| upload.text("password")),
    };
    let tokens = match prepare(&state, &pending).await? {
        Ok(tokens) => tokens,
        Err(problems) => return Ok(render_again(problems)),
    };
    let json = serde_json::to_vec(&pending)
        .map_err(|e| PageError::Internal(anyhow::anyhow!("cannot keep the import: {e}")))?;
    // The seeds travel sealed: Purpose::TokenSecret, since that is what the file holds.
    let sealed = data_encoding::BASE64.encode(&state.keys.seal(Purpose::TokenSecret, &json)?);
    let body = import_preview(&page, &tokens, &sealed);
    Ok(page.render(&state, "Import seed file", "Tokens", body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConfirmImportForm {
    csrf: String,
    sealed: String,
}

pub async fn confirm_import(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<ConfirmImportForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let render_again = |problems: Problems| {
        invalid(page.render(
            &state,
            "Import seed file",
            "Tokens",
            import_form(&page, &problems),
        ))
    };
    let pending: Option<PendingImport> = data_encoding::BASE64
        .decode(form.sealed.as_bytes())
        .ok()
        .and_then(|sealed| state.keys.open(Purpose::TokenSecret, &sealed).ok())
        .and_then(|json| serde_json::from_slice(&json).ok());
    let Some(pending) = pending else {
        let mut problems = Problems::default();
        problems.general("The preview has expired or was changed; upload the file again.");
        return Ok(render_again(problems));
    };
    let tokens = match prepare(&state, &pending).await? {
        Ok(tokens) => tokens,
        Err(problems) => return Ok(render_again(problems)),
    };
    match state
        .store
        .import_tokens(tokens, page.audit(&request, "token.import", "ok"))
        .await?
    {
        Ok(serials) => Ok(redirect_with_flash(
            &state,
            "/admin/tokens?assigned=no",
            &format!(
                "{} imported.",
                views::plural(serials.len(), "token", "tokens")
            ),
        )),
        Err(refused) => Ok(render_again(Problems::of(refused)?)),
    }
}
