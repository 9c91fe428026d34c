//! Managing directories through the API (admin keys only): where the servers are, how otpgate
//! binds and searches, which attributes say what; Test connection and Preview on settings not
//! yet saved or on a saved directory; a person of a directory made an otpgate user. The
//! service account's password is write-only. The rules are `directories`'.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};

use super::address::{DIRECTORY_PARAMETER, DirectoryAt};
use super::error::{AdminRefusals, ErrorBody};
use super::query::QueryParams;
use super::{AdminCaller, ApiError, ApiJson};
use crate::clock::now;
use crate::directories::sync::{self, SyncReport};
use crate::directories::{self, Checked, DirectoryInput, LinkError, Previewed};
use crate::domain::IdOrName;
use crate::ldap::{Attempt, Directory, Person};
use crate::store::directories::Directory as Stored;
use crate::store::directory_sync::{GroupMapping, SyncResult};
use crate::web::AppState;

/// A directory as the API shows it; the service account's password is never shown.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Directory)]
pub struct DirectoryJson {
    id: i64,
    name: String,
    /// `active_directory` or `openldap`.
    kind: String,
    /// In failover order.
    urls: Vec<String>,
    /// `starttls`, `ldaps` or `none`.
    tls: String,
    /// The CA certificate(s) in PEM; null: the system's roots.
    ca_pem: Option<String>,
    bind_dn: String,
    base_dn: String,
    user_filter: String,
    login_attributes: Vec<String>,
    id_attribute: String,
    first_name_attribute: String,
    last_name_attribute: String,
    email_attribute: String,
    mobile_attribute: String,
    /// A group's DN or a filter; null: everyone the user filter finds.
    user_group: Option<String>,
    connect_timeout_seconds: i64,
    search_timeout_seconds: i64,
    sync_interval_minutes: i64,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    updated_at: i64,
    /// The last sync (scheduled or Sync now); null before the first.
    last_sync: Option<SyncJson>,
}

impl DirectoryJson {
    /// The directory with its last sync.
    async fn shown(state: &AppState, directory: Stored) -> Result<DirectoryJson, ApiError> {
        let last_sync = state
            .store
            .last_sync(directory.id)
            .await?
            .map(SyncJson::from);
        Ok(DirectoryJson {
            last_sync,
            ..DirectoryJson::from(directory)
        })
    }
}

