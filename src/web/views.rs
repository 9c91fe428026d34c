//! Page layout and the small pieces pages are made of. maud escapes every interpolated value.

use maud::{DOCTYPE, Markup, html};

/// The navigation of the admin panel.
const NAV: &[(&str, &str)] = &[
    ("Dashboard", "/admin"),
    ("Users", "/admin/users"),
    ("Tokens", "/admin/tokens"),
    ("Resources", "/admin/resources"),
    ("RADIUS", "/admin/radius"),
    ("Settings", "/admin/settings"),
    ("Audit log", "/admin/audit"),
    ("Administrators", "/admin/administrators"),
];

/// A whole HTML document: the head every page shares (its title, the stylesheet and the page's
/// script, if any) and the body.
pub fn document(title: &str, script: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/assets/style.css";
                @if let Some(script) = script { script src=(script) defer {} }
            }
            (body)
        }
    }
}

/// The frame of every page without a logged-in administrator (setup, login, messages).
pub fn bare_page(title: &str, body: Markup) -> Markup {
    document(
        &format!("{title} · otpgate"),
        None,
        html! {
            body.bare {
                main.card {
                    p.brand { "otpgate" }
                    h1 { (title) }
                    (body)
                }
            }
        },
    )
}

/// The frame of the admin panel: navigation, the administrator's name, logout.
pub struct PanelFrame<'a> {
    pub title: &'a str,
    pub active: &'a str,
    pub admin_login: &'a str,
    pub csrf: &'a str,
}

pub fn panel_page(frame: &PanelFrame<'_>, body: Markup) -> Markup {
    document(
        &format!("{} · otpgate", frame.title),
        Some("/assets/panel.js"),
        html! {
            body {
                header.topbar {
                    a.brand href="/admin" { "otpgate" }
                    nav aria-label="Main" {
                        @for (label, href) in NAV {
                            @if *label == frame.active {
                                a.active href=(href) aria-current="page" { (label) }
                            } @else {
                                a href=(href) { (label) }
                            }
                        }
                    }
                    form.logout method="post" action="/admin/logout" {
                        input type="hidden" name="csrf" value=(frame.csrf);
                        span.who { (frame.admin_login) }
                        button.link type="submit" { "Log out" }
                    }
                }
                main.panel {
                    h1 { (frame.title) }
                    (body)
                }
            }
        },
    )
}

pub fn message_page(title: &str, message: &str) -> Markup {
    bare_page(
        title,
        html! {
            p { (message) }
            p { a href="/admin" { "Back to otpgate" } }
        },
    )
}

/// A QR code as an image (an SVG data URI, so that no inline markup or script is needed).
pub fn qr_image(data: &str, alt: &str) -> Markup {
    let svg = crate::provision::qr_svg(data).unwrap_or_default();
    let uri = format!(
        "data:image/svg+xml;base64,{}",
        data_encoding::BASE64.encode(svg.as_bytes())
    );
    html! { img.qr src=(uri) alt=(alt) width="220" height="220"; }
}

/// A BOT token's activation link under its QR code; on a phone, where the QR code cannot be
/// scanned with the same phone, an Open Telegram button before it (the stylesheet shows it on
/// narrow screens only).
pub fn telegram_link(link: &str) -> Markup {
    html! {
        p.telegram-link {
            a.button.open-telegram href=(link) { "Open Telegram" }
            a.deep-link href=(link) { (link) }
        }
    }
}

/// The enrolment of an authenticator app: the QR code of its `otpauth://` URI and, for a phone
/// without a camera, the key to type.
pub fn app_enrolment(uri: &str, secret: &[u8], alt: &str) -> Markup {
    html! {
        (qr_image(uri, alt))
        p.note { "No camera? Type this key into the app instead:" }
        code.secret { (crate::otp::encode_secret(secret)) }
    }
}

/// A wait in words, for "try again in …" (see `domain::words::wait`).
pub fn wait_in_words(seconds: u64) -> String {
    crate::domain::words::wait(seconds)
}

/// A count with its noun: "1 token", "3 tokens" (see `domain::words::count`).
pub fn plural(count: usize, one: &str, many: &str) -> String {
    crate::domain::words::count(count as u64, one, many)
}

/// A token as a sentence names it: “Work phone”, or its serial when it has no name.
pub fn token_label(token: &crate::store::Token) -> String {
    crate::domain::words::token_label(&token.name, &token.serial)
}

/// A time as the pages show it: `2026-11-22 14:03:09` (UTC).
pub fn format_time(at: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_text_is_escaped() {
        let page = message_page("<script>", "<b>bold</b> & \"quoted\"").into_string();
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;"));
    }

    #[test]
    fn a_qr_code_is_an_svg_image() {
        let markup = qr_image("otpauth://totp/x?secret=AAAA", "QR").into_string();
        assert!(markup.contains("data:image/svg+xml;base64,"));
    }
}
