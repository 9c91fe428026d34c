//! Assign → Users and Assign → Token with User: who and which tokens count in a resource, and
//! taking them out again.

use std::collections::HashSet;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::{Page, redirect_with_flash};
use super::{PER_PAGE, form_value, form_values, page_number, resource_or_404, resource_tabs};
use crate::store::Resource;
use crate::store::resources::Assignment;
use crate::store::tokens::TokenFilter;
use crate::store::users::{Listing, Page as Window, UserFilter};
use crate::web::form::{Confirmation, CsrfForm, numbered_pager, url_encode, with_status};
use crate::web::{AppState, PageError};

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

pub(super) async fn assign_users_page(
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
        (crate::web::form::error_line(error))
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
            (numbered_pager(number, total, PER_PAGE, |n| format!("{base}?q={}&page={n}", url_encode(search))))
        }
    };
    Ok(page.render(
        state,
        &format!("{} · Assign users", resource.name),
        "Resources",
        body,
    ))
}

pub(super) async fn show_assign_users(
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

pub(super) async fn assign_users(
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

pub(super) async fn assign_tokens_page(
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
        (crate::web::form::error_line(error))
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
            (numbered_pager(number, total, PER_PAGE, |n| format!("{base}?q={}&page={n}", url_encode(search))))
        }
    };
    Ok(page.render(
        state,
        &format!("{} · Assign tokens with users", resource.name),
        "Resources",
        body,
    ))
}

pub(super) async fn show_assign_tokens(
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

pub(super) async fn assign_tokens(
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

pub(super) async fn confirm_unassign_user(
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
    Ok(page.confirm(
        &state,
        "Unassign user",
        "Resources",
        Confirmation {
            question: html! {
                p { "Take " strong { (user.login) } " from " strong { (resource.name) } "? Their tokens are taken from the resource too, and they can no longer authenticate for it." }
            },
            action: &action,
            button: "Unassign",
            back: &back,
        },
    ))
}

pub(super) async fn unassign_user(
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

pub(super) async fn confirm_unassign_token(
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
    Ok(page.confirm(
        &state,
        "Unassign token",
        "Resources",
        Confirmation {
            question: html! {
                p { "Take the token " strong { (token.serial) } " from " strong { (resource.name) } "? Its codes no longer count for this resource; its user stays assigned." }
            },
            action: &action,
            button: "Unassign",
            back: &back,
        },
    ))
}

pub(super) async fn unassign_token(
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
