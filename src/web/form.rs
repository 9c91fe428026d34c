//! The form kit of the HTML front ends, shared by the admin panel and the portal: what is wrong
//! with a submitted form (`Problems`), the hidden CSRF field, a one-button form, the redirect
//! after a change (POST-redirect-GET) with the flash message it leaves for the next page, the
//! confirmation step of a destructive action, links between the pages of a listing, and the
//! few text helpers forms need.
//!
//! A rule's refusal becomes the form's problems here (`Problems::of`), in one place for both
//! front ends; anything else stays a `PageError`.

use std::collections::HashMap;

use actix_multipart::Multipart;
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use maud::{Markup, html};
use serde::Deserialize;

use super::error::PageError;
use super::{AppState, session};
use crate::crypto;
use crate::domain::{FieldError, Refused, RuleError};

/// What is wrong with a submitted form: messages by field, shown next to each field, or on top
/// for a problem of the whole form.
#[derive(Debug, Default)]
pub struct Problems(Vec<(Option<String>, String)>);

impl Problems {
    /// A rule's answer as the form's problems. A refusal is the form's to show (one field's, or
    /// the whole form's); an object that does not exist is the 404 page, and a failure stays a
    /// failure.
    pub fn of(error: impl Into<RuleError>) -> Result<Problems, PageError> {
        let mut problems = Problems::default();
        match error.into() {
            RuleError::Refused(Refused::NotFound(_)) => return Err(PageError::NotFound),
            RuleError::Refused(Refused::Field(error)) => problems.field(error),
            RuleError::Refused(
                Refused::Invalid(message)
                | Refused::Conflict(message)
                | Refused::Forbidden(message),
            ) => problems.general(message),
            RuleError::Refused(Refused::TooMany {
                retry_after_seconds,
            }) => {
                return Err(PageError::TooManyRequests {
                    retry_after_seconds,
                });
            }
            RuleError::Busy(busy) => return Err(PageError::Busy(busy)),
            RuleError::Failed(error) => return Err(PageError::Internal(error)),
        }
        Ok(problems)
    }

    /// The problems of one field's refusal.
    pub fn one(error: FieldError) -> Problems {
        let mut problems = Problems::default();
        problems.field(error);
        problems
    }

    pub fn field(&mut self, error: FieldError) {
        self.at(error.field, error.message);
    }

    pub fn at(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((Some(field.to_string()), message.into()));
    }

    pub fn general(&mut self, message: impl Into<String>) {
        self.0.push((None, message.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first message, for a form that shows one line above it.
    pub fn first(&self) -> Option<&str> {
        self.0.first().map(|(_, message)| message.as_str())
    }

    /// The line above the form: the problems of the whole form, or a pointer to the fields.
    pub fn summary(&self) -> Markup {
        let general: Vec<&str> = self
            .0
            .iter()
            .filter(|(field, _)| field.is_none())
            .map(|(_, message)| message.as_str())
            .collect();
        html! {
            @if !general.is_empty() {
                @for message in general { p.error role="alert" { (message) } }
            } @else if !self.0.is_empty() {
                p.error role="alert" { "Nothing was saved: correct the fields marked below." }
            }
        }
    }

    /// The messages for one field, shown under it with a capital first letter.
    pub fn note(&self, field: &str) -> Markup {
        self.notes(field, capitalised)
    }

    /// The messages for one field, shown under it as the rule wrote them (for forms whose
    /// messages are whole sentences or follow the field's label).
    pub fn note_as_written(&self, field: &str) -> Markup {
        self.notes(field, str::to_string)
    }

    fn notes(&self, field: &str, shown: impl Fn(&str) -> String) -> Markup {
        html! {
            @for (_, message) in self.0.iter().filter(|(f, _)| f.as_deref() == Some(field)) {
                span.field-error role="alert" { (shown(message)) }
            }
        }
    }
}

fn capitalised(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// An error line above a form.
pub fn error_line(message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            p.error role="alert" { (message) }
        }
    }
}

/// A page answered with another status than 200 (a form with mistakes: 400).
pub fn with_status(mut response: HttpResponse, status: StatusCode) -> HttpResponse {
    *response.status_mut() = status;
    response
}

/// A page answered with 400: the form came back with mistakes.
pub fn invalid(response: HttpResponse) -> HttpResponse {
    with_status(response, StatusCode::BAD_REQUEST)
}

/// The hidden CSRF field of every form.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A one-button form that posts to `action`.
pub fn post_button(csrf: &str, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(csrf))
            @if class.is_empty() {
                button type="submit" { (label) }
            } @else {
                button class=(class) type="submit" { (label) }
            }
        }
    }
}

