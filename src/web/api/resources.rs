//! Managing resources through the API (admin keys only): create, list, show, change, delete,
//! and assign users and tokens-with-users to them.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};

use super::IdOrName;
use super::address::{
    RESOURCE_PARAMETER, ResourceAt, TOKEN_PARAMETER, TokenAt, USER_PARAMETER, UserAt,
};
use super::error::AdminRefusals;
use super::error::ErrorBody;
use super::query::QueryParams;
use super::users::{UserList, present};
use super::{AdminCaller, ApiError, ApiJson};
use crate::clock::now;
use crate::domain::{TokenKind, WithoutSecondFactor};
use crate::store::approvals::{ApprovalSettings, ApprovalSettingsChange};
use crate::store::resources::{self, Assignment, ResourceChanges, ResourceDetail, ResourceToken};
use crate::store::users::Listing;
use crate::store::{NewResource, Resource};
use crate::web::AppState;

/// A resource as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Resource)]
pub struct ResourceJson {
    id: i64,
    name: String,
    description: String,
    /// Failed attempts before a token is locked (3–10).
    fail_limit: i64,
    /// Whether users must give their password with the code.
    password_required: bool,
    /// Seconds after which a locked token unlocks itself; null: only an administrator unlocks.
    auto_unlock_seconds: Option<i64>,
    /// What a right password alone is worth for a user without an active second factor here:
    /// `refuse` (the default) or `password_only`.
    without_second_factor: WithoutSecondFactor,
    /// Approve in Telegram: whether users with a BOT token may approve a sign-in instead of
    /// typing a code, and how.
    approvals: ApprovalsJson,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    updated_at: i64,
}

impl From<Resource> for ResourceJson {
    fn from(resource: Resource) -> Self {
        ResourceJson {
            id: resource.id,
            name: resource.name,
            description: resource.description,
            fail_limit: resource.fail_limit,
            password_required: resource.password_required,
            auto_unlock_seconds: resource.auto_unlock_seconds,
            without_second_factor: resource.without_second_factor,
            approvals: resource.approvals.into(),
            created_at: resource.created_at,
            updated_at: resource.updated_at,
        }
    }
}

/// A resource's settings of Approve in Telegram.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResourceApprovals)]
pub struct ApprovalsJson {
    /// Users with a BOT token may approve a sign-in in Telegram (false by default).
    allowed: bool,
    /// The sign-in shows a two-digit number and the bot offers three; only the right one
    /// approves (true by default).
    number_matching: bool,
    /// "Deny — this wasn't me" locks the token (false by default).
    deny_locks: bool,
}

impl From<ApprovalSettings> for ApprovalsJson {
    fn from(settings: ApprovalSettings) -> Self {
        ApprovalsJson {
            allowed: settings.allowed,
            number_matching: settings.number_matching,
            deny_locks: settings.deny_locks,
        }
    }
}

/// Changes to a resource's settings of Approve in Telegram: an absent field stays as it is.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ResourceApprovalsChange)]
pub struct ApprovalsChangeJson {
    #[serde(default)]
    allowed: Option<bool>,
    #[serde(default)]
    number_matching: Option<bool>,
    #[serde(default)]
    deny_locks: Option<bool>,
}

impl From<ApprovalsChangeJson> for ApprovalSettingsChange {
    fn from(change: ApprovalsChangeJson) -> Self {
        ApprovalSettingsChange {
            allowed: change.allowed,
            number_matching: change.number_matching,
            deny_locks: change.deny_locks,
        }
    }
}

/// A resource with how many users and tokens are assigned to it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResourceDetail)]
pub struct ResourceDetailJson {
    #[serde(flatten)]
    resource: ResourceJson,
    users: i64,
    tokens: i64,
}

impl From<ResourceDetail> for ResourceDetailJson {
    fn from(detail: ResourceDetail) -> Self {
        ResourceDetailJson {
            resource: detail.resource.into(),
            users: detail.users,
            tokens: detail.tokens,
        }
    }
}

/// One page of resources.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ResourceList {
    items: Vec<ResourceJson>,
    /// How many resources match in all.
    total: i64,
    limit: i64,
    offset: i64,
}

/// A user named by id and login.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = UserRef)]
pub struct UserRefJson {
    id: i64,
    login: String,
}

/// A token assigned to a resource, with its user.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResourceToken)]
pub struct ResourceTokenJson {
    id: i64,
    serial: String,
    name: String,
    kind: TokenKind,
    user: Option<UserRefJson>,
}

