//! A resource's API keys: creating one (shown once) and revoking one.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::super::{Page, redirect_with_flash};
use super::{resource_or_404, resource_tabs};
use crate::clock::now;
use crate::crypto;
use crate::store::Resource;
use crate::web::form::{Confirmation, CsrfForm, Problems};
use crate::web::views::format_time;
use crate::web::{AppState, PageError};

// ---------------------------------------------------------------------------------------------
// API keys.

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

pub(super) async fn keys_page(
    page: &Page,
    state: &AppState,
    resource: &Resource,
    name: &str,
    errors: &Problems,
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
                (errors.note_as_written("name"))
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

pub(super) async fn show_keys(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    keys_page(&page, &state, &resource, "", &Problems::default(), None).await
}

pub(super) async fn create_key(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<KeyForm>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(&form.csrf)?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    let name = match crate::domain::key_name(&form.name) {
        Ok(name) => name,
        Err(bad) => {
            let errors = Problems::one(bad);
            return keys_page(&page, &state, &resource, &form.name, &errors, None).await;
        }
    };
    let key = crypto::new_api_key()?;
    let created = state
        .store
        .create_resource_api_key(
            resource.id,
            name,
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
        &Problems::default(),
        Some(&key.key),
    )
    .await
}

pub(super) async fn confirm_revoke_key(
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
    Ok(page.confirm(
        &state,
        "Revoke API key",
        "Resources",
        Confirmation {
            question: html! {
                p { "Revoke the key “" strong { (key.name) } "” (og_" (key.prefix) ".…) of " strong { (resource.name) } "? Applications using it can no longer authenticate. This cannot be undone." }
            },
            action: &action,
            button: "Revoke key",
            back: &back,
        },
    ))
}

pub(super) async fn revoke_key(
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
    Ok(redirect_with_flash(
        &state,
        &format!("/admin/resources/{resource_id}/keys"),
        "API key revoked.",
    ))
}
