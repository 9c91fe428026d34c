//! `GET /deliveries`: what the outbox sent, is still trying, gave up or dropped — with
//! recipients masked and never a message body.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::error::AdminRefusals;
use super::error::ErrorBody;
use super::{AdminCaller, ApiError};
use crate::domain::mask_destination;
use crate::store::outbox::{DeliveryFilter, DeliveryRecord};
use crate::web::AppState;

const STATUSES: [&str; 4] = ["queued", "sent", "failed", "expired"];
const CHANNELS: [&str; 3] = ["mail", "sms", "bot"];

/// Filters of the list. Only documents them: the query is read by hand, so that a bad value
/// gets a 400 naming its field instead of the framework's own error.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct DeliveryQuery {
    /// queued, sent, failed or expired.
    status: Option<String>,
    /// mail, sms or bot.
    channel: Option<String>,
    /// At most this many (1–500, default 50).
    limit: Option<i64>,
    /// Skip this many of the newest first.
    offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Delivery {
    id: i64,
    channel: String,
    /// The recipient, masked (`j***@example.com`, `+49*******789`, or the chat for a bot).
    recipient: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<i64>,
    /// queued, sent, failed or expired.
    status: String,
    /// Tries so far.
    attempts: i64,
    /// Why the last try failed (or why the message expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    created_at: i64,
    /// When a queued message is tried next.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_at: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    deliveries: Vec<Delivery>,
    /// How many match the filters in all.
    total: i64,
}

fn one_of(
    query: &HashMap<String, String>,
    field: &str,
    allowed: &'static [&'static str],
) -> Result<Option<&'static str>, ApiError> {
    match query.get(field).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(value) => allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(value))
            .copied()
            .map(Some)
            .ok_or_else(|| {
                ApiError::field(field, format!("must be one of {}", allowed.join(", ")))
            }),
    }
}

fn number(
    query: &HashMap<String, String>,
    field: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ApiError> {
    match query.get(field) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ApiError::field(
                    field,
                    format!("must be a number from {} to {}", range.start(), range.end()),
                )
            }),
    }
}

fn view(record: DeliveryRecord) -> Delivery {
    let recipient = match record.channel.as_str() {
        "bot" => "chat".to_string(),
        _ => mask_destination(&record.recipient),
    };
    Delivery {
        id: record.id,
        channel: record.channel,
        recipient,
        token_id: record.token_id,
        next_attempt_at: (record.status == "queued").then_some(record.next_attempt_at),
        status: record.status,
        attempts: record.attempts,
        last_error: record.last_error,
        created_at: record.created_at,
        expires_at: record.expires_at,
        sent_at: record.sent_at,
    }
}

/// Recent deliveries, newest first, with their status and last error.
#[utoipa::path(
    tag = "deliveries",
    params(DeliveryQuery),
    responses(
        (status = 200, description = "The deliveries", body = DeliveryList),
        (status = 400, description = "A filter is invalid (named in `field`)", body = ErrorBody),
        AdminRefusals,
    )
)]
#[get("/deliveries")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    _admin: AdminCaller,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<HashMap<String, String>>::from_query(request.query_string())
        .map_err(|_| ApiError::BadRequest {
            field: None,
            message: "the query string is malformed".into(),
        })?
        .into_inner();
    if let Some(unknown) = query
        .keys()
        .find(|k| !["status", "channel", "limit", "offset"].contains(&k.as_str()))
    {
        return Err(ApiError::field(unknown, "unknown filter"));
    }
    let filter = DeliveryFilter {
        status: one_of(&query, "status", &STATUSES)?,
        channel: one_of(&query, "channel", &CHANNELS)?,
        limit: number(&query, "limit", 50, 1..=500)?,
        offset: number(&query, "offset", 0, 0..=i64::from(i32::MAX))?,
    };
    let (records, total) = state.store.deliveries(filter).await?;
    Ok(HttpResponse::Ok().json(DeliveryList {
        deliveries: records.into_iter().map(view).collect(),
        total,
    }))
}
