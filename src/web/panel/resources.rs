//! The admin panel's Resources pages: the list, creating and changing a resource, Assign →
//! Users, Assign → Token with User, the resource's API keys and its Self-Service tab.
//!
//! Also the small form pieces the other pages of this part of the panel share: inline field
//! errors, a confirmation page for destructive actions, pagination links.

use std::collections::{BTreeSet, HashSet};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Page, format_time, redirect_with_flash};
use crate::crypto;
use crate::domain::TokenKind;
use crate::store::resources::{
    self, ActionGroup, Assignment, PortalAction, ResourceChanges, SelfService, SelfServiceSaved,
};
use crate::store::tokens::TokenFilter;
use crate::store::users::{Listing, Page as Window, UserFilter};
use crate::store::{NewResource, Resource};
use crate::web::{AppState, PageError, now};

const PER_PAGE: i64 = 50;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/admin/resources", web::get().to(list_resources))
        .route("/admin/resources/new", web::get().to(new_resource))
        .route("/admin/resources/new", web::post().to(create_resource))
        .route("/admin/resources/{id}", web::get().to(show_resource))
        .route("/admin/resources/{id}", web::post().to(update_resource))
        .route(
            "/admin/resources/{id}/delete",
            web::get().to(confirm_delete),
        )
        .route(
            "/admin/resources/{id}/delete",
            web::post().to(delete_resource),
        )
        .route(
            "/admin/resources/{id}/assign/users",
            web::get().to(show_assign_users),
        )
        .route(
            "/admin/resources/{id}/assign/users",
            web::post().to(assign_users),
        )
        .route(
            "/admin/resources/{id}/assign/tokens",
            web::get().to(show_assign_tokens),
        )
        .route(
            "/admin/resources/{id}/assign/tokens",
            web::post().to(assign_tokens),
        )
        .route(
            "/admin/resources/{id}/users/{user}/unassign",
            web::get().to(confirm_unassign_user),
        )
        .route(
            "/admin/resources/{id}/users/{user}/unassign",
            web::post().to(unassign_user),
        )
        .route(
            "/admin/resources/{id}/tokens/{token}/unassign",
            web::get().to(confirm_unassign_token),
        )
        .route(
            "/admin/resources/{id}/tokens/{token}/unassign",
            web::post().to(unassign_token),
        )
        .route("/admin/resources/{id}/keys", web::get().to(show_keys))
        .route("/admin/resources/{id}/keys", web::post().to(create_key))
        .route(
            "/admin/resources/{id}/keys/{key}/revoke",
            web::get().to(confirm_revoke_key),
        )
        .route(
            "/admin/resources/{id}/keys/{key}/revoke",
            web::post().to(revoke_key),
        )
        .route(
            "/admin/resources/{id}/self-service",
            web::get().to(show_self_service),
        )
        .route(
            "/admin/resources/{id}/self-service",
            web::post().to(save_self_service),
        );
}

// ---------------------------------------------------------------------------------------------
// Pieces shared by the forms of this part of the panel.

/// Errors of a form, by field name.
#[derive(Debug, Default)]
pub(super) struct FieldErrors(Vec<(&'static str, String)>);

impl FieldErrors {
    pub(super) fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push((field, message.into()));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The inline error under the field `field`, if it has one.
    pub(super) fn show(&self, field: &str) -> Markup {
        html! {
            @for (_, message) in self.0.iter().filter(|(f, _)| *f == field) {
                span.field-error role="alert" { (message) }
            }
        }
    }

    /// A summary on top of the form.
    pub(super) fn summary(&self) -> Markup {
        html! {
            @if !self.0.is_empty() {
                p.error role="alert" { "Please correct the fields marked below." }
            }
        }
    }
}

/// A response with another status than 200 (a form with errors: 400).
pub(super) fn with_status(mut response: HttpResponse, status: StatusCode) -> HttpResponse {
    *response.status_mut() = status;
    response
}

/// What a confirmation page asks.
pub(super) struct Confirmation<'a> {
    pub title: &'a str,
    pub active: &'a str,
    pub question: Markup,
    pub action: &'a str,
    pub button: &'a str,
    pub back: &'a str,
}

/// The confirmation step before a destructive action: the question, a button that posts the
/// form with the CSRF token, and a way back.
pub(super) fn confirm_page(
    page: &Page,
    state: &AppState,
    confirmation: Confirmation<'_>,
) -> HttpResponse {
    let body = html! {
        div.confirm {
            (confirmation.question)
            form.inline method="post" action=(confirmation.action) {
                input type="hidden" name="csrf" value=(page.csrf());
                button.danger type="submit" { (confirmation.button) }
                " "
                a.button-secondary href=(confirmation.back) { "Cancel" }
            }
        }
    };
    page.render(state, confirmation.title, confirmation.active, body)
}

/// Links to the previous and next pages of a listing; `link(n)` is the address of page `n`.
pub(super) fn pager(page: i64, total: i64, per_page: i64, link: impl Fn(i64) -> String) -> Markup {
    let pages = ((total + per_page - 1) / per_page).max(1);
    html! {
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 {
                    a rel="prev" href=(link(page - 1)) { "← Previous" }
                }
                span { "Page " (page) " of " (pages) }
                @if page < pages {
                    a rel="next" href=(link(page + 1)) { "Next →" }
                }
            }
        }
    }
}

/// Percent-encodes a value for a query string.
pub(super) fn query_value(value: &str) -> String {
    crate::delivery::sms::percent_encode(value)
}

