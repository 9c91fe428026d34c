//! Assign → Users and Assign → Token with User: who and which tokens count in a resource, and
//! taking them out again. Both tabs are one page and one set of handlers, told apart by the
//! `Member` they assign.

use std::collections::HashSet;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::super::{Page, redirect_with_flash};
use super::{PER_PAGE, form_value, form_values, page_number, resource_or_404, resource_tabs};
use crate::domain::IdOrName;
use crate::store::Resource;
use crate::store::resources::Assignment;
use crate::store::tokens::TokenFilter;
use crate::store::users::{Listing, Page as Window, UserFilter};
use crate::web::form::{
    Confirmation, CsrfForm, error_line, numbered_pager, url_encode, with_status,
};
use crate::web::views::plural;
use crate::web::{AppState, PageError};

/// What a tab assigns to the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    /// Users, who may then authenticate for the resource.
    User,
    /// Tokens that have a user; the user is assigned too.
    Token,
}

impl Member {
    /// The name of the form field and of the checkboxes' ids.
    fn field(self) -> &'static str {
        match self {
            Member::User => "user",
            Member::Token => "token",
        }
    }

    /// The piece of the addresses: `assign/users`, `users/{id}/unassign`.
    fn path(self) -> &'static str {
        match self {
            Member::User => "users",
            Member::Token => "tokens",
        }
    }

    fn tab(self) -> &'static str {
        match self {
            Member::User => "Assign → Users",
            Member::Token => "Assign → Token with User",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Member::User => "Assign users",
            Member::Token => "Assign tokens with users",
        }
    }

    fn columns(self) -> [&'static str; 4] {
        match self {
            Member::User => ["Login", "Name", "Email", "Phone"],
            Member::Token => ["Serial", "Name", "Kind", "User"],
        }
    }
}

#[derive(Deserialize)]
pub struct PickQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    page: Option<String>,
}

/// One line of the picker: what is offered, whether it is assigned already, and its columns.
struct Choice {
    id: i64,
    assigned: bool,
    cells: [String; 4],
}

/// The users or tokens to choose from, on page `number` of those matching `search`.
async fn choices(
    state: &AppState,
    resource: &Resource,
    member: Member,
    search: &str,
    number: i64,
) -> Result<(Vec<Choice>, i64), PageError> {
    let search = Some(search.trim().to_string()).filter(|s| !s.is_empty());
    let offset = (number - 1) * PER_PAGE;
    match member {
        Member::User => {
            let filter = |resource: Option<IdOrName>| UserFilter {
                search: search.clone(),
                resource,
                ..UserFilter::default()
            };
            let Listing::Found { items, total } = state
                .store
                .list_users(
                    filter(None),
                    Window {
                        limit: PER_PAGE,
                        offset,
                    },
                )
                .await?
            else {
                return Err(PageError::NotFound);
            };
            // Which of the users found are assigned already (among at most 500 matches).
            let assigned: HashSet<i64> = match state
                .store
                .list_users(
                    filter(Some(IdOrName::Id(resource.id))),
                    Window { limit: 500, offset },
                )
                .await?
            {
                Listing::Found { items, .. } => items.into_iter().map(|u| u.id).collect(),
                Listing::NoSuchResource => return Err(PageError::NotFound),
            };
            let choices = items
                .into_iter()
                .map(|user| Choice {
                    id: user.id,
                    assigned: assigned.contains(&user.id),
                    cells: [
                        user.login,
                        format!("{} {}", user.first_name, user.last_name),
                        user.email.unwrap_or_default(),
                        user.phone.unwrap_or_default(),
                    ],
                })
                .collect();
            Ok((choices, total))
        }
        Member::Token => {
            let (items, total) = state
                .store
                .list_tokens(TokenFilter {
                    assigned: Some(true),
                    search,
                    limit: PER_PAGE,
                    offset,
                    ..TokenFilter::default()
                })
                .await?
                .map_err(|_| PageError::NotFound)?;
            let assigned: HashSet<i64> = state
                .store
                .resource_tokens(IdOrName::Id(resource.id))
                .await?
                .ok_or(PageError::NotFound)?
                .into_iter()
                .map(|t| t.id)
                .collect();
            let choices = items
                .into_iter()
                .map(|record| Choice {
                    id: record.token.id,
                    assigned: assigned.contains(&record.token.id),
                    cells: [
                        record.token.serial,
                        record.token.name,
                        record.token.kind.as_str().to_string(),
                        record.user_login.unwrap_or_default(),
                    ],
                })
                .collect();
            Ok((choices, total))
        }
    }
}