/// A redirect (303) to `location`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// The flash message a redirect leaves for the next page: a short-lived cookie of its own name
/// and path (the panel's at `/`, each portal's at its own address).
pub struct Flash<'a> {
    pub cookie: &'static str,
    pub path: &'a str,
}

/// A message a redirect leaves for the next page: news (a change made, a code sent), or a
/// problem the reader has to act on (nothing changed, a code expired), shown as an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub problem: bool,
}

impl Notice {
    /// The notice as a page shows it: news in a status line, a problem as an alert.
    pub fn markup(&self) -> Markup {
        html! {
            @if self.problem {
                p.error role="alert" { (self.text) }
            } @else {
                p.flash role="status" { (self.text) }
            }
        }
    }
}

impl Flash<'_> {
    /// A redirect (303) to `location` that shows `message` on the next page as news.
    pub fn redirect(&self, state: &AppState, location: &str, message: &str) -> HttpResponse {
        self.redirect_with(state, location, message, false)
    }

    /// A redirect (303) to `location` that shows `message` on the next page as a problem.
    pub fn redirect_problem(
        &self,
        state: &AppState,
        location: &str,
        message: &str,
    ) -> HttpResponse {
        self.redirect_with(state, location, message, true)
    }

    fn redirect_with(
        &self,
        state: &AppState,
        location: &str,
        message: &str,
        problem: bool,
    ) -> HttpResponse {
        let value = encode_flash(&self.signer(state), message, problem, crate::clock::now());
        let mut cookie = session::cookie(state, self.cookie, value);
        cookie.set_path(self.path.to_string());
        cookie.set_max_age(CookieDuration::seconds(FLASH_SECONDS));
        let mut response = see_other(location);
        let _ = response.add_cookie(&cookie);
        response
    }

    /// The message the previous redirect left, if any: only one this server wrote, for this
    /// cookie and path, within the minute it is meant for.
    pub fn read(&self, state: &AppState, request: &HttpRequest) -> Option<Notice> {
        request
            .cookie(session::cookie_name(state, self.cookie))
            .and_then(|c| decode_flash(&self.signer(state), c.value(), crate::clock::now()))
            .filter(|notice| !notice.text.is_empty())
    }

    fn signer<'a>(&'a self, state: &'a AppState) -> Signer<'a> {
        Signer {
            keys: &state.keys,
            cookie: self.cookie,
            path: self.path,
        }
    }

    /// Clears the message once a page showed it.
    pub fn clear(&self, state: &AppState, response: &mut HttpResponse) {
        let mut cookie = session::removal_cookie(state, self.cookie);
        cookie.set_path(self.path.to_string());
        let _ = response.add_cookie(&cookie);
    }
}

/// How long a flash message is good for: the cookie's own lifetime.
const FLASH_SECONDS: i64 = 60;

/// What a flash cookie's tag is made with: the server's keys, and the cookie's name and path.
struct Signer<'a> {
    keys: &'a crypto::Keys,
    cookie: &'a str,
    path: &'a str,
}

impl Signer<'_> {
    fn tag(&self, signed: &str) -> [u8; 16] {
        self.keys.cookie_tag(self.cookie, self.path, signed)
    }
}

/// Flash text in a cookie value: `n` for news or `p` for a problem, then the text in
/// hexadecimal, so that no character can break the cookie; then `.`, the Unix second it
/// expires, `.` and the tag over all that before it, so that only this server's own message
/// is shown, where it was meant, and not long after.
fn encode_flash(signer: &Signer<'_>, text: &str, problem: bool, now: i64) -> String {
    let tone = if problem { "p" } else { "n" };
    let signed = format!(
        "{tone}{}.{}",
        data_encoding::HEXLOWER.encode(text.as_bytes()),
        now.saturating_add(FLASH_SECONDS)
    );
    let tag = data_encoding::HEXLOWER.encode(&signer.tag(&signed));
    format!("{signed}.{tag}")
}