/// The CSRF token of a form given as a list of pairs.
pub(super) fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Every value given for `name` in a form given as a list of pairs.
pub(super) fn form_values<'a>(
    form: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    form.iter()
        .filter(move |(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

// ---------------------------------------------------------------------------------------------
// The list.

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    page: Option<String>,
}

/// A page number from the query string; anything unreadable is page 1.
pub(super) fn page_number(text: Option<&str>) -> i64 {
    text.and_then(|t| t.parse::<i64>().ok())
        .filter(|n| (1..=1_000_000).contains(n))
        .unwrap_or(1)
}

async fn list_resources(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let number = page_number(query.page.as_deref());
    let (items, total) = state
        .store
        .resource_summaries(Window {
            limit: PER_PAGE,
            offset: (number - 1) * PER_PAGE,
        })
        .await?;
    let body = html! {
        p.actions { a.button href="/admin/resources/new" { "New resource" } }
        @if total == 0 {
            p.empty { "No resources yet. " a href="/admin/resources/new" { "Create the first resource" } " for an application that should ask for a second factor." }
        } @else {
            table {
                thead { tr { th { "Name" } th { "Description" } th { "Failed-attempt limit" } th { "Password" } th { "Users" } th { "Tokens" } th { "Self-Service" } } }
                tbody {
                    @for summary in &items {
                        @let resource = &summary.resource;
                        tr {
                            td { a href=(format!("/admin/resources/{}", resource.id)) { (resource.name) } }
                            td { (resource.description) }
                            td { (resource.fail_limit) }
                            td { @if resource.password_required { "required" } @else { "not required" } }
                            td { (summary.users) }
                            td { (summary.tokens) }
                            td { @if summary.self_service { "on" } @else { "off" } }
                        }
                    }
                }
            }
            (pager(number, total, PER_PAGE, |n| format!("/admin/resources?page={n}")))
        }
    };
    Ok(page.render(&state, "Resources", "Resources", body))
}

// ---------------------------------------------------------------------------------------------
// Creating and changing a resource.

#[derive(Deserialize)]
pub struct ResourceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    fail_limit: String,
    #[serde(default)]
    password_required: Option<String>,
}

/// The resource's settings as typed, checked with the same rules as the API.
struct ResourceInput {
    name: String,
    description: String,
    fail_limit: i64,
    password_required: bool,
}

fn parse_resource_form(form: &ResourceForm) -> Result<ResourceInput, FieldErrors> {
    let mut errors = FieldErrors::default();
    let name = resources::parse_resource_name(&form.name)
        .map_err(|e| errors.add("name", format!("The name {}.", e.0)))
        .ok();
    let description = resources::parse_description(&form.description)
        .map_err(|e| errors.add("description", format!("The description {}.", e.0)))
        .ok();
    let fail_limit = form
        .fail_limit
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|v| resources::check_fail_limit(v).ok())
        .or_else(|| {
            errors.add("fail_limit", "The limit must be a number from 3 to 10.");
            None
        });
    match (name, description, fail_limit) {
        (Some(name), Some(description), Some(fail_limit)) if errors.is_empty() => {
            Ok(ResourceInput {
                name,
                description,
                fail_limit,
                password_required: form.password_required.is_some(),
            })
        }
        _ => Err(errors),
    }
}

fn resource_fields(form: &ResourceForm, errors: &FieldErrors) -> Markup {
    html! {
        label {
            "Name"
            input type="text" name="name" value=(form.name) required maxlength="100";
            (errors.show("name"))
        }
        label {
            "Description"
            small { "Optional: what the resource protects." }
            input type="text" name="description" value=(form.description) maxlength="1000";
            (errors.show("description"))
        }
        label {
            "Failed-attempt limit"
            small { "A token is locked after this many failed attempts in a row (3 to 10)." }
            input type="number" name="fail_limit" value=(form.fail_limit) min="3" max="10" required;
            (errors.show("fail_limit"))
        }
        label.check {
            input type="checkbox" name="password_required" value="on" checked[form.password_required.is_some()];
            "Password required (users give their password together with the one-time password)"
        }
    }
}

fn new_resource_page(
    page: &Page,
    state: &AppState,
    form: &ResourceForm,
    errors: &FieldErrors,
) -> HttpResponse {
    let body = html! {
        p { a href="/admin/resources" { "← Resources" } }
        (errors.summary())
        form.stack method="post" action="/admin/resources/new" {
            input type="hidden" name="csrf" value=(page.csrf());
            (resource_fields(form, errors))
            div { button type="submit" { "Save" } }
        }
    };
    page.render(state, "New resource", "Resources", body)
}

async fn new_resource(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let form = ResourceForm {
        csrf: String::new(),
        name: String::new(),
        description: String::new(),
        fail_limit: "5".into(),
        password_required: None,
    };
    Ok(new_resource_page(
        &page,
        &state,
        &form,
        &FieldErrors::default(),
    ))
}

async fn create_resource(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<ResourceForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let input = match parse_resource_form(&form) {
        Ok(input) => input,
        Err(errors) => {
            return Ok(with_status(
                new_resource_page(&page, &state, &form, &errors),
                StatusCode::BAD_REQUEST,
            ));
        }
    };
    let name = input.name.clone();
    let created = state
        .store
        .create_resource(
            NewResource {
                name: input.name,
                description: input.description,
                fail_limit: input.fail_limit,
                password_required: input.password_required,
                auto_unlock_seconds: None,
            },
            page.audit(&request, "resource.create", "ok"),
            now(),
        )
        .await;
    match created {
        Ok(resource) => Ok(redirect_with_flash(
            &state,
            &format!("/admin/resources/{}", resource.id),
            &format!("Resource “{name}” created."),
        )),
        Err(error) if error.is_unique_violation() => {
            let mut errors = FieldErrors::default();
            errors.add("name", "A resource with this name exists already.");
            Ok(with_status(
                new_resource_page(&page, &state, &form, &errors),
                StatusCode::BAD_REQUEST,
            ))
        }
        Err(error) => Err(error.into()),
    }
}

async fn resource_or_404(state: &AppState, id: i64) -> Result<Resource, PageError> {
    state
        .store
        .find_resource(id.to_string())
        .await?
        .filter(|r| r.id == id)
        .ok_or(PageError::NotFound)
}

