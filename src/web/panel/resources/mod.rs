//! The admin panel's Resources pages: the list, creating, changing and deleting a resource,
//! and the tabs of one resource: Assign → Users and Token with User (`assignments`), its API
//! keys (`api_keys`) and its Self-Service settings (`self_service`); the Overview's RADIUS reply
//! attributes (`radius_attributes`) and its settings of Approve in Telegram (`approvals`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

mod api_keys;
mod approvals;
mod assignments;
mod radius_attributes;
mod self_service;

use api_keys::{confirm_revoke_key, create_key, revoke_key, show_keys};
use assignments::{
    assign_tokens, assign_users, confirm_unassign_token, confirm_unassign_user, show_assign_tokens,
    show_assign_users, unassign_token, unassign_user,
};
use radius_attributes::{
    radius_attributes_section, rows_of, save_radius_attributes, show_radius_attributes,
};
use self_service::{save_self_service, show_self_service};

use super::{Page, redirect_with_flash};
use crate::clock::now;
use crate::domain::IdOrName;
use crate::domain::WithoutSecondFactor;
use crate::store::resources::{self, ResourceChanges};
use crate::store::users::{Listing, Page as Window};
use crate::store::{NewResource, Resource};
use crate::web::form::{Confirmation, CsrfForm, Problems, numbered_pager, with_status};
use crate::web::{AppState, PageError};

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
        )
        .route(
            "/admin/resources/{id}/radius-attributes",
            web::get().to(show_radius_attributes),
        )
        .route(
            "/admin/resources/{id}/radius-attributes",
            web::post().to(save_radius_attributes),
        );
}

// ---------------------------------------------------------------------------------------------
// Pieces shared by the resource's tabs.

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
            (numbered_pager(number, total, PER_PAGE, |n| format!("/admin/resources?page={n}")))
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
    #[serde(default)]
    without_second_factor: String,
    /// `on` when the form had the section of Approve in Telegram (the Overview's).
    #[serde(default)]
    approvals_shown: String,
    #[serde(default)]
    approvals_allowed: Option<String>,
    #[serde(default)]
    approval_number_matching: Option<String>,
    #[serde(default)]
    approval_deny_locks: Option<String>,
}

impl ResourceForm {
    /// The settings of Approve in Telegram as ticked, or None without the section.
    fn approvals(&self) -> Option<crate::store::approvals::ApprovalSettings> {
        approvals::ticked(
            &self.approvals_shown,
            self.approvals_allowed.as_deref(),
            self.approval_number_matching.as_deref(),
            self.approval_deny_locks.as_deref(),
        )
    }
}

/// The resource's settings as typed, checked with the same rules as the API.
struct ResourceInput {
    name: String,
    description: String,
    fail_limit: i64,
    password_required: bool,
    without_second_factor: WithoutSecondFactor,
}

fn parse_resource_form(form: &ResourceForm) -> Result<ResourceInput, Problems> {
    let mut errors = Problems::default();
    let name = resources::parse_resource_name(&form.name)
        .map_err(|e| errors.at("name", format!("The name {}.", e.0)))
        .ok();
    let description = resources::parse_description(&form.description)
        .map_err(|e| errors.at("description", format!("The description {}.", e.0)))
        .ok();
    let fail_limit = form
        .fail_limit
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|v| resources::check_fail_limit(v).ok())
        .or_else(|| {
            errors.at("fail_limit", "The limit must be a number from 3 to 10.");
            None
        });
    // A form without the choice (an older page, a script) keeps the safe default.
    let without_second_factor = match form.without_second_factor.trim() {
        "" => Some(WithoutSecondFactor::default()),
        typed => WithoutSecondFactor::parse(typed),
    }
    .or_else(|| {
        errors.at(
            "without_second_factor",
            "Choose what a password alone is worth.",
        );
        None
    });
    match (name, description, fail_limit, without_second_factor) {
        (Some(name), Some(description), Some(fail_limit), Some(without_second_factor))
            if errors.is_empty() =>
        {
            Ok(ResourceInput {
                name,
                description,
                fail_limit,
                password_required: form.password_required.is_some(),
                without_second_factor,
            })
        }
        _ => Err(errors),
    }
}

fn resource_fields(form: &ResourceForm, errors: &Problems) -> Markup {
    html! {
        label {
            "Name"
            input type="text" name="name" value=(form.name) required maxlength="100";
            (errors.note_as_written("name"))
        }
        label {
            "Description"
            small { "Optional: what the resource protects." }
            input type="text" name="description" value=(form.description) maxlength="1000";
            (errors.note_as_written("description"))
        }
        label {
            "Failed-attempt limit"
            small {
                "A token is locked after this many failed attempts in a row (3 to 10), until an administrator resets it. "
                "An automatic unlock (auto_unlock_seconds, set through the API) has a cost: "
                (resources::auto_unlock_cost())
            }
            input type="number" name="fail_limit" value=(form.fail_limit) min="3" max="10" required;
            (errors.note_as_written("fail_limit"))
        }
        label.check {
            input type="checkbox" name="password_required" value="on" checked[form.password_required.is_some()];
            "Password required (users give their password together with the one-time password)"
        }
        fieldset {
            legend { "Users without an active second factor" }
            p.note { "A user whose tokens here are none, disabled, waiting for their activation or not assigned to this resource, and who gives the right password:" }
            @for (value, label) in [
                ("refuse", "Refuse: this resource wants two factors from everyone"),
                ("password_only", "Let them in with the password only (audited as such)"),
            ] {
                label.check {
                    input type="radio" name="without_second_factor" value=(value) checked[form.without_second_factor == value];
                    (label)
                }
            }
            (errors.note_as_written("without_second_factor"))
        }
    }
}

