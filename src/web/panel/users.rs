//! The admin panel's users pages: the list with search, filters and keyset pages; creating,
//! editing, enabling, disabling and deleting a user; setting or removing their password; a
//! user's page with their tokens and resources; Assign Token → New or Existing. The CSV import
//! lives in `users_import`.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Page, redirect_with_flash};
use crate::domain::{self, FieldError, IdOrName};
use crate::notices;
use crate::store::users::{Count, Cursor, UserChanges, UserDetail, UserDraft, UserFilter};
use crate::store::{NewUser, tokens::TokenFilter};
use crate::web::form::{CsrfForm, Problems, invalid, path_id, query_string};
use crate::web::views::format_time;
use crate::web::{AppState, PageError};

/// Users per page of the list.
const PAGE_SIZE: i64 = 50;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/admin/users", web::get().to(list_users))
        .route("/admin/users", web::post().to(create_user))
        .route("/admin/users/new", web::get().to(new_user))
        .route(
            "/admin/users/import",
            web::get().to(super::users_import::show_import),
        )
        .route(
            "/admin/users/import",
            web::post().to(super::users_import::upload_import),
        )
        .route(
            "/admin/users/import/confirm",
            web::post().to(super::users_import::confirm_import),
        )
        .route("/admin/users/{id}", web::get().to(show_user))
        .route("/admin/users/{id}", web::post().to(update_user))
        .route("/admin/users/{id}/edit", web::get().to(edit_user))
        .route("/admin/users/{id}/password", web::post().to(set_password))
        .route(
            "/admin/users/{id}/{switch:enable|disable}",
            web::post().to(set_enabled),
        )
        .route(
            "/admin/users/{id}/delete",
            web::get().to(confirm_delete_user),
        )
        .route("/admin/users/{id}/delete", web::post().to(delete_user))
        .route("/admin/users/{id}/unlock", web::post().to(unlock_user))
        .route("/admin/users/{id}/assign", web::get().to(show_assign))
        .route("/admin/users/{id}/assign", web::post().to(assign_existing));
}

fn enabled_badge(enabled: bool) -> Markup {
    html! {
        @if enabled { span.badge.badge-ok { "enabled" } } @else { span.badge.badge-off { "disabled" } }
    }
}

/// The mark of a user who comes from a directory.
fn directory_badge(directory: &str) -> Markup {
    html! {
        span.badge title={ "Comes from the directory " (directory) } { "directory: " (directory) }
    }
}

fn full_name(first: &str, last: &str) -> String {
    format!("{first} {last}").trim().to_string()
}

// ---------------------------------------------------------------------------
// The list
// ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    search: String,
    /// `yes`, `no` or empty (any).
    enabled: String,
    /// `yes`, `no` or empty (any).
    has_token: String,
    /// A resource id, or empty.
    resource: String,
    after: String,
    before: String,
}

