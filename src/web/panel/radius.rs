//! The admin panel's RADIUS page: the gateways that may ask otpgate over RADIUS (the list, one
//! resource's clients), creating one with a generated shared secret, changing one, deleting
//! one behind a confirmation. The fields go through `radius::clients`, the rules the API uses,
//! and the changes are audited under the API's action names. The shared secret is write-only:
//! offered once on the new client's form, never shown after it is saved.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Page, redirect_with_flash};
use crate::clock::now;
use crate::crypto::{self, Purpose};
use crate::domain::IdOrName;
use crate::radius::clients::{
    DEFAULT_APPROVAL_WAIT, DEFAULT_CODE_LENGTH, GENERATED_SECRET_LEN, MAX_SECRET_LEN,
    MIN_SECRET_LEN, Network, SECRET_ALPHABET, SUGGESTED_SECRET_LEN, check_secret, input_mode_label,
    name_taken, parse_approval_wait, parse_approval_word, parse_client_name, parse_code_length,
    parse_input_mode, parse_separator, uses_separator,
};
use crate::radius::input::InputMode;
use crate::store::Resource;
use crate::store::radius::{NewRadiusClient, RadiusClient, RadiusClientChanges, Saved};
use crate::store::users::Page as Window;
use crate::web::form::{Confirmation, CsrfForm, Problems, path_id, query_string, with_status};
use crate::web::views::format_time;
use crate::web::{AppState, PageError};

const LIST: &str = "/admin/radius";
const NAV: &str = "RADIUS";
/// The mode a new client starts with, as in the API.
const DEFAULT_MODE: &str = "password_code";

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/admin/radius", web::get().to(list_clients))
        .route("/admin/radius/new", web::get().to(new_client))
        .route("/admin/radius/new", web::post().to(create_client))
        .route("/admin/radius/{id}", web::get().to(show_client))
        .route("/admin/radius/{id}", web::post().to(update_client))
        .route("/admin/radius/{id}/delete", web::get().to(confirm_delete))
        .route("/admin/radius/{id}/delete", web::post().to(delete_client));
}

/// The address of the list, or of one resource's clients.
pub fn clients_of(resource_id: Option<i64>) -> String {
    match resource_id {
        Some(id) => format!("{LIST}{}", query_string(&[("resource", &id.to_string())])),
        None => LIST.to_string(),
    }
}

#[derive(Deserialize)]
pub struct ResourceQuery {
    #[serde(default)]
    resource: Option<String>,
}

impl ResourceQuery {
    /// The resource named in the query, if it names one by a number.
    fn resource_id(&self) -> Option<i64> {
        self.resource.as_deref()?.trim().parse().ok()
    }
}

async fn all_resources(state: &AppState) -> Result<Vec<Resource>, PageError> {
    let (resources, _) = state
        .store
        .list_resources(
            None,
            Window {
                limit: 500,
                offset: 0,
            },
        )
        .await?;
    Ok(resources)
}

async fn client_or_404(state: &AppState, id: &str) -> Result<RadiusClient, PageError> {
    let id = path_id(id)?;
    state
        .store
        .radius_client(IdOrName::Id(id))
        .await?
        .filter(|client| client.id == id)
        .ok_or(PageError::NotFound)
}

// ---------------------------------------------------------------------------------------------
// The list.

