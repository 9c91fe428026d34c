//! Reading what the server answered: where a redirect goes, and the values a page shows.

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The value of the hidden input `name` on a page.
pub fn hidden_value(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden {name} on the page:\n{page}"))
        + marker.len();
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The base32 seed shown on an enrolment page for manual entry.
pub fn secret_on_page(page: &str) -> Vec<u8> {
    let start = page
        .find("<code class=\"secret\">")
        .expect("a secret on the page")
        + "<code class=\"secret\">".len();
    let text = page[start..].split('<').next().expect("text");
    otpgate::otp::decode_base32_secret(text).expect("base32")
}
