//! The admin panel's Directories, under Settings: the list, a new directory from a preset
//! (Active Directory, FreeIPA/OpenLDAP), a directory's page (its settings changed with the same
//! form, a person of the directory made an otpgate user), and deleting one behind a
//! confirmation. Every field, refusal and audit line comes from `directories`, the rules the
//! API uses, under the API's action names.
//!
//! Test connection and Preview users work on the form as typed, saved or not: they post the
//! whole form and the page comes back with the typed values and what otpgate saw. The service
//! account's password is write-only: never shown; while a form is tried out it travels sealed
//! (and tied to the session) in a hidden field, and on a saved directory an empty field keeps
//! the saved one.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Page, redirect_with_flash, redirect_with_problem};
use crate::clock::now;
use crate::crypto::Purpose;
use crate::directories::sync::{self, SyncReport};
use crate::directories::{self, Checked, DirectoryInput, LinkError, PREVIEW_LIMIT, Previewed};
use crate::domain::{FieldError, IdOrName, Refused, RuleError};
use crate::ldap::settings::{self, Kind, Tls};
use crate::store::directories::{Directory as Stored, DirectoryFields};
use crate::store::directory_sync::{GroupMapping, SyncResult};
use crate::web::form::{Confirmation, CsrfForm, Problems, path_id, with_status};
use crate::web::views::format_time;
use crate::web::{AppState, PageError};

const LIST: &str = "/admin/settings/directories";
const NAV: &str = "Settings";

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route(LIST, web::get().to(list_directories))
        .route(
            "/admin/settings/directories/new",
            web::get().to(new_directory),
        )
        .route(
            "/admin/settings/directories/new",
            web::post().to(submit_new_directory),
        )
        .route(
            "/admin/settings/directories/{id}",
            web::get().to(show_directory),
        )
        .route(
            "/admin/settings/directories/{id}",
            web::post().to(submit_directory),
        )
        .route(
            "/admin/settings/directories/{id}/users",
            web::post().to(add_person),
        )
        .route(
            "/admin/settings/directories/{id}/sync",
            web::post().to(sync_now),
        )
        .route(
            "/admin/settings/directories/{id}/groups",
            web::post().to(add_mapping),
        )
        .route(
            "/admin/settings/directories/{id}/groups/{mapping}/delete",
            web::post().to(remove_mapping),
        )
        .route(
            "/admin/settings/directories/{id}/delete",
            web::get().to(confirm_delete),
        )
        .route(
            "/admin/settings/directories/{id}/delete",
            web::post().to(delete_directory),
        );
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "active_directory" => "Active Directory",
        _ => "FreeIPA / OpenLDAP",
    }
}

fn tls_label(tls: &str) -> &'static str {
    match tls {
        "ldaps" => "LDAPS (ldaps://, TLS from the first byte)",
        "none" => "None (ldap:// in clear: tests and loopback only)",
        _ => "StartTLS (ldap://, then TLS)",
    }
}

async fn directory_or_404(state: &AppState, id: &str) -> Result<Stored, PageError> {
    let id = path_id(id)?;
    state
        .store
        .directory(IdOrName::Id(id))
        .await?
        .filter(|directory| directory.id == id)
        .ok_or(PageError::NotFound)
}

// ---------------------------------------------------------------------------------------------
// The list.