fn new_resource_page(
    page: &Page,
    state: &AppState,
    form: &ResourceForm,
    errors: &Problems,
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
        without_second_factor: WithoutSecondFactor::default().as_str().into(),
        approvals_shown: String::new(),
        approvals_allowed: None,
        approval_number_matching: None,
        approval_deny_locks: None,
    };
    Ok(new_resource_page(
        &page,
        &state,
        &form,
        &Problems::default(),
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
                without_second_factor: input.without_second_factor,
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
            let mut errors = Problems::default();
            errors.at("name", "A resource with this name exists already.");
            Ok(with_status(
                new_resource_page(&page, &state, &form, &errors),
                StatusCode::BAD_REQUEST,
            ))
        }
        Err(error) => Err(error.into()),
    }
}

pub(super) async fn resource_or_404(state: &AppState, id: i64) -> Result<Resource, PageError> {
    state
        .store
        .find_resource(IdOrName::Id(id))
        .await?
        .filter(|r| r.id == id)
        .ok_or(PageError::NotFound)
}

/// The tabs of a resource's pages.
pub(super) fn resource_tabs(resource: &Resource, active: &str) -> Markup {
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
        without_second_factor: resource.without_second_factor.as_str().into(),
        approvals_shown: "on".into(),
        approvals_allowed: resource.approvals.allowed.then(|| "on".into()),
        approval_number_matching: resource.approvals.number_matching.then(|| "on".into()),
        approval_deny_locks: resource.approvals.deny_locks.then(|| "on".into()),
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
    errors: &Problems,
    users_page: i64,
    tokens_page: i64,
) -> Result<HttpResponse, PageError> {
    let window = Window {
        limit: PER_PAGE,
        offset: (users_page - 1) * PER_PAGE,
    };
    let (users, users_total) = match state
        .store
        .resource_users(IdOrName::Id(resource.id), window)
        .await?
    {
        Listing::Found { items, total } => (items, total),
        Listing::NoSuchResource => return Err(PageError::NotFound),
    };
    let (tokens, tokens_total) = state
        .store
        .resource_tokens_window(
            IdOrName::Id(resource.id),
            PER_PAGE,
            (tokens_page - 1) * PER_PAGE,
        )
        .await?
        .ok_or(PageError::NotFound)?;
    let radius_clients = state
        .store
        .radius_clients()
        .await?
        .into_iter()
        .filter(|client| client.resource_id == resource.id)
        .count();
    let radius_attributes = rows_of(state.store.radius_reply_attributes(resource.id).await?);
    let base = format!("/admin/resources/{}", resource.id);
    let body = html! {
        (resource_tabs(resource, "Overview"))
        section aria-labelledby="settings-heading" {
            h2 #settings-heading { "Settings" }
            (errors.summary())
            form.stack method="post" action=(base) {
                input type="hidden" name="csrf" value=(page.csrf());
                (resource_fields(form, errors))
                (approvals::approvals_fields(form.approvals().unwrap_or(resource.approvals)))
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
                (numbered_pager(users_page, users_total, PER_PAGE, |n| format!("{base}?page={n}")))
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
                (numbered_pager(tokens_page, tokens_total, PER_PAGE, |n| format!("{base}?page={users_page}&tokens_page={n}#tokens-heading")))
            }
        }
        section aria-labelledby="radius-heading" {
            h2 #radius-heading { "RADIUS clients (" (radius_clients) ")" }
            p { "Gateways whose users authenticate for this resource over RADIUS. " a href=(super::radius::clients_of(Some(resource.id))) { "RADIUS clients of this resource" } }
        }
        (radius_attributes_section(page, resource, &radius_attributes, &Problems::default()))
        section aria-labelledby="danger-heading" {
            h2 #danger-heading { "Delete" }
            p { "Deleting the resource removes its assignments, API keys, RADIUS clients and Self-Service settings. Users and tokens stay." }
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
        &Problems::default(),
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
        without_second_factor: (input.without_second_factor != resource.without_second_factor)
            .then(|| {
                changed.push("users without an active second factor");
                input.without_second_factor
            }),
        approvals: match form.approvals() {
            Some(ticked) => approvals::change(resource.approvals, ticked, &mut changed),
            None => Default::default(),
        },
    };
    let location = format!("/admin/resources/{}", resource.id);
    if changed.is_empty() {
        return Ok(redirect_with_flash(&state, &location, "Nothing changed."));
    }
    let updated = state
        .store
        .update_resource(
            IdOrName::Id(resource.id),
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
            let mut errors = Problems::default();
            errors.at("name", "A resource with this name exists already.");
            let response = resource_page(&page, &state, &resource, &form, &errors, 1, 1).await?;
            Ok(with_status(response, StatusCode::BAD_REQUEST))
        }
        Err(error) => Err(error.into()),
    }
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
    Ok(page.confirm(
        &state,
        "Delete resource",
        "Resources",
        Confirmation {
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
            IdOrName::Id(resource.id),
            page.audit(&request, "resource.delete", "ok"),
        )
        .await?
    {
        return Err(PageError::NotFound);
    }
    Ok(redirect_with_flash(
        &state,
        "/admin/resources",
        &format!("Resource “{}” deleted.", resource.name),
    ))
}
