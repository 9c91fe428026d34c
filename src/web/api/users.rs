//! Managing users through the API (admin keys only): create, list with filters, show, change,
//! set or clear the password, enable, disable, delete.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use serde::{Deserialize, Deserializer, Serialize};

use super::address::{USER_PARAMETER, UserAt};
use super::error::AdminRefusals;
use super::error::ErrorBody;
use super::query::QueryParams;
use super::{AdminCaller, ApiError, ApiJson};
use crate::clock::now;
use crate::domain::{self, IdOrName, TokenKind, TokenState};
use crate::notices;
use crate::store::users::{Listing, Page, UserChanges, UserDetail, UserDraft, UserFilter};
use crate::store::{NewUser, User};
use crate::web::AppState;

/// Tells an absent field (outer `None`) from an explicit `null` (`Some(None)`); use with
/// `#[serde(default, deserialize_with = "present")]`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A user as the API shows it; the password hash never leaves the store.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserJson {
    id: i64,
    login: String,
    first_name: String,
    last_name: String,
    email: Option<String>,
    /// E.164.
    phone: Option<String>,
    has_password: bool,
    enabled: bool,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    updated_at: i64,
    /// The directory the user comes from (their login, names, email and phone are its, and
    /// their password is checked by it); null for a user of otpgate's own.
    directory: Option<String>,
}

impl UserJson {
    /// A user as shown, with the name of the directory they come from (None for a local user).
    fn new(user: User, directory: Option<String>) -> Self {
        UserJson {
            id: user.id,
            login: user.login,
            first_name: user.first_name,
            last_name: user.last_name,
            email: user.email,
            phone: user.phone,
            has_password: user.password_hash.is_some(),
            enabled: user.enabled,
            created_at: user.created_at,
            updated_at: user.updated_at,
            directory,
        }
    }

    /// A user as shown, with the directory they come from looked up.
    async fn of(state: &AppState, user: User) -> Result<Self, ApiError> {
        let directory = crate::directories::keeper(&state.store, user.id).await?;
        Ok(UserJson::new(user, directory))
    }
}

/// One page of users.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserList {
    items: Vec<UserJson>,
    /// How many users match in all.
    total: i64,
    limit: i64,
    offset: i64,
}

impl UserList {
    /// One page of users, each with the directory they come from (one lookup for the page).
    pub(super) async fn of(
        state: &AppState,
        items: Vec<User>,
        total: i64,
        page: Page,
    ) -> Result<UserList, ApiError> {
        let mut directories: HashMap<i64, String> = state
            .store
            .directory_names_of(items.iter().map(|user| user.id).collect())
            .await?
            .into_iter()
            .collect();
        Ok(UserList {
            items: items
                .into_iter()
                .map(|user| {
                    let directory = directories.remove(&user.id);
                    UserJson::new(user, directory)
                })
                .collect(),
            total,
            limit: page.limit,
            offset: page.offset,
        })
    }
}

/// A token of a user, in short.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = UserToken)]
pub struct UserTokenJson {
    id: i64,
    serial: String,
    name: String,
    kind: TokenKind,
    state: TokenState,
    enabled: bool,
}

/// A resource named by id and name.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResourceRef)]
pub struct ResourceRefJson {
    id: i64,
    name: String,
}

/// A user with their tokens and the resources they are assigned to.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = UserDetail)]
pub struct UserDetailJson {
    #[serde(flatten)]
    user: UserJson,
    tokens: Vec<UserTokenJson>,
    resources: Vec<ResourceRefJson>,
}

