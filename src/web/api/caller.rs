//! Who is calling the API: the bearer key, checked against the store (through a short cache),
//! and the scope it grants. Requests without a valid key are throttled per source address.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};

use super::ApiError;
use crate::crypto;
use crate::domain::KeyScope;
use crate::store::ApiKeyRecord;
use crate::web::AppState;

/// How long a looked-up key is trusted without asking the database again. A key revoked
/// through the API is forgotten at once; one revoked from the console stops working within
/// this time.
const CACHE_TTL: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Option<ApiKeyRecord>, Instant)>>,
}

impl KeyCache {
    fn get(&self, prefix: &str, now: Instant) -> Option<Option<ApiKeyRecord>> {
        let entries = self.entries.lock().ok()?;
        let (record, at) = entries.get(prefix)?;
        (now.duration_since(*at) < CACHE_TTL).then(|| record.clone())
    }

    fn put(&self, prefix: &str, record: Option<ApiKeyRecord>, now: Instant) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 10_000 {
                entries.retain(|_, (_, at)| now.duration_since(*at) < CACHE_TTL);
            }
            entries.insert(prefix.to_string(), (record, now));
        }
    }

    /// Forgets every cached key (after a revocation in this process).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

/// An authenticated API caller.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub key_id: i64,
    pub scope: KeyScope,
    /// The address the request came from (the application, not the end user).
    pub client_ip: Option<String>,
}

impl ApiCaller {
    /// Refuses unless the key is an admin key.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.scope {
            KeyScope::Admin => Ok(()),
            KeyScope::Resource(_) => Err(ApiError::Forbidden(
                "this endpoint needs an admin key; a resource key may only authenticate".into(),
            )),
        }
    }

    /// The actor name for the audit log.
    pub fn actor(&self) -> String {
        format!("apikey:{}", self.key_id)
    }

    /// An audit line for something this caller did at `at`.
    pub fn audit(&self, at: i64, action: &str, result: &str) -> crate::store::AuditEntry {
        crate::store::AuditEntry {
            api_key_id: Some(self.key_id),
            client_ip: self.client_ip.clone(),
            ..crate::store::AuditEntry::new(at, self.actor(), action, result)
        }
    }
}

/// An API caller with an admin key. Management endpoints take this instead of `ApiCaller`,
/// so that a resource key is refused before anything else of the request is read.
#[derive(Debug, Clone)]
pub struct AdminCaller(ApiCaller);

impl AdminCaller {
    /// The audit line of a change this caller makes now.
    pub fn change(&self, action: &str) -> crate::store::AuditEntry {
        self.0.audit(crate::clock::now(), action, "ok")
    }
}

impl std::ops::Deref for AdminCaller {
    type Target = ApiCaller;

    fn deref(&self) -> &ApiCaller {
        &self.0
    }
}

impl FromRequest for AdminCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = ApiCaller::from_request(request, payload);
        Box::pin(async move {
            let caller = caller.await?;
            caller.require_admin()?;
            Ok(AdminCaller(caller))
        })
    }
}

fn bearer(request: &HttpRequest) -> Option<String> {
    let value = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim().to_string())
}

async fn authenticate(
    state: &AppState,
    key: Option<String>,
) -> Result<Option<ApiKeyRecord>, ApiError> {
    let Some(key) = key else { return Ok(None) };
    let Some(prefix) = crypto::api_key_prefix(&key) else {
        return Ok(None);
    };
    let now = Instant::now();
    let record = match state.api_keys.get(prefix, now) {
        Some(record) => record,
        None => {
            let record = state.store.api_key_by_prefix(prefix.to_string()).await?;
            state.api_keys.put(prefix, record.clone(), now);
            record
        }
    };
    Ok(record.filter(|record| {
        record.revoked_at.is_none()
            && crypto::constant_time_eq(&record.key_hash, &crypto::sha256(key.as_bytes()))
    }))
}

impl FromRequest for ApiCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let key = bearer(request);
        let client_ip = crate::web::client_ip(request);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no state")))?;
            match authenticate(&state, key).await? {
                Some(record) => Ok(ApiCaller {
                    key_id: record.id,
                    scope: record.scope,
                    client_ip,
                }),
                None => {
                    let source = client_ip.as_deref().unwrap_or("unknown");
                    if let Err(retry) = state.throttle_unauthenticated.take(source, Instant::now())
                    {
                        return Err(ApiError::TooManyRequests {
                            retry_after_seconds: retry.0.as_secs(),
                        });
                    }
                    Err(ApiError::Unauthorized)
                }
            }
        })
    }
}