fn yes_no(text: &str) -> Option<bool> {
    match text {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

fn select_option(value: &str, label: &str, current: &str) -> Markup {
    html! {
        @if value == current {
            option value=(value) selected { (label) }
        } @else {
            option value=(value) { (label) }
        }
    }
}

pub async fn list_users(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let query = query.into_inner();
    let search = query.search.trim().to_string();
    let filter = UserFilter {
        search: (!search.is_empty()).then(|| search.clone()),
        enabled: yes_no(&query.enabled),
        has_token: yes_no(&query.has_token),
        resource: (!query.resource.is_empty()).then(|| {
            (query.resource.parse().map(IdOrName::Id))
                .unwrap_or_else(|_| IdOrName::Name(query.resource.clone()))
        }),
    };
    let filtered = filter.search.is_some()
        || filter.enabled.is_some()
        || filter.has_token.is_some()
        || filter.resource.is_some();
    let cursor = if !query.after.is_empty() {
        Cursor::After(query.after.clone())
    } else if !query.before.is_empty() {
        Cursor::Before(query.before.clone())
    } else {
        Cursor::First
    };
    let (resources, _) = state
        .store
        .list_resources(
            None,
            crate::store::users::Page {
                limit: 500,
                offset: 0,
            },
        )
        .await?;
    let slice = state
        .store
        .search_users(filter, cursor.clone(), PAGE_SIZE)
        .await?;
    // Directory users are marked: what the directory keeps is changed there, not here.
    let directories: std::collections::HashMap<i64, String> = match &slice {
        Some(slice) => state
            .store
            .directory_names_of(slice.items.iter().map(|user| user.id).collect())
            .await?
            .into_iter()
            .collect(),
        None => Default::default(),
    };
    let keep = |extra: (&'static str, String)| {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("search", search.as_str()),
            ("enabled", query.enabled.as_str()),
            ("has_token", query.has_token.as_str()),
            ("resource", query.resource.as_str()),
        ];
        pairs.push((extra.0, extra.1.as_str()));
        format!("/admin/users{}", query_string(&pairs))
    };
    let body = html! {
        div.actions {
            a.button href="/admin/users/new" { "New user" }
            a.button.secondary href="/admin/users/import" { "Import users (CSV)" }
        }
        form.filters method="get" action="/admin/users" role="search" {
            label { "Search" small { "Part of a login, name, email or phone (1–2 characters: start of the login)" }
                input type="search" name="search" value=(search); }
            label { "Status"
                select name="enabled" {
                    (select_option("", "Any", &query.enabled))
                    (select_option("yes", "Enabled", &query.enabled))
                    (select_option("no", "Disabled", &query.enabled))
                }
            }
            label { "Tokens"
                select name="has_token" {
                    (select_option("", "Any", &query.has_token))
                    (select_option("yes", "Has a token", &query.has_token))
                    (select_option("no", "Has no token", &query.has_token))
                }
            }
            label { "Resource"
                select name="resource" {
                    (select_option("", "Any", &query.resource))
                    @for resource in &resources {
                        (select_option(&resource.id.to_string(), &resource.name, &query.resource))
                    }
                }
            }
            button type="submit" { "Filter" }
            @if filtered { a href="/admin/users" { "Clear" } }
        }
        @match &slice {
            None => { p.error role="alert" { "That resource does not exist any more." } }
            Some(slice) => {
                p.count {
                    @match slice.count {
                        Count::Exact(n) => { (crate::domain::words::count(n as u64, "user", "users")) }
                        Count::MoreThan(n) => { "More than " (n) " users match; narrow the search to see fewer." }
                    }
                }
                @if slice.items.is_empty() {
                    @if filtered {
                        p.empty { "No users match." }
                    } @else {
                        p.empty { "No users yet. " a href="/admin/users/new" { "Create the first user" } " or " a href="/admin/users/import" { "import a CSV file" } "." }
                    }
                } @else {
                    table {
                        thead { tr { th { "Login" } th { "Name" } th { "Email" } th { "Phone" } th { "Password" } th { "Status" } th { span.visually-hidden { "Actions" } } } }
                        tbody {
                            @for user in &slice.items {
                                tr {
                                    td {
                                        a href={ "/admin/users/" (user.id) } { (user.login) }
                                        @if let Some(directory) = directories.get(&user.id) {
                                            " " (directory_badge(directory))
                                        }
                                    }
                                    td { (full_name(&user.first_name, &user.last_name)) }
                                    td { (user.email.as_deref().unwrap_or("")) }
                                    td { (user.phone.as_deref().unwrap_or("")) }
                                    td {
                                        @if directories.contains_key(&user.id) { "in the directory" }
                                        @else if user.password_hash.is_some() { "set" } @else { "none" }
                                    }
                                    td { (enabled_badge(user.enabled)) }
                                    td { a href={ "/admin/users/" (user.id) "/assign" } aria-label={ "Assign Token to " (user.login) } { "Assign Token" } }
                                }
                            }
                        }
                    }
                    nav.pager aria-label="Pages" {
                        @if slice.more_before {
                            @if let Some(first) = slice.items.first() {
                                a rel="prev" href=(keep(("before", first.login.clone()))) { "← Previous" }
                            }
                        }
                        @if slice.more_after {
                            @if let Some(last) = slice.items.last() {
                                a rel="next" href=(keep(("after", last.login.clone()))) { "Next →" }
                            }
                        }
                    }
                }
            }
        }
    };
    let response = page.render(&state, "Users", "Users", body);
    Ok(if slice.is_none() {
        invalid(response)
    } else {
        response
    })
}

// ---------------------------------------------------------------------------
// Create and edit
// ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserForm {
    csrf: String,
    login: String,
    first_name: String,
    last_name: String,
    email: String,
    phone: String,
    password: String,
}