impl From<ResourceToken> for ResourceTokenJson {
    fn from(token: ResourceToken) -> Self {
        ResourceTokenJson {
            id: token.id,
            serial: token.serial,
            name: token.name,
            kind: token.kind,
            user: token.user.map(|(id, login)| UserRefJson { id, login }),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateResource {
    /// 1–100 characters, not a number; unique regardless of case.
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// Failed attempts before a token is locked: 3–10, 5 when absent.
    #[serde(default)]
    fail_limit: Option<i64>,
    /// False when absent.
    #[serde(default)]
    password_required: Option<bool>,
    /// 60–86400 seconds; absent or null: only an administrator unlocks.
    #[serde(default)]
    auto_unlock_seconds: Option<i64>,
    /// Users without an active second factor: `refuse` (when absent) or `password_only`.
    #[serde(default)]
    without_second_factor: Option<WithoutSecondFactor>,
}

/// Changes to a resource: an absent field stays as it is.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateResource {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    fail_limit: Option<i64>,
    #[serde(default)]
    password_required: Option<bool>,
    /// 60–86400 seconds, or null: only an administrator unlocks.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    auto_unlock_seconds: Option<Option<i64>>,
    /// Users without an active second factor: `refuse` or `password_only`.
    #[serde(default)]
    without_second_factor: Option<WithoutSecondFactor>,
    /// Approve in Telegram; an absent field stays as it is.
    #[serde(default)]
    approvals: Option<ApprovalsChangeJson>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignUser {
    /// The user's id (number) or login (string).
    user: IdOrName,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignToken {
    /// The token's id (number) or serial (string).
    token: IdOrName,
}

// The rules live in the store so that the panel applies the same ones.
fn parse_resource_name(text: &str) -> Result<String, ApiError> {
    resources::parse_resource_name(text).map_err(|e| ApiError::field("name", e.0))
}

fn parse_description(text: &str) -> Result<String, ApiError> {
    resources::parse_description(text).map_err(|e| ApiError::field("description", e.0))
}

fn check_fail_limit(value: i64) -> Result<i64, ApiError> {
    resources::check_fail_limit(value).map_err(|e| ApiError::field("fail_limit", e.0))
}

fn check_auto_unlock(value: i64) -> Result<i64, ApiError> {
    resources::check_auto_unlock(value).map_err(|e| ApiError::field("auto_unlock_seconds", e.0))
}

/// Turns a violated uniqueness into a 409 naming the resource.
fn duplicate_name(name: &str) -> impl FnOnce(crate::store::StoreError) -> ApiError + '_ {
    move |error| {
        if error.is_unique_violation() {
            ApiError::Conflict(format!("a resource named {name:?} exists already"))
        } else {
            error.into()
        }
    }
}

/// The answer to an assignment: 204 whether it changed something or was so already.
fn assignment_response(outcome: Assignment) -> Result<HttpResponse, ApiError> {
    match outcome {
        Assignment::Changed | Assignment::Unchanged => Ok(HttpResponse::NoContent().finish()),
        Assignment::NoSuchResource => Err(ApiError::NotFound("resource")),
        Assignment::NoSuchUser => Err(ApiError::NotFound("user")),
        Assignment::NoSuchToken => Err(ApiError::NotFound("token")),
        Assignment::TokenWithoutUser => Err(ApiError::Conflict(
            "the token has no user; assign it to a user first, then to the resource".into(),
        )),
    }
}

/// Creates a resource.
#[utoipa::path(
    tag = "resources",
    request_body = CreateResource,
    responses(
        (status = 201, description = "The new resource", body = ResourceJson),
        (status = 400, description = "A field is missing or invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
        (status = 409, description = "The name is taken", body = ErrorBody),
    )
)]
#[post("/resources")]
pub(super) async fn create_resource(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<CreateResource>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let resource = NewResource {
        name: parse_resource_name(&body.name)?,
        description: parse_description(body.description.as_deref().unwrap_or(""))?,
        fail_limit: check_fail_limit(body.fail_limit.unwrap_or(resources::DEFAULT_FAIL_LIMIT))?,
        password_required: body.password_required.unwrap_or(false),
        auto_unlock_seconds: body
            .auto_unlock_seconds
            .map(check_auto_unlock)
            .transpose()?,
        without_second_factor: body.without_second_factor.unwrap_or_default(),
    };
    let name = resource.name.clone();
    let now = now();
    let resource = state
        .store
        .create_resource(resource, caller.audit(now, "resource.create", "ok"), now)
        .await
        .map_err(duplicate_name(&name))?;
    Ok(HttpResponse::Created().json(ResourceJson::from(resource)))
}

/// Lists resources, ordered by name, one page at a time.
#[utoipa::path(
    tag = "resources",
    params(
        ("search" = Option<String>, Query, description = "A piece of the name (any case)"),
        ("limit" = Option<i64>, Query, description = "At most this many resources (1–500, default 50)"),
        ("offset" = Option<i64>, Query, description = "Skip this many resources first"),
    ),
    responses(
        (status = 200, description = "One page of resources and how many match in all", body = ResourceList),
        (status = 400, description = "A parameter is invalid or unknown; `field` names it", body = ErrorBody),
        AdminRefusals,
    )
)]
#[get("/resources")]
pub(super) async fn list_resources(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = QueryParams::parse(&request, &["search", "limit", "offset"])?;
    let page = query.page()?;
    let (items, total) = state
        .store
        .list_resources(query.text("search").map(str::to_string), page)
        .await?;
    Ok(HttpResponse::Ok().json(ResourceList {
        items: items.into_iter().map(ResourceJson::from).collect(),
        total,
        limit: page.limit,
        offset: page.offset,
    }))
}