impl UserDetailJson {
    /// The user's detail, with the name of the directory they come from (None for a local user).
    fn new(detail: UserDetail, directory: Option<String>) -> Self {
        UserDetailJson {
            user: UserJson::new(detail.user, directory),
            tokens: detail
                .tokens
                .into_iter()
                .map(|t| UserTokenJson {
                    id: t.id,
                    serial: t.serial,
                    name: t.name,
                    kind: t.kind,
                    state: t.state,
                    enabled: t.enabled,
                })
                .collect(),
            resources: detail
                .resources
                .into_iter()
                .map(|r| ResourceRefJson {
                    id: r.id,
                    name: r.name,
                })
                .collect(),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// 1–128 characters, not a number, no control or invisible format characters; kept in
    /// Unicode NFC, unique regardless of case (full case folding) and normal form.
    login: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    /// International form; stored as E.164.
    #[serde(default)]
    phone: Option<String>,
    /// At least 8 characters; without one the user has no password.
    #[serde(default)]
    password: Option<String>,
    /// True when absent.
    #[serde(default)]
    enabled: Option<bool>,
}

/// Changes to a user: an absent field stays as it is; `null` clears email and phone.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// A new login (renames the user).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    login: Option<Option<String>>,
    /// `null` empties it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    first_name: Option<Option<String>>,
    /// `null` empties it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    last_name: Option<Option<String>>,
    /// `null` removes the address.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
    /// `null` removes the number.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    phone: Option<Option<String>>,
    #[serde(default)]
    enabled: Option<bool>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The new password (at least 8 characters), or `null` to remove it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = true)]
    password: Option<Option<String>>,
}

fn parse_login(field: &'static str, text: &str) -> Result<String, ApiError> {
    Ok(domain::login_field(field, text)?)
}

fn parse_person_name(field: &'static str, text: &str) -> Result<String, ApiError> {
    Ok(domain::person_name(field, text)?)
}

fn parse_email(text: &str) -> Result<String, ApiError> {
    Ok(domain::email_field(text)?)
}

fn parse_phone(text: &str) -> Result<String, ApiError> {
    Ok(domain::phone_field(text)?)
}

/// Checks a password's length and hashes it through the password gate.
async fn hash_new_password(state: &AppState, password: String) -> Result<String, ApiError> {
    domain::check_new_password(&password)?;
    Ok(state.passwords.hash(password).await?)
}

/// Turns a violated uniqueness into a 409 naming the login.
fn duplicate_login(login: &str) -> impl FnOnce(crate::store::StoreError) -> ApiError + '_ {
    move |error| {
        if error.is_unique_violation() {
            ApiError::Conflict(format!("a user with the login {login:?} exists already"))
        } else {
            error.into()
        }
    }
}

/// Creates a user.
#[utoipa::path(
    tag = "users",
    request_body = CreateUser,
    responses(
        (status = 201, description = "The new user", body = UserJson),
        (status = 400, description = "A field is missing or invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
        (status = 409, description = "The login is taken", body = ErrorBody),
    )
)]
#[post("/users")]
pub(super) async fn create_user(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let login = parse_login("login", &body.login)?;
    let first_name = parse_person_name("first_name", body.first_name.as_deref().unwrap_or(""))?;
    let last_name = parse_person_name("last_name", body.last_name.as_deref().unwrap_or(""))?;
    let email = body.email.as_deref().map(parse_email).transpose()?;
    let phone = body.phone.as_deref().map(parse_phone).transpose()?;
    let password_hash = match body.password {
        Some(password) => Some(hash_new_password(&state, password).await?),
        None => None,
    };
    let now = now();
    let draft = UserDraft {
        user: NewUser {
            login: login.clone(),
            first_name,
            last_name,
            email,
            phone,
            password_hash,
        },
        enabled: body.enabled.unwrap_or(true),
    };
    let user = state
        .store
        .create_user(draft, caller.audit(now, "user.create", "ok"), now)
        .await
        .map_err(duplicate_login(&login))?;
    Ok(HttpResponse::Created().json(UserJson::new(user, None)))
}

/// Lists users, ordered by login, one page at a time.
#[utoipa::path(
    tag = "users",
    params(
        ("search" = Option<String>, Query, description = "A piece of the login, first or last name, email or phone (any case)"),
        ("enabled" = Option<bool>, Query, description = "Only enabled (true) or disabled (false) users"),
        ("resource" = Option<String>, Query, description = "Only users assigned to this resource: its id (digits) or its name"),
        ("has_token" = Option<bool>, Query, description = "Only users with (true) or without (false) a token"),
        ("limit" = Option<i64>, Query, description = "At most this many users (1–500, default 50)"),
        ("offset" = Option<i64>, Query, description = "Skip this many users first"),
    ),
    responses(
        (status = 200, description = "One page of users and how many match in all", body = UserList),
        (status = 400, description = "A parameter is invalid or unknown; `field` names it", body = ErrorBody),
        AdminRefusals,
    )
)]
#[get("/users")]
pub(super) async fn list_users(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = QueryParams::parse(
        &request,
        &[
            "search",
            "enabled",
            "resource",
            "has_token",
            "limit",
            "offset",
        ],
    )?;
    let page = query.page()?;
    let filter = UserFilter {
        search: query.text("search").map(str::to_string),
        enabled: query.boolean("enabled")?,
        resource: query.named("resource", "name")?,
        has_token: query.boolean("has_token")?,
    };
    match state.store.list_users(filter, page).await? {
        Listing::Found { items, total } => {
            Ok(HttpResponse::Ok().json(UserList::of(&state, items, total, page).await?))
        }
        Listing::NoSuchResource => Err(ApiError::field("resource", "no such resource")),
    }
}

