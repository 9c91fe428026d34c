//! A resource's Self-Service tab: the portal on or off, its address, the Allowed Actions and
//! the Token Enrollment kinds, each group with its All toggle.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::super::{Page, redirect_with_flash};
use super::{form_value, form_values, resource_or_404, resource_tabs};
use crate::clock::now;
use crate::domain::TokenKind;
use crate::store::Resource;
use crate::store::resources::{self, ActionGroup, PortalAction, SelfService};
use crate::web::form::{Problems, with_status};
use crate::web::{AppState, PageError};

// ---------------------------------------------------------------------------------------------
// Self-Service.

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
    errors: &Problems,
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
                small {
                    "Lowercase letters, digits and hyphens; unique among resources."
                    @if settings.address.is_none() && !view.address.is_empty() { " Suggested from the resource's name." }
                }
                input type="text" name="address" value=(view.address) maxlength="63" autocomplete="off";
                (errors.note_as_written("address"))
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
                    "All actions"
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
                                    input type="checkbox" name="action" data-group=(group.as_str()) value=(action.as_str()) checked[settings.allows(action)];
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
                    "All kinds"
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
    errors: &Problems,
) -> Result<HttpResponse, PageError> {
    let base_url = state.public_base_url().await?;
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

pub(super) async fn show_self_service(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    let settings = state.store.self_service(resource.id).await?;
    let address = match settings.address.clone() {
        Some(address) => address,
        None => suggested_address(&state, &resource).await?,
    };
    self_service_page(
        &page,
        &state,
        &resource,
        &SelfServiceView {
            settings: &settings,
            address: &address,
        },
        &Problems::default(),
    )
    .await
}

/// The address suggested for a portal that has none yet: the resource's name as a slug, unless
/// another resource's portal has it.
async fn suggested_address(state: &AppState, resource: &Resource) -> Result<String, PageError> {
    let Some(address) = resources::suggest_portal_address(&resource.name) else {
        return Ok(String::new());
    };
    Ok(
        match state.store.self_service_by_address(address.clone()).await? {
            Some(_) => String::new(),
            None => address,
        },
    )
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

pub(super) async fn save_self_service(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let page = Page::open(&state, &request).await?;
    page.check_csrf(form_value(&form, "csrf").unwrap_or(""))?;
    let resource = resource_or_404(&state, path.into_inner()).await?;
    let settings = self_service_from_form(&form);
    let typed_address = form_value(&form, "address").unwrap_or("").to_string();
    let saved = crate::self_service::save(
        &state.store,
        resource.id,
        settings.clone(),
        &typed_address,
        page.audit(&request, "resource.self_service", "ok"),
        now(),
    )
    .await;
    let errors = match saved {
        Ok(changes) => {
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
        Err(error) => Problems::of(error)?,
    };
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