fn decode_flash(signer: &Signer<'_>, value: &str, now: i64) -> Option<Notice> {
    let (signed, tag) = value.rsplit_once('.')?;
    let tag = data_encoding::HEXLOWER.decode(tag.as_bytes()).ok()?;
    if !crypto::constant_time_eq(&tag, &signer.tag(signed)) {
        return None;
    }
    let (message, expires) = signed.split_once('.')?;
    if expires.parse::<i64>().ok()? < now {
        return None;
    }
    let (problem, hex) = match message.split_at_checked(1)? {
        ("p", hex) => (true, hex),
        ("n", hex) => (false, hex),
        _ => return None,
    };
    let bytes = data_encoding::HEXLOWER.decode(hex.as_bytes()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    Some(Notice { text, problem })
}

/// What the confirmation step of a destructive action asks.
pub struct Confirmation<'a> {
    pub question: Markup,
    pub action: &'a str,
    pub button: &'a str,
    pub back: &'a str,
}

/// The confirmation step before a destructive action: the question, a button that posts the
/// form with the CSRF token, and a way back.
pub fn confirmation(csrf: &str, confirmation: Confirmation<'_>) -> Markup {
    html! {
        div.confirm {
            (confirmation.question)
            form.inline method="post" action=(confirmation.action) {
                (csrf_field(csrf))
                button.danger type="submit" { (confirmation.button) }
                " "
                a.button-secondary href=(confirmation.back) { "Cancel" }
            }
        }
    }
}

/// A link of a pager: its words and where it goes.
pub struct PageLink {
    pub label: &'static str,
    pub href: String,
}

/// Links between the pages of a listing: back, where the reader is, and on.
pub fn pager(
    previous: Option<PageLink>,
    position: Option<String>,
    next: Option<PageLink>,
) -> Markup {
    html! {
        @if previous.is_some() || next.is_some() {
            nav.pager aria-label="Pages" {
                @if let Some(link) = previous { a rel="prev" href=(link.href) { (link.label) } }
                @if let Some(position) = position { span { (position) } }
                @if let Some(link) = next { a rel="next" href=(link.href) { (link.label) } }
            }
        }
    }
}

/// Links to the previous and next of numbered pages; `link(n)` is the address of page `n`.
pub fn numbered_pager(
    page: i64,
    total: i64,
    per_page: i64,
    link: impl Fn(i64) -> String,
) -> Markup {
    let pages = ((total + per_page - 1) / per_page).max(1);
    pager(
        (page > 1).then(|| PageLink {
            label: "← Previous",
            href: link(page - 1),
        }),
        (pages > 1).then(|| format!("Page {page} of {pages}")),
        (page < pages).then(|| PageLink {
            label: "Next →",
            href: link(page + 1),
        }),
    )
}

/// A form whose only field is the CSRF token (a one-button form).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsrfForm {
    pub csrf: String,
}

/// A form that sends a code typed by the user.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CodeForm {
    pub csrf: String,
    pub code: String,
}

/// The largest file a form takes (a list of users, a seed file, a certificate).
pub const MAX_UPLOAD: usize = 4 * 1024 * 1024;

/// The fields of a `multipart/form-data` form: text fields and files, by name.
pub struct Upload {
    pub fields: HashMap<String, Vec<u8>>,
}

impl Upload {
    pub fn text(&self, name: &str) -> String {
        self.fields
            .get(name)
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default()
    }

    pub fn bytes(&self, name: &str) -> &[u8] {
        self.fields.get(name).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Why an upload could not be read.
pub enum UploadProblem {
    TooLarge,
    Malformed,
}

impl UploadProblem {
    /// The status of the form shown again: 413 for a file over the limit, 400 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            UploadProblem::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UploadProblem::Malformed => StatusCode::BAD_REQUEST,
        }
    }

    pub fn message(&self) -> String {
        match self {
            UploadProblem::TooLarge => format!(
                "The file is too large: at most {} MB.",
                MAX_UPLOAD / 1024 / 1024
            ),
            UploadProblem::Malformed => {
                "The upload could not be read; choose the file again.".into()
            }
        }
    }
}

/// Reads a whole `multipart/form-data` body of at most [`MAX_UPLOAD`] bytes.
pub async fn read_upload(
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<Upload, UploadProblem> {
    let mut multipart = Multipart::new(request.headers(), payload);
    let mut fields = HashMap::new();
    let mut total = 0usize;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|_| UploadProblem::Malformed)?;
        let name = field.name().unwrap_or_default().to_string();
        let mut data = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|_| UploadProblem::Malformed)?;
            total += chunk.len();
            if total > MAX_UPLOAD {
                return Err(UploadProblem::TooLarge);
            }
            data.extend_from_slice(&chunk);
        }
        fields.insert(name, data);
    }
    Ok(Upload { fields })
}