/// Shows a user with their tokens and resources.
#[utoipa::path(
    tag = "users",
    params(("user" = String, Path, description = USER_PARAMETER)),
    responses(
        (status = 200, description = "The user", body = UserDetailJson),
        AdminRefusals,
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
#[get("/users/{user}")]
pub(super) async fn get_user(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    user: UserAt,
) -> Result<HttpResponse, ApiError> {
    let detail = state
        .store
        .user_detail(user.into_inner())
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let directory = crate::directories::keeper(&state.store, detail.user.id).await?;
    Ok(HttpResponse::Ok().json(UserDetailJson::new(detail, directory)))
}

/// Changes a user's fields. A directory user's login, name, email and phone come from the
/// directory and are refused here (400 naming the field and the directory); enabled is theirs.
#[utoipa::path(
    tag = "users",
    params(("user" = String, Path, description = USER_PARAMETER)),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The changed user", body = UserJson),
        (status = 400, description = "A field is invalid; `field` names it", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "The new login is taken", body = ErrorBody),
    )
)]
#[patch("/users/{user}")]
pub(super) async fn update_user(
    caller: AdminCaller,
    state: web::Data<AppState>,
    user: UserAt,
    body: ApiJson<UpdateUser>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let login = match body.login {
        None => None,
        Some(None) => return Err(ApiError::field("login", "a user must have a login")),
        Some(Some(login)) => Some(parse_login("login", &login)?),
    };
    let name = |field: &'static str, value: Option<Option<String>>| {
        value
            .map(|v| parse_person_name(field, v.as_deref().unwrap_or("")))
            .transpose()
    };
    let changes = UserChanges {
        first_name: name("first_name", body.first_name)?,
        last_name: name("last_name", body.last_name)?,
        email: body
            .email
            .map(|v| v.as_deref().map(parse_email).transpose())
            .transpose()?,
        phone: body
            .phone
            .map(|v| v.as_deref().map(parse_phone).transpose())
            .transpose()?,
        enabled: body.enabled,
        password_hash: None,
        login: login.clone(),
    };
    let now = now();
    let user = user.into_inner();
    crate::directories::refuse_directory_changes(&state.store, user.clone(), &changes).await?;
    let mut entry = caller.audit(now, "user.update", "ok");
    entry.notice = notices::of_user_update_at(
        &state.store,
        &state.keys,
        &user,
        &changes,
        notices::API,
        now,
    )
    .await?;
    let user = state
        .store
        .update_user(user, changes, entry, now)
        .await
        .map_err(duplicate_login(login.as_deref().unwrap_or_default()))?
        .ok_or(ApiError::NotFound("user"))?;
    state.delivery.wake();
    Ok(HttpResponse::Ok().json(UserJson::of(&state, user).await?))
}