async fn list_directories(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let directories = state.store.directories().await?;
    let users = state.store.directory_user_counts().await?;
    let new_link = format!("{LIST}/new");
    let body = html! {
        p { a href="/admin/settings" { "← Settings" } }
        p { "Active Directory, FreeIPA or OpenLDAP servers whose people are otpgate users: they sign in with the login and password the directory keeps, and otpgate adds the second factor." }
        p.actions { a.button href=(new_link) { "New directory" } }
        @if directories.is_empty() {
            p.empty { "No directories yet. " a href=(new_link) { "Connect the first one" } "." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr { th { "Name" } th { "Kind" } th { "Servers" } th { "Users linked" } th { "Last change (UTC)" } } }
                    tbody {
                        @for directory in &directories {
                            tr {
                                td { a href=(format!("{LIST}/{}", directory.id)) { (directory.fields.name) } }
                                td { (kind_label(&directory.fields.kind)) }
                                td { @for (n, url) in directory.fields.urls.iter().enumerate() { @if n > 0 { br; } code { (url) } } }
                                td { (users.get(&directory.id).copied().unwrap_or(0)) }
                                td { (format_time(directory.updated_at)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page.render(&state, "Directories", NAV, body))
}

// ---------------------------------------------------------------------------------------------
// The form of a directory.

/// A directory's form as typed; the fields carry the API's names, so that a rule's refusal
/// lands under its field. No `Debug`: it carries the service account's password.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct DirectoryForm {
    csrf: String,
    /// The button pressed: `save`, `test` or `preview`.
    action: String,
    name: String,
    kind: String,
    /// One address a line, in failover order.
    urls: String,
    tls: String,
    ca_pem: String,
    bind_dn: String,
    /// Write-only: empty keeps the password kept below, or the saved one.
    bind_password: String,
    /// The password typed earlier in this form, sealed (see `seal_password`).
    bind_password_kept: String,
    base_dn: String,
    user_filter: String,
    /// Separated by commas or spaces.
    login_attributes: String,
    id_attribute: String,
    first_name_attribute: String,
    last_name_attribute: String,
    email_attribute: String,
    mobile_attribute: String,
    user_group: String,
    connect_timeout_seconds: String,
    search_timeout_seconds: String,
    sync_interval_minutes: String,
}

impl DirectoryForm {
    fn of(fields: &DirectoryFields) -> DirectoryForm {
        DirectoryForm {
            name: fields.name.clone(),
            kind: fields.kind.clone(),
            urls: fields.urls.join("\n"),
            tls: fields.tls.clone(),
            ca_pem: fields.ca_pem.clone().unwrap_or_default(),
            bind_dn: fields.bind_dn.clone(),
            base_dn: fields.base_dn.clone(),
            user_filter: fields.user_filter.clone(),
            login_attributes: fields.login_attributes.join(", "),
            id_attribute: fields.id_attribute.clone(),
            first_name_attribute: fields.first_name_attribute.clone(),
            last_name_attribute: fields.last_name_attribute.clone(),
            email_attribute: fields.email_attribute.clone(),
            mobile_attribute: fields.mobile_attribute.clone(),
            user_group: fields.user_group.clone().unwrap_or_default(),
            connect_timeout_seconds: fields.connect_timeout_seconds.to_string(),
            search_timeout_seconds: fields.search_timeout_seconds.to_string(),
            sync_interval_minutes: fields.sync_interval_minutes.to_string(),
            ..DirectoryForm::default()
        }
    }

    /// The form's values as the rules take them, with the password in effect (None: the
    /// saved one, or none at all).
    fn input(&self, password: Option<String>) -> Result<DirectoryInput, FieldError> {
        let number = |field: &'static str, text: &str, range| {
            if text.trim().is_empty() {
                Ok(None)
            } else {
                settings::whole_number(field, text, range).map(Some)
            }
        };
        Ok(DirectoryInput {
            name: Some(self.name.clone()),
            kind: Some(self.kind.clone()),
            urls: Some(self.urls.split_whitespace().map(str::to_string).collect()),
            tls: Some(self.tls.clone()),
            ca_pem: Some(self.ca_pem.clone()),
            bind_dn: Some(self.bind_dn.clone()),
            bind_password: password,
            base_dn: Some(self.base_dn.clone()),
            user_filter: Some(self.user_filter.clone()),
            login_attributes: Some(
                self.login_attributes
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|name| !name.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            id_attribute: Some(self.id_attribute.clone()),
            first_name_attribute: Some(self.first_name_attribute.clone()),
            last_name_attribute: Some(self.last_name_attribute.clone()),
            email_attribute: Some(self.email_attribute.clone()),
            mobile_attribute: Some(self.mobile_attribute.clone()),
            user_group: Some(self.user_group.clone()),
            connect_timeout_seconds: number(
                "connect_timeout_seconds",
                &self.connect_timeout_seconds,
                settings::CONNECT_TIMEOUTS,
            )?,
            search_timeout_seconds: number(
                "search_timeout_seconds",
                &self.search_timeout_seconds,
                settings::SEARCH_TIMEOUTS,
            )?,
            sync_interval_minutes: number(
                "sync_interval_minutes",
                &self.sync_interval_minutes,
                settings::SYNC_INTERVALS,
            )?,
        })
    }
}

/// The password typed now or earlier in this form; None when there is none (a saved
/// directory then uses its own). A kept password that does not open for this session is none.
fn password_in_effect(page: &Page, state: &AppState, form: &DirectoryForm) -> Option<String> {
    if !form.bind_password.is_empty() {
        return Some(form.bind_password.clone());
    }
    let sealed = data_encoding::HEXLOWER
        .decode(form.bind_password_kept.trim().as_bytes())
        .ok()?;
    let opened = state.keys.open(Purpose::FormSecret, &sealed).ok()?;
    let text = String::from_utf8(opened).ok()?;
    let (session, password) = text.split_once('\n')?;
    crate::crypto::constant_time_eq(session.as_bytes(), page.csrf().as_bytes())
        .then(|| password.to_string())
}

/// A password to keep in the form, sealed and tied to the session, so that Test connection,
/// Preview users and Save can follow one another without typing it again.
fn seal_password(page: &Page, state: &AppState, password: &str) -> Result<String, PageError> {
    let sealed = state.keys.seal(
        Purpose::FormSecret,
        format!("{}\n{password}", page.csrf()).as_bytes(),
    )?;
    Ok(data_encoding::HEXLOWER.encode(&sealed))
}

/// Whether the form makes a new directory or changes a saved one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Intent {
    Create,
    Change,
}

/// What the page shows under the form: nothing, a test's or a preview's outcome.
enum Outcome {
    Nothing,
    Tested(Checked),
    Previewed(Previewed),
}

/// Everything the form of a directory shows.
struct FormView<'a> {
    form: &'a DirectoryForm,
    errors: &'a Problems,
    intent: Intent,
    /// The sealed password kept in the form, if one was typed.
    kept: Option<String>,
    outcome: Outcome,
}

fn preset_of(kind: &str) -> DirectoryFields {
    settings::preset(Kind::parse(kind).unwrap_or(Kind::OpenLdap))
}

fn text_field(
    label: &str,
    name: &str,
    value: &str,
    help: Markup,
    errors: &Problems,
    required: bool,
) -> Markup {
    html! {
        label {
            (label)
            small { (help) }
            input type="text" name=(name) value=(value) required[required] spellcheck="false";
            (errors.note(name))
        }
    }
}

fn number_field(label: &str, name: &str, value: &str, help: &str, errors: &Problems) -> Markup {
    html! {
        label {
            (label)
            small { (help) }
            input type="number" name=(name) value=(value) min="1";
            (errors.note(name))
        }
    }
}

fn choice(name: &str, current: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        select name=(name) {
            @for (value, label) in options {
                option value=(value) selected[*value == current] { (label) }
            }
        }
    }
}

fn directory_fields(view: &FormView<'_>) -> Markup {
    let form = view.form;
    let errors = view.errors;
    let kinds: Vec<(&str, &str)> = Kind::NAMES
        .iter()
        .map(|name| (*name, kind_label(name)))
        .collect();
    let tls: Vec<(&str, &str)> = Tls::NAMES
        .iter()
        .map(|name| (*name, tls_label(name)))
        .collect();
    let password_help = match (view.intent, view.kept.is_some()) {
        (_, true) => {
            "The password typed earlier is kept for this form, never shown. Leave this empty to keep it; type another to replace it."
        }
        (Intent::Create, false) => "Write-only: never shown again once saved.",
        (Intent::Change, false) => {
            "The saved password is never shown. Leave this empty to keep it; type a new one to replace it."
        }
    };
    html! {
        (text_field("Name", "name", &form.name, html! { "As the panel and the audit log name the directory." }, errors, true))
        label {
            "Kind"
            small { "Says how the stable id and a refused bind are read, and how nested groups are matched." }
            @if view.intent == Intent::Create {
                // On a new directory, choosing another kind fills in its preset's fields
                // (panel.js); without JavaScript the preset links above do.
                select name="kind" data-presets {
                    @for (value, label) in &kinds {
                        @let preset = preset_of(value);
                        option value=(value) selected[*value == form.kind]
                            data-login_attributes=(preset.login_attributes.join(", "))
                            data-id_attribute=(preset.id_attribute)
                            data-user_filter=(preset.user_filter) { (label) }
                    }
                }
            } @else {
                (choice("kind", &form.kind, &kinds))
            }
            (errors.note("kind"))
        }
        fieldset {
            legend { "Servers" }
            label {
                "Server addresses"
                small { "One a line, in failover order: " code { "ldap://host[:port]" } " (StartTLS or none) or " code { "ldaps://host[:port]" } ". Up to " (settings::MAX_URLS) "." }
                textarea name="urls" rows="3" spellcheck="false" required { (form.urls) }
                (errors.note("urls"))
            }
            label {
                "TLS"
                small { "How the connection is protected." }
                (choice("tls", &form.tls, &tls))
                (errors.note("tls"))
            }
            label {
                "CA certificate"
                small { "The PEM certificate(s) that signed the servers' certificates. Empty: the system's roots." }
                textarea name="ca_pem" rows="4" spellcheck="false" { (form.ca_pem) }
                (errors.note("ca_pem"))
            }
            (number_field("Connect timeout (seconds)", "connect_timeout_seconds", &form.connect_timeout_seconds, "1 to 60: past it, the next address is tried.", errors))
            (number_field("Search timeout (seconds)", "search_timeout_seconds", &form.search_timeout_seconds, "1 to 300.", errors))
        }
        fieldset {
            legend { "Service account" }
            (text_field("Bind DN", "bind_dn", &form.bind_dn, html! { "The account otpgate searches with; it needs only to read people (and groups)." }, errors, true))
            label {
                "Bind password"
                small { (password_help) }
                input type="password" name="bind_password" value="" autocomplete="new-password" maxlength=(settings::MAX_PASSWORD);
                (errors.note("bind_password"))
            }
            @if let Some(kept) = &view.kept {
                input type="hidden" name="bind_password_kept" value=(kept);
            }
        }
        fieldset {
            legend { "People" }
            (text_field("Base DN", "base_dn", &form.base_dn, html! { "Where people are searched (the whole subtree)." }, errors, true))
            (text_field("User filter", "user_filter", &form.user_filter, html! { "An LDAP filter that finds people." }, errors, true))
            (text_field("Login attributes", "login_attributes", &form.login_attributes, html! { "A login matches any of them (comma-separated): " code { "sAMAccountName, userPrincipalName" } " in Active Directory, " code { "uid" } " elsewhere." }, errors, true))
            (text_field("Stable id attribute", "id_attribute", &form.id_attribute, html! { "Never changes, so a rename in the directory is a rename here: " code { "objectGUID" } " in Active Directory, " code { "entryUUID" } " elsewhere." }, errors, true))
            (text_field("User group", "user_group", &form.user_group, html! { "A group's DN (in Active Directory, members of nested groups too) or a filter in parentheses. Empty: everyone the user filter finds." }, errors, false))
        }
        fieldset {
            legend { "Attributes" }
            p.note { "Empty: not read from the directory." }
            (text_field("First name attribute", "first_name_attribute", &form.first_name_attribute, html! {}, errors, false))
            (text_field("Last name attribute", "last_name_attribute", &form.last_name_attribute, html! {}, errors, false))
            (text_field("Email attribute", "email_attribute", &form.email_attribute, html! {}, errors, false))
            (text_field("Mobile phone attribute", "mobile_attribute", &form.mobile_attribute, html! {}, errors, false))
        }
        (number_field("Sync interval (minutes)", "sync_interval_minutes", &form.sync_interval_minutes, "1 to 1440: how often the directory's people are read again.", errors))
    }
}

/// The people of a preview, or a test's outcome, in plain words.
fn outcome_view(outcome: &Outcome) -> Markup {
    let (checked, preview) = match outcome {
        Outcome::Nothing => return html! {},
        Outcome::Tested(checked) => (checked, None),
        Outcome::Previewed(previewed) => (&previewed.checked, Some(previewed)),
    };
    html! {
        section #check aria-labelledby="check-heading" {
            h2 #check-heading { @if preview.is_some() { "Preview" } @else { "Test connection" } }
            @if checked.ok {
                p.flash role="status" { (sentence(&checked.message)) }
                @if let Some(url) = checked.url.as_deref().filter(|_| preview.is_some()) {
                    p.note { "Server that answered: " code { (url) } }
                }
            } @else {
                p.error role="alert" { (sentence(&checked.message)) }
            }
            @if !checked.attempts.is_empty() {
                ul.attempts {
                    @for attempt in &checked.attempts {
                        li { code { (attempt.url) } ": " (attempt.problem) }
                    }
                }
            }
            @if let Some(preview) = preview.filter(|preview| preview.checked.ok) {
                @if preview.people.is_empty() {
                    p.empty { "The settings find nobody." }
                } @else {
                    p.count { "The first " (preview.people.len().min(PREVIEW_LIMIT)) " of " (preview.count) ":" }
                    div.table-wrap {
                        table {
                            thead { tr { th { "Login" } th { "Name" } th { "Email" } th { "Mobile phone" } th { "Stable id" } } }
                            tbody {
                                @for person in &preview.people {
                                    tr {
                                        td { (person.login.as_deref().unwrap_or("—")) }
                                        td { (person_name(person)) }
                                        td { (person.email.as_deref().unwrap_or("")) }
                                        td { (person.mobile.as_deref().unwrap_or("")) }
                                        td { code { (person.stable_id.as_deref().unwrap_or("—")) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn person_name(person: &crate::ldap::Person) -> String {
    [&person.first_name, &person.last_name]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A message as a sentence: a capital first letter and a full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// The form with its buttons: Save first (what Enter does), then the tries.
fn directory_form(page: &Page, action: &str, view: &FormView<'_>) -> Markup {
    html! {
        (view.errors.summary())
        form.stack method="post" action=(format!("{action}#check")) {
            (page.csrf_field())
            (directory_fields(view))
            div.buttons {
                button type="submit" name="action" value="save" { "Save" }
                button.secondary type="submit" name="action" value="test" { "Test connection" }
                button.secondary type="submit" name="action" value="preview" { "Preview users" }
            }
        }
        (outcome_view(&view.outcome))
    }
}

/// The password in effect, sealed for the form to keep while it is shown again.
fn kept(
    page: &Page,
    state: &AppState,
    password: &Option<String>,
) -> Result<Option<String>, PageError> {
    password
        .as_deref()
        .map(|password| seal_password(page, state, password))
        .transpose()
}

// ---------------------------------------------------------------------------------------------
// A new directory.

#[derive(Deserialize)]
pub struct KindQuery {
    #[serde(default)]
    kind: String,
}

fn new_directory_page(page: &Page, state: &AppState, view: &FormView<'_>) -> HttpResponse {
    let body = html! {
        p { a href=(LIST) { "← Directories" } }
        p.note { "Start again from a preset: "
            a href=(format!("{LIST}/new?kind=active_directory")) { "Active Directory" } ", "
            a href=(format!("{LIST}/new?kind=openldap")) { "FreeIPA / OpenLDAP" } "." }
        (directory_form(page, &format!("{LIST}/new"), view))
    };
    page.render(state, "New directory", NAV, body)
}

async fn new_directory(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<KindQuery>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let Ok(kind) = Kind::parse(&query.kind) else {
        let body = html! {
            p { a href=(LIST) { "← Directories" } }
            p { "Which kind of directory? The preset fills in the login attributes, the stable id attribute and the user filter; every field can be changed afterwards." }
            p.actions {
                a.button href=(format!("{LIST}/new?kind=active_directory")) { "Active Directory" }
                a.button href=(format!("{LIST}/new?kind=openldap")) { "FreeIPA / OpenLDAP" }
            }
            p.note { "Active Directory also covers Samba AD; FreeIPA / OpenLDAP covers other LDAP servers that keep people as " code { "inetOrgPerson" } "." }
        };
        return Ok(page.render(&state, "New directory", NAV, body));
    };
    let form = DirectoryForm::of(&settings::preset(kind));
    Ok(new_directory_page(
        &page,
        &state,
        &FormView {
            form: &form,
            errors: &Problems::default(),
            intent: Intent::Create,
            kept: None,
            outcome: Outcome::Nothing,
        },
    ))
}

async fn submit_new_directory(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<DirectoryForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let password = password_in_effect(&page, &state, &form);
    let kept = kept(&page, &state, &password)?;
    let answer = |errors: Problems, outcome: Outcome| {
        let status = if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        let view = FormView {
            form: &form,
            errors: &errors,
            intent: Intent::Create,
            kept: kept.clone(),
            outcome,
        };
        with_status(new_directory_page(&page, &state, &view), status)
    };
    let input = match form.input(password) {
        Ok(input) => input,
        Err(bad) => return Ok(answer(Problems::one(bad), Outcome::Nothing)),
    };
    match form.action.as_str() {
        "test" | "preview" => {
            let directory = match directories::unsaved(input) {
                Ok(directory) => directory,
                Err(error) => return Ok(answer(Problems::of(error)?, Outcome::Nothing)),
            };
            let outcome = try_out(&page, &state, &request, &form.action, &directory).await?;
            Ok(answer(Problems::default(), outcome))
        }
        _ => {
            let created = directories::create(
                &state.store,
                &state.keys,
                input,
                page.audit(&request, "directory.create", "ok"),
                now(),
            )
            .await;
            match created {
                Ok(directory) => Ok(redirect_with_flash(
                    &state,
                    &format!("{LIST}/{}", directory.id),
                    &format!(
                        "Directory “{}” created. Its password is not shown again.",
                        directory.fields.name
                    ),
                )),
                Err(error) => Ok(answer(Problems::of(error)?, Outcome::Nothing)),
            }
        }
    }
}

/// Test connection or Preview users with `directory`, audited under the API's names.
async fn try_out(
    page: &Page,
    state: &AppState,
    request: &HttpRequest,
    action: &str,
    directory: &crate::ldap::Directory,
) -> Result<Outcome, PageError> {
    Ok(if action == "preview" {
        Outcome::Previewed(
            directories::preview(
                &state.store,
                directory,
                page.audit(request, "directory.preview", "ok"),
            )
            .await?,
        )
    } else {
        Outcome::Tested(
            directories::test(
                &state.store,
                directory,
                page.audit(request, "directory.test", "ok"),
            )
            .await?,
        )
    })
}

// ---------------------------------------------------------------------------------------------
// One directory: its settings changed with the same form, a person added, delete.

/// What a directory's page shows beside its settings.
#[derive(Default)]
struct Extras {
    /// The login typed in Add a person and what is wrong with it.
    person: (String, Problems),
    /// Why the directory could not be deleted.
    delete: Option<String>,
    /// The group → resource mapping typed (group, resource) and what is wrong with it.
    mapping: (MappingForm, Problems),
}

async fn directory_page(
    page: &Page,
    state: &AppState,
    directory: &Stored,
    view: &FormView<'_>,
    extras: &Extras,
) -> Result<HttpResponse, PageError> {
    let users = state
        .store
        .directory_user_counts()
        .await?
        .get(&directory.id)
        .copied()
        .unwrap_or(0);
    let last_sync = state.store.last_sync(directory.id).await?;
    let mappings = sync::mappings(&state.store, IdOrName::Id(directory.id)).await?;
    let base = format!("{LIST}/{}", directory.id);
    let (login, person_errors) = &extras.person;
    let body = html! {
        p { a href=(LIST) { "← Directories" } }
        p.note {
            (kind_label(&directory.fields.kind)) ". "
            (crate::domain::words::count(users as u64, "user comes", "users come")) " from it. "
            "Created " (format_time(directory.created_at)) " UTC, last changed " (format_time(directory.updated_at)) " UTC."
        }
        section #settings aria-labelledby="settings-heading" {
            h2 #settings-heading { "Settings" }
            p.note { "Test connection and Preview users try the settings as they stand in the form, saved or not." }
            (directory_form(page, &base, view))
        }
        section #person aria-labelledby="person-heading" {
            h2 #person-heading { "Add a person from the directory" }
            p { "Makes a person of the directory an otpgate user, linked to their entry by its stable id. Their password stays in the directory." }
            (person_errors.summary())
            form.stack method="post" action=(format!("{base}/users#person")) {
                (page.csrf_field())
                label {
                    "Login in the directory"
                    small { "Any of the login attributes: " (directory.fields.login_attributes.join(", ")) "." }
                    input type="text" name="login" value=(login) required spellcheck="false" autocomplete="off";
                    (person_errors.note("login"))
                }
                div { button type="submit" { "Add person" } }
            }
        }
        (sync_section(page, &base, last_sync.as_ref()))
        (mappings_section(page, &base, &mappings, &extras.mapping))
        section.danger-zone #delete aria-labelledby="delete-heading" {
            h2 #delete-heading { "Delete" }
            @if let Some(refused) = &extras.delete {
                p.error role="alert" { (sentence(refused)) }
            }
            p { "A directory that users come from cannot be deleted; delete its users first." }
            p { a.button-danger href=(format!("{base}/delete")) { "Delete directory" } }
        }
    };
    Ok(page.render(
        state,
        &format!("Directory {}", directory.fields.name),
        NAV,
        body,
    ))
}

/// A directory's page with its saved settings in the form, and `extras` below.
async fn saved_directory_page(
    page: &Page,
    state: &AppState,
    directory: &Stored,
    extras: &Extras,
) -> Result<HttpResponse, PageError> {
    let form = DirectoryForm::of(&directory.fields);
    directory_page(
        page,
        state,
        directory,
        &FormView {
            form: &form,
            errors: &Problems::default(),
            intent: Intent::Change,
            kept: None,
            outcome: Outcome::Nothing,
        },
        extras,
    )
    .await
}

async fn show_directory(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let directory = directory_or_404(&state, &path).await?;
    saved_directory_page(&page, &state, &directory, &Extras::default()).await
}

/// The fields of `input` that differ from the saved ones, and how many; the password counts
/// when one is sent.
fn changes(mut input: DirectoryInput, saved: &DirectoryFields) -> (DirectoryInput, usize) {
    let mut changed = 0;
    macro_rules! keep_if_same {
        ($field:ident, $same:expr) => {
            match &input.$field {
                Some(value) if $same(value) => input.$field = None,
                Some(_) => changed += 1,
                None => {}
            }
        };
    }
    fn text(saved: &str) -> impl Fn(&String) -> bool + '_ {
        move |value: &String| value.trim() == saved
    }
    fn optional(saved: &Option<String>) -> impl Fn(&String) -> bool + '_ {
        move |value: &String| value.trim() == saved.as_deref().unwrap_or_default()
    }
    keep_if_same!(name, text(&saved.name));
    keep_if_same!(kind, text(&saved.kind));
    keep_if_same!(tls, text(&saved.tls));
    keep_if_same!(ca_pem, optional(&saved.ca_pem));
    keep_if_same!(bind_dn, text(&saved.bind_dn));
    keep_if_same!(base_dn, text(&saved.base_dn));
    keep_if_same!(user_filter, text(&saved.user_filter));
    keep_if_same!(id_attribute, text(&saved.id_attribute));
    keep_if_same!(first_name_attribute, text(&saved.first_name_attribute));
    keep_if_same!(last_name_attribute, text(&saved.last_name_attribute));
    keep_if_same!(email_attribute, text(&saved.email_attribute));
    keep_if_same!(mobile_attribute, text(&saved.mobile_attribute));
    keep_if_same!(user_group, optional(&saved.user_group));
    keep_if_same!(urls, |value: &Vec<String>| *value == saved.urls);
    keep_if_same!(login_attributes, |value: &Vec<String>| *value
        == saved.login_attributes);
    keep_if_same!(connect_timeout_seconds, |value: &i64| *value
        == saved.connect_timeout_seconds);
    keep_if_same!(search_timeout_seconds, |value: &i64| *value
        == saved.search_timeout_seconds);
    keep_if_same!(sync_interval_minutes, |value: &i64| *value
        == saved.sync_interval_minutes);
    if input.bind_password.is_some() {
        changed += 1;
    }
    (input, changed)
}

async fn submit_directory(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<DirectoryForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let directory = directory_or_404(&state, &path).await?;
    let password = password_in_effect(&page, &state, &form);
    let kept = kept(&page, &state, &password)?;
    let answer = async |errors: Problems, outcome: Outcome| {
        let status = if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        let view = FormView {
            form: &form,
            errors: &errors,
            intent: Intent::Change,
            kept: kept.clone(),
            outcome,
        };
        let response = directory_page(&page, &state, &directory, &view, &Extras::default()).await?;
        Ok::<_, PageError>(with_status(response, status))
    };
    let input = match form.input(password) {
        Ok(input) => input,
        Err(bad) => return answer(Problems::one(bad), Outcome::Nothing).await,
    };
    let key = IdOrName::Id(directory.id);
    match form.action.as_str() {
        "test" | "preview" => {
            let tried = match directories::edited(&state.store, &state.keys, key, input).await {
                Ok(tried) => tried,
                Err(error) => return answer(Problems::of(error)?, Outcome::Nothing).await,
            };
            let outcome = try_out(&page, &state, &request, &form.action, &tried).await?;
            answer(Problems::default(), outcome).await
        }
        _ => {
            let location = format!("{LIST}/{}", directory.id);
            let (input, changed) = changes(input, &directory.fields);
            if changed == 0 {
                return Ok(redirect_with_flash(&state, &location, "Nothing changed."));
            }
            let updated = directories::update(
                &state.store,
                &state.keys,
                key,
                input,
                page.audit(&request, "directory.update", "ok"),
                now(),
            )
            .await;
            match updated {
                Ok(updated) => Ok(redirect_with_flash(
                    &state,
                    &location,
                    &format!("Directory “{}” saved.", updated.fields.name),
                )),
                Err(error) => answer(Problems::of(error)?, Outcome::Nothing).await,
            }
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct PersonForm {
    csrf: String,
    login: String,
}

async fn add_person(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<PersonForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let directory = directory_or_404(&state, &path).await?;
    let added = directories::add_person(
        &state.store,
        &state.keys,
        IdOrName::Id(directory.id),
        &form.login,
        page.audit(&request, "directory.add_user", "ok"),
        now(),
    )
    .await;
    let mut problems = Problems::default();
    match added {
        Ok((user_id, created)) => {
            let message = if created {
                format!(
                    "“{}” added from the directory “{}”: their password stays there.",
                    form.login.trim(),
                    directory.fields.name
                )
            } else {
                format!(
                    "“{}” was an otpgate user already, linked to the directory “{}”.",
                    form.login.trim(),
                    directory.fields.name
                )
            };
            return Ok(redirect_with_flash(
                &state,
                &format!("/admin/users/{user_id}"),
                &message,
            ));
        }
        // The person, not the page, is missing: said under the field, in the API's words.
        Err(LinkError::Rule(RuleError::Refused(Refused::NotFound(what))))
            if what != "directory" =>
        {
            problems.at("login", format!("no such {what}"))
        }
        Err(LinkError::Rule(error)) => problems = Problems::of(error)?,
        Err(LinkError::Directory(error)) => problems.general(sentence(&error.to_string())),
    }
    let extras = Extras {
        person: (form.into_inner().login, problems),
        ..Extras::default()
    };
    let response = saved_directory_page(&page, &state, &directory, &extras).await?;
    Ok(with_status(response, StatusCode::BAD_REQUEST))
}

// ---------------------------------------------------------------------------------------------
// Sync now, and the group → resource mappings.

/// The last sync's result and the Sync now button.
fn sync_section(page: &Page, base: &str, last: Option<&SyncResult>) -> Markup {
    html! {
        section #sync aria-labelledby="sync-heading" {
            h2 #sync-heading { "Sync" }
            p { "otpgate reads the directory's people every sync interval: new people become users, changed ones follow the directory, people who left are disabled (never deleted)." }
            @match last {
                None => p.note { "Not synced yet." },
                Some(last) => {
                    p {
                        "Last sync " (format_time(last.finished_at)) " UTC, "
                        (format!("{:.1} s", last.duration_ms as f64 / 1000.0)) ": "
                        @if let Some(error) = &last.error {
                            span.result-fail { "failed: " (error) }
                        } @else {
                            (sync_summary(last))
                        }
                    }
                }
            }
            form method="post" action=(format!("{base}/sync")) {
                (page.csrf_field())
                label.check {
                    input type="checkbox" name="allow_mass_disable";
                    " Allow this sync to disable many users. A sync stops without changing anything when it finds no one, or would disable more than "
                    (sync::MASS_DISABLE_FREE) " users and more than " (sync::MASS_DISABLE_PERCENT) " % of them: tick this once you have checked that they really left."
                }
                button type="submit" { "Sync now" }
            }
        }
    }
}

/// A sync's counts in words.
fn sync_summary(result: &SyncResult) -> String {
    format!(
        "{} read; {} created, {} updated, {} disabled, {} enabled, {} conflicts, {} skipped; \
         {} assigned and {} unassigned by group.",
        crate::domain::words::count(result.people as u64, "person", "people"),
        result.created,
        result.updated,
        result.disabled,
        result.enabled,
        result.conflicts,
        result.skipped,
        result.assigned,
        result.unassigned
    )
}

/// The group → resource mappings, each with Remove, and the form that adds one.
fn mappings_section(
    page: &Page,
    base: &str,
    mappings: &[GroupMapping],
    (typed, errors): &(MappingForm, Problems),
) -> Markup {
    html! {
        section #groups aria-labelledby="groups-heading" {
            h2 #groups-heading { "Group → resource" }
            p { "The people of a group are assigned to a resource at each sync, and lose the assignment when they leave the group. Assignments made by hand are never taken away." }
            @if mappings.is_empty() {
                p.empty { "No group is mapped to a resource." }
            } @else {
                table {
                    thead { tr { th { "Group" } th { "Resource" } th { "Assigned by it" } th { span.visually-hidden { "Remove" } } } }
                    tbody {
                        @for mapping in mappings {
                            tr {
                                td { code { (mapping.group) } }
                                td { (mapping.resource_name) }
                                td { (mapping.assigned) }
                                td {
                                    form method="post" action=(format!("{base}/groups/{}/delete", mapping.id)) {
                                        (page.csrf_field())
                                        button.button-danger type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (errors.summary())
            form.stack method="post" action=(format!("{base}/groups#groups")) {
                (page.csrf_field())
                label {
                    "Group"
                    small { "A group's DN, or a filter in parentheses such as (departmentNumber=42)." }
                    input type="text" name="group" value=(typed.group) required spellcheck="false" autocomplete="off";
                    (errors.note("group"))
                }
                label {
                    "Resource"
                    small { "The resource's name." }
                    input type="text" name="resource" value=(typed.resource) required spellcheck="false" autocomplete="off";
                    (errors.note("resource"))
                }
                div { button type="submit" { "Map group" } }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SyncForm {
    #[serde(default)]
    csrf: String,
    /// The box "may disable many users", ticked (`on`) or absent.
    #[serde(default)]
    allow_mass_disable: String,
}

async fn sync_now(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<SyncForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let directory = directory_or_404(&state, &path).await?;
    let synced = sync::sync_now(
        &state.store,
        &state.keys,
        &state.directory_syncs,
        IdOrName::Id(directory.id),
        !form.allow_mass_disable.is_empty(),
        page.audit(&request, "directory.sync", "ok"),
        now(),
    )
    .await;
    let location = format!("{LIST}/{}#sync", directory.id);
    Ok(match synced {
        Ok(SyncReport { result, .. }) => match &result.error {
            Some(error) => {
                let message = format!("The sync failed: {}", sentence(error));
                redirect_with_problem(&state, &location, &message)
            }
            None => {
                let message = format!("Synced: {}", sync_summary(&result));
                redirect_with_flash(&state, &location, &message)
            }
        },
        Err(RuleError::Refused(refused)) => {
            redirect_with_problem(&state, &location, &sentence(&refused.to_string()))
        }
        Err(error) => return Err(error.into()),
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct MappingForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    resource: String,
}

async fn add_mapping(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<MappingForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let directory = directory_or_404(&state, &path).await?;
    let resource = form.resource.trim();
    let mut problems = Problems::default();
    if resource.is_empty() {
        problems.at("resource", "is required");
    } else {
        let added = sync::add_mapping(
            &state.store,
            IdOrName::Id(directory.id),
            &form.group,
            IdOrName::Name(resource.to_string()),
            page.audit(&request, "directory.group_add", "ok"),
            now(),
        )
        .await;
        match added {
            Ok(mapping) => {
                return Ok(redirect_with_flash(
                    &state,
                    &format!("{LIST}/{}#groups", directory.id),
                    &format!(
                        "The group is mapped to “{}”: its people are assigned at the next sync.",
                        mapping.resource_name
                    ),
                ));
            }
            Err(error) => problems = Problems::of(error)?,
        }
    }
    let extras = Extras {
        mapping: (form.into_inner(), problems),
        ..Extras::default()
    };
    let response = saved_directory_page(&page, &state, &directory, &extras).await?;
    Ok(with_status(response, StatusCode::BAD_REQUEST))
}

async fn remove_mapping(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let (id, mapping) = path.into_inner();
    let directory = directory_or_404(&state, &id).await?;
    let removed = sync::remove_mapping(
        &state.store,
        IdOrName::Id(directory.id),
        path_id(&mapping)?,
        page.audit(&request, "directory.group_remove", "ok"),
    )
    .await;
    let message = match removed {
        Ok(taken) => format!(
            "Mapping removed; {} taken away.",
            crate::domain::words::count(
                taken as u64,
                "assignment it made was",
                "assignments it made were"
            )
        ),
        Err(RuleError::Refused(Refused::NotFound(_))) => return Err(PageError::NotFound),
        Err(error) => return Err(error.into()),
    };
    Ok(redirect_with_flash(
        &state,
        &format!("{LIST}/{}#groups", directory.id),
        &message,
    ))
}

// ---------------------------------------------------------------------------------------------
// Deleting a directory.

async fn confirm_delete(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let directory = directory_or_404(&state, &path).await?;
    let action = format!("{LIST}/{}/delete", directory.id);
    let back = format!("{LIST}/{}", directory.id);
    Ok(page.confirm(
        &state,
        "Delete directory",
        NAV,
        Confirmation {
            question: html! {
                p { "Delete the directory “" strong { (directory.fields.name) } "”? otpgate forgets its settings and its service account's password. This cannot be undone." }
            },
            action: &action,
            button: "Delete directory",
            back: &back,
        },
    ))
}

async fn delete_directory(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let directory = directory_or_404(&state, &path).await?;
    let deleted = directories::delete(
        &state.store,
        IdOrName::Id(directory.id),
        page.audit(&request, "directory.delete", "ok"),
    )
    .await;
    let refused = match deleted {
        Ok(()) => {
            return Ok(redirect_with_flash(
                &state,
                LIST,
                &format!("Directory “{}” deleted.", directory.fields.name),
            ));
        }
        Err(error) => Problems::of(error)?,
    };
    let extras = Extras {
        delete: refused.first().map(str::to_string),
        ..Extras::default()
    };
    let response = saved_directory_page(&page, &state, &directory, &extras).await?;
    Ok(with_status(response, StatusCode::CONFLICT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> DirectoryFields {
        DirectoryFields {
            name: "Example".into(),
            urls: vec!["ldap://127.0.0.1:389".into()],
            bind_dn: "cn=otpgate,dc=example,dc=org".into(),
            base_dn: "dc=example,dc=org".into(),
            ..settings::preset(Kind::OpenLdap)
        }
    }

    #[test]
    fn a_form_as_saved_changes_nothing_and_a_typed_password_is_a_change() {
        let form = DirectoryForm::of(&saved());
        let (input, changed) = changes(form.input(None).expect("parsed"), &saved());
        assert_eq!(changed, 0);
        assert!(input.name.is_none() && input.urls.is_none() && input.ca_pem.is_none());
        let (input, changed) = changes(form.input(Some("new".into())).expect("parsed"), &saved());
        assert_eq!(changed, 1);
        assert!(input.bind_password.is_some());
    }

    #[test]
    fn a_timeout_that_is_no_number_is_refused_in_the_rule_s_words() {
        let form = DirectoryForm {
            connect_timeout_seconds: "soon".into(),
            ..DirectoryForm::of(&saved())
        };
        let refused = form.input(None).err().expect("refused");
        assert_eq!(refused.field, "connect_timeout_seconds");
        assert_eq!(refused.message, "must be from 1 to 60");
    }

    #[test]
    fn login_attributes_are_split_on_commas_and_spaces() {
        let form = DirectoryForm {
            login_attributes: "sAMAccountName, userPrincipalName uid".into(),
            ..DirectoryForm::of(&saved())
        };
        let input = form.input(None).expect("parsed");
        assert_eq!(
            input.login_attributes.expect("sent"),
            ["sAMAccountName", "userPrincipalName", "uid"]
        );
    }
}