impl From<Stored> for DirectoryJson {
    fn from(directory: Stored) -> Self {
        let fields = directory.fields;
        DirectoryJson {
            id: directory.id,
            name: fields.name,
            kind: fields.kind,
            urls: fields.urls,
            tls: fields.tls,
            ca_pem: fields.ca_pem,
            bind_dn: fields.bind_dn,
            base_dn: fields.base_dn,
            user_filter: fields.user_filter,
            login_attributes: fields.login_attributes,
            id_attribute: fields.id_attribute,
            first_name_attribute: fields.first_name_attribute,
            last_name_attribute: fields.last_name_attribute,
            email_attribute: fields.email_attribute,
            mobile_attribute: fields.mobile_attribute,
            user_group: fields.user_group,
            connect_timeout_seconds: fields.connect_timeout_seconds,
            search_timeout_seconds: fields.search_timeout_seconds,
            sync_interval_minutes: fields.sync_interval_minutes,
            created_at: directory.created_at,
            updated_at: directory.updated_at,
            last_sync: None,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DirectoryList {
    items: Vec<DirectoryJson>,
}

/// What a test of the settings found.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DirectoryTest {
    /// The service account bound and the base DN was read.
    ok: bool,
    /// The address that answered.
    url: Option<String>,
    /// What happened, in words.
    message: String,
    /// The addresses that did not answer (or failed), in order, with their reasons.
    attempts: Vec<Attempt>,
}

/// What a preview found.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DirectoryPreview {
    ok: bool,
    url: Option<String>,
    message: String,
    /// How many people the settings find, through every page of the search.
    count: usize,
    /// The first of them (at most 20).
    people: Vec<Person>,
    attempts: Vec<Attempt>,
}

impl From<Checked> for DirectoryTest {
    fn from(checked: Checked) -> Self {
        DirectoryTest {
            ok: checked.ok,
            url: checked.url,
            message: checked.message,
            attempts: checked.attempts,
        }
    }
}

impl From<Previewed> for DirectoryPreview {
    fn from(previewed: Previewed) -> Self {
        let checked = previewed.checked;
        DirectoryPreview {
            ok: checked.ok,
            url: checked.url,
            message: checked.message,
            count: previewed.count,
            people: previewed.people,
            attempts: checked.attempts,
        }
    }
}

async fn test_with(
    caller: &AdminCaller,
    state: &AppState,
    directory: Directory,
) -> Result<HttpResponse, ApiError> {
    let checked = directories::test(
        &state.store,
        &directory,
        caller.audit(now(), "directory.test", "ok"),
    )
    .await?;
    Ok(HttpResponse::Ok().json(DirectoryTest::from(checked)))
}

async fn preview_with(
    caller: &AdminCaller,
    state: &AppState,
    directory: Directory,
) -> Result<HttpResponse, ApiError> {
    let previewed = directories::preview(
        &state.store,
        &directory,
        caller.audit(now(), "directory.preview", "ok"),
    )
    .await?;
    Ok(HttpResponse::Ok().json(DirectoryPreview::from(previewed)))
}

/// Creates a directory: `kind` chooses the preset of the fields not sent.
#[utoipa::path(
    tag = "directories",
    request_body = DirectoryInput,
    responses(
        (status = 201, description = "The new directory (without its password)", body = DirectoryJson),
        (status = 400, description = "A field is missing or invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
        (status = 409, description = "The name is taken", body = ErrorBody),
    )
)]
#[post("/directories")]
pub(super) async fn create_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<DirectoryInput>,
) -> Result<HttpResponse, ApiError> {
    let directory = directories::create(
        &state.store,
        &state.keys,
        body.0,
        caller.change("directory.create"),
        now(),
    )
    .await?;
    Ok(HttpResponse::Created().json(DirectoryJson::from(directory)))
}

/// Lists the directories by name.
#[utoipa::path(
    tag = "directories",
    responses(
        (status = 200, description = "Every directory (without passwords)", body = DirectoryList),
        AdminRefusals,
    )
)]
#[get("/directories")]
pub(super) async fn list_directories(
    _admin: AdminCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let directories = state.store.directories().await?;
    let mut last: std::collections::HashMap<i64, SyncJson> = state
        .store
        .directory_sync_states()
        .await?
        .into_iter()
        .filter_map(|sync| Some((sync.directory_id, SyncJson::from(sync.last?))))
        .collect();
    Ok(HttpResponse::Ok().json(DirectoryList {
        items: directories
            .into_iter()
            .map(|directory| DirectoryJson {
                last_sync: last.remove(&directory.id),
                ..DirectoryJson::from(directory)
            })
            .collect(),
    }))
}

/// Shows a directory.
#[utoipa::path(
    tag = "directories",
    params(("directory" = String, Path, description = DIRECTORY_PARAMETER)),
    responses(
        (status = 200, description = "The directory (without its password)", body = DirectoryJson),
        AdminRefusals,
        (status = 404, description = "No such directory", body = ErrorBody),
    )
)]
#[get("/directories/{directory}")]
pub(super) async fn get_directory(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
) -> Result<HttpResponse, ApiError> {
    let directory = state
        .store
        .directory(directory.into_inner())
        .await?
        .ok_or(ApiError::NotFound("directory"))?;
    Ok(HttpResponse::Ok().json(DirectoryJson::shown(&state, directory).await?))
}

/// Changes a directory: the fields sent; a new `bind_password` replaces the old one.
#[utoipa::path(
    tag = "directories",
    params(("directory" = String, Path, description = DIRECTORY_PARAMETER)),
    request_body = DirectoryInput,
    responses(
        (status = 200, description = "The changed directory (without its password)", body = DirectoryJson),
        (status = 400, description = "A field is invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such directory", body = ErrorBody),
        (status = 409, description = "The new name is taken", body = ErrorBody),
    )
)]
#[patch("/directories/{directory}")]
pub(super) async fn update_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
    body: ApiJson<DirectoryInput>,
) -> Result<HttpResponse, ApiError> {
    let directory = directories::update(
        &state.store,
        &state.keys,
        directory.into_inner(),
        body.0,
        caller.change("directory.update"),
        now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(DirectoryJson::shown(&state, directory).await?))
}

