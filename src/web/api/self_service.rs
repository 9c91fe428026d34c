//! `/resources/{resource}/self-service`: a resource's Self-Service settings (the portal on or
//! off, its address, the Allowed Actions, Token Enrollment, and whether users may remove their
//! last second factor), read and replaced on the panel's rule (`crate::self_service`).

use std::collections::BTreeSet;

use actix_web::{HttpResponse, get, put, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::address::{RESOURCE_PARAMETER, ResourceAt};
use super::error::{AdminRefusals, ErrorBody};
use super::{AdminCaller, ApiError, ApiJson};
use crate::clock::now;
use crate::domain::TokenKind;
use crate::store::resources::{PortalAction, SelfService};
use crate::web::AppState;

/// A resource's Self-Service settings to store; they replace the stored ones.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfServiceRequest {
    /// Whether the resource's self-service portal is on.
    enabled: bool,
    /// The Self-Service Page Address: the portal is at `<public address>/portal/<address>`.
    /// 2 to 63 lowercase letters, digits and hyphens (upper case is lowered), starting and
    /// ending with a letter or digit, unique among resources. Absent, null or empty: none,
    /// which only a portal that is off may have.
    address: Option<String>,
    /// The Allowed Actions; absent: none.
    #[serde(default)]
    allowed_actions: Vec<String>,
    /// The token kinds users may enrol with `enroll_token`; absent: none.
    #[serde(default)]
    enrollment_kinds: Vec<TokenKind>,
    /// Whether Disable Token and Unassign Token may take away a user's last active token
    /// here; absent: false (a user keeps at least one).
    #[serde(default)]
    allow_remove_last: bool,
}

/// A resource's Self-Service settings.
#[derive(Serialize, ToSchema)]
pub struct SelfServiceView {
    /// Whether the resource's self-service portal is on.
    enabled: bool,
    /// The Self-Service Page Address; null: none.
    address: Option<String>,
    /// The page address to send to users; null without an address.
    portal_url: Option<String>,
    /// The Allowed Actions, in the panel's order.
    allowed_actions: Vec<&'static str>,
    /// The token kinds users may enrol with `enroll_token`.
    enrollment_kinds: Vec<TokenKind>,
    /// Whether users may remove their last second factor.
    allow_remove_last: bool,
}

/// What saving changed, and the settings now stored.
#[derive(Serialize, ToSchema)]
pub struct SelfServiceSaved {
    /// The changes in words, as the audit log has them; empty when nothing changed.
    changes: Vec<String>,
    settings: SelfServiceView,
}

fn view(settings: SelfService, base_url: &str) -> SelfServiceView {
    SelfServiceView {
        portal_url: settings
            .address
            .as_ref()
            .map(|address| format!("{base_url}/portal/{address}")),
        allowed_actions: PortalAction::ALL
            .into_iter()
            .filter(|action| settings.allows(*action))
            .map(PortalAction::as_str)
            .collect(),
        enabled: settings.enabled,
        address: settings.address,
        enrollment_kinds: settings.enrollment_kinds,
        allow_remove_last: settings.allow_remove_last,
    }
}

async fn resource_id(state: &AppState, resource: ResourceAt) -> Result<i64, ApiError> {
    Ok(state
        .store
        .resource_detail(resource.into_inner())
        .await?
        .ok_or(ApiError::NotFound("resource"))?
        .resource
        .id)
}

/// The settings as the request asks for them; the address is the shared rule's.
fn requested(body: &SelfServiceRequest) -> Result<SelfService, ApiError> {
    let allowed_actions = body
        .allowed_actions
        .iter()
        .map(|name| {
            PortalAction::parse(name).ok_or_else(|| {
                let known: Vec<&str> = PortalAction::ALL.into_iter().map(|a| a.as_str()).collect();
                ApiError::field(
                    "allowed_actions",
                    format!("no action {name:?}; the actions are {}", known.join(", ")),
                )
            })
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(SelfService {
        enabled: body.enabled,
        address: None,
        allowed_actions,
        enrollment_kinds: TokenKind::ALL
            .into_iter()
            .filter(|kind| body.enrollment_kinds.contains(kind))
            .collect(),
        allow_remove_last: body.allow_remove_last,
    })
}

/// A resource's Self-Service settings (all off until saved).
#[utoipa::path(
    tag = "resources",
    params(("resource" = String, Path, description = RESOURCE_PARAMETER)),
    responses(
        (status = 200, description = "The settings", body = SelfServiceView),
        AdminRefusals,
        (status = 404, description = "No such resource", body = ErrorBody),
    )
)]
#[get("/resources/{resource}/self-service")]
pub(super) async fn get_self_service(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    resource: ResourceAt,
) -> Result<HttpResponse, ApiError> {
    let id = resource_id(&state, resource).await?;
    let settings = state.store.self_service(id).await?;
    let base_url = state.public_base_url().await?;
    Ok(HttpResponse::Ok().json(view(settings, &base_url)))
}

/// Replaces a resource's Self-Service settings, with the panel's checks and words; the
/// portal follows them from its next request.
#[utoipa::path(
    tag = "resources",
    params(("resource" = String, Path, description = RESOURCE_PARAMETER)),
    request_body = SelfServiceRequest,
    responses(
        (status = 200, description = "What changed, and the stored settings", body = SelfServiceSaved),
        (status = 400, description = "A field is missing or invalid, or the address is another resource's; `field` names it", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such resource", body = ErrorBody),
    )
)]
#[put("/resources/{resource}/self-service")]
pub(super) async fn put_self_service(
    caller: AdminCaller,
    state: web::Data<AppState>,
    resource: ResourceAt,
    body: ApiJson<SelfServiceRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let settings = requested(&body)?;
    let id = resource_id(&state, resource).await?;
    let changes = crate::self_service::save(
        &state.store,
        id,
        settings,
        body.address.as_deref().unwrap_or(""),
        caller.change("resource.self_service"),
        now(),
    )
    .await?;
    let stored = state.store.self_service(id).await?;
    let base_url = state.public_base_url().await?;
    Ok(HttpResponse::Ok().json(SelfServiceSaved {
        changes,
        settings: view(stored, &base_url),
    }))
}