/// The tabs of a resource's pages.
fn resource_tabs(resource: &Resource, active: &str) -> Markup {
    let base = format!("/admin/resources/{}", resource.id);
    let tabs = [
        ("Overview", base.clone()),
        ("Assign → Users", format!("{base}/assign/users")),
        ("Assign → Token with User", format!("{base}/assign/tokens")),
        ("API keys", format!("{base}/keys")),
        ("Self-Service", format!("{base}/self-service")),
    ];
    html! {
        p { a href="/admin/resources" { "← Resources" } }
        nav.tabs aria-label="Resource" {
            @for (label, href) in &tabs {
                @if *label == active {
                    a.active href=(href) aria-current="page" { (label) }
                } @else {
                    a href=(href) { (label) }
                }
            }
        }
    }
}

fn form_from_resource(resource: &Resource) -> ResourceForm {
    ResourceForm {
        csrf: String::new(),
        name: resource.name.clone(),
        description: resource.description.clone(),
        fail_limit: resource.fail_limit.to_string(),
        password_required: resource.password_required.then(|| "on".to_string()),
    }
}

#[derive(Deserialize)]
pub struct ResourceQuery {
    #[serde(default)]
    page: Option<String>,
    /// The page of the tokens' table.
    #[serde(default)]
    tokens_page: Option<String>,
}