/// Deletes a directory no user comes from.
#[utoipa::path(
    tag = "directories",
    params(("directory" = String, Path, description = DIRECTORY_PARAMETER)),
    responses(
        (status = 204, description = "Deleted"),
        AdminRefusals,
        (status = 404, description = "No such directory", body = ErrorBody),
        (status = 409, description = "Users come from the directory", body = ErrorBody),
    )
)]
#[delete("/directories/{directory}")]
pub(super) async fn delete_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
) -> Result<HttpResponse, ApiError> {
    directories::delete(
        &state.store,
        directory.into_inner(),
        caller.change("directory.delete"),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Test connection with settings not saved (`kind` and `bind_password` required): the
/// service account binds at the first address that answers and the base DN is read.
#[utoipa::path(
    tag = "directories",
    request_body = DirectoryInput,
    responses(
        (status = 200, description = "What the test found; `ok` says whether it worked", body = DirectoryTest),
        (status = 400, description = "A field is missing or invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
    )
)]
#[post("/directories/test")]
pub(super) async fn test_unsaved_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<DirectoryInput>,
) -> Result<HttpResponse, ApiError> {
    let directory = directories::unsaved(body.0)?;
    test_with(&caller, &state, directory).await
}

/// Preview with settings not saved: how many people they find and the first 20.
#[utoipa::path(
    tag = "directories",
    request_body = DirectoryInput,
    responses(
        (status = 200, description = "What the search found; `ok` says whether it worked", body = DirectoryPreview),
        (status = 400, description = "A field is missing or invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
    )
)]
#[post("/directories/preview")]
pub(super) async fn preview_unsaved_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<DirectoryInput>,
) -> Result<HttpResponse, ApiError> {
    let directory = directories::unsaved(body.0)?;
    preview_with(&caller, &state, directory).await
}

/// Test connection with a saved directory's settings.
#[utoipa::path(
    tag = "directories",
    params(("directory" = String, Path, description = DIRECTORY_PARAMETER)),
    responses(
        (status = 200, description = "What the test found; `ok` says whether it worked", body = DirectoryTest),
        AdminRefusals,
        (status = 404, description = "No such directory", body = ErrorBody),
    )
)]
#[post("/directories/{directory}/test")]
pub(super) async fn test_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
) -> Result<HttpResponse, ApiError> {
    let directory = directories::saved(&state.store, &state.keys, directory.into_inner()).await?;
    test_with(&caller, &state, directory).await
}

