//! Who is calling the API: the bearer key, checked against the store (through a cache that
//! holds while the store's key generation stays), and the scope it grants. Requests without a
//! valid key are throttled per source address.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Instant;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};

use super::ApiError;
use crate::crypto;
use crate::domain::KeyScope;
use crate::store::ApiKeyRecord;
use crate::web::AppState;

/// Past this many cached prefixes (known or not), the cache starts again empty.
const CACHE_LIMIT: usize = 10_000;

/// Keys looked up by prefix, valid while the store's key generation is the one they were
/// looked up under: any change of any key, here or from another process, moves it, and the
/// next request then finds the cache empty.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    generation: i64,
    keys: HashMap<String, Option<ApiKeyRecord>>,
}

impl KeyCache {
    /// The cached lookup of `prefix`, after forgetting everything cached under an older
    /// generation (generations only grow).
    fn get(&self, prefix: &str, generation: i64) -> Option<Option<ApiKeyRecord>> {
        let mut cached = self.entries.lock().ok()?;
        if cached.generation < generation {
            cached.generation = generation;
            cached.keys.clear();
        }
        if cached.generation != generation {
            // A request that read the generation before another moved it on: it looks up.
            return None;
        }
        cached.keys.get(prefix).cloned()
    }

    /// Keeps a lookup made under `generation`, unless the keys have moved on since.
    fn put(&self, prefix: &str, record: Option<ApiKeyRecord>, generation: i64) {
        if let Ok(mut cached) = self.entries.lock() {
            if cached.generation != generation {
                return;
            }
            if cached.keys.len() >= CACHE_LIMIT {
                cached.keys.clear();
            }
            cached.keys.insert(prefix.to_string(), record);
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
    let generation = state.store.api_key_generation().await?;
    let record = match state.api_keys.get(prefix, generation) {
        Some(record) => record,
        None => {
            let record = state.store.api_key_by_prefix(prefix.to_string()).await?;
            state.api_keys.put(prefix, record.clone(), generation);
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