/// Shows a resource with how many users and tokens are assigned to it.
#[utoipa::path(
    tag = "resources",
    params(("resource" = String, Path, description = RESOURCE_PARAMETER)),
    responses(
        (status = 200, description = "The resource", body = ResourceDetailJson),
        AdminRefusals,
        (status = 404, description = "No such resource", body = ErrorBody),
    )
)]
#[get("/resources/{resource}")]
pub(super) async fn get_resource(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    resource: ResourceAt,
) -> Result<HttpResponse, ApiError> {
    let detail = state
        .store
        .resource_detail(resource.into_inner())
        .await?
        .ok_or(ApiError::NotFound("resource"))?;
    Ok(HttpResponse::Ok().json(ResourceDetailJson::from(detail)))
}

/// Changes a resource's settings.
#[utoipa::path(
    tag = "resources",
    params(("resource" = String, Path, description = RESOURCE_PARAMETER)),
    request_body = UpdateResource,
    responses(
        (status = 200, description = "The changed resource", body = ResourceJson),
        (status = 400, description = "A field is invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such resource", body = ErrorBody),
        (status = 409, description = "The new name is taken", body = ErrorBody),
    )
)]
#[patch("/resources/{resource}")]
pub(super) async fn update_resource(
    caller: AdminCaller,
    state: web::Data<AppState>,
    resource: ResourceAt,
    body: ApiJson<UpdateResource>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let changes = ResourceChanges {
        name: body.name.as_deref().map(parse_resource_name).transpose()?,
        description: body
            .description
            .as_deref()
            .map(parse_description)
            .transpose()?,
        fail_limit: body.fail_limit.map(check_fail_limit).transpose()?,
        password_required: body.password_required,
        auto_unlock_seconds: body
            .auto_unlock_seconds
            .map(|value| value.map(check_auto_unlock).transpose())
            .transpose()?,
        without_second_factor: body.without_second_factor,
        approvals: body.approvals.map(Into::into).unwrap_or_default(),
    };
    let name = changes.name.clone().unwrap_or_default();
    let now = now();
    let resource = state
        .store
        .update_resource(
            resource.into_inner(),
            changes,
            caller.audit(now, "resource.update", "ok"),
            now,
        )
        .await
        .map_err(duplicate_name(&name))?
        .ok_or(ApiError::NotFound("resource"))?;
    Ok(HttpResponse::Ok().json(ResourceJson::from(resource)))
}

/// Deletes a resource with its assignments, API keys and self-service settings.
#[utoipa::path(
    tag = "resources",
    params(("resource" = String, Path, description = RESOURCE_PARAMETER)),
    responses(
        (status = 204, description = "The resource is deleted"),
        AdminRefusals,
        (status = 404, description = "No such resource", body = ErrorBody),
    )
)]
#[delete("/resources/{resource}")]
pub(super) async fn delete_resource(
    caller: AdminCaller,
    state: web::Data<AppState>,
    resource: ResourceAt,
) -> Result<HttpResponse, ApiError> {
    let deleted = state
        .store
        .delete_resource(resource.into_inner(), caller.change("resource.delete"))
        .await?;
    if !deleted {
        return Err(ApiError::NotFound("resource"));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Assigns a user to a resource; assigning again changes nothing.
#[utoipa::path(
    tag = "resources",
    params(("resource" = String, Path, description = RESOURCE_PARAMETER)),
    request_body = AssignUser,
    responses(
        (status = 204, description = "The user is assigned"),
        (status = 400, description = "The body is invalid", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such resource or user", body = ErrorBody),
    )
)]
#[post("/resources/{resource}/users")]
pub(super) async fn assign_user(
    caller: AdminCaller,
    state: web::Data<AppState>,
    resource: ResourceAt,
    body: ApiJson<AssignUser>,
) -> Result<HttpResponse, ApiError> {
    let outcome = state
        .store
        .assign_user(
            resource.into_inner(),
            body.0.user,
            caller.change("resource.assign_user"),
        )
        .await?;
    assignment_response(outcome)
}

/// Takes a user, and their tokens, from a resource; a user who was not assigned stays so.
#[utoipa::path(
    tag = "resources",
    params(
        ("resource" = String, Path, description = RESOURCE_PARAMETER),
        ("user" = String, Path, description = USER_PARAMETER),
    ),
    responses(
        (status = 204, description = "The user is not assigned (any more)"),
        AdminRefusals,
        (status = 404, description = "No such resource or user", body = ErrorBody),
    )
)]
#[delete("/resources/{resource}/users/{user}")]
pub(super) async fn unassign_user(
    caller: AdminCaller,
    state: web::Data<AppState>,
    resource: ResourceAt,
    user: UserAt,
) -> Result<HttpResponse, ApiError> {
    let (resource, user) = (resource.into_inner(), user.into_inner());
    let outcome = state
        .store
        .unassign_user(resource, user, caller.change("resource.unassign_user"))
        .await?;
    assignment_response(outcome)
}

