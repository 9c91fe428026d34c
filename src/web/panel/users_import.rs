//! Importing users from a CSV file (`login,first,last,email,phone`): the administrator uploads
//! the file, sees every row with its problems, and imports all rows or none.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Page, redirect_with_flash};
use crate::import::{self, UserRow};
use crate::store::NewUser;
use crate::web::form::{Problems, invalid, read_upload, with_status};
use crate::web::{AppState, PageError};

fn upload_form(page: &Page, problems: &Problems) -> Markup {
    html! {
        (problems.summary())
        p { "One user per line: " code { "login,first,last,email,phone" } ". A first line starting with "
            code { "login" } " is a header and is skipped. Only the login is required; phone numbers in international form." }
        form.stack.narrow method="post" action="/admin/users/import" enctype="multipart/form-data" {
            (page.csrf_field())
            label { "CSV file" input type="file" name="file" accept=".csv,text/csv,text/plain" required; (problems.note("file")) }
            div.buttons {
                button type="submit" { "Preview" }
                a href="/admin/users" { "Cancel" }
            }
        }
    }
}

pub async fn show_import(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let body = upload_form(&page, &Problems::default());
    Ok(page.render(&state, "Import users", "Users", body))
}

/// The rows of a file, checked also against the users stored already.
async fn checked_rows(
    state: &AppState,
    text: &str,
) -> Result<Result<Vec<UserRow>, String>, PageError> {
    let mut rows = match import::parse_users_csv(text) {
        Ok(rows) => rows,
        Err(error) => return Ok(Err(format!("The file was not read: {error}."))),
    };
    let logins: Vec<String> = rows
        .iter()
        .filter(|row| !row.login.is_empty())
        .map(|row| row.login.clone())
        .collect();
    let taken = state.store.taken_logins(logins).await?;
    for row in &mut rows {
        if let Some(taken) = taken.iter().find(|taken| taken.login == row.login) {
            row.problems.push(format!(
                "a user with the login {:?} exists already",
                taken.by
            ));
        }
    }
    Ok(Ok(rows))
}

fn preview(page: &Page, text: &str, rows: &[UserRow]) -> Markup {
    let bad = rows.iter().filter(|row| !row.problems.is_empty()).count();
    html! {
        @if bad > 0 {
            p.error role="alert" { (bad) " of " (crate::web::views::plural(rows.len(), "row", "rows")) @if bad == 1 { " has" } @else { " have" } " problems. Nothing was imported: correct the file and upload it again." }
        } @else {
            p { "The file holds " (crate::web::views::plural(rows.len(), "new user", "new users")) ". Check them, then import them all." }
        }
        table {
            thead { tr { th { "Line" } th { "Login" } th { "First name" } th { "Last name" } th { "Email" } th { "Phone" } th { "Problems" } } }
            tbody {
                @for row in rows {
                    tr class=[(!row.problems.is_empty()).then_some("row-error")] {
                        td { (row.line) }
                        td { (row.login) }
                        td { (row.first_name) }
                        td { (row.last_name) }
                        td { (row.email.as_deref().unwrap_or("")) }
                        td { (row.phone.as_deref().unwrap_or("")) }
                        td { @for problem in &row.problems { span.field-error { (problem) } } }
                    }
                }
            }
        }
        @if bad == 0 {
            form.stack.narrow method="post" action="/admin/users/import/confirm" {
                (page.csrf_field())
                input type="hidden" name="csv" value=(text);
                div.buttons {
                    button type="submit" { "Import " (crate::web::views::plural(rows.len(), "user", "users")) }
                    a href="/admin/users/import" { "Choose another file" }
                }
            }
        } @else {
            p { a href="/admin/users/import" { "Upload a corrected file" } }
        }
    }
}

pub async fn upload_import(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let upload = read_upload(&request, payload).await;
    let upload = match upload {
        Ok(upload) => upload,
        Err(problem) => {
            let mut problems = Problems::default();
            problems.general(problem.message());
            let body = upload_form(&page, &problems);
            let response = page.render(&state, "Import users", "Users", body);
            return Ok(with_status(response, problem.status()));
        }
    };
    page.check_csrf(&upload.text("csrf"))?;
    let mut problems = Problems::default();
    let text = match std::str::from_utf8(upload.bytes("file")) {
        Ok(text) if !text.trim().is_empty() => text.to_string(),
        Ok(_) => {
            problems.at("file", "choose a CSV file that is not empty");
            String::new()
        }
        Err(_) => {
            problems.at("file", "the file is not UTF-8 text; save it as CSV (UTF-8)");
            String::new()
        }
    };
    if problems.is_empty() {
        match checked_rows(&state, &text).await? {
            Ok(rows) => {
                let bad = rows.iter().any(|row| !row.problems.is_empty());
                let response = page.render(
                    &state,
                    "Import users",
                    "Users",
                    preview(&page, &text, &rows),
                );
                return Ok(if bad { invalid(response) } else { response });
            }
            Err(message) => problems.at("file", message),
        }
    }
    let body = upload_form(&page, &problems);
    Ok(invalid(page.render(&state, "Import users", "Users", body)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConfirmForm {
    csrf: String,
    csv: String,
}

pub async fn confirm_import(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<ConfirmForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    // The file is checked again: it came back from the browser, and users may have been
    // created since the preview.
    let rows = match checked_rows(&state, &form.csv).await? {
        Ok(rows) => rows,
        Err(message) => {
            let mut problems = Problems::default();
            problems.general(message);
            let body = upload_form(&page, &problems);
            return Ok(invalid(page.render(&state, "Import users", "Users", body)));
        }
    };
    if rows.iter().any(|row| !row.problems.is_empty()) {
        let body = preview(&page, &form.csv, &rows);
        return Ok(invalid(page.render(&state, "Import users", "Users", body)));
    }
    let users: Vec<NewUser> = rows
        .into_iter()
        .map(|row| NewUser {
            login: row.login,
            first_name: row.first_name,
            last_name: row.last_name,
            email: row.email,
            phone: row.phone,
            password_hash: None,
        })
        .collect();
    let now = crate::clock::now();
    match state
        .store
        .import_users(users, page.audit(&request, "user.import", "ok"), now)
        .await?
    {
        Ok(count) => Ok(redirect_with_flash(
            &state,
            "/admin/users",
            &format!(
                "{} imported.",
                crate::web::views::plural(count, "user", "users")
            ),
        )),
        Err(taken) => {
            let mut problems = Problems::default();
            problems.general(format!(
                "Nothing was imported: these logins were taken meanwhile: {}.",
                taken
                    .iter()
                    .map(|taken| taken.login.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let body = upload_form(&page, &problems);
            Ok(invalid(page.render(&state, "Import users", "Users", body)))
        }
    }
}
