//! The query string of a listing: known parameters only, typed values, one page.

use actix_web::{HttpRequest, web};

use super::ApiError;
use crate::domain::IdOrName;
use crate::store::users::Page;

/// The query string of a listing, refusing parameters the endpoint does not know so that a
/// mistyped filter is not silently ignored.
pub(super) struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub(super) fn parse(request: &HttpRequest, known: &[&str]) -> Result<QueryParams, ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(request.query_string())
            .map_err(|_| ApiError::BadRequest {
                field: None,
                message: "the query string cannot be read".into(),
            })?
            .into_inner();
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, _)| !known.contains(&name.as_str()))
        {
            return Err(ApiError::field(
                name,
                format!("unknown parameter; known are: {}", known.join(", ")),
            ));
        }
        Ok(QueryParams(pairs))
    }

    /// The last value given for `name`.
    pub(super) fn text(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The object the parameter `name` names, by the paths' rule: digits are an id,
    /// `LABEL:` before anything a name, other text a name.
    pub(super) fn named(&self, name: &str, label: &str) -> Result<Option<IdOrName>, ApiError> {
        self.text(name)
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(|text| {
                IdOrName::from_text(text, label)
                    .map_err(|refused| ApiError::field(name, refused.to_string()))
            })
            .transpose()
    }

    pub(super) fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.text(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::field(name, "must be true or false")),
        }
    }

    fn integer(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, ApiError> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        match text.parse::<i64>() {
            Ok(value) if range.contains(&value) => Ok(Some(value)),
            _ => Err(ApiError::field(
                name,
                format!(
                    "must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    /// `limit` (1–500, 50 when absent) and `offset` (0 when absent).
    pub(super) fn page(&self) -> Result<Page, ApiError> {
        Ok(Page {
            limit: self
                .integer("limit", 1..=MAX_LIMIT)?
                .unwrap_or(DEFAULT_LIMIT),
            offset: self
                .integer("offset", 0..=i64::from(i32::MAX))?
                .unwrap_or(0),
        })
    }
}

const DEFAULT_LIMIT: i64 = 50;
/// The most items one page holds; the OpenAPI document states it too.
pub(super) const MAX_LIMIT: i64 = 500;