/// A user's fields, checked.
struct ValidUser {
    login: String,
    first_name: String,
    last_name: String,
    email: Option<String>,
    phone: Option<String>,
}

fn validate(form: &UserForm) -> Result<ValidUser, Problems> {
    let mut problems = Problems::default();
    let mut check = |result: Result<String, FieldError>| match result {
        Ok(value) => value,
        Err(error) => {
            problems.field(error);
            String::new()
        }
    };
    let login = check(domain::login_field("login", &form.login));
    let first_name = check(domain::person_name("first_name", &form.first_name));
    let last_name = check(domain::person_name("last_name", &form.last_name));
    let email = (!form.email.trim().is_empty()).then(|| check(domain::email_field(&form.email)));
    let phone = (!form.phone.trim().is_empty()).then(|| check(domain::phone_field(&form.phone)));
    if problems.is_empty() {
        Ok(ValidUser {
            login,
            first_name,
            last_name,
            email,
            phone,
        })
    } else {
        Err(problems)
    }
}

async fn hash_password(state: &AppState, password: String) -> Result<String, PageError> {
    Ok(state.passwords.hash(password).await?)
}

/// The create or edit form; `user_id` is None for a new user.
fn user_form(page: &Page, user_id: Option<i64>, form: &UserForm, problems: &Problems) -> Markup {
    let action = match user_id {
        Some(id) => format!("/admin/users/{id}"),
        None => "/admin/users".to_string(),
    };
    html! {
        (problems.summary())
        form.stack method="post" action=(action) {
            (page.csrf_field())
            label { "Login" input type="text" name="login" value=(form.login) required autocomplete="off"; (problems.note("login")) }
            label { "First name" input type="text" name="first_name" value=(form.first_name); (problems.note("first_name")) }
            label { "Last name" input type="text" name="last_name" value=(form.last_name); (problems.note("last_name")) }
            label { "Email" small { "Where MAIL tokens send codes unless they have their own address." }
                input type="email" name="email" value=(form.email); (problems.note("email")) }
            label { "Phone" small { "International form, e.g. +49 151 12345678." }
                input type="tel" name="phone" value=(form.phone); (problems.note("phone")) }
            @if user_id.is_none() {
                label { "Password" small { "Optional; at least 8 characters." }
                    input type="password" name="password" autocomplete="new-password"; (problems.note("password")) }
            }
            div.buttons {
                button type="submit" { @if user_id.is_some() { "Save" } @else { "Create user" } }
                a href=(user_id.map_or("/admin/users".to_string(), |id| format!("/admin/users/{id}"))) { "Cancel" }
            }
        }
    }
}

pub async fn new_user(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let body = user_form(&page, None, &UserForm::default(), &Problems::default());
    Ok(page.render(&state, "New user", "Users", body))
}

fn duplicate_login(login: &str) -> Problems {
    let mut problems = Problems::default();
    problems.at(
        "login",
        format!("a user with the login {login:?} exists already"),
    );
    problems
}