/// Preview with a saved directory's settings.
#[utoipa::path(
    tag = "directories",
    params(("directory" = String, Path, description = DIRECTORY_PARAMETER)),
    responses(
        (status = 200, description = "What the search found; `ok` says whether it worked", body = DirectoryPreview),
        AdminRefusals,
        (status = 404, description = "No such directory", body = ErrorBody),
    )
)]
#[post("/directories/{directory}/preview")]
pub(super) async fn preview_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
) -> Result<HttpResponse, ApiError> {
    let directory = directories::saved(&state.store, &state.keys, directory.into_inner()).await?;
    preview_with(&caller, &state, directory).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPerson {
    /// The person's login in the directory (any of its login attributes).
    login: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AddedPerson {
    /// The otpgate user linked to the person's entry.
    user_id: i64,
    /// False when the person was an otpgate user already.
    created: bool,
}

/// Makes a person of the directory an otpgate user, linked to their entry by its stable id:
/// their password stays in the directory.
#[utoipa::path(
    tag = "directories",
    params(("directory" = String, Path, description = DIRECTORY_PARAMETER)),
    request_body = AddPerson,
    responses(
        (status = 201, description = "The new user", body = AddedPerson),
        (status = 200, description = "The person was a user already", body = AddedPerson),
        (status = 400, description = "The entry cannot become a user (no login, no stable id)", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such directory, or no such person in it", body = ErrorBody),
        (status = 409, description = "A local user has the login", body = ErrorBody),
        (status = 502, description = "The directory did not answer", body = ErrorBody),
    )
)]
#[post("/directories/{directory}/users")]
pub(super) async fn add_directory_user(
    caller: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
    body: ApiJson<AddPerson>,
) -> Result<HttpResponse, ApiError> {
    let added = directories::add_person(
        &state.store,
        &state.keys,
        directory.into_inner(),
        &body.0.login,
        caller.change("directory.add_user"),
        now(),
    )
    .await;
    match added {
        Ok((user_id, true)) => Ok(HttpResponse::Created().json(AddedPerson {
            user_id,
            created: true,
        })),
        Ok((user_id, false)) => Ok(HttpResponse::Ok().json(AddedPerson {
            user_id,
            created: false,
        })),
        Err(LinkError::Rule(error)) => Err(error.into()),
        Err(LinkError::Directory(error)) => Err(ApiError::Directory(error.to_string())),
    }
}

/// Sync now: the directory's people read through every page and otpgate's users kept in step
/// (created, updated, renamed, disabled, enabled), then its group → resource mappings. The
/// answer is the sync's result; a directory that does not answer is a result with `ok`
/// false and its reason, and changes nothing. So is a sync that finds no one and would disable
/// anyone, or would disable more than 10 users and more than a fifth of the directory's
/// enabled users (a filter typed wrong looks like everyone leaving): it changes nothing unless
/// `allow_mass_disable=true` says the administrator checked. One sync at a time per directory:
/// while one runs (Sync now or the scheduler's), another is refused with 409.
#[utoipa::path(
    tag = "directories",
    params(
        ("directory" = String, Path, description = DIRECTORY_PARAMETER),
        ("allow_mass_disable" = Option<bool>, Query, description = "`true`: the sync may disable as many users as left the directory, however many (default `false`)"),
    ),
    responses(
        (status = 200, description = "What the sync did; `ok` says whether the directory answered", body = SyncReportJson),
        AdminRefusals,
        (status = 404, description = "No such directory", body = ErrorBody),
        (status = 409, description = "A sync of this directory is running", body = ErrorBody),
    )
)]
#[post("/directories/{directory}/sync")]
pub(super) async fn sync_directory(
    caller: AdminCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
    directory: DirectoryAt,
) -> Result<HttpResponse, ApiError> {
    let query = QueryParams::parse(&request, &["allow_mass_disable"])?;
    let allow_mass_disable = query.boolean("allow_mass_disable")?.unwrap_or(false);
    let report = sync::sync_now(
        &state.store,
        &state.keys,
        &state.directory_syncs,
        directory.into_inner(),
        allow_mass_disable,
        caller.change("directory.sync"),
        now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(SyncReportJson::from(report)))
}

/// A directory's sync as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DirectorySync)]
pub struct SyncJson {
    /// Unix seconds.
    started_at: i64,
    /// Unix seconds.
    finished_at: i64,
    /// The directory answered and its people were read.
    ok: bool,
    /// Why it failed, in words; null when it worked.
    error: Option<String>,
    duration_ms: i64,
    /// The people the directory's settings found.
    people: i64,
    created: i64,
    updated: i64,
    disabled: i64,
    enabled: i64,
    /// Logins another user (local, or of another directory) has already: not linked.
    conflicts: i64,
    /// Entries without a stable id or with a login otpgate cannot take.
    skipped: i64,
    /// Assignments the group → resource mappings made and took away.
    assigned: i64,
    unassigned: i64,
    /// Unix seconds of the last sync that worked (this one or an earlier one).
    last_success_at: Option<i64>,
}

impl From<SyncResult> for SyncJson {
    fn from(result: SyncResult) -> Self {
        SyncJson {
            started_at: result.started_at,
            finished_at: result.finished_at,
            ok: result.ok,
            error: result.error,
            duration_ms: result.duration_ms,
            people: result.people,
            created: result.created,
            updated: result.updated,
            disabled: result.disabled,
            enabled: result.enabled,
            conflicts: result.conflicts,
            skipped: result.skipped,
            assigned: result.assigned,
            unassigned: result.unassigned,
            last_success_at: result.last_success_at,
        }
    }
}

/// What a sync did, and the conflicts and skipped entries it met, named.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DirectorySyncReport)]
pub struct SyncReportJson {
    #[serde(flatten)]
    result: SyncJson,
    /// Each login not linked because another user has it, with its entry (the first 50).
    conflict_details: Vec<String>,
    /// Each entry left alone, with why (the first 50).
    skipped_details: Vec<String>,
}

