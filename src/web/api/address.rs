//! How a path names an object. A path segment is text, so digits and names need one rule:
//! digits are an id (`/tokens/42`); a label and a colon make a name of anything, digits
//! included (`/tokens/serial:987654321`, `/users/login:alice`); other text is a name
//! (`/tokens/HW-0001`). Digits that cannot be an id as written (`/tokens/007`) are refused
//! with the way to write them, never guessed. Logins and resource names are never numbers, so
//! only serials need the label in practice; the rule is the same for all three.

use std::future::{Ready, ready};
use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};

use super::ApiError;
use crate::domain::IdOrName;

/// What a path parameter names: its name in the route and the label of its names.
pub(super) trait Named {
    const PARAMETER: &'static str;
    const LABEL: &'static str;
}

/// The object the path parameter `N::PARAMETER` names.
pub(super) struct At<N>(pub(super) IdOrName, PhantomData<N>);

impl<N> At<N> {
    pub(super) fn into_inner(self) -> IdOrName {
        self.0
    }
}

impl<N: Named> FromRequest for At<N> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let text = request.match_info().get(N::PARAMETER).unwrap_or_default();
        ready(
            IdOrName::from_text(text, N::LABEL)
                .map(|key| At(key, PhantomData))
                .map_err(ApiError::from),
        )
    }
}

pub(super) enum TokenParameter {}

impl Named for TokenParameter {
    const PARAMETER: &'static str = "token";
    const LABEL: &'static str = "serial";
}

pub(super) enum UserParameter {}

impl Named for UserParameter {
    const PARAMETER: &'static str = "user";
    const LABEL: &'static str = "login";
}

pub(super) enum ResourceParameter {}

impl Named for ResourceParameter {
    const PARAMETER: &'static str = "resource";
    const LABEL: &'static str = "name";
}

pub(super) enum RadiusClientParameter {}

impl Named for RadiusClientParameter {
    const PARAMETER: &'static str = "client";
    const LABEL: &'static str = "name";
}

pub(super) enum DirectoryParameter {}

impl Named for DirectoryParameter {
    const PARAMETER: &'static str = "directory";
    const LABEL: &'static str = "name";
}

/// The token of `/tokens/{token}`.
pub(super) type TokenAt = At<TokenParameter>;
/// The user of `/users/{user}`.
pub(super) type UserAt = At<UserParameter>;
/// The resource of `/resources/{resource}`.
pub(super) type ResourceAt = At<ResourceParameter>;

/// The RADIUS client of `/radius/clients/{client}`.
pub(super) type RadiusClientAt = At<RadiusClientParameter>;

/// The directory of `/directories/{directory}`.
pub(super) type DirectoryAt = At<DirectoryParameter>;

/// The OpenAPI description of each parameter.
pub(super) const TOKEN_PARAMETER: &str = "The token's id (digits), or its serial. A serial made \
     of digits is written with `serial:` before it (`serial:987654321`); digits alone are \
     always an id.";
pub(super) const USER_PARAMETER: &str = "The user's id (digits), or their login (logins are \
     never numbers; `login:alice` names the login explicitly).";
pub(super) const RESOURCE_PARAMETER: &str = "The resource's id (digits), or its name (names \
     are never numbers; `name:vpn` names the name explicitly).";
pub(super) const RADIUS_CLIENT_PARAMETER: &str = "The RADIUS client's id (digits), or its \
     name (names are never numbers; `name:fw1` names the name explicitly).";
pub(super) const DIRECTORY_PARAMETER: &str = "The directory's id (digits), or its name \
     (names are never numbers; `name:corp` names the name explicitly).";