pub async fn create_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<UserForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let form = form.into_inner();
    let render_again = |problems: Problems| {
        invalid(page.render(
            &state,
            "New user",
            "Users",
            user_form(&page, None, &form, &problems),
        ))
    };
    // Every wrong field at once: the password is checked with the others, not after them.
    let password_error = (!form.password.is_empty())
        .then(|| domain::check_new_password(&form.password).err())
        .flatten();
    let valid = match (validate(&form), password_error) {
        (Ok(valid), None) => valid,
        (Ok(_), Some(error)) => {
            let mut problems = Problems::default();
            problems.field(error);
            return Ok(render_again(problems));
        }
        (Err(mut problems), error) => {
            if let Some(error) = error {
                problems.field(error);
            }
            return Ok(render_again(problems));
        }
    };
    let password_hash = if form.password.is_empty() {
        None
    } else {
        Some(hash_password(&state, form.password.clone()).await?)
    };
    let now = crate::clock::now();
    let draft = UserDraft {
        user: NewUser {
            login: valid.login.clone(),
            first_name: valid.first_name,
            last_name: valid.last_name,
            email: valid.email,
            phone: valid.phone,
            password_hash,
        },
        enabled: true,
    };
    match state
        .store
        .create_user(draft, page.audit(&request, "user.create", "ok"), now)
        .await
    {
        Ok(user) => Ok(redirect_with_flash(
            &state,
            &format!("/admin/users/{}", user.id),
            &format!("User {} created.", user.login),
        )),
        Err(error) if error.is_unique_violation() => {
            Ok(render_again(duplicate_login(&valid.login)))
        }
        Err(error) => Err(error.into()),
    }
}

async fn load_user(state: &AppState, id: &str) -> Result<UserDetail, PageError> {
    let id = path_id(id)?;
    state
        .store
        .user_detail(IdOrName::Id(id))
        .await?
        .filter(|detail| detail.user.id == id)
        .ok_or(PageError::NotFound)
}

pub async fn edit_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let detail = load_user(&state, &path).await?;
    let user = &detail.user;
    if let Some(directory) = crate::directories::keeper(&state.store, user.id).await? {
        return Ok(redirect_with_flash(
            &state,
            &format!("/admin/users/{}", user.id),
            &format!(
                "The details of {} come from the directory \"{directory}\": change them there.",
                user.login
            ),
        ));
    }
    let form = UserForm {
        login: user.login.clone(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        email: user.email.clone().unwrap_or_default(),
        phone: user.phone.clone().unwrap_or_default(),
        ..UserForm::default()
    };
    let body = user_form(&page, Some(user.id), &form, &Problems::default());
    Ok(page.render(&state, &format!("Edit {}", user.login), "Users", body))
}

pub async fn update_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<UserForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let detail = load_user(&state, &path).await?;
    let form = form.into_inner();
    let user_id = detail.user.id;
    let title = format!("Edit {}", detail.user.login);
    let render_again = |problems: Problems| {
        invalid(page.render(
            &state,
            &title,
            "Users",
            user_form(&page, Some(user_id), &form, &problems),
        ))
    };
    let valid = match validate(&form) {
        Ok(valid) => valid,
        Err(problems) => return Ok(render_again(problems)),
    };
    let old = &detail.user;
    let changes = UserChanges {
        login: (valid.login != old.login).then(|| valid.login.clone()),
        first_name: (valid.first_name != old.first_name).then(|| valid.first_name.clone()),
        last_name: (valid.last_name != old.last_name).then(|| valid.last_name.clone()),
        email: (valid.email != old.email).then(|| valid.email.clone()),
        phone: (valid.phone != old.phone).then(|| valid.phone.clone()),
        ..UserChanges::default()
    };
    // A directory user's details are shown on their page, never in this form.
    if let Err(refused) =
        crate::directories::refuse_directory_changes(&state.store, IdOrName::Id(user_id), &changes)
            .await
    {
        let problems = Problems::of(refused)?;
        let directory = crate::directories::keeper(&state.store, user_id).await?;
        let body = user_page(&page, &detail, directory.as_deref(), &problems);
        let title = format!("User {}", detail.user.login);
        return Ok(invalid(page.render(&state, &title, "Users", body)));
    }
    let now = crate::clock::now();
    let mut entry = page.audit(&request, "user.update", "ok");
    entry.notice = notices::of_user_update(&state.keys, old, &changes, notices::PANEL, now)?;
    match state
        .store
        .update_user(IdOrName::Id(user_id), changes, entry, now)
        .await
        .inspect(|_| state.delivery.wake())
    {
        Ok(Some(user)) => Ok(redirect_with_flash(
            &state,
            &format!("/admin/users/{user_id}"),
            &format!("User {} saved.", user.login),
        )),
        Ok(None) => Err(PageError::NotFound),
        Err(error) if error.is_unique_violation() => {
            Ok(render_again(duplicate_login(&valid.login)))
        }
        Err(error) => Err(error.into()),
    }
}