async fn resource_page(
    page: &Page,
    state: &AppState,
    resource: &Resource,
    form: &ResourceForm,
    errors: &FieldErrors,
    users_page: i64,
    tokens_page: i64,
) -> Result<HttpResponse, PageError> {
    let window = Window {
        limit: PER_PAGE,
        offset: (users_page - 1) * PER_PAGE,
    };
    let (users, users_total) = match state
        .store
        .resource_users(resource.id.to_string(), window)
        .await?
    {
        Listing::Found { items, total } => (items, total),
        Listing::NoSuchResource => return Err(PageError::NotFound),
    };
    let (tokens, tokens_total) = state
        .store
        .resource_tokens_window(
            resource.id.to_string(),
            PER_PAGE,
            (tokens_page - 1) * PER_PAGE,
        )
        .await?
        .ok_or(PageError::NotFound)?;
    let base = format!("/admin/resources/{}", resource.id);
    let body = html! {
        (resource_tabs(resource, "Overview"))
        section aria-labelledby="settings-heading" {
            h2 #settings-heading { "Settings" }
            (errors.summary())
            form.stack method="post" action=(base) {
                input type="hidden" name="csrf" value=(page.csrf());
                (resource_fields(form, errors))
                div { button type="submit" { "Save" } }
            }
        }
        section aria-labelledby="users-heading" {
            h2 #users-heading { "Users (" (users_total) ")" }
            @if users.is_empty() {
                p.empty { "No users are assigned. " a href=(format!("{base}/assign/users")) { "Assign users" } }
            } @else {
                table {
                    thead { tr { th { "Login" } th { "Name" } th { "Email" } th { "Enabled" } th { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for user in &users {
                            tr {
                                td { a href=(format!("/admin/users/{}", user.id)) { (user.login) } }
                                td { (user.first_name) " " (user.last_name) }
                                td { (user.email.as_deref().unwrap_or("")) }
                                td { @if user.enabled { "yes" } @else { "no" } }
                                td { a href=(format!("{base}/users/{}/unassign", user.id)) { "Unassign" } }
                            }
                        }
                    }
                }
                (pager(users_page, users_total, PER_PAGE, |n| format!("{base}?page={n}")))
            }
        }
        section aria-labelledby="tokens-heading" {
            h2 #tokens-heading { "Tokens with users (" (tokens_total) ")" }
            @if tokens.is_empty() {
                p.empty { "No tokens are assigned. " a href=(format!("{base}/assign/tokens")) { "Assign tokens with users" } }
            } @else {
                table {
                    thead { tr { th { "Serial" } th { "Name" } th { "Kind" } th { "User" } th { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for token in &tokens {
                            tr {
                                td { a href=(format!("/admin/tokens/{}", token.id)) { (token.serial) } }
                                td { (token.name) }
                                td { (token.kind.as_str()) }
                                td { @if let Some((_, login)) = &token.user { (login) } @else { "—" } }
                                td { a href=(format!("{base}/tokens/{}/unassign", token.id)) { "Unassign" } }
                            }
                        }
                    }
                }
                (pager(tokens_page, tokens_total, PER_PAGE, |n| format!("{base}?page={users_page}&tokens_page={n}#tokens-heading")))
            }
        }
        section aria-labelledby="danger-heading" {
            h2 #danger-heading { "Delete" }
            p { "Deleting the resource removes its assignments, API keys and Self-Service settings. Users and tokens stay." }
            p { a.button-danger href=(format!("{base}/delete")) { "Delete resource" } }
        }
    };
    Ok(page.render(state, &resource.name, "Resources", body))
}

async fn show_resource(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    query: web::Query<ResourceQuery>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    let form = form_from_resource(&resource);
    resource_page(
        &page,
        &state,
        &resource,
        &form,
        &FieldErrors::default(),
        page_number(query.page.as_deref()),
        page_number(query.tokens_page.as_deref()),
    )
    .await
}

async fn update_resource(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<ResourceForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    let input = match parse_resource_form(&form) {
        Ok(input) => input,
        Err(errors) => {
            let response = resource_page(&page, &state, &resource, &form, &errors, 1, 1).await?;
            return Ok(with_status(response, StatusCode::BAD_REQUEST));
        }
    };
    let mut changed = Vec::new();
    let changes = ResourceChanges {
        name: (input.name != resource.name).then(|| {
            changed.push("name");
            input.name.clone()
        }),
        description: (input.description != resource.description).then(|| {
            changed.push("description");
            input.description.clone()
        }),
        fail_limit: (input.fail_limit != resource.fail_limit).then(|| {
            changed.push("failed-attempt limit");
            input.fail_limit
        }),
        password_required: (input.password_required != resource.password_required).then(|| {
            changed.push("password required");
            input.password_required
        }),
        auto_unlock_seconds: None,
    };
    let location = format!("/admin/resources/{}", resource.id);
    if changed.is_empty() {
        return Ok(redirect_with_flash(&state, &location, "Nothing changed."));
    }
    let updated = state
        .store
        .update_resource(
            resource.id.to_string(),
            changes,
            page.audit(&request, "resource.update", "ok"),
            now(),
        )
        .await;
    match updated {
        Ok(Some(updated)) => Ok(redirect_with_flash(
            &state,
            &location,
            &format!(
                "Resource “{}” saved: {} changed.",
                updated.name,
                changed.join(", ")
            ),
        )),
        Ok(None) => Err(PageError::NotFound),
        Err(error) if error.is_unique_violation() => {
            let mut errors = FieldErrors::default();
            errors.add("name", "A resource with this name exists already.");
            let response = resource_page(&page, &state, &resource, &form, &errors, 1, 1).await?;
            Ok(with_status(response, StatusCode::BAD_REQUEST))
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn confirm_delete(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    let action = format!("/admin/resources/{}/delete", resource.id);
    let back = format!("/admin/resources/{}", resource.id);
    Ok(confirm_page(
        &page,
        &state,
        Confirmation {
            title: "Delete resource",
            active: "Resources",
            question: html! {
                p { "Delete the resource “" strong { (resource.name) } "”? Applications using it can no longer authenticate, and its API keys stop working. Users and tokens stay." }
            },
            action: &action,
            button: "Delete resource",
            back: &back,
        },
    ))
}

async fn delete_resource(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    if !state
        .store
        .delete_resource(
            resource.id.to_string(),
            page.audit(&request, "resource.delete", "ok"),
        )
        .await?
    {
        return Err(PageError::NotFound);
    }
    // The resource's keys are gone from the database; forget them here at once too.
    state.api_keys.clear();
    Ok(redirect_with_flash(
        &state,
        "/admin/resources",
        &format!("Resource “{}” deleted.", resource.name),
    ))
}

// ---------------------------------------------------------------------------------------------
// Assign → Users and Assign → Token with User.

#[derive(Deserialize)]
pub struct PickQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    page: Option<String>,
}

fn search_form(action: &str, search: &str, label: &str) -> Markup {
    html! {
        form.search method="get" action=(action) role="search" {
            label {
                (label)
                input type="search" name="q" value=(search);
            }
            button type="submit" { "Search" }
        }
    }
}

async fn assign_users_page(
    page: &Page,
    state: &AppState,
    resource: &Resource,
    search: &str,
    number: i64,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let search_filter = Some(search.trim().to_string()).filter(|s| !s.is_empty());
    let Listing::Found { items, total } = state
        .store
        .list_users(
            UserFilter {
                search: search_filter.clone(),
                ..UserFilter::default()
            },
            Window {
                limit: PER_PAGE,
                offset: (number - 1) * PER_PAGE,
            },
        )
        .await?
    else {
        return Err(PageError::NotFound);
    };
    // Which of the users found are assigned already (among at most the first 500 matches).
    let assigned: HashSet<i64> = match state
        .store
        .list_users(
            UserFilter {
                search: search_filter,
                resource: Some(resource.id.to_string()),
                ..UserFilter::default()
            },
            Window {
                limit: 500,
                offset: (number - 1) * PER_PAGE,
            },
        )
        .await?
    {
        Listing::Found { items, .. } => items.into_iter().map(|u| u.id).collect(),
        Listing::NoSuchResource => return Err(PageError::NotFound),
    };
    let base = format!("/admin/resources/{}/assign/users", resource.id);
    let body = html! {
        (resource_tabs(resource, "Assign → Users"))
        p { "Choose the users who may authenticate for " strong { (resource.name) } "." }
        (search_form(&base, search, "Find users by login, name, email or phone"))
        (crate::web::views::form_error(error))
        @if items.is_empty() {
            p.empty {
                @if search.trim().is_empty() { "No users yet. " a href="/admin/users" { "Create users" } " first." }
                @else { "No user matches “" (search) "”." }
            }
        } @else {
            form method="post" action=(base) {
                input type="hidden" name="csrf" value=(page.csrf());
                table {
                    thead { tr { th { span.visually-hidden { "Choose" } } th { "Login" } th { "Name" } th { "Email" } th { "Phone" } } }
                    tbody {
                        @for user in &items {
                            @let already = assigned.contains(&user.id);
                            tr {
                                td {
                                    input type="checkbox" name="user" value=(user.id) id=(format!("user-{}", user.id))
                                        disabled[already] checked[already];
                                }
                                td {
                                    label.inline for=(format!("user-{}", user.id)) { (user.login) }
                                    @if already { " " span.badge { "assigned" } }
                                }
                                td { (user.first_name) " " (user.last_name) }
                                td { (user.email.as_deref().unwrap_or("")) }
                                td { (user.phone.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
                p { button type="submit" { "Assign" } }
            }
            (pager(number, total, PER_PAGE, |n| format!("{base}?q={}&page={n}", query_value(search))))
        }
    };
    Ok(page.render(
        state,
        &format!("{} · Assign users", resource.name),
        "Resources",
        body,
    ))
}

async fn show_assign_users(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    query: web::Query<PickQuery>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    assign_users_page(
        &page,
        &state,
        &resource,
        query.q.as_deref().unwrap_or(""),
        page_number(query.page.as_deref()),
        None,
    )
    .await
}

/// The ids chosen in a multi-select form.
fn chosen_ids(form: &[(String, String)], name: &'static str) -> Vec<i64> {
    let mut ids: Vec<i64> = form_values(form, name)
        .filter_map(|v| v.parse::<i64>().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn plural(count: usize, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

async fn assign_users(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(form_value(&form, "csrf").unwrap_or(""))?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    let ids = chosen_ids(&form, "user");
    if ids.is_empty() {
        let response = assign_users_page(
            &page,
            &state,
            &resource,
            "",
            1,
            Some("Choose at least one user."),
        )
        .await?;
        return Ok(with_status(response, StatusCode::BAD_REQUEST));
    }
    let mut assigned = 0;
    for id in &ids {
        let outcome = state
            .store
            .assign_user(
                resource.id.to_string(),
                id.to_string(),
                page.audit(&request, "resource.assign_user", "ok"),
            )
            .await?;
        if outcome == Assignment::Changed {
            assigned += 1;
        }
    }
    let message = if assigned == 0 {
        "Nothing changed: the chosen users were assigned already.".to_string()
    } else {
        format!(
            "Assigned {} to “{}”.",
            plural(assigned, "user", "users"),
            resource.name
        )
    };
    Ok(redirect_with_flash(
        &state,
        &format!("/admin/resources/{}", resource.id),
        &message,
    ))
}

async fn assign_tokens_page(
    page: &Page,
    state: &AppState,
    resource: &Resource,
    search: &str,
    number: i64,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let listed = state
        .store
        .list_tokens(TokenFilter {
            assigned: Some(true),
            search: Some(search.trim().to_string()).filter(|s| !s.is_empty()),
            limit: PER_PAGE,
            offset: (number - 1) * PER_PAGE,
            ..TokenFilter::default()
        })
        .await?;
    let (items, total) = listed.map_err(|_| PageError::NotFound)?;
    let assigned: HashSet<i64> = state
        .store
        .resource_tokens(resource.id.to_string())
        .await?
        .ok_or(PageError::NotFound)?
        .into_iter()
        .map(|t| t.id)
        .collect();
    let base = format!("/admin/resources/{}/assign/tokens", resource.id);
    let body = html! {
        (resource_tabs(resource, "Assign → Token with User"))
        p { "Choose the tokens that count for " strong { (resource.name) } ". Each token's user is assigned too. Only tokens that have a user are listed." }
        (search_form(&base, search, "Find tokens by serial, name or user"))
        (crate::web::views::form_error(error))
        @if items.is_empty() {
            p.empty {
                @if search.trim().is_empty() { "No token has a user yet. Assign tokens to users on the " a href="/admin/users" { "Users" } " page first." }
                @else { "No token with a user matches “" (search) "”." }
            }
        } @else {
            form method="post" action=(base) {
                input type="hidden" name="csrf" value=(page.csrf());
                table {
                    thead { tr { th { span.visually-hidden { "Choose" } } th { "Serial" } th { "Name" } th { "Kind" } th { "User" } } }
                    tbody {
                        @for record in &items {
                            @let token = &record.token;
                            @let already = assigned.contains(&token.id);
                            tr {
                                td {
                                    input type="checkbox" name="token" value=(token.id) id=(format!("token-{}", token.id))
                                        disabled[already] checked[already];
                                }
                                td {
                                    label.inline for=(format!("token-{}", token.id)) { (token.serial) }
                                    @if already { " " span.badge { "assigned" } }
                                }
                                td { (token.name) }
                                td { (token.kind.as_str()) }
                                td { (record.user_login.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
                p { button type="submit" { "Assign" } }
            }
            (pager(number, total, PER_PAGE, |n| format!("{base}?q={}&page={n}", query_value(search))))
        }
    };
    Ok(page.render(
        state,
        &format!("{} · Assign tokens with users", resource.name),
        "Resources",
        body,
    ))
}

async fn show_assign_tokens(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    query: web::Query<PickQuery>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    assign_tokens_page(
        &page,
        &state,
        &resource,
        query.q.as_deref().unwrap_or(""),
        page_number(query.page.as_deref()),
        None,
    )
    .await
}

async fn assign_tokens(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(form_value(&form, "csrf").unwrap_or(""))?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    let ids = chosen_ids(&form, "token");
    if ids.is_empty() {
        let response = assign_tokens_page(
            &page,
            &state,
            &resource,
            "",
            1,
            Some("Choose at least one token."),
        )
        .await?;
        return Ok(with_status(response, StatusCode::BAD_REQUEST));
    }
    let mut assigned = 0;
    let mut refused = Vec::new();
    for id in &ids {
        let outcome = state
            .store
            .assign_token(
                resource.id.to_string(),
                id.to_string(),
                page.audit(&request, "resource.assign_token", "ok"),
            )
            .await?;
        match outcome {
            Assignment::Changed => assigned += 1,
            Assignment::Unchanged => {}
            Assignment::TokenWithoutUser | Assignment::NoSuchToken => refused.push(*id),
            Assignment::NoSuchResource => return Err(PageError::NotFound),
            Assignment::NoSuchUser => refused.push(*id),
        }
    }
    let mut message = if assigned == 0 {
        "Nothing was assigned.".to_string()
    } else {
        format!(
            "Assigned {} with their users to “{}”.",
            plural(assigned, "token", "tokens"),
            resource.name
        )
    };
    if !refused.is_empty() {
        message.push_str(&format!(
            " {} skipped: no such token, or the token has no user.",
            plural(refused.len(), "token was", "tokens were")
        ));
    }
    Ok(redirect_with_flash(
        &state,
        &format!("/admin/resources/{}", resource.id),
        &message,
    ))
}

async fn confirm_unassign_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let (resource_id, user_id) = path.into_inner();
    let resource = resource_or_404(&state, resource_id).await?;
    let user = state
        .store
        .find_user(user_id.to_string())
        .await?
        .filter(|u| u.id == user_id)
        .ok_or(PageError::NotFound)?;
    let action = format!("/admin/resources/{resource_id}/users/{user_id}/unassign");
    let back = format!("/admin/resources/{resource_id}");
    Ok(confirm_page(
        &page,
        &state,
        Confirmation {
            title: "Unassign user",
            active: "Resources",
            question: html! {
                p { "Take " strong { (user.login) } " from " strong { (resource.name) } "? Their tokens are taken from the resource too, and they can no longer authenticate for it." }
            },
            action: &action,
            button: "Unassign",
            back: &back,
        },
    ))
}

async fn unassign_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(i64, i64)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let (resource_id, user_id) = path.into_inner();
    let resource = resource_or_404(&state, resource_id).await?;
    let outcome = state
        .store
        .unassign_user(
            resource_id.to_string(),
            user_id.to_string(),
            page.audit(&request, "resource.unassign_user", "ok"),
        )
        .await?;
    let message = match outcome {
        Assignment::Changed => format!("User taken from “{}”.", resource.name),
        Assignment::Unchanged => "Nothing changed: the user was not assigned.".to_string(),
        _ => return Err(PageError::NotFound),
    };
    Ok(redirect_with_flash(
        &state,
        &format!("/admin/resources/{resource_id}"),
        &message,
    ))
}

async fn confirm_unassign_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let (resource_id, token_id) = path.into_inner();
    let resource = resource_or_404(&state, resource_id).await?;
    let token = state
        .store
        .find_token(token_id.to_string())
        .await?
        .filter(|t| t.id == token_id)
        .ok_or(PageError::NotFound)?;
    let action = format!("/admin/resources/{resource_id}/tokens/{token_id}/unassign");
    let back = format!("/admin/resources/{resource_id}");
    Ok(confirm_page(
        &page,
        &state,
        Confirmation {
            title: "Unassign token",
            active: "Resources",
            question: html! {
                p { "Take the token " strong { (token.serial) } " from " strong { (resource.name) } "? Its codes no longer count for this resource; its user stays assigned." }
            },
            action: &action,
            button: "Unassign",
            back: &back,
        },
    ))
}

async fn unassign_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(i64, i64)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let (resource_id, token_id) = path.into_inner();
    let resource = resource_or_404(&state, resource_id).await?;
    let outcome = state
        .store
        .unassign_token(
            resource_id.to_string(),
            token_id.to_string(),
            page.audit(&request, "resource.unassign_token", "ok"),
        )
        .await?;
    let message = match outcome {
        Assignment::Changed => format!("Token taken from “{}”.", resource.name),
        Assignment::Unchanged => "Nothing changed: the token was not assigned.".to_string(),
        _ => return Err(PageError::NotFound),
    };
    Ok(redirect_with_flash(
        &state,
        &format!("/admin/resources/{resource_id}"),
        &message,
    ))
}

// ---------------------------------------------------------------------------------------------
// API keys.

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

async fn keys_page(
    page: &Page,
    state: &AppState,
    resource: &Resource,
    name: &str,
    errors: &FieldErrors,
    new_key: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let keys = state.store.resource_api_keys(resource.id).await?;
    let base = format!("/admin/resources/{}/keys", resource.id);
    let body = html! {
        (resource_tabs(resource, "API keys"))
        @if let Some(key) = new_key {
            div.new-secret role="status" {
                p { strong { "The new key. It is shown only this once:" } " copy it into the application's configuration now." }
                label { "API key" input.secret type="text" readonly value=(key); }
            }
        }
        p { "Applications call the authentication API for " strong { (resource.name) } " with one of these keys (as " code { "Authorization: Bearer …" } "). A key works only for this resource." }
        @if keys.is_empty() {
            p.empty { "No API keys yet. Create one for each application below." }
        } @else {
            table {
                thead { tr { th { "Name" } th { "Key begins with" } th { "Created (UTC)" } th { "Status" } th { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for key in &keys {
                        tr {
                            td { (key.name) }
                            td { code { "og_" (key.prefix) "." } }
                            td { (format_time(key.created_at)) }
                            td {
                                @if let Some(at) = key.revoked_at { span.result-fail { "revoked " (format_time(at)) } }
                                @else { span.result-ok { "active" } }
                            }
                            td {
                                @if key.revoked_at.is_none() {
                                    a href=(format!("{base}/{}/revoke", key.id)) { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New API key" }
        (errors.summary())
        form.stack method="post" action=(base) {
            input type="hidden" name="csrf" value=(page.csrf());
            label {
                "Name"
                small { "Which application uses the key, e.g. “VPN gateway”." }
                input type="text" name="name" value=(name) required maxlength="100";
                (errors.show("name"))
            }
            div { button type="submit" { "Create key" } }
        }
    };
    let mut response = page.render(
        state,
        &format!("{} · API keys", resource.name),
        "Resources",
        body,
    );
    if errors.is_empty() {
        return Ok(response);
    }
    *response.status_mut() = StatusCode::BAD_REQUEST;
    Ok(response)
}

async fn show_keys(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    keys_page(&page, &state, &resource, "", &FieldErrors::default(), None).await
}

async fn create_key(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<KeyForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        let mut errors = FieldErrors::default();
        errors.add("name", "Give the key a name of 1 to 100 characters.");
        return keys_page(&page, &state, &resource, &form.name, &errors, None).await;
    }
    let key = crypto::new_api_key()?;
    let created = state
        .store
        .create_resource_api_key(
            resource.id,
            name.to_string(),
            key.prefix.clone(),
            key.hash,
            page.audit(&request, "apikey.create", "ok"),
            now(),
        )
        .await?;
    if created.is_none() {
        return Err(PageError::NotFound);
    }
    // The key is shown in this answer only; it is not kept anywhere in clear.
    keys_page(
        &page,
        &state,
        &resource,
        "",
        &FieldErrors::default(),
        Some(&key.key),
    )
    .await
}

async fn confirm_revoke_key(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let (resource_id, key_id) = path.into_inner();
    let resource = resource_or_404(&state, resource_id).await?;
    let key = state
        .store
        .resource_api_keys(resource_id)
        .await?
        .into_iter()
        .find(|k| k.id == key_id && k.revoked_at.is_none())
        .ok_or(PageError::NotFound)?;
    let action = format!("/admin/resources/{resource_id}/keys/{key_id}/revoke");
    let back = format!("/admin/resources/{resource_id}/keys");
    Ok(confirm_page(
        &page,
        &state,
        Confirmation {
            title: "Revoke API key",
            active: "Resources",
            question: html! {
                p { "Revoke the key “" strong { (key.name) } "” (og_" (key.prefix) ".…) of " strong { (resource.name) } "? Applications using it can no longer authenticate. This cannot be undone." }
            },
            action: &action,
            button: "Revoke key",
            back: &back,
        },
    ))
}

async fn revoke_key(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(i64, i64)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let (resource_id, key_id) = path.into_inner();
    resource_or_404(&state, resource_id).await?;
    let revoked = state
        .store
        .revoke_resource_api_key(
            resource_id,
            key_id,
            page.audit(&request, "apikey.revoke", "ok"),
            now(),
        )
        .await?;
    if !revoked {
        return Err(PageError::NotFound);
    }
    // Forget cached lookups so that the key stops working at once.
    state.api_keys.clear();
    Ok(redirect_with_flash(
        &state,
        &format!("/admin/resources/{resource_id}/keys"),
        "API key revoked.",
    ))
}

// ---------------------------------------------------------------------------------------------
// Self-Service.

/// The address users reach otpgate at: the one saved in the general settings, or the one
/// worked out at start.
pub(super) async fn public_base_url(state: &AppState) -> Result<String, PageError> {
    Ok(state
        .store
        .general_settings()
        .await?
        .map(|g| g.public_url)
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| state.base_url.clone()))
}

/// The form's view of the settings: what is ticked, and the address as typed.
struct SelfServiceView<'a> {
    settings: &'a SelfService,
    address: &'a str,
}

fn all_on(settings: &SelfService, group: Option<ActionGroup>) -> bool {
    PortalAction::ALL
        .into_iter()
        .filter(|a| group.is_none_or(|g| a.group() == g))
        .all(|a| settings.allows(a))
}

fn self_service_form(
    page: &Page,
    resource: &Resource,
    view: &SelfServiceView<'_>,
    base_url: &str,
    errors: &FieldErrors,
) -> Markup {
    let settings = view.settings;
    let action = format!("/admin/resources/{}/self-service", resource.id);
    let every_kind = TokenKind::ALL.iter().all(|k| settings.allows_kind(*k));
    html! {
        (errors.summary())
        form.stack method="post" action=(action) {
            input type="hidden" name="csrf" value=(page.csrf());
            // What the "All" boxes showed, so that the server can tell which of them the
            // administrator toggled.
            input type="hidden" name="shown_all" value=(if all_on(settings, None) { "on" } else { "off" });
            @for group in ActionGroup::ALL {
                input type="hidden" name=(format!("shown_all_{}", group.as_str())) value=(if all_on(settings, Some(group)) { "on" } else { "off" });
            }
            input type="hidden" name="shown_all_kinds" value=(if every_kind { "on" } else { "off" });

            label.check {
                input type="checkbox" name="enabled" value="on" checked[settings.enabled];
                "Self-service portal enabled"
            }
            label {
                "Self-Service Page Address"
                small { "Lowercase letters, digits and hyphens; unique among resources." }
                input type="text" name="address" value=(view.address) maxlength="63" autocomplete="off";
                (errors.show("address"))
            }
            @if let Some(address) = &settings.address {
                label {
                    "Page address to send to users"
                    small { "Select the address and copy it." }
                    span.copy-row {
                        input.copy type="text" readonly value=(format!("{base_url}/portal/{address}")) id="portal-url";
                        button.secondary type="button" data-copy="portal-url" hidden { "Copy" }
                    }
                }
            }
            fieldset {
                legend { "Allowed Actions" }
                label.check.all {
                    input type="checkbox" name="all" value="on" checked[all_on(settings, None)];
                    "All"
                }
                div.groups {
                    @for group in ActionGroup::ALL {
                        fieldset {
                            legend { (group.label()) }
                            label.check.all {
                                input type="checkbox" name=(format!("all_{}", group.as_str())) value="on" checked[all_on(settings, Some(group))];
                                "All " (group.label().to_lowercase()) " actions"
                            }
                            @for action in group.actions() {
                                label.check {
                                    input type="checkbox" name="action" value=(action.as_str()) checked[settings.allows(action)];
                                    (action.label())
                                }
                            }
                        }
                    }
                }
                // Not an action, so no "All" box turns it on.
                label.check {
                    input type="checkbox" name="allow_remove_last" value="on" checked[settings.allow_remove_last];
                    "Users may remove their last second factor"
                }
                p.note { "Off, Disable Token and Unassign Token keep at least one active token per user. On, a user may take away the last one and then logs in with the password alone." }
            }
            fieldset {
                legend { "Token Enrollment" }
                p.note { "The token kinds users may enrol with Enroll Token." }
                label.check.all {
                    input type="checkbox" name="all_kinds" value="on" checked[every_kind];
                    "All"
                }
                @for kind in TokenKind::ALL {
                    label.check {
                        input type="checkbox" name="kind" value=(kind.as_str()) checked[settings.allows_kind(kind)];
                        (kind.as_str())
                    }
                }
            }
            div { button type="submit" { "Save" } }
        }
    }
}

async fn self_service_page(
    page: &Page,
    state: &AppState,
    resource: &Resource,
    view: &SelfServiceView<'_>,
    errors: &FieldErrors,
) -> Result<HttpResponse, PageError> {
    let base_url = public_base_url(state).await?;
    let body = html! {
        (resource_tabs(resource, "Self-Service"))
        p { "Users assigned to " strong { (resource.name) } " manage their own second factors on this resource's portal, within the actions allowed here. Everything is off until you allow it." }
        (self_service_form(page, resource, view, &base_url, errors))
    };
    let response = page.render(
        state,
        &format!("{} · Self-Service", resource.name),
        "Resources",
        body,
    );
    Ok(if errors.is_empty() {
        response
    } else {
        with_status(response, StatusCode::BAD_REQUEST)
    })
}

async fn show_self_service(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    let settings = state.store.self_service(resource.id).await?;
    let address = settings.address.clone().unwrap_or_default();
    self_service_page(
        &page,
        &state,
        &resource,
        &SelfServiceView {
            settings: &settings,
            address: &address,
        },
        &FieldErrors::default(),
    )
    .await
}

/// Applies an "All" box: when the administrator toggled it (it differs from what the form
/// showed), every member follows it; otherwise the single boxes stand.
fn apply_all_toggle<T: Ord + Copy>(
    chosen: &mut BTreeSet<T>,
    members: &[T],
    ticked: bool,
    shown: bool,
) {
    if ticked == shown {
        return;
    }
    for member in members {
        if ticked {
            chosen.insert(*member);
        } else {
            chosen.remove(member);
        }
    }
}

/// The settings as the form asks for them, with the "All" toggles applied.
fn self_service_from_form(form: &[(String, String)]) -> SelfService {
    let ticked = |name: &str| form_value(form, name).is_some_and(|v| v == "on");
    let mut actions: BTreeSet<PortalAction> = form_values(form, "action")
        .filter_map(PortalAction::parse)
        .collect();
    for group in ActionGroup::ALL {
        let members: Vec<PortalAction> = group.actions().collect();
        apply_all_toggle(
            &mut actions,
            &members,
            ticked(&format!("all_{}", group.as_str())),
            ticked(&format!("shown_all_{}", group.as_str())),
        );
    }
    apply_all_toggle(
        &mut actions,
        &PortalAction::ALL,
        ticked("all"),
        ticked("shown_all"),
    );
    let mut kind_indexes: BTreeSet<usize> = form_values(form, "kind")
        .filter_map(TokenKind::parse)
        .filter_map(|k| TokenKind::ALL.iter().position(|x| *x == k))
        .collect();
    let all_indexes: Vec<usize> = (0..TokenKind::ALL.len()).collect();
    apply_all_toggle(
        &mut kind_indexes,
        &all_indexes,
        ticked("all_kinds"),
        ticked("shown_all_kinds"),
    );
    SelfService {
        enabled: ticked("enabled"),
        address: None,
        allowed_actions: actions,
        enrollment_kinds: kind_indexes
            .into_iter()
            .map(|i| TokenKind::ALL[i])
            .collect(),
        allow_remove_last: ticked("allow_remove_last"),
    }
}

async fn save_self_service(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(form_value(&form, "csrf").unwrap_or(""))?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    let mut settings = self_service_from_form(&form);
    let typed_address = form_value(&form, "address").unwrap_or("").to_string();
    let mut errors = FieldErrors::default();
    if typed_address.trim().is_empty() {
        if settings.enabled {
            errors.add(
                "address",
                "Give the page an address: users open the portal there.",
            );
        }
    } else {
        match resources::parse_portal_address(&typed_address) {
            Ok(address) => settings.address = Some(address),
            Err(e) => errors.add("address", format!("Please {}.", e.0)),
        }
    }
    if errors.is_empty() {
        let saved = state
            .store
            .save_self_service(
                resource.id,
                settings.clone(),
                page.audit(&request, "resource.self_service", "ok"),
                now(),
            )
            .await?;
        match saved {
            SelfServiceSaved::Saved(changes) => {
                let message = if changes.is_empty() {
                    "Self-Service saved: nothing changed.".to_string()
                } else {
                    format!("Self-Service saved: {}.", changes.join("; "))
                };
                return Ok(redirect_with_flash(
                    &state,
                    &format!("/admin/resources/{}/self-service", resource.id),
                    &message,
                ));
            }
            SelfServiceSaved::NoSuchResource => return Err(PageError::NotFound),
            SelfServiceSaved::AddressTaken => {
                errors.add("address", "Another resource's portal has this address.");
            }
        }
    }
    self_service_page(
        &page,
        &state,
        &resource,
        &SelfServiceView {
            settings: &settings,
            address: &typed_address,
        },
        &errors,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ticking_a_group_all_box_allows_the_whole_group() {
        let settings = self_service_from_form(&pairs(&[
            ("all_token", "on"),
            ("shown_all_token", "off"),
            ("action", "change_name"),
        ]));
        assert!(ActionGroup::Token.actions().all(|a| settings.allows(a)));
        assert!(settings.allows(PortalAction::ChangeName));
        assert!(!settings.allows(PortalAction::ChangeEmail));
    }

    #[test]
    fn unticking_one_action_under_a_ticked_all_box_takes_only_that_action_away() {
        // The form showed "All" ticked and the administrator left it, but unticked one action.
        let mut form = vec![("all_user", "on"), ("shown_all_user", "on")];
        for action in ActionGroup::User.actions().skip(1) {
            form.push(("action", action.as_str()));
        }
        let settings = self_service_from_form(&pairs(&form));
        assert!(!settings.allows(PortalAction::SetPassword));
        assert!(settings.allows(PortalAction::ChangeName));
    }

    #[test]
    fn unticking_the_global_all_box_turns_everything_off() {
        let mut form = vec![
            ("shown_all", "on"),
            ("all_kinds", "on"),
            ("shown_all_kinds", "off"),
        ];
        for action in PortalAction::ALL {
            form.push(("action", action.as_str()));
        }
        let settings = self_service_from_form(&pairs(&form));
        assert!(settings.allowed_actions.is_empty());
        assert_eq!(settings.enrollment_kinds, TokenKind::ALL.to_vec());
    }
}
