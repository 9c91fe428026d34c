//! A resource's RADIUS reply attributes: a section of its Overview, and the page the section's
//! form answers with when the rule (`radius::reply`, the API's too) refuses what was typed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::super::{Page, redirect_with_flash};
use super::{form_value, form_values, resource_or_404, resource_tabs};
use crate::radius::dictionary::{Definition, reply_attributes};
use crate::radius::reply::{ReplyAttribute, check_reply_attributes};
use crate::store::Resource;
use crate::store::radius::AttributesSaved;
use crate::web::form::{Problems, with_status};
use crate::web::{AppState, PageError};

/// Empty rows offered under the attributes, for new ones.
const EMPTY_ROWS: usize = 3;

/// The rows as stored or typed: a dictionary name (empty: none) and a value.
type Rows = [(String, String)];

pub(super) fn rows_of(attributes: Vec<ReplyAttribute>) -> Vec<(String, String)> {
    attributes
        .into_iter()
        .map(|attribute| (attribute.name, attribute.value))
        .collect()
}

fn options(chosen: &str) -> Markup {
    let (standard, vendors): (Vec<&Definition>, Vec<&Definition>) =
        reply_attributes().partition(|definition| definition.vendor.is_none());
    let option = |definition: &Definition| {
        html! {
            option value=(definition.name) selected[definition.name.eq_ignore_ascii_case(chosen.trim())] {
                (definition.name) " (" (definition.value.as_str()) ")"
            }
        }
    };
    html! {
        option value="" selected[chosen.trim().is_empty()] { "— none —" }
        optgroup label="Standard" {
            @for definition in standard { (option(definition)) }
        }
        optgroup label="Vendor-specific" {
            @for definition in vendors { (option(definition)) }
        }
    }
}

/// The section: the attributes in order, each a name from the dictionary and a value, with
/// empty rows to add more.
pub(super) fn radius_attributes_section(
    page: &Page,
    resource: &Resource,
    rows: &Rows,
    errors: &Problems,
) -> Markup {
    let action = format!("/admin/resources/{}/radius-attributes", resource.id);
    let empty = (String::new(), String::new());
    let shown = rows.iter().chain(std::iter::repeat_n(&empty, EMPTY_ROWS));
    html! {
        section aria-labelledby="radius-heading" {
            h2 #radius-heading { "RADIUS reply attributes" }
            p.note { "Every Access-Accept for this resource's RADIUS clients carries a welcome (Reply-Message) and a Class that its accounting sends back; then these attributes, in this order — a firewall group, a filter, a timeout. To remove one, choose “— none —”." }
            (errors.summary())
            form.stack method="post" action=(action) {
                input type="hidden" name="csrf" value=(page.csrf());
                table.attributes {
                    thead { tr { th { "Attribute" } th { "Value" } } }
                    tbody {
                        @for (index, (name, value)) in shown.enumerate() {
                            tr {
                                td { select name="name" aria-label=(format!("Attribute {}", index + 1)) { (options(name)) } }
                                td { input type="text" name="value" value=(value) aria-label=(format!("Value {}", index + 1)) autocomplete="off"; }
                            }
                        }
                    }
                }
                (errors.note("attributes"))
                div { button type="submit" { "Save reply attributes" } }
            }
        }
    }
}

/// The rows of a submitted form, in order; a row without an attribute is left out.
fn rows_from_form(form: &[(String, String)]) -> Vec<(String, String)> {
    form_values(form, "name")
        .zip(form_values(form, "value"))
        .filter(|(name, _)| !name.trim().is_empty())
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn attributes_page(
    page: &Page,
    state: &AppState,
    resource: &Resource,
    rows: &Rows,
    errors: &Problems,
) -> HttpResponse {
    let body = html! {
        (resource_tabs(resource, "Overview"))
        (radius_attributes_section(page, resource, rows, errors))
    };
    let response = page.render(
        state,
        &format!("{} · RADIUS reply attributes", resource.name),
        "Resources",
        body,
    );
    if errors.is_empty() {
        response
    } else {
        with_status(response, StatusCode::BAD_REQUEST)
    }
}

pub(super) async fn show_radius_attributes(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    let rows = rows_of(state.store.radius_reply_attributes(resource.id).await?);
    Ok(attributes_page(
        &page,
        &state,
        &resource,
        &rows,
        &Problems::default(),
    ))
}

pub(super) async fn save_radius_attributes(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(form_value(&form, "csrf").unwrap_or(""))?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    let rows = rows_from_form(&form);
    let attributes = match check_reply_attributes(&rows) {
        Ok(attributes) => attributes,
        Err(refused) => {
            let errors = Problems::of(refused)?;
            return Ok(attributes_page(&page, &state, &resource, &rows, &errors));
        }
    };
    let count = attributes.len();
    match state
        .store
        .replace_radius_reply_attributes(
            resource.id,
            attributes,
            page.audit(&request, "resource.radius_attributes", "ok"),
        )
        .await?
    {
        AttributesSaved::Done(_) => Ok(redirect_with_flash(
            &state,
            &format!("/admin/resources/{}#radius-heading", resource.id),
            &format!(
                "RADIUS reply attributes saved: {}.",
                crate::domain::words::count(count as u64, "attribute", "attributes")
            ),
        )),
        AttributesSaved::NoSuchResource => Err(PageError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_pair_names_and_values_in_order_and_rows_without_an_attribute_are_left_out() {
        let form: Vec<(String, String)> = [
            ("csrf", "x"),
            ("name", "Filter-Id"),
            ("value", "vpn"),
            ("name", ""),
            ("value", "forgotten"),
            ("name", "Session-Timeout"),
            ("value", "60"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            rows_from_form(&form),
            vec![
                ("Filter-Id".to_string(), "vpn".to_string()),
                ("Session-Timeout".to_string(), "60".to_string())
            ]
        );
    }
}