// ---------------------------------------------------------------------------
// A user's page and its actions
// ---------------------------------------------------------------------------

/// A user's page. `directory` names the directory a directory user comes from: their details
/// are shown, not offered for editing, and their password is not set here.
fn user_page(
    page: &Page,
    detail: &UserDetail,
    directory: Option<&str>,
    problems: &Problems,
) -> Markup {
    let user = &detail.user;
    let base = format!("/admin/users/{}", user.id);
    html! {
        (problems.summary())
        div.actions {
            @if directory.is_none() {
                a.button href={ (base) "/edit" } { "Edit" }
            }
            a.button href={ (base) "/assign" } { "Assign Token" }
            @if user.enabled {
                (page.post_button(&format!("{base}/disable"), "Disable", "secondary"))
            } @else {
                (page.post_button(&format!("{base}/enable"), "Enable", "secondary"))
            }
            (page.post_button(&format!("{base}/unlock"), "Reset failed logins (unlock)", "secondary"))
            a.button.danger href={ (base) "/delete" } { "Delete" }
        }
        @if let Some(directory) = directory {
            p.note {
                "This user comes from the directory " strong { (directory) } ": the login, name, email, phone and password are kept there and change there (the sync brings them here). "
                "Tokens, resources and Enabled are managed here."
            }
        }
        dl.facts {
            @if let Some(directory) = directory {
                dt { "Directory" } dd { (directory_badge(directory)) }
            }
            dt { "Login" } dd { (user.login) (problems.note("login")) }
            dt { "Name" } dd { (full_name(&user.first_name, &user.last_name)) (problems.note("first_name")) (problems.note("last_name")) }
            dt { "Email" } dd { (user.email.as_deref().unwrap_or("—")) (problems.note("email")) }
            dt { "Phone" } dd { (user.phone.as_deref().unwrap_or("—")) (problems.note("phone")) }
            dt { "Password" } dd {
                @if directory.is_some() { "kept in the directory" }
                @else if user.password_hash.is_some() { "set" } @else { "none" }
            }
            dt { "Status" } dd { (enabled_badge(user.enabled)) }
            dt { "Created" } dd { (format_time(user.created_at)) " UTC" }
            dt { "Changed" } dd { (format_time(user.updated_at)) " UTC" }
        }
        h2 { "Tokens" }
        @if detail.tokens.is_empty() {
            p.empty { "No tokens assigned. " a href={ (base) "/assign" } { "Assign a token" } "." }
        } @else {
            table {
                thead { tr { th { "Serial" } th { "Name" } th { "Kind" } th { "State" } th { "Status" } } }
                tbody {
                    @for token in &detail.tokens {
                        tr {
                            td { a href={ "/admin/tokens/" (token.id) } { (token.serial) } }
                            td { (token.name) }
                            td { (token.kind.as_str()) }
                            td { (token.state.as_str()) }
                            td { (enabled_badge(token.enabled)) }
                        }
                    }
                }
            }
        }
        h2 { "Resources" }
        @if detail.resources.is_empty() {
            p.empty { "Not assigned to any resource." }
        } @else {
            ul.plain {
                @for resource in &detail.resources {
                    li { a href={ "/admin/resources/" (resource.id) } { (resource.name) } }
                }
            }
        }
        h2 { "Password" }
        @if let Some(directory) = directory {
            p { "Kept in the directory " strong { (directory) } ", which checks it at every sign-in: change it there." }
            (problems.note("password"))
        } @else {
        form.stack.narrow method="post" action={ (base) "/password" } {
            (page.csrf_field())
            label { "New password" small { "At least 8 characters." }
                input type="password" name="password" autocomplete="new-password"; (problems.note("password")) }
            div.buttons {
                button type="submit" name="action" value="set" { "Set password" }
                @if user.password_hash.is_some() {
                    button.secondary type="submit" name="action" value="clear" { "Remove password" }
                }
            }
        }
        }
    }
}