async fn list_clients(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<ResourceQuery>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let resource = match query.resource_id() {
        Some(id) => Some(
            state
                .store
                .find_resource(IdOrName::Id(id))
                .await?
                .filter(|resource| resource.id == id)
                .ok_or(PageError::NotFound)?,
        ),
        None => None,
    };
    let clients: Vec<RadiusClient> = state
        .store
        .radius_clients()
        .await?
        .into_iter()
        .filter(|client| resource.as_ref().is_none_or(|r| r.id == client.resource_id))
        .collect();
    let new_link = format!(
        "{LIST}/new{}",
        query_string(&[(
            "resource",
            &resource
                .as_ref()
                .map(|r| r.id.to_string())
                .unwrap_or_default()
        )])
    );
    let body = html! {
        @if let Some(resource) = &resource {
            p { a href=(format!("/admin/resources/{}", resource.id)) { "← " (resource.name) } }
            p { "The gateways whose users authenticate for " strong { (resource.name) } ". " a href=(LIST) { "All RADIUS clients" } }
        } @else {
            p { "The gateways (VPNs, firewalls, " code { "pam_radius_auth" } ") that may ask otpgate over RADIUS. Requests from any other address are dropped unanswered." }
        }
        p.actions { a.button href=(new_link) { "New RADIUS client" } }
        @if clients.is_empty() {
            p.empty { "No RADIUS clients yet. " a href=(new_link) { "Add the first gateway" } "." }
        } @else {
            table {
                thead { tr { th { "Name" } th { "Address or network" } th { "Resource" } th { "Input mode" } th { "Message-Authenticator" } th { "Created (UTC)" } th { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for client in &clients {
                        tr {
                            td { a href=(format!("{LIST}/{}", client.id)) { (client.name) } }
                            td { code { (client.network) } }
                            td { a href=(format!("/admin/resources/{}", client.resource_id)) { (client.resource_name) } }
                            td { (input_mode_label(&client.input_mode)) }
                            td { @if client.require_message_authenticator { "required" } @else { "not required" } }
                            td { (format_time(client.created_at)) }
                            td { a href=(format!("{LIST}/{}/delete", client.id)) { "Delete" } }
                        }
                    }
                }
            }
        }
    };
    let title = match &resource {
        Some(resource) => format!("RADIUS clients of {}", resource.name),
        None => "RADIUS clients".to_string(),
    };
    Ok(page.render(&state, &title, NAV, body))
}

// ---------------------------------------------------------------------------------------------
// The form of a client.

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClientForm {
    csrf: String,
    name: String,
    address: String,
    secret: String,
    resource: String,
    input_mode: String,
    separator: String,
    code_length: String,
    approval_wait: String,
    approval_word: String,
    require_message_authenticator: Option<String>,
}

impl ClientForm {
    fn of(client: &RadiusClient) -> ClientForm {
        ClientForm {
            csrf: String::new(),
            name: client.name.clone(),
            address: client.network.clone(),
            secret: String::new(),
            resource: client.resource_id.to_string(),
            input_mode: client.input_mode.clone(),
            separator: client.separator.clone().unwrap_or_default(),
            code_length: client.code_length.to_string(),
            approval_wait: client.approval_wait_seconds.to_string(),
            approval_word: client.approval_word.clone().unwrap_or_default(),
            require_message_authenticator: client
                .require_message_authenticator
                .then(|| "on".to_string()),
        }
    }
}

/// A client's fields as typed, checked with the rules the API uses.
struct ClientInput {
    name: String,
    network: String,
    /// None: no new secret (a change that keeps the current one).
    secret: Option<String>,
    resource_id: i64,
    require_message_authenticator: bool,
    input_mode: &'static str,
    /// None when the mode does not take password and code from one field: the separator and
    /// the code length, hidden then, stay as they are.
    separator: Option<Option<String>>,
    code_length: Option<i64>,
    approval_wait_seconds: i64,
    approval_word: Option<String>,
}

/// Whether the form makes a new client (its secret required) or changes one (an empty secret
/// keeps the current one).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Intent {
    Create,
    Change,
}

fn parse_client_form(form: &ClientForm, purpose: Intent) -> Result<ClientInput, Problems> {
    let mut errors = Problems::default();
    let name = parse_client_name(&form.name)
        .map_err(|e| errors.at("name", e.0))
        .ok();
    let network = form
        .address
        .parse::<Network>()
        .map(|network| network.to_string())
        .map_err(|e| errors.at("address", e.0))
        .ok();
    let secret = if purpose == Intent::Change && form.secret.is_empty() {
        Some(None)
    } else {
        check_secret(&form.secret)
            .map(|()| Some(form.secret.clone()))
            .map_err(|e| errors.at("secret", e.0))
            .ok()
    };
    let resource_id = form
        .resource
        .trim()
        .parse::<i64>()
        .map_err(|_| errors.at("resource", "no such resource"))
        .ok();
    let input_mode = parse_input_mode(&form.input_mode)
        .map_err(|e| errors.at("input_mode", e.0))
        .ok();
    let (separator, code_length) = if input_mode.is_some_and(uses_separator) {
        let separator = parse_separator(&form.separator)
            .map_err(|e| errors.at("separator", e.0))
            .ok();
        let code_length = parse_code_length(&form.code_length)
            .map_err(|e| errors.at("code_length", e.0))
            .ok();
        (separator, code_length.map(i64::from))
    } else {
        (None, None)
    };
    let approval_wait = parse_approval_wait(&form.approval_wait)
        .map_err(|e| errors.at("approval_wait", e.0))
        .ok();
    let approval_word = parse_approval_word(&form.approval_word)
        .map_err(|e| errors.at("approval_word", e.0))
        .ok();
    match (
        name,
        network,
        secret,
        resource_id,
        input_mode,
        approval_wait,
        approval_word,
    ) {
        (
            Some(name),
            Some(network),
            Some(secret),
            Some(resource_id),
            Some(input_mode),
            Some(approval_wait_seconds),
            Some(approval_word),
        ) if errors.is_empty() => Ok(ClientInput {
            name,
            network,
            secret,
            resource_id,
            require_message_authenticator: form.require_message_authenticator.is_some(),
            input_mode,
            separator,
            code_length,
            approval_wait_seconds,
            approval_word,
        }),
        _ => Err(errors),
    }
}

fn option(value: &str, label: &str, current: &str) -> Markup {
    html! {
        @if value == current { option value=(value) selected { (label) } } @else { option value=(value) { (label) } }
    }
}

fn client_fields(
    form: &ClientForm,
    resources: &[Resource],
    errors: &Problems,
    purpose: Intent,
) -> Markup {
    let combined: Vec<&str> = InputMode::NAMES
        .into_iter()
        .filter(|name| uses_separator(name))
        .collect();
    html! {
        label {
            "Name"
            small { "The gateway, as the audit log names it (" code { "radius:NAME" } ")." }
            input type="text" name="name" value=(form.name) required maxlength="100";
            (errors.note("name"))
        }
        label {
            "Address or network"
            small { "Where the gateway's requests come from: an IPv4 or IPv6 address, or a network in CIDR form such as 10.0.0.0/24." }
            input type="text" name="address" value=(form.address) required;
            (errors.note("address"))
        }
        @match purpose {
            Intent::Create => {
                label {
                    "Shared secret"
                    small {
                        "Generated for you: " (GENERATED_SECRET_LEN) " random characters. Copy it into the gateway's RADIUS settings now: once saved, it is never shown again. "
                        "At least " (SUGGESTED_SECRET_LEN) " characters are suggested (" (MIN_SECRET_LEN) " to " (MAX_SECRET_LEN) " printable characters are accepted)."
                    }
                    input #radius-secret type="text" name="secret" value=(form.secret) required autocomplete="off" spellcheck="false" maxlength=(MAX_SECRET_LEN);
                    (errors.note("secret"))
                }
                p { button.secondary type="button" data-copy="radius-secret" hidden { "Copy" } }
            }
            Intent::Change => {
                label {
                    "New shared secret"
                    small { "The current secret is never shown. Leave this empty to keep it; type a new one to replace it (at least " (SUGGESTED_SECRET_LEN) " characters are suggested)." }
                    input type="password" name="secret" value="" autocomplete="new-password" maxlength=(MAX_SECRET_LEN);
                    (errors.note("secret"))
                }
            }
        }
        label {
            "Resource"
            small { "The users of this gateway authenticate for this resource, under its rules." }
            select name="resource" required {
                @for resource in resources {
                    (option(&resource.id.to_string(), &resource.name, &form.resource))
                }
            }
            (errors.note("resource"))
        }
        label {
            "Input mode"
            small { "How the gateway's users type their password and one-time password." }
            select name="input_mode" {
                @for name in InputMode::NAMES {
                    (option(name, &input_mode_label(name), &form.input_mode))
                }
            }
            (errors.note("input_mode"))
        }
        fieldset data-input-modes=(combined.join(" ")) {
            legend { "Password and code in one field" }
            p.note { "Only for the modes with password and code in one field." }
            label {
                "Separator"
                small { "Between password and code, up to 8 characters. Empty: none, the code being the last (or first) characters of the code length." }
                input type="text" name="separator" value=(form.separator) maxlength="8";
                (errors.note("separator"))
            }
            label {
                "Code length"
                small { "The one-time password's length when there is no separator (4 to 10)." }
                input type="number" name="code_length" value=(form.code_length) min="4" max="10";
                (errors.note("code_length"))
            }
        }
        fieldset {
            legend { "Approve in Telegram" }
            p.note { "When the resource allows approvals, a user with a Telegram (BOT) token may approve the login in Telegram instead of typing a code: in the one-field modes by typing the password alone or followed by the approval word; with OpenVPN's static challenge by leaving the code's box empty or typing the word there; in the challenge mode by answering the challenge with nothing or the word." }
            label {
                "Approval wait (seconds)"
                small { "How long the gateway's request is held for the user's answer (5 to 120). Set the gateway's RADIUS timeout longer than this." }
                input type="number" name="approval_wait" value=(form.approval_wait) min="5" max="120";
                (errors.note("approval_wait"))
            }
            label {
                "Approval word"
                small { "Typed after the password (after the separator, if any) to ask for an approval, such as push: up to 16 letters. Empty: the password alone asks." }
                input type="text" name="approval_word" value=(form.approval_word) maxlength="16";
                (errors.note("approval_word"))
            }
        }
        label.check {
            input type="checkbox" name="require_message_authenticator" value="on" checked[form.require_message_authenticator.is_some()];
            "Require Message-Authenticator (drop requests without one; protects against Blast-RADIUS)"
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A new client.

fn new_client_page(
    page: &Page,
    state: &AppState,
    form: &ClientForm,
    resources: &[Resource],
    errors: &Problems,
) -> HttpResponse {
    let body = html! {
        p { a href=(LIST) { "← RADIUS clients" } }
        @if resources.is_empty() {
            p.empty { "A RADIUS client authenticates its users for a resource. " a href="/admin/resources/new" { "Create a resource" } " first." }
        } @else {
            (errors.summary())
            form.stack method="post" action=(format!("{LIST}/new")) {
                input type="hidden" name="csrf" value=(page.csrf());
                (client_fields(form, resources, errors, Intent::Create))
                div { button type="submit" { "Save" } }
            }
        }
    };
    page.render(state, "New RADIUS client", NAV, body)
}

async fn new_client(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<ResourceQuery>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let resources = all_resources(&state).await?;
    let resource = query
        .resource_id()
        .filter(|id| resources.iter().any(|r| r.id == *id))
        .or_else(|| resources.first().map(|r| r.id))
        .map(|id| id.to_string())
        .unwrap_or_default();
    // Offered on this page only: nothing keeps it until the form is saved.
    let secret = crypto::random_text(SECRET_ALPHABET, GENERATED_SECRET_LEN)?;
    let form = ClientForm {
        secret,
        resource,
        input_mode: DEFAULT_MODE.into(),
        code_length: DEFAULT_CODE_LENGTH.to_string(),
        approval_wait: DEFAULT_APPROVAL_WAIT.to_string(),
        require_message_authenticator: Some("on".into()),
        ..ClientForm::default()
    };
    Ok(new_client_page(
        &page,
        &state,
        &form,
        &resources,
        &Problems::default(),
    ))
}

async fn create_client(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<ClientForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let input = match parse_client_form(&form, Intent::Create) {
        Ok(input) => input,
        Err(errors) => return refuse_new(&page, &state, &form, &errors).await,
    };
    let secret = input.secret.unwrap_or_default();
    let client = NewRadiusClient {
        name: input.name.clone(),
        network: input.network,
        secret_sealed: state.keys.seal(Purpose::Credential, secret.as_bytes())?,
        resource: IdOrName::Id(input.resource_id),
        require_message_authenticator: input.require_message_authenticator,
        input_mode: input.input_mode.to_string(),
        separator: input.separator.flatten(),
        code_length: input.code_length.unwrap_or(i64::from(DEFAULT_CODE_LENGTH)),
        approval_wait_seconds: input.approval_wait_seconds,
        approval_word: input.approval_word,
    };
    let created = state
        .store
        .create_radius_client(
            client,
            page.audit(&request, "radius_client.create", "ok"),
            now(),
        )
        .await;
    let mut errors = Problems::default();
    match created {
        Ok(Saved::Done(client)) => {
            return Ok(redirect_with_flash(
                &state,
                &clients_of(None),
                &format!(
                    "RADIUS client “{}” created. Its shared secret is not shown again.",
                    client.name
                ),
            ));
        }
        Ok(Saved::NoSuchResource) => errors.at("resource", "no such resource"),
        Ok(Saved::NoSuchClient) => return Err(PageError::NotFound),
        Err(error) if error.is_unique_violation() => errors.at("name", name_taken(&input.name)),
        Err(error) => return Err(error.into()),
    }
    refuse_new(&page, &state, &form, &errors).await
}

/// The new client's form again, with what was typed and what is wrong with it.
async fn refuse_new(
    page: &Page,
    state: &AppState,
    form: &ClientForm,
    errors: &Problems,
) -> Result<HttpResponse, PageError> {
    let resources = all_resources(state).await?;
    Ok(with_status(
        new_client_page(page, state, form, &resources, errors),
        StatusCode::BAD_REQUEST,
    ))
}

// ---------------------------------------------------------------------------------------------
// One client: its settings, changed with the same form.

async fn client_page(
    page: &Page,
    state: &AppState,
    client: &RadiusClient,
    form: &ClientForm,
    errors: &Problems,
) -> Result<HttpResponse, PageError> {
    let resources = all_resources(state).await?;
    let base = format!("{LIST}/{}", client.id);
    let body = html! {
        p { a href=(LIST) { "← RADIUS clients" } }
        p.note { "Created " (format_time(client.created_at)) " UTC, last changed " (format_time(client.updated_at)) " UTC." }
        section aria-labelledby="settings-heading" {
            h2 #settings-heading { "Settings" }
            (errors.summary())
            form.stack method="post" action=(base) {
                input type="hidden" name="csrf" value=(page.csrf());
                (client_fields(form, &resources, errors, Intent::Change))
                div { button type="submit" { "Save" } }
            }
        }
        section aria-labelledby="danger-heading" {
            h2 #danger-heading { "Delete" }
            p { "Once the client is deleted, otpgate drops the gateway's requests unanswered." }
            p { a.button-danger href=(format!("{base}/delete")) { "Delete RADIUS client" } }
        }
    };
    Ok(page.render(state, &format!("RADIUS client {}", client.name), NAV, body))
}

async fn show_client(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let client = client_or_404(&state, &path).await?;
    client_page(
        &page,
        &state,
        &client,
        &ClientForm::of(&client),
        &Problems::default(),
    )
    .await
}

/// The changes a form makes to a client, and their names for the flash message.
fn changes_of(
    client: &RadiusClient,
    input: ClientInput,
    state: &AppState,
) -> Result<(RadiusClientChanges, Vec<&'static str>), PageError> {
    let mut changed = Vec::new();
    let mut differs = |differs: bool, what: &'static str| {
        if differs {
            changed.push(what);
        }
        differs
    };
    let changes = RadiusClientChanges {
        name: differs(input.name != client.name, "name").then_some(input.name),
        network: differs(input.network != client.network, "address").then_some(input.network),
        secret_sealed: match &input.secret {
            Some(secret) => {
                differs(true, "shared secret");
                Some(state.keys.seal(Purpose::Credential, secret.as_bytes())?)
            }
            None => None,
        },
        resource: differs(input.resource_id != client.resource_id, "resource")
            .then_some(IdOrName::Id(input.resource_id)),
        require_message_authenticator: differs(
            input.require_message_authenticator != client.require_message_authenticator,
            "Message-Authenticator requirement",
        )
        .then_some(input.require_message_authenticator),
        input_mode: differs(input.input_mode != client.input_mode, "input mode")
            .then(|| input.input_mode.to_string()),
        separator: input
            .separator
            .filter(|separator| differs(*separator != client.separator, "separator")),
        code_length: input
            .code_length
            .filter(|length| differs(*length != client.code_length, "code length")),
        approval_wait_seconds: differs(
            input.approval_wait_seconds != client.approval_wait_seconds,
            "approval wait",
        )
        .then_some(input.approval_wait_seconds),
        approval_word: differs(input.approval_word != client.approval_word, "approval word")
            .then_some(input.approval_word),
    };
    Ok((changes, changed))
}

async fn update_client(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<ClientForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let client = client_or_404(&state, &path).await?;
    let input = match parse_client_form(&form, Intent::Change) {
        Ok(input) => input,
        Err(errors) => {
            let response = client_page(&page, &state, &client, &form, &errors).await?;
            return Ok(with_status(response, StatusCode::BAD_REQUEST));
        }
    };
    let new_name = input.name.clone();
    let (changes, changed) = changes_of(&client, input, &state)?;
    let location = format!("{LIST}/{}", client.id);
    if changed.is_empty() {
        return Ok(redirect_with_flash(&state, &location, "Nothing changed."));
    }
    let updated = state
        .store
        .update_radius_client(
            IdOrName::Id(client.id),
            changes,
            page.audit(&request, "radius_client.update", "ok"),
            now(),
        )
        .await;
    let mut errors = Problems::default();
    match updated {
        Ok(Saved::Done(updated)) => {
            return Ok(redirect_with_flash(
                &state,
                &location,
                &format!(
                    "RADIUS client “{}” saved: {} changed.",
                    updated.name,
                    changed.join(", ")
                ),
            ));
        }
        Ok(Saved::NoSuchClient) => return Err(PageError::NotFound),
        Ok(Saved::NoSuchResource) => errors.at("resource", "no such resource"),
        Err(error) if error.is_unique_violation() => errors.at("name", name_taken(&new_name)),
        Err(error) => return Err(error.into()),
    }
    let response = client_page(&page, &state, &client, &form, &errors).await?;
    Ok(with_status(response, StatusCode::BAD_REQUEST))
}

// ---------------------------------------------------------------------------------------------
// Deleting a client.

async fn confirm_delete(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let client = client_or_404(&state, &path).await?;
    let action = format!("{LIST}/{}/delete", client.id);
    let back = format!("{LIST}/{}", client.id);
    Ok(page.confirm(
        &state,
        "Delete RADIUS client",
        NAV,
        Confirmation {
            question: html! {
                p { "Delete the RADIUS client “" strong { (client.name) } "” (" code { (client.network) } ", for " strong { (client.resource_name) } ")? Its requests are dropped unanswered from then on. This cannot be undone." }
            },
            action: &action,
            button: "Delete RADIUS client",
            back: &back,
        },
    ))
}

async fn delete_client(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let client = client_or_404(&state, &path).await?;
    if !state
        .store
        .delete_radius_client(
            IdOrName::Id(client.id),
            page.audit(&request, "radius_client.delete", "ok"),
        )
        .await?
    {
        return Err(PageError::NotFound);
    }
    Ok(redirect_with_flash(
        &state,
        LIST,
        &format!("RADIUS client “{}” deleted.", client.name),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> ClientForm {
        ClientForm {
            name: "fw1".into(),
            address: "192.0.2.10".into(),
            secret: "a long shared secret".into(),
            resource: "1".into(),
            input_mode: "code_only".into(),
            separator: "this is far too long".into(),
            code_length: "99".into(),
            approval_wait: "25".into(),
            ..ClientForm::default()
        }
    }

    #[test]
    fn the_separator_and_code_length_count_only_for_modes_that_use_them() {
        let input = parse_client_form(&form(), Intent::Create).expect("accepted");
        assert_eq!((input.separator, input.code_length), (None, None));
        let combined = ClientForm {
            input_mode: "password_code".into(),
            ..form()
        };
        let errors = parse_client_form(&combined, Intent::Create)
            .err()
            .expect("refused");
        assert!(errors.note("separator").into_string().contains("at most 8"));
        assert!(errors.note("code_length").into_string().contains("4 to 10"));
    }

    #[test]
    fn the_approval_wait_and_word_are_checked_with_the_apis_rules() {
        let bad = ClientForm {
            approval_wait: "300".into(),
            approval_word: "push 1".into(),
            ..form()
        };
        let errors = parse_client_form(&bad, Intent::Create)
            .err()
            .expect("refused");
        assert!(
            errors
                .note("approval_wait")
                .into_string()
                .contains("5 to 120")
        );
        assert!(
            errors
                .note("approval_word")
                .into_string()
                .contains("letters")
        );
        let good = ClientForm {
            approval_wait: "40".into(),
            approval_word: " push ".into(),
            ..form()
        };
        let input = parse_client_form(&good, Intent::Create).expect("accepted");
        assert_eq!(input.approval_wait_seconds, 40);
        assert_eq!(input.approval_word.as_deref(), Some("push"));
    }

    #[test]
    fn an_empty_secret_keeps_the_current_one_but_cannot_make_a_client() {
        let blank = ClientForm {
            secret: String::new(),
            ..form()
        };
        let input = parse_client_form(&blank, Intent::Change).expect("accepted");
        assert_eq!(input.secret, None);
        let errors = parse_client_form(&blank, Intent::Create)
            .err()
            .expect("refused");
        assert!(!errors.note("secret").into_string().is_empty());
    }
}