/// Percent-encodes a query-string value.
pub fn url_encode(text: &str) -> String {
    crate::delivery::sms::percent_encode(text)
}

/// A query string of the pairs whose value is not empty, with `?` in front (or nothing).
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", url_encode(value)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// An id from the address; anything else is an address that leads nowhere.
pub fn path_id(text: &str) -> Result<i64, PageError> {
    text.parse::<i64>().map_err(|_| PageError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (tempfile::TempDir, crypto::Keys) {
        let dir = tempfile::tempdir().expect("dir");
        let keys = crypto::Keys::load_or_create(&dir.path().join("k"), true).expect("keys");
        (dir, keys)
    }

    fn signer<'a>(keys: &'a crypto::Keys, cookie: &'a str, path: &'a str) -> Signer<'a> {
        Signer { keys, cookie, path }
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_flash_message_survives_its_cookie_with_its_tone() {
        let (_dir, keys) = keys();
        let signer = signer(&keys, "flash", "/");
        for text in ["Token “Phone” is active.", "a; b, c=d %41", "", "ünïcödé"] {
            for problem in [false, true] {
                let encoded = encode_flash(&signer, text, problem, NOW);
                assert!(
                    encoded
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
                );
                let text = text.to_string();
                assert_eq!(
                    decode_flash(&signer, &encoded, NOW + FLASH_SECONDS),
                    Some(Notice { text, problem })
                );
            }
        }
        for garbage in [
            "", "zz", "x41", "n4", "nzz", "41", "n41", "n41.1", "n41.1.zz", "..",
        ] {
            assert_eq!(decode_flash(&signer, garbage, NOW), None, "{garbage}");
        }
    }

    #[test]
    fn a_flash_message_is_shown_only_as_this_server_wrote_it_where_and_when_it_was_meant() {
        let (_dir, keys) = keys();
        let (_other_dir, other_keys) = self::keys();
        let signer = signer(&keys, "flash", "/portal/vpn");
        let encoded = encode_flash(&signer, "Saved.", false, NOW);
        assert!(decode_flash(&signer, &encoded, NOW).is_some());
        // Unsigned, as another host of the domain could plant it.
        let planted = format!("p{}", data_encoding::HEXLOWER.encode(b"Call us"));
        assert_eq!(decode_flash(&signer, &planted, NOW), None);
        // Its tone, text or expiry changed.
        for (from, to) in [("n", "p"), ("53", "54"), (".18", ".19")] {
            let changed = encoded.replacen(from, to, 1);
            assert_ne!(changed, encoded);
            assert_eq!(decode_flash(&signer, &changed, NOW), None, "{changed}");
        }
        // Another server's, another cookie's or another portal's.
        for elsewhere in [
            Signer {
                keys: &other_keys,
                cookie: "flash",
                path: "/portal/vpn",
            },
            self::signer(&keys, "other", "/portal/vpn"),
            self::signer(&keys, "flash", "/portal/wifi"),
        ] {
            assert_eq!(decode_flash(&elsewhere, &encoded, NOW), None);
        }
        // Expired.
        assert_eq!(
            decode_flash(&signer, &encoded, NOW + FLASH_SECONDS + 1),
            None
        );
    }

    #[test]
    fn every_refusal_is_the_form_s_to_show_and_a_missing_object_is_not_found() {
        let field = Problems::of(Refused::field("name", "too long")).expect("shown");
        assert!(field.note("name").into_string().contains("Too long"));
        for refused in [
            Refused::Invalid("whole".into()),
            Refused::Conflict("clash".into()),
            Refused::Forbidden("not yours".into()),
        ] {
            let problems = Problems::of(refused).expect("shown");
            assert!(problems.first().is_some());
        }
        assert!(matches!(
            Problems::of(Refused::NotFound("token")),
            Err(PageError::NotFound)
        ));
        assert!(matches!(
            Problems::of(RuleError::Failed(anyhow::anyhow!("disk"))),
            Err(PageError::Internal(_))
        ));
    }

    #[test]
    fn a_query_string_leaves_out_empty_values_and_encodes_the_rest() {
        assert_eq!(query_string(&[("a", ""), ("b", "")]), "");
        assert_eq!(
            query_string(&[("search", "a b&c"), ("page", "2"), ("x", "")]),
            "?search=a%20b%26c&page=2"
        );
    }
}