pub async fn show_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let detail = load_user(&state, &path).await?;
    let directory = crate::directories::keeper(&state.store, detail.user.id).await?;
    let body = user_page(&page, &detail, directory.as_deref(), &Problems::default());
    Ok(page.render(
        &state,
        &format!("User {}", detail.user.login),
        "Users",
        body,
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    csrf: String,
    password: String,
    /// `set` or `clear`.
    action: String,
}

pub async fn set_password(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let detail = load_user(&state, &path).await?;
    let (hash, message) = if form.action == "clear" {
        (None, "Password removed.")
    } else {
        let refused = match crate::directories::refuse_local_password(
            &state.store,
            IdOrName::Id(detail.user.id),
        )
        .await
        {
            Err(crate::domain::RuleError::Refused(crate::domain::Refused::Field(error))) => {
                Err(error)
            }
            Err(other) => return Err(other.into()),
            Ok(()) => domain::check_new_password(&form.password),
        };
        if let Err(error) = refused {
            let mut problems = Problems::default();
            problems.field(error);
            let directory = crate::directories::keeper(&state.store, detail.user.id).await?;
            let body = user_page(&page, &detail, directory.as_deref(), &problems);
            let title = format!("User {}", detail.user.login);
            return Ok(invalid(page.render(&state, &title, "Users", body)));
        }
        (
            Some(hash_password(&state, form.password.clone()).await?),
            "Password set.",
        )
    };
    let changes = UserChanges {
        password_hash: Some(hash),
        ..UserChanges::default()
    };
    let now = crate::clock::now();
    let mut entry = page.audit(&request, "user.password", "ok");
    entry.notice =
        notices::of_user_update(&state.keys, &detail.user, &changes, notices::PANEL, now)?;
    state
        .store
        .update_user(IdOrName::Id(detail.user.id), changes, entry, now)
        .await?
        .ok_or(PageError::NotFound)?;
    state.delivery.wake();
    Ok(redirect_with_flash(
        &state,
        &format!("/admin/users/{}", detail.user.id),
        message,
    ))
}

/// Enable or Disable on a user's page: `/admin/users/{id}/enable` or `…/disable`.
pub async fn set_enabled(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let (id, switch) = path.into_inner();
    let enabled = switch == "enable";
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let detail = load_user(&state, &id).await?;
    let changes = UserChanges {
        enabled: Some(enabled),
        ..UserChanges::default()
    };
    let now = crate::clock::now();
    let user = state
        .store
        .update_user(
            IdOrName::Id(detail.user.id),
            changes,
            page.audit(&request, "user.update", "ok"),
            now,
        )
        .await?
        .ok_or(PageError::NotFound)?;
    let word = if enabled { "enabled" } else { "disabled" };
    Ok(redirect_with_flash(
        &state,
        &format!("/admin/users/{}", user.id),
        &format!("User {} {word}.", user.login),
    ))
}

/// Reset failed logins (unlock) on a user's page: the user may log in again at once.
pub async fn unlock_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let detail = load_user(&state, &path).await?;
    state
        .store
        .unlock_user(
            IdOrName::Id(detail.user.id),
            page.audit(&request, "user.unlock", "ok"),
        )
        .await?
        .ok_or(PageError::NotFound)?;
    Ok(redirect_with_flash(
        &state,
        &format!("/admin/users/{}", detail.user.id),
        &format!(
            "Failed logins of {} reset; the account is unlocked.",
            detail.user.login
        ),
    ))
}

pub async fn confirm_delete_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let detail = load_user(&state, &path).await?;
    let user = &detail.user;
    let body = html! {
        p { "Delete the user " strong { (user.login) } "? This cannot be undone." }
        @if !detail.tokens.is_empty() {
            p { "Their " (crate::web::views::plural(detail.tokens.len(), "token stays", "tokens stay")) ", without a user and without resources." }
        }
        form.stack.narrow method="post" action={ "/admin/users/" (user.id) "/delete" } {
            (page.csrf_field())
            div.buttons {
                button.danger type="submit" { "Delete user" }
                a href={ "/admin/users/" (user.id) } { "Cancel" }
            }
        }
    };
    Ok(page.render(&state, &format!("Delete {}", user.login), "Users", body))
}

