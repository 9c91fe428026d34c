//! HTTP manners every address keeps: `HEAD` wherever `GET` is served (answered with the GET's
//! headers and no body: actix-http drops the body of an answer to a HEAD), and for an address
//! that no route took, 405 with `Allow` when the address is known for other methods, else 404 —
//! as JSON under `/api/`, as a page elsewhere.
//!
//! Which methods an address takes is known only to actix's router: while routing, every method
//! guard of a resource whose path matched notes its method on the request, and a resource
//! without routes answers 405 with those methods in `Allow`. `unrouted` is such a resource,
//! registered last, so that it sees every request no route took.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{HttpServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::{ResponseError, web};

use super::PageError;
use super::api::ApiError;

/// The name of the catch-all resource's tail; `observe` counts its answers as unmatched.
pub const UNROUTED_SEGMENT: &str = "{unrouted:.*}";

/// Middleware: a HEAD request is routed as a GET.
pub async fn head_as_get(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if request.method() == Method::HEAD {
        request.head_mut().method = Method::GET;
    }
    next.call(request).await
}

/// The resource that takes every request no route took, last in the application and in the
/// API's scope.
pub fn unrouted() -> impl HttpServiceFactory {
    web::resource(format!("/{UNROUTED_SEGMENT}")).wrap(from_fn(answer_unrouted))
}

/// The methods of `Allow`, each once, with HEAD beside GET.
fn with_head(allow: &str) -> String {
    let mut methods: Vec<&str> = Vec::new();
    for method in allow.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        if !methods.contains(&method) {
            methods.push(method);
        }
        if method == "GET" && !methods.contains(&"HEAD") {
            methods.push("HEAD");
        }
    }
    methods.join(", ")
}

async fn answer_unrouted(
    request: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let api = request.path().starts_with("/api/");
    let method = request.method().to_string();
    let answer = next.call(request).await?;
    let allow = (answer.status() == StatusCode::METHOD_NOT_ALLOWED)
        .then(|| answer.headers().get(header::ALLOW))
        .flatten()
        .and_then(|value| value.to_str().ok())
        .map(with_head)
        .filter(|allow| !allow.is_empty());
    let response = match (allow, api) {
        (Some(allow), true) => ApiError::MethodNotAllowed { method, allow }.error_response(),
        (Some(allow), false) => PageError::MethodNotAllowed { method, allow }.error_response(),
        (None, true) => ApiError::NotFound("endpoint").error_response(),
        (None, false) => PageError::NotFound.error_response(),
    };
    let (request, _) = answer.into_parts();
    Ok(ServiceResponse::new(request, response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_stands_beside_get_and_each_method_once() {
        assert_eq!(with_head("GET, POST"), "GET, HEAD, POST");
        assert_eq!(with_head("POST,GET,GET"), "POST, GET, HEAD");
        assert_eq!(with_head("DELETE"), "DELETE");
    }
}