impl From<SyncReport> for SyncReportJson {
    fn from(report: SyncReport) -> Self {
        SyncReportJson {
            result: SyncJson::from(report.result),
            conflict_details: report.conflict_details,
            skipped_details: report.skipped_details,
        }
    }
}

/// A group → resource mapping: the people of the group are assigned to the resource by each
/// sync, and the assignments it made are taken away when they leave the group.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GroupMappingJson {
    id: i64,
    /// A group's DN (Active Directory: nested groups too) or a filter in parentheses.
    group: String,
    resource_id: i64,
    resource_name: String,
    /// How many assignments the mapping holds now.
    assigned: i64,
    /// Unix seconds.
    created_at: i64,
}

impl From<GroupMapping> for GroupMappingJson {
    fn from(mapping: GroupMapping) -> Self {
        GroupMappingJson {
            id: mapping.id,
            group: mapping.group,
            resource_id: mapping.resource_id,
            resource_name: mapping.resource_name,
            assigned: mapping.assigned,
            created_at: mapping.created_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GroupMappingList {
    items: Vec<GroupMappingJson>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroupMapping {
    /// A group's DN, or a filter in parentheses (RFC 4515).
    group: String,
    /// The resource's id (number) or name (string).
    resource: IdOrName,
}

/// Lists a directory's group → resource mappings.
#[utoipa::path(
    tag = "directories",
    params(("directory" = String, Path, description = DIRECTORY_PARAMETER)),
    responses(
        (status = 200, description = "The mappings, oldest first", body = GroupMappingList),
        AdminRefusals,
        (status = 404, description = "No such directory", body = ErrorBody),
    )
)]
#[get("/directories/{directory}/groups")]
pub(super) async fn list_group_mappings(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
) -> Result<HttpResponse, ApiError> {
    let mappings = sync::mappings(&state.store, directory.into_inner()).await?;
    Ok(HttpResponse::Ok().json(GroupMappingList {
        items: mappings.into_iter().map(GroupMappingJson::from).collect(),
    }))
}

/// Maps a group of the directory to a resource: from the next sync its people are assigned
/// to the resource, and taken away again when they leave the group. Assignments made by
/// hand are never taken away.
#[utoipa::path(
    tag = "directories",
    params(("directory" = String, Path, description = DIRECTORY_PARAMETER)),
    request_body = NewGroupMapping,
    responses(
        (status = 201, description = "The new mapping", body = GroupMappingJson),
        (status = 400, description = "The group or the resource is invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such directory", body = ErrorBody),
        (status = 409, description = "The group is mapped to the resource already", body = ErrorBody),
    )
)]
#[post("/directories/{directory}/groups")]
pub(super) async fn add_group_mapping(
    caller: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
    body: ApiJson<NewGroupMapping>,
) -> Result<HttpResponse, ApiError> {
    let NewGroupMapping { group, resource } = body.0;
    let mapping = sync::add_mapping(
        &state.store,
        directory.into_inner(),
        &group,
        resource,
        caller.change("directory.group_add"),
        now(),
    )
    .await?;
    Ok(HttpResponse::Created().json(GroupMappingJson::from(mapping)))
}

/// Removes a group → resource mapping, and the assignments it made (those made by hand, or
/// held by another mapping too, stay).
#[utoipa::path(
    tag = "directories",
    params(
        ("directory" = String, Path, description = DIRECTORY_PARAMETER),
        ("mapping" = i64, Path, description = "The mapping's id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        AdminRefusals,
        (status = 404, description = "No such directory or mapping", body = ErrorBody),
    )
)]
#[delete("/directories/{directory}/groups/{mapping}")]
pub(super) async fn remove_group_mapping(
    caller: AdminCaller,
    state: web::Data<AppState>,
    directory: DirectoryAt,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mapping_id = request
        .match_info()
        .get("mapping")
        .filter(|text| text.bytes().all(|byte| byte.is_ascii_digit()))
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or(ApiError::NotFound("group mapping"))?;
    sync::remove_mapping(
        &state.store,
        directory.into_inner(),
        mapping_id,
        caller.change("directory.group_remove"),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