pub async fn delete_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let detail = load_user(&state, &path).await?;
    let deleted = state
        .store
        .delete_user(
            IdOrName::Id(detail.user.id),
            page.audit(&request, "user.delete", "ok"),
        )
        .await?;
    if !deleted {
        return Err(PageError::NotFound);
    }
    Ok(redirect_with_flash(
        &state,
        "/admin/users",
        &format!("User {} deleted.", detail.user.login),
    ))
}

// ---------------------------------------------------------------------------
// Assign Token → New or Existing
// ---------------------------------------------------------------------------

/// The kinds offered under Assign Token → New, with the Add Token form of each.
pub(super) const NEW_TOKEN_CHOICES: &[(&str, &str)] = &[
    ("app", "Authenticator app (TOTP)"),
    ("mail", "MAIL: codes by email"),
    ("sms", "SMS: codes by text message"),
    ("bot", "BOT: codes by Telegram"),
    ("hardware", "Hardware token (TOTP or HOTP)"),
];

async fn assign_page(
    state: &AppState,
    page: &Page,
    detail: &UserDetail,
    (chosen, typed_serial): (&str, &str),
    problems: &Problems,
) -> Result<HttpResponse, PageError> {
    let unassigned = state
        .store
        .list_tokens(TokenFilter {
            assigned: Some(false),
            limit: 500,
            offset: 0,
            ..TokenFilter::default()
        })
        .await??;
    let (tokens, total) = unassigned;
    let user = &detail.user;
    let body = html! {
        (problems.summary())
        h2 { "New" }
        p { "Create a token and assign it to " (user.login) " in one step:" }
        ul.choices {
            @for (kind, label) in NEW_TOKEN_CHOICES {
                li { a href={ "/admin/tokens/new/" (kind) "?user=" (user.id) } { (label) } }
            }
        }
        h2 { "Existing" }
        @if tokens.is_empty() {
            p.empty { "There are no unassigned tokens. " a href={ "/admin/tokens/new?user=" (user.id) } { "Add a new token" } "." }
        } @else {
            form.stack.narrow method="post" action={ "/admin/users/" (user.id) "/assign" } {
                (page.csrf_field())
                label { "Unassigned token"
                    @if total > tokens.len() as i64 {
                        small { "The first " (tokens.len()) " of " (total) "; find others on the Tokens page." }
                    }
                    select name="token" {
                        option value="" { "Choose a token" }
                        @for record in &tokens {
                            @let token = &record.token;
                            @let label = format!("{} · {}{}", token.serial, token.kind.as_str(), if token.name.is_empty() { String::new() } else { format!(" · {}", token.name) });
                            (select_option(&token.id.to_string(), &label, chosen))
                        }
                    }
                    (problems.note("token"))
                }
                label { "Or its serial" small { "As printed on a hardware token; upper or lower case." }
                    input type="text" name="serial" value=(typed_serial) maxlength="128" autocomplete="off";
                    (problems.note("serial"))
                }
                div.buttons {
                    button type="submit" { "Assign" }
                    a href={ "/admin/users/" (user.id) } { "Cancel" }
                }
            }
        }
    };
    Ok(page.render(
        state,
        &format!("Assign Token to {}", user.login),
        "Users",
        body,
    ))
}

