//! Enrolment by the first code, for applications that offer "scan, type the first code, done":
//! `POST /tokens/enrol` creates a TOTP or HOTP token *pending* and answers its `otpauth://` URI
//! and QR code once; `POST /tokens/{token}/confirm` takes the first code the app shows and makes
//! the token active. The rule is the portal's (`provision::prepare_pending`,
//! `provision::confirm_first_code`): a pending token authenticates nothing, and three wrong
//! codes remove it.

use actix_web::{HttpResponse, post, web};
use serde::Deserialize;

use super::address::{TOKEN_PARAMETER, TokenAt};
use super::error::{AdminRefusals, ErrorBody};
use super::tokens::{CreatedToken, TokenJson};
use super::{AdminCaller, ApiError, ApiJson};
use crate::domain::{IdOrName, TokenKind};
use crate::provision::{self, FirstCode, PreparedToken, TokenRequest};
use crate::web::AppState;

/// A token to enrol by its first code. The seed is generated and shown once, in the answer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolToken {
    /// TOTP or HOTP.
    kind: TokenKind,
    name: Option<String>,
    /// Generated from the kind and random characters when absent.
    serial: Option<String>,
    /// The user the token is assigned to: a number is their id, a string their login.
    user: Option<IdOrName>,
    /// A resource the token is assigned to together with its user (a number is its id, a string
    /// its name); needs `user`.
    resource: Option<IdOrName>,
    /// SHA1 (default), SHA256 or SHA512.
    algorithm: Option<String>,
    /// 6 (default) or 8.
    digits: Option<u32>,
    /// TOTP: 30 (default) or 60 seconds.
    period: Option<u32>,
    pin: Option<String>,
    /// "before" (default) or "after" the code.
    pin_position: Option<String>,
}

impl EnrolToken {
    fn into_request(self) -> TokenRequest {
        TokenRequest {
            name: self.name,
            serial: self.serial,
            user: self.user,
            resource: self.resource,
            algorithm: self.algorithm,
            digits: self.digits,
            period: self.period,
            pin: self.pin,
            pin_position: self.pin_position,
            ..TokenRequest::new(self.kind)
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmToken {
    /// The code the authenticator app shows now (without the PIN).
    otp: String,
}

/// Creates a TOTP or HOTP token *pending*: it authenticates nothing until its first code is
/// confirmed. The answer holds the `otpauth://` URI and its QR code, which no call shows again.
#[utoipa::path(
    tag = "tokens",
    request_body = EnrolToken,
    responses(
        (status = 201, description = "The token was created, pending its first code", body = CreatedToken),
        (status = 400, description = "A field is invalid (also a kind other than TOTP or HOTP)", body = ErrorBody),
        AdminRefusals,
        (status = 409, description = "The serial is taken, or the token belongs to another user", body = ErrorBody),
    )
)]
#[post("/tokens/enrol")]
pub(super) async fn enrol_token(
    caller: AdminCaller,
    state: web::Data<AppState>,
    body: ApiJson<EnrolToken>,
) -> Result<HttpResponse, ApiError> {
    let now = crate::clock::now();
    let request = body.0.into_request();
    let PreparedToken { creation, seed, .. } =
        provision::prepare_pending(&state.keys, &request, now, &state.general().await?)?;
    let record = state
        .store
        .create_token(creation, caller.audit(now, "token.enrol", "ok"))
        .await??;
    let (otpauth_uri, qr_code_svg) = match &seed {
        Some(seed) => {
            let uri =
                provision::enrolment_uri(&state.issuer, &provision::account_of(&record), seed);
            let svg = provision::qr_svg(&uri);
            (Some(uri), svg)
        }
        None => (None, None),
    };
    Ok(HttpResponse::Created().json(CreatedToken {
        token: record.into(),
        otpauth_uri,
        qr_code_svg,
        activation: None,
    }))
}

/// Confirms a pending TOTP or HOTP token with the first code its app shows: the token becomes
/// active. A wrong code leaves it pending; the third wrong code removes it (then 404).
#[utoipa::path(
    tag = "tokens",
    params(("token" = String, Path, description = TOKEN_PARAMETER)),
    request_body = ConfirmToken,
    responses(
        (status = 200, description = "The token is active", body = TokenJson),
        (status = 400, description = "The code is not right: the token stays pending, or after the third wrong code it was removed", body = ErrorBody),
        AdminRefusals,
        (status = 404, description = "No such token", body = ErrorBody),
        (status = 409, description = "The token is not waiting for a first code (it is active already, or of another kind)", body = ErrorBody),
    )
)]
#[post("/tokens/{token}/confirm")]
pub(super) async fn confirm_token(
    caller: AdminCaller,
    state: web::Data<AppState>,
    token: TokenAt,
    body: ApiJson<ConfirmToken>,
) -> Result<HttpResponse, ApiError> {
    let detail = state
        .store
        .token_detail(token.into_inner())
        .await?
        .ok_or(ApiError::NotFound("token"))?;
    let token = detail.record.token;
    let now = crate::clock::now();
    let mut entry = caller.audit(now, "token.confirm", "ok");
    // Sent only with the confirmation: a wrong code drops it (`provision::confirm_first_code`).
    entry.notice = crate::notices::of_token_owned(
        &state.store,
        &state.keys,
        &IdOrName::Id(token.id),
        crate::notices::API,
        now,
    )
    .await?;
    let outcome =
        provision::confirm_first_code(&state.store, &state.keys, &token, &body.0.otp, now, entry)
            .await?;
    state.delivery.wake();
    match outcome {
        FirstCode::Active(record) => Ok(HttpResponse::Ok().json(TokenJson::from(*record))),
        FirstCode::TryAgain => Err(ApiError::field(
            "otp",
            "the code is not right; the token stays pending: check it and try again",
        )),
        FirstCode::Discarded => Err(ApiError::field(
            "otp",
            format!(
                "the code is not right, {} times: the pending token was removed; enrol a new one",
                crate::confirm::TRIES
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrolment_asks_for_the_kind_and_nothing_the_app_does_not_scan() {
        let parsed: Result<EnrolToken, _> =
            super::super::json::parse(br#"{"kind":"TOTP","secret":"JBSWY3DPEHPK3PXP"}"#);
        assert!(parsed.is_err(), "a given secret is not an enrolment");
        let parsed: EnrolToken =
            super::super::json::parse(br#"{"kind":"HOTP","user":"alice"}"#).expect("parsed");
        assert_eq!(parsed.into_request().kind, TokenKind::Hotp);
    }
}