/// Sets a user's password, or removes it with `null`.
#[utoipa::path(
    tag = "users",
    params(("user" = String, Path, description = USER_PARAMETER)),
    request_body = SetPassword,
    responses(
        (status = 204, description = "The password is set or removed"),
        (status = 400, description = "The password is missing or too short", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
#[put("/users/{user}/password")]
pub(super) async fn set_password(
    caller: AdminCaller,
    state: web::Data<AppState>,
    user: UserAt,
    body: ApiJson<SetPassword>,
) -> Result<HttpResponse, ApiError> {
    let password_hash = match body.0.password {
        None => {
            return Err(ApiError::field(
                "password",
                "required: a new password, or null to remove it",
            ));
        }
        Some(None) => None,
        Some(Some(password)) => {
            crate::directories::refuse_local_password(&state.store, user.0.clone()).await?;
            Some(hash_new_password(&state, password).await?)
        }
    };
    let changes = UserChanges {
        password_hash: Some(password_hash),
        ..UserChanges::default()
    };
    let now = now();
    let user = user.into_inner();
    let mut entry = caller.audit(now, "user.password", "ok");
    entry.notice = notices::of_user_update_at(
        &state.store,
        &state.keys,
        &user,
        &changes,
        notices::API,
        now,
    )
    .await?;
    state
        .store
        .update_user(user, changes, entry, now)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    state.delivery.wake();
    Ok(HttpResponse::NoContent().finish())
}

async fn set_enabled(
    caller: AdminCaller,
    state: web::Data<AppState>,
    key: IdOrName,
    enabled: bool,
) -> Result<HttpResponse, ApiError> {
    let changes = UserChanges {
        enabled: Some(enabled),
        ..UserChanges::default()
    };
    let now = now();
    let user = state
        .store
        .update_user(key, changes, caller.audit(now, "user.update", "ok"), now)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(HttpResponse::Ok().json(UserJson::of(&state, user).await?))
}

/// Unlocks a user's logins: ends the failed logins in a row that locked the account (or make
/// it wait), over the API, in the panel and in the portals.
#[utoipa::path(
    tag = "users",
    params(("user" = String, Path, description = USER_PARAMETER)),
    responses(
        (status = 204, description = "The user's failed logins are reset and the account unlocked"),
        AdminRefusals,
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
#[post("/users/{user}/unlock")]
pub(super) async fn unlock_user(
    caller: AdminCaller,
    state: web::Data<AppState>,
    user: UserAt,
) -> Result<HttpResponse, ApiError> {
    state
        .store
        .unlock_user(user.into_inner(), caller.change("user.unlock"))
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(HttpResponse::NoContent().finish())
}

/// Enables a user (the same as `PATCH` with `"enabled": true`).
#[utoipa::path(
    tag = "users",
    params(("user" = String, Path, description = USER_PARAMETER)),
    responses(
        (status = 200, description = "The user, enabled", body = UserJson),
        AdminRefusals,
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
#[post("/users/{user}/enable")]
pub(super) async fn enable_user(
    caller: AdminCaller,
    state: web::Data<AppState>,
    user: UserAt,
) -> Result<HttpResponse, ApiError> {
    set_enabled(caller, state, user.into_inner(), true).await
}

/// Disables a user: they cannot authenticate until enabled again.
#[utoipa::path(
    tag = "users",
    params(("user" = String, Path, description = USER_PARAMETER)),
    responses(
        (status = 200, description = "The user, disabled", body = UserJson),
        AdminRefusals,
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
#[post("/users/{user}/disable")]
pub(super) async fn disable_user(
    caller: AdminCaller,
    state: web::Data<AppState>,
    user: UserAt,
) -> Result<HttpResponse, ApiError> {
    set_enabled(caller, state, user.into_inner(), false).await
}

/// Deletes a user. Their tokens stay, unassigned and taken from every resource; their
/// resource assignments and sessions end.
#[utoipa::path(
    tag = "users",
    params(("user" = String, Path, description = USER_PARAMETER)),
    responses(
        (status = 204, description = "The user is deleted"),
        AdminRefusals,
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
#[delete("/users/{user}")]
pub(super) async fn delete_user(
    caller: AdminCaller,
    state: web::Data<AppState>,
    user: UserAt,
) -> Result<HttpResponse, ApiError> {
    let deleted = state
        .store
        .delete_user(user.into_inner(), caller.change("user.delete"))
        .await?;
    if !deleted {
        return Err(ApiError::NotFound("user"));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_field_differs_from_null() {
        let absent: UpdateUser = serde_json::from_str("{}").expect("empty");
        let null: UpdateUser = serde_json::from_str(r#"{"email":null}"#).expect("null");
        let set: UpdateUser = serde_json::from_str(r#"{"email":"a@b.cd"}"#).expect("set");
        assert_eq!(absent.email, None);
        assert_eq!(null.email, Some(None));
        assert_eq!(set.email, Some(Some("a@b.cd".to_string())));
    }
}
