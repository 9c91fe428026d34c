//! `/resources/{resource}/radius-attributes`: what a resource adds to its RADIUS
//! Access-Accepts (a firewall group, a filter, a session timeout), read and replaced on the
//! panel's rule (`radius::reply`); and `/radius/dictionary`, the attributes it may add.

use actix_web::{HttpResponse, get, put, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::address::{RESOURCE_PARAMETER, ResourceAt};
use super::error::{AdminRefusals, ErrorBody};
use super::{AdminCaller, ApiError, ApiJson};
use crate::radius::dictionary::reply_attributes;
use crate::radius::reply::{ReplyAttribute, check_reply_attributes};
use crate::store::radius::AttributesSaved;
use crate::web::AppState;

/// One reply attribute: a name of the dictionary and its value.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RadiusAttribute)]
pub struct RadiusAttributeJson {
    /// A reply attribute of `GET /radius/dictionary`, in any case (`Filter-Id`,
    /// `Fortinet-Group-Name`).
    name: String,
    /// As text, by the attribute's type: `string` up to 253 bytes (247 for a vendor's)
    /// without control characters, a Cisco-AVPair as `name=value`; `integer` a whole number
    /// from 0 to 4294967295 or the name of a value (`Administrative-User`); `ipaddr` an IPv4
    /// address; `ipv6addr` an IPv6 address; `octets` text or `0x` and hex digits.
    value: String,
}

/// A resource's reply attributes, in the order an Access-Accept carries them.
#[derive(Serialize, ToSchema)]
pub struct RadiusAttributes {
    /// After the `Reply-Message` and the `Class` that every Access-Accept carries.
    attributes: Vec<RadiusAttributeJson>,
}

/// The reply attributes to store; they replace the stored ones.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRadiusAttributes {
    /// At most 64, in order; empty: none. Together they must leave a reply within 4096
    /// bytes.
    attributes: Vec<RadiusAttributeJson>,
}

/// One attribute a resource may add to its replies.
#[derive(Serialize, ToSchema)]
pub struct DictionaryEntry {
    name: &'static str,
    /// `string`, `integer`, `ipaddr`, `ipv6addr` or `octets`.
    #[serde(rename = "type")]
    value_type: &'static str,
    /// The vendor's number (IANA enterprise number) of a Vendor-Specific attribute; null for a
    /// standard one.
    vendor: Option<u32>,
    /// The attribute's number (the vendor's number of it for a vendor attribute).
    number: u8,
    /// The names an integer's values may be given by, besides numbers; absent: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    values: Vec<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct RadiusDictionary {
    items: Vec<DictionaryEntry>,
}

fn view(attributes: Vec<ReplyAttribute>) -> RadiusAttributes {
    RadiusAttributes {
        attributes: attributes
            .into_iter()
            .map(|attribute| RadiusAttributeJson {
                name: attribute.name,
                value: attribute.value,
            })
            .collect(),
    }
}

async fn resource_id(state: &AppState, resource: ResourceAt) -> Result<i64, ApiError> {
    Ok(state
        .store
        .find_resource(resource.into_inner())
        .await?
        .ok_or(ApiError::NotFound("resource"))?
        .id)
}

/// A resource's RADIUS reply attributes.
#[utoipa::path(
    tag = "radius",
    params(("resource" = String, Path, description = RESOURCE_PARAMETER)),
    responses(
        (status = 200, description = "The attributes, in order", body = RadiusAttributes),
        AdminRefusals,
        (status = 404, description = "No such resource", body = ErrorBody),
    )
)]
#[get("/resources/{resource}/radius-attributes")]
pub(super) async fn get_radius_attributes(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    resource: ResourceAt,
) -> Result<HttpResponse, ApiError> {
    let id = resource_id(&state, resource).await?;
    let attributes = state.store.radius_reply_attributes(id).await?;
    Ok(HttpResponse::Ok().json(view(attributes)))
}

/// Replaces a resource's RADIUS reply attributes, with the panel's checks and words; the
/// RADIUS server sends them from its next Access-Accept.
#[utoipa::path(
    tag = "radius",
    params(("resource" = String, Path, description = RESOURCE_PARAMETER)),
    request_body = PutRadiusAttributes,
    responses(
        (status = 200, description = "The stored attributes", body = RadiusAttributes),
        (status = 400, description = "An attribute is unknown or its value does not fit its type, or there are too many; `field` is `attributes` and the message names the attribute", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such resource", body = ErrorBody),
    )
)]
#[put("/resources/{resource}/radius-attributes")]
pub(super) async fn put_radius_attributes(
    caller: AdminCaller,
    state: web::Data<AppState>,
    resource: ResourceAt,
    body: ApiJson<PutRadiusAttributes>,
) -> Result<HttpResponse, ApiError> {
    let typed: Vec<(String, String)> = body
        .0
        .attributes
        .into_iter()
        .map(|attribute| (attribute.name, attribute.value))
        .collect();
    let attributes = check_reply_attributes(&typed)?;
    let id = resource_id(&state, resource).await?;
    match state
        .store
        .replace_radius_reply_attributes(
            id,
            attributes,
            caller.change("resource.radius_attributes"),
        )
        .await?
    {
        AttributesSaved::Done(attributes) => Ok(HttpResponse::Ok().json(view(attributes))),
        AttributesSaved::NoSuchResource => Err(ApiError::NotFound("resource")),
    }
}

/// The attributes a resource may add to its RADIUS Access-Accepts, with their types.
#[utoipa::path(
    tag = "radius",
    responses(
        (status = 200, description = "The reply attributes of the built-in dictionary", body = RadiusDictionary),
        AdminRefusals,
    )
)]
#[get("/radius/dictionary")]
pub(super) async fn radius_dictionary(_admin: AdminCaller) -> HttpResponse {
    HttpResponse::Ok().json(RadiusDictionary {
        items: reply_attributes()
            .map(|definition| DictionaryEntry {
                name: definition.name,
                value_type: definition.value.as_str(),
                vendor: definition.vendor,
                number: definition.kind,
                values: definition.names.iter().map(|(name, _)| *name).collect(),
            })
            .collect(),
    })
}