pub async fn show_assign(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let detail = load_user(&state, &path).await?;
    assign_page(&state, &page, &detail, ("", ""), &Problems::default()).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AssignForm {
    csrf: String,
    token: String,
    /// The serial typed instead of a token chosen, in any case.
    serial: String,
    /// MAIL and SMS: where the codes go for the new user, confirmed on the second step.
    destination: String,
    /// `yes` on the second step of a MAIL or SMS token.
    confirmed: String,
}

/// The second step of assigning a MAIL or SMS token: its address is confirmed or changed, so
/// that the previous user's address does not follow the token.
fn confirm_destination_page(
    state: &AppState,
    page: &Page,
    user: &crate::store::User,
    token: &crate::store::Token,
    destination: &str,
    problems: &Problems,
) -> HttpResponse {
    let (what, kind) = if token.kind == crate::domain::TokenKind::Sms {
        ("Phone number", "tel")
    } else {
        ("Email address", "email")
    };
    let body = html! {
        (problems.summary())
        p { "Token " strong { (token.serial) } " sent its codes to "
            strong { (token.destination.as_deref().unwrap_or("no address")) } ". "
            "Where should its codes go for " (user.login) "?" }
        form.stack.narrow method="post" action={ "/admin/users/" (user.id) "/assign" } {
            (page.csrf_field())
            input type="hidden" name="token" value=(token.id);
            input type="hidden" name="confirmed" value="yes";
            label { (what)
                input type=(kind) name="destination" value=(destination) required;
                (problems.note("destination"))
            }
            div.buttons {
                button type="submit" { "Assign" }
                a href={ "/admin/users/" (user.id) "/assign" } { "Back" }
            }
        }
    };
    page.render(
        state,
        &format!("Assign {} to {}", token.serial, user.login),
        "Users",
        body,
    )
}

pub async fn assign_existing(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<AssignForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let detail = load_user(&state, &path).await?;
    let mut problems = Problems::default();
    let typed = form.serial.trim();
    let token = match form.token.trim().parse::<i64>().ok() {
        Some(token_id) => state.store.find_token(IdOrName::Id(token_id)).await?,
        None if !typed.is_empty() => {
            let found = state
                .store
                .find_token_by_typed_serial(typed.to_string())
                .await?;
            if found.is_none() {
                problems.at(
                    "serial",
                    format!("there is no token with the serial {typed}"),
                );
            }
            found
        }
        None => {
            problems.at("token", "choose a token or type its serial");
            None
        }
    };
    let is_mail_or_sms = |token: &crate::store::Token| {
        matches!(
            token.kind,
            crate::domain::TokenKind::Mail | crate::domain::TokenKind::Sms
        )
    };
    if let Some(token) = &token
        && is_mail_or_sms(token)
        && token.user_id.is_none()
        && form.confirmed != "yes"
    {
        let own = if token.kind == crate::domain::TokenKind::Sms {
            detail.user.phone.clone()
        } else {
            detail.user.email.clone()
        };
        return Ok(confirm_destination_page(
            &state,
            &page,
            &detail.user,
            token,
            &own.unwrap_or_default(),
            &Problems::default(),
        ));
    }
    match token {
        None if problems.is_empty() => {
            problems.general("That token does not exist any more.");
        }
        None => {}
        Some(token) => {
            let destination = (form.confirmed == "yes" && is_mail_or_sms(&token))
                .then(|| form.destination.clone());
            let mut entry = page.audit(&request, "token.assign", "ok");
            entry.notice = notices::of_token_added(
                &state.keys,
                &detail.user,
                &token,
                notices::PANEL,
                crate::clock::now(),
            )?;
            match state
                .store
                .assign_token_user(
                    IdOrName::Id(token.id),
                    IdOrName::Id(detail.user.id),
                    destination,
                    entry,
                )
                .await?
            {
                Ok(record) => {
                    state.delivery.wake();
                    return Ok(redirect_with_flash(
                        &state,
                        &format!("/admin/users/{}", detail.user.id),
                        &format!(
                            "Token {} assigned to {}.",
                            record.token.serial, detail.user.login
                        ),
                    ));
                }
                // Said on top, where it shows also when no unassigned token is left to choose.
                Err(crate::domain::Refused::NotFound(_)) => {
                    problems.general("That token does not exist any more.")
                }
                Err(crate::domain::Refused::Field(error))
                    if error.field == "destination" && form.confirmed == "yes" =>
                {
                    let mut problems = Problems::default();
                    problems.at("destination", error.message);
                    return Ok(invalid(confirm_destination_page(
                        &state,
                        &page,
                        &detail.user,
                        &token,
                        &form.destination,
                        &problems,
                    )));
                }
                Err(refused) => problems.general(refused.to_string()),
            }
        }
    }
    Ok(invalid(
        assign_page(
            &state,
            &page,
            &detail,
            (&form.token, &form.serial),
            &problems,
        )
        .await?,
    ))
}