/// Lists the users assigned to a resource, ordered by login.
#[utoipa::path(
    tag = "resources",
    params(
        ("resource" = String, Path, description = RESOURCE_PARAMETER),
        ("limit" = Option<i64>, Query, description = "At most this many users (1–500, default 50)"),
        ("offset" = Option<i64>, Query, description = "Skip this many users first"),
    ),
    responses(
        (status = 200, description = "One page of the resource's users", body = UserList),
        (status = 400, description = "A parameter is invalid or unknown; `field` names it", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such resource", body = ErrorBody),
    )
)]
#[get("/resources/{resource}/users")]
pub(super) async fn resource_users(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    resource: ResourceAt,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let page = QueryParams::parse(&request, &["limit", "offset"])?.page()?;
    match state
        .store
        .resource_users(resource.into_inner(), page)
        .await?
    {
        Listing::Found { items, total } => {
            Ok(HttpResponse::Ok().json(UserList::of(&state, items, total, page).await?))
        }
        Listing::NoSuchResource => Err(ApiError::NotFound("resource")),
    }
}

/// Assigns a token with a user to a resource, and the user with it ("Assign → Token with
/// User"); a token without a user is refused.
#[utoipa::path(
    tag = "resources",
    params(("resource" = String, Path, description = RESOURCE_PARAMETER)),
    request_body = AssignToken,
    responses(
        (status = 204, description = "The token and its user are assigned"),
        (status = 400, description = "The body is invalid", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such resource or token", body = ErrorBody),
        (status = 409, description = "The token has no user", body = ErrorBody),
    )
)]
#[post("/resources/{resource}/tokens")]
pub(super) async fn assign_token(
    caller: AdminCaller,
    state: web::Data<AppState>,
    resource: ResourceAt,
    body: ApiJson<AssignToken>,
) -> Result<HttpResponse, ApiError> {
    let outcome = state
        .store
        .assign_token(
            resource.into_inner(),
            body.0.token,
            caller.change("resource.assign_token"),
        )
        .await?;
    assignment_response(outcome)
}

/// Takes a token from a resource; its user stays assigned.
#[utoipa::path(
    tag = "resources",
    params(
        ("resource" = String, Path, description = RESOURCE_PARAMETER),
        ("token" = String, Path, description = TOKEN_PARAMETER),
    ),
    responses(
        (status = 204, description = "The token is not assigned (any more)"),
        AdminRefusals,
        (status = 404, description = "No such resource or token", body = ErrorBody),
    )
)]
#[delete("/resources/{resource}/tokens/{token}")]
pub(super) async fn unassign_token(
    caller: AdminCaller,
    state: web::Data<AppState>,
    resource: ResourceAt,
    token: TokenAt,
) -> Result<HttpResponse, ApiError> {
    let (resource, token) = (resource.into_inner(), token.into_inner());
    let outcome = state
        .store
        .unassign_token(resource, token, caller.change("resource.unassign_token"))
        .await?;
    assignment_response(outcome)
}

/// Lists the tokens assigned to a resource, with their users, ordered by serial.
#[utoipa::path(
    tag = "resources",
    params(("resource" = String, Path, description = RESOURCE_PARAMETER)),
    responses(
        (status = 200, description = "The resource's tokens", body = Vec<ResourceTokenJson>),
        AdminRefusals,
        (status = 404, description = "No such resource", body = ErrorBody),
    )
)]
#[get("/resources/{resource}/tokens")]
pub(super) async fn resource_tokens(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    resource: ResourceAt,
) -> Result<HttpResponse, ApiError> {
    let tokens = state
        .store
        .resource_tokens(resource.into_inner())
        .await?
        .ok_or(ApiError::NotFound("resource"))?;
    Ok(HttpResponse::Ok().json(
        tokens
            .into_iter()
            .map(ResourceTokenJson::from)
            .collect::<Vec<_>>(),
    ))
}