/// The picker page of one tab.
async fn assign_page(
    page: &Page,
    state: &AppState,
    resource: &Resource,
    member: Member,
    search: &str,
    number: i64,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let (choices, total) = choices(state, resource, member, search, number).await?;
    let base = format!("/admin/resources/{}/assign/{}", resource.id, member.path());
    let field = member.field();
    let searching = !search.trim().is_empty();
    let body = html! {
        (resource_tabs(resource, member.tab()))
        @match member {
            Member::User => p { "Choose the users who may authenticate for " strong { (resource.name) } "." },
            Member::Token => p { "Choose the tokens that count for " strong { (resource.name) } ". Each token's user is assigned too. Only tokens that have a user are listed." },
        }
        form.search method="get" action=(base) role="search" {
            label {
                @match member {
                    Member::User => "Find users by login, name, email or phone",
                    Member::Token => "Find tokens by serial, name or user",
                }
                input type="search" name="q" value=(search);
            }
            button type="submit" { "Search" }
        }
        (error_line(error))
        @if choices.is_empty() {
            p.empty {
                @match (member, searching) {
                    (Member::User, false) => { "No users yet. " a href="/admin/users" { "Create users" } " first." }
                    (Member::User, true) => { "No user matches “" (search) "”." }
                    (Member::Token, false) => { "No token has a user yet. Assign tokens to users on the " a href="/admin/users" { "Users" } " page first." }
                    (Member::Token, true) => { "No token with a user matches “" (search) "”." }
                }
            }
        } @else {
            form method="post" action=(base) {
                (page.csrf_field())
                table {
                    thead { tr { th { span.visually-hidden { "Choose" } } @for column in member.columns() { th { (column) } } } }
                    tbody {
                        @for choice in &choices {
                            @let id = format!("{field}-{}", choice.id);
                            tr {
                                td {
                                    input type="checkbox" name=(field) value=(choice.id) id=(id)
                                        disabled[choice.assigned] checked[choice.assigned];
                                }
                                td {
                                    label.inline for=(id) { (choice.cells[0]) }
                                    @if choice.assigned { " " span.badge { "assigned" } }
                                }
                                @for cell in &choice.cells[1..] { td { (cell) } }
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
        &format!("{} · {}", resource.name, member.title()),
        "Resources",
        body,
    ))
}

async fn show_assign(
    state: web::Data<AppState>,
    request: HttpRequest,
    resource_id: i64,
    query: PickQuery,
    member: Member,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let resource = resource_or_404(&state, resource_id).await?;
    let search = query.q.as_deref().unwrap_or("");
    let number = page_number(query.page.as_deref());
    assign_page(&page, &state, &resource, member, search, number, None).await
}

pub(super) async fn show_assign_users(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    query: web::Query<PickQuery>,
) -> Result<HttpResponse, PageError> {
    show_assign(state, request, *path, query.into_inner(), Member::User).await
}

pub(super) async fn show_assign_tokens(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    query: web::Query<PickQuery>,
) -> Result<HttpResponse, PageError> {
    show_assign(state, request, *path, query.into_inner(), Member::Token).await
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

/// Assigns what was ticked, one by one, and says how it went.
async fn assign(
    state: web::Data<AppState>,
    request: HttpRequest,
    resource_id: i64,
    form: Vec<(String, String)>,
    member: Member,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(form_value(&form, "csrf").unwrap_or(""))?;
    let resource = resource_or_404(&state, resource_id).await?;
    let ids = chosen_ids(&form, member.field());
    if ids.is_empty() {
        let error = format!("Choose at least one {}.", member.field());
        let response = assign_page(&page, &state, &resource, member, "", 1, Some(&error)).await?;
        return Ok(with_status(response, StatusCode::BAD_REQUEST));
    }
    let (mut assigned, mut skipped) = (0, 0);
    for id in &ids {
        let (resource_key, key) = (IdOrName::Id(resource.id), IdOrName::Id(*id));
        let outcome = match member {
            Member::User => {
                let entry = page.audit(&request, "resource.assign_user", "ok");
                state.store.assign_user(resource_key, key, entry).await?
            }
            Member::Token => {
                let entry = page.audit(&request, "resource.assign_token", "ok");
                state.store.assign_token(resource_key, key, entry).await?
            }
        };
        match outcome {
            Assignment::Changed => assigned += 1,
            Assignment::Unchanged => {}
            Assignment::NoSuchResource => return Err(PageError::NotFound),
            Assignment::TokenWithoutUser | Assignment::NoSuchToken | Assignment::NoSuchUser => {
                skipped += 1
            }
        }
    }
    let mut message = match (member, assigned) {
        (Member::User, 0) => "Nothing changed: the chosen users were assigned already.".to_string(),
        (Member::Token, 0) => "Nothing was assigned.".to_string(),
        (Member::User, count) => format!(
            "Assigned {} to “{}”.",
            plural(count, "user", "users"),
            resource.name
        ),
        (Member::Token, count) => format!(
            "Assigned {} with their users to “{}”.",
            plural(count, "token", "tokens"),
            resource.name
        ),
    };
    if skipped > 0 {
        message.push_str(&match member {
            Member::User => format!(
                " {} skipped: no such user.",
                plural(skipped, "user was", "users were")
            ),
            Member::Token => format!(
                " {} skipped: no such token, or the token has no user.",
                plural(skipped, "token was", "tokens were")
            ),
        });
    }
    Ok(redirect_with_flash(
        &state,
        &format!("/admin/resources/{}", resource.id),
        &message,
    ))
}

pub(super) async fn assign_users(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    assign(state, request, *path, form.into_inner(), Member::User).await
}

pub(super) async fn assign_tokens(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    assign(state, request, *path, form.into_inner(), Member::Token).await
}

/// The confirmation before taking a user or a token from the resource.
async fn confirm_unassign(
    state: web::Data<AppState>,
    request: HttpRequest,
    (resource_id, member_id): (i64, i64),
    member: Member,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let resource = resource_or_404(&state, resource_id).await?;
    let question = match member {
        Member::User => {
            let user = state
                .store
                .find_user(IdOrName::Id(member_id))
                .await?
                .filter(|u| u.id == member_id)
                .ok_or(PageError::NotFound)?;
            html! { p { "Take " strong { (user.login) } " from " strong { (resource.name) } "? Their tokens are taken from the resource too, and they can no longer authenticate for it." } }
        }
        Member::Token => {
            let token = state
                .store
                .find_token(IdOrName::Id(member_id))
                .await?
                .filter(|t| t.id == member_id)
                .ok_or(PageError::NotFound)?;
            html! { p { "Take the token " strong { (token.serial) } " from " strong { (resource.name) } "? Its codes no longer count for this resource; its user stays assigned." } }
        }
    };
    let action = format!(
        "/admin/resources/{resource_id}/{}/{member_id}/unassign",
        member.path()
    );
    let back = format!("/admin/resources/{resource_id}");
    let title = match member {
        Member::User => "Unassign user",
        Member::Token => "Unassign token",
    };
    Ok(page.confirm(
        &state,
        title,
        "Resources",
        Confirmation {
            question,
            action: &action,
            button: "Unassign",
            back: &back,
        },
    ))
}

pub(super) async fn confirm_unassign_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, PageError> {
    confirm_unassign(state, request, *path, Member::User).await
}

pub(super) async fn confirm_unassign_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, PageError> {
    confirm_unassign(state, request, *path, Member::Token).await
}

/// Takes a user or a token from the resource.
async fn unassign(
    state: web::Data<AppState>,
    request: HttpRequest,
    (resource_id, member_id): (i64, i64),
    csrf: &str,
    member: Member,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(csrf)?;
    let resource = resource_or_404(&state, resource_id).await?;
    let (resource_key, key) = (IdOrName::Id(resource_id), IdOrName::Id(member_id));
    let outcome = match member {
        Member::User => {
            let entry = page.audit(&request, "resource.unassign_user", "ok");
            state.store.unassign_user(resource_key, key, entry).await?
        }
        Member::Token => {
            let entry = page.audit(&request, "resource.unassign_token", "ok");
            state.store.unassign_token(resource_key, key, entry).await?
        }
    };
    let what = match member {
        Member::User => "User",
        Member::Token => "Token",
    };
    let message = match outcome {
        Assignment::Changed => format!("{what} taken from “{}”.", resource.name),
        Assignment::Unchanged => {
            format!("Nothing changed: the {} was not assigned.", member.field())
        }
        _ => return Err(PageError::NotFound),
    };
    Ok(redirect_with_flash(
        &state,
        &format!("/admin/resources/{resource_id}"),
        &message,
    ))
}

pub(super) async fn unassign_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(i64, i64)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    unassign(state, request, *path, &form.csrf, Member::User).await
}

pub(super) async fn unassign_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(i64, i64)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    unassign(state, request, *path, &form.csrf, Member::Token).await
}
