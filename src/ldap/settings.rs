//! The rules of a directory's fields, shared by every front end that manages directories (the
//! API, the panel): the presets, and the checks that refuse a field in the same words
//! everywhere. Pure: no I/O.

use crate::domain::FieldError;
use crate::store::directories::DirectoryFields;

use super::filter;

pub const MAX_DIRECTORY_NAME: usize = 100;
/// At most this many server addresses, tried in order.
pub const MAX_URLS: usize = 5;
/// At most this many login attributes.
pub const MAX_LOGIN_ATTRIBUTES: usize = 5;
pub const MAX_DN: usize = 1024;
pub const MAX_FILTER: usize = 2048;
pub const MAX_PASSWORD: usize = 1024;
pub const MAX_CA_PEM: usize = 64 * 1024;
pub const CONNECT_TIMEOUTS: std::ops::RangeInclusive<i64> = 1..=60;
pub const SEARCH_TIMEOUTS: std::ops::RangeInclusive<i64> = 1..=300;
pub const SYNC_INTERVALS: std::ops::RangeInclusive<i64> = 1..=1440;

/// The kind of directory server: it says how the stable id is read, what a bind error's
/// sub-code means, and how nested groups are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Active Directory or Samba AD: `sAMAccountName`/`userPrincipalName`, `objectGUID`.
    ActiveDirectory,
    /// FreeIPA or OpenLDAP: `uid`, `entryUUID`.
    OpenLdap,
}

impl Kind {
    pub const NAMES: [&'static str; 2] = ["active_directory", "openldap"];

    /// How this kind of server matches a group's members.
    pub fn members(self) -> filter::Members {
        match self {
            Kind::ActiveDirectory => filter::Members::InChain,
            Kind::OpenLdap => filter::Members::Direct,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ActiveDirectory => "active_directory",
            Kind::OpenLdap => "openldap",
        }
    }

    pub fn parse(text: &str) -> Result<Kind, FieldError> {
        match text.trim() {
            "active_directory" => Ok(Kind::ActiveDirectory),
            "openldap" => Ok(Kind::OpenLdap),
            _ => Err(FieldError::new(
                "kind",
                "must be active_directory (Active Directory, Samba AD) or openldap (FreeIPA, OpenLDAP)",
            )),
        }
    }
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// `ldap://`, then StartTLS before anything else is said.
    StartTls,
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` in clear: passwords cross the network readable; for tests and loopback.
    None,
}

impl Tls {
    pub const NAMES: [&'static str; 3] = ["starttls", "ldaps", "none"];

    pub fn as_str(self) -> &'static str {
        match self {
            Tls::StartTls => "starttls",
            Tls::Ldaps => "ldaps",
            Tls::None => "none",
        }
    }

    pub fn parse(text: &str) -> Result<Tls, FieldError> {
        match text.trim() {
            "starttls" => Ok(Tls::StartTls),
            "ldaps" => Ok(Tls::Ldaps),
            "none" => Ok(Tls::None),
            _ => Err(FieldError::new("tls", "must be starttls, ldaps or none")),
        }
    }
}

/// A directory's fields as its preset fills them: what is left is the name, the servers, the
/// service account and the base DN.
pub fn preset(kind: Kind) -> DirectoryFields {
    let common = DirectoryFields {
        kind: kind.as_str().to_string(),
        tls: Tls::StartTls.as_str().to_string(),
        first_name_attribute: "givenName".into(),
        last_name_attribute: "sn".into(),
        email_attribute: "mail".into(),
        mobile_attribute: "mobile".into(),
        connect_timeout_seconds: 5,
        search_timeout_seconds: 30,
        sync_interval_minutes: 15,
        ..DirectoryFields::default()
    };
    match kind {
        Kind::ActiveDirectory => DirectoryFields {
            // People, not computers (which are users too in AD), and not disabled accounts.
            user_filter: "(&(objectCategory=person)(objectClass=user)\
                          (!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
                .into(),
            login_attributes: vec!["sAMAccountName".into(), "userPrincipalName".into()],
            id_attribute: "objectGUID".into(),
            ..common
        },
        Kind::OpenLdap => DirectoryFields {
            user_filter: "(objectClass=inetOrgPerson)".into(),
            login_attributes: vec!["uid".into()],
            id_attribute: "entryUUID".into(),
            ..common
        },
    }
}

/// Checks every field and returns them in their normal form (trimmed, addresses without a
/// trailing slash), or the first field that does not fit.
pub fn check(fields: DirectoryFields) -> Result<DirectoryFields, FieldError> {
    let kind = Kind::parse(&fields.kind)?;
    let tls = Tls::parse(&fields.tls)?;
    let name = directory_name(&fields.name)?;
    let urls = urls(&fields.urls, tls)?;
    let ca_pem = match fields.ca_pem.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(pem) => Some(ca_pem(pem)?),
    };
    let bind_dn = dn("bind_dn", &fields.bind_dn)?;
    let base_dn = dn("base_dn", &fields.base_dn)?;
    let user_filter = search_filter("user_filter", &fields.user_filter)?;
    if fields.login_attributes.is_empty() || fields.login_attributes.len() > MAX_LOGIN_ATTRIBUTES {
        return Err(FieldError::new(
            "login_attributes",
            format!("name 1 to {MAX_LOGIN_ATTRIBUTES} attributes"),
        ));
    }
    let login_attributes = fields
        .login_attributes
        .iter()
        .map(|name| attribute("login_attributes", name))
        .collect::<Result<Vec<_>, _>>()?;
    let id_attribute = attribute("id_attribute", &fields.id_attribute)?;
    let mapped = |field: &'static str, name: &str| -> Result<String, FieldError> {
        if name.trim().is_empty() {
            Ok(String::new())
        } else {
            attribute(field, name)
        }
    };
    let user_group = match fields.user_group.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(group) if group.starts_with('(') => Some(search_filter("user_group", group)?),
        Some(group) => Some(dn("user_group", group)?),
    };
    Ok(DirectoryFields {
        name,
        kind: kind.as_str().to_string(),
        urls,
        tls: tls.as_str().to_string(),
        ca_pem,
        bind_dn,
        base_dn,
        user_filter,
        login_attributes,
        id_attribute,
        first_name_attribute: mapped("first_name_attribute", &fields.first_name_attribute)?,
        last_name_attribute: mapped("last_name_attribute", &fields.last_name_attribute)?,
        email_attribute: mapped("email_attribute", &fields.email_attribute)?,
        mobile_attribute: mapped("mobile_attribute", &fields.mobile_attribute)?,
        user_group,
        connect_timeout_seconds: in_range(
            "connect_timeout_seconds",
            fields.connect_timeout_seconds,
            CONNECT_TIMEOUTS,
        )?,
        search_timeout_seconds: in_range(
            "search_timeout_seconds",
            fields.search_timeout_seconds,
            SEARCH_TIMEOUTS,
        )?,
        sync_interval_minutes: in_range(
            "sync_interval_minutes",
            fields.sync_interval_minutes,
            SYNC_INTERVALS,
        )?,
    })
}

/// A directory's name: trimmed, 1 to 100 characters, no control characters, not a number.
pub fn directory_name(text: &str) -> Result<String, FieldError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_DIRECTORY_NAME {
        return Err(FieldError::new(
            "name",
            format!("must have 1 to {MAX_DIRECTORY_NAME} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "may not contain control characters",
        ));
    }
    if text.parse::<i64>().is_ok() {
        return Err(FieldError::new("name", "may not be a number"));
    }
    Ok(text.to_string())
}

/// The service account's password: 1 to 1024 characters. An empty one is refused: an empty
/// password makes a bind anonymous (RFC 4513 §5.1.2), which would "succeed" and then see
/// nothing.
pub fn check_bind_password(text: &str) -> Result<(), FieldError> {
    if text.is_empty() || text.chars().count() > MAX_PASSWORD {
        return Err(FieldError::new(
            "bind_password",
            format!("must have 1 to {MAX_PASSWORD} characters"),
        ));
    }
    Ok(())
}

/// The servers' addresses: 1 to 5 `ldap://host[:port]` (StartTLS or none) or
/// `ldaps://host[:port]` (ldaps), in failover order.
fn urls(urls: &[String], tls: Tls) -> Result<Vec<String>, FieldError> {
    let refuse = |message: String| FieldError::new("urls", message);
    if urls.is_empty() || urls.len() > MAX_URLS {
        return Err(refuse(format!("give 1 to {MAX_URLS} server addresses")));
    }
    let scheme = match tls {
        Tls::Ldaps => "ldaps://",
        Tls::StartTls | Tls::None => "ldap://",
    };
    let mut checked = Vec::with_capacity(urls.len());
    for url in urls {
        let url = url.trim();
        let shown = quoted(url);
        let Some(rest) = url
            .get(..scheme.len())
            .filter(|start| start.eq_ignore_ascii_case(scheme))
            .map(|_| &url[scheme.len()..])
        else {
            return Err(refuse(format!(
                "{shown} does not start with {scheme}, as tls {} asks",
                tls.as_str()
            )));
        };
        let host_port = rest.strip_suffix('/').unwrap_or(rest);
        if !host_and_port(host_port) {
            return Err(refuse(format!(
                "{shown} is not {scheme}host or {scheme}host:port"
            )));
        }
        checked.push(format!("{scheme}{host_port}"));
    }
    Ok(checked)
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, with a DNS name or an address as host.
fn host_and_port(text: &str) -> bool {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((address, after)) = rest.split_once(']') else {
            return false;
        };
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            after => match after.strip_prefix(':') {
                Some(port) => ("ok", port),
                None => return false,
            },
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (text, "389"),
        }
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        });
    let port_ok = !port.is_empty()
        && port.bytes().all(|byte| byte.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|port| port > 0);
    host_ok && port_ok
}

/// One or more PEM certificates (the CA that signed the servers' certificates).
fn ca_pem(text: &str) -> Result<String, FieldError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let refuse = || {
        FieldError::new(
            "ca_pem",
            "must be one or more certificates in PEM form (-----BEGIN CERTIFICATE-----)",
        )
    };
    if text.len() > MAX_CA_PEM {
        return Err(FieldError::new(
            "ca_pem",
            format!("may have at most {} KiB", MAX_CA_PEM / 1024),
        ));
    }
    let certificates = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| refuse())?;
    if certificates.is_empty()
        || certificates
            .iter()
            .any(|der| x509_parser::parse_x509_certificate(der).is_err())
    {
        return Err(refuse());
    }
    Ok(text.to_string())
}

/// A distinguished name (RFC 4514): `attribute=value` parts split by unescaped commas.
pub fn dn(field: &'static str, text: &str) -> Result<String, FieldError> {
    let text = text.trim();
    let refuse = || {
        FieldError::new(
            field,
            "must be a distinguished name such as cn=otpgate,ou=services,dc=example,dc=org",
        )
    };
    if text.is_empty() || text.len() > MAX_DN || text.chars().any(char::is_control) {
        return Err(refuse());
    }
    for part in split_unescaped(text, ',').ok_or_else(refuse)? {
        let Some((attribute_name, value)) = part.split_once('=') else {
            return Err(refuse());
        };
        if !is_attribute(attribute_name.trim()) || value.trim().is_empty() {
            return Err(refuse());
        }
    }
    Ok(text.to_string())
}

/// Splits at `separator` where it is not escaped by a backslash; None when the text ends in a
/// lone backslash.
fn split_unescaped(text: &str, separator: char) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (at, character) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if character == '\\' {
            escaped = true;
        } else if character == separator {
            parts.push(&text[start..at]);
            start = at + 1;
        }
    }
    if escaped {
        return None;
    }
    parts.push(&text[start..]);
    Some(parts)
}

/// A search filter in the string form of RFC 4515, in parentheses.
pub fn search_filter(field: &'static str, text: &str) -> Result<String, FieldError> {
    let text = text.trim();
    if text.len() > MAX_FILTER || !text.starts_with('(') || !filter::is_valid(text) {
        return Err(FieldError::new(
            field,
            "must be an LDAP search filter (RFC 4515) in parentheses, such as (objectClass=person)",
        ));
    }
    Ok(text.to_string())
}

/// An attribute's name (a letter, then letters, digits and hyphens) or a numeric OID.
pub fn attribute(field: &'static str, text: &str) -> Result<String, FieldError> {
    let text = text.trim();
    if text.len() > 128 || !is_attribute(text) {
        return Err(FieldError::new(
            field,
            format!(
                "{} is not an attribute name (a letter, then letters, digits and hyphens)",
                quoted(text)
            ),
        ));
    }
    Ok(text.to_string())
}

fn is_attribute(text: &str) -> bool {
    let descriptor = text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let oid = !text.is_empty()
        && text.split('.').all(|number| {
            !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
                && (number == "0" || !number.starts_with('0'))
        });
    descriptor || oid
}

/// A refused value as its message repeats it: quoted, and cut short when long.
fn quoted(text: &str) -> String {
    const MAX_QUOTED: usize = 64;
    match text.char_indices().nth(MAX_QUOTED) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
    }
}

/// A number typed as text (a form's field): a whole number in `range`, refused in the same
/// words as one out of it.
pub fn whole_number(
    field: &'static str,
    text: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, FieldError> {
    let value = text.trim().parse::<i64>().unwrap_or(i64::MIN);
    in_range(field, value, range)
}

fn in_range(
    field: &'static str,
    value: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, FieldError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(FieldError::new(
            field,
            format!("must be from {} to {}", range.start(), range.end()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openldap() -> DirectoryFields {
        DirectoryFields {
            name: "Head office".into(),
            urls: vec![
                "ldap://ldap1.example.org/".into(),
                "ldap://10.0.0.2:1389".into(),
            ],
            bind_dn: "cn=otpgate,ou=services,dc=example,dc=org".into(),
            base_dn: "ou=people,dc=example,dc=org".into(),
            ..preset(Kind::OpenLdap)
        }
    }

    #[test]
    fn a_complete_directory_is_kept_in_its_normal_form() {
        let checked = check(openldap()).expect("fits");
        assert_eq!(
            checked.urls,
            ["ldap://ldap1.example.org", "ldap://10.0.0.2:1389"]
        );
        assert_eq!(checked.login_attributes, ["uid"]);
        assert_eq!(checked.id_attribute, "entryUUID");
    }

    #[test]
    fn the_active_directory_preset_reads_account_names_and_the_object_guid() {
        let preset = preset(Kind::ActiveDirectory);
        assert_eq!(
            preset.login_attributes,
            ["sAMAccountName", "userPrincipalName"]
        );
        assert_eq!(preset.id_attribute, "objectGUID");
        assert!(filter::is_valid(&preset.user_filter));
    }

    #[test]
    fn an_ldaps_address_with_starttls_is_refused_with_its_reason() {
        let fields = DirectoryFields {
            urls: vec!["ldaps://ldap.example.org".into()],
            ..openldap()
        };
        let error = check(fields).expect_err("refused");
        assert_eq!(error.field, "urls");
        assert!(error.message.contains("ldap://"), "{}", error.message);
    }

    #[test]
    fn addresses_with_paths_or_bad_ports_are_refused() {
        for url in [
            "ldap://host/dc=x",
            "ldap://host:0",
            "ldap://host:99999",
            "ldap://",
            "http://host",
            "ldap://[::1",
        ] {
            let fields = DirectoryFields {
                urls: vec![url.into()],
                ..openldap()
            };
            assert_eq!(check(fields).expect_err(url).field, "urls", "{url}");
        }
        let fields = DirectoryFields {
            urls: vec!["ldap://[2001:db8::1]:389".into()],
            ..openldap()
        };
        assert!(check(fields).is_ok());
    }

    #[test]
    fn a_broken_filter_or_dn_names_its_field() {
        let fields = DirectoryFields {
            user_filter: "(objectClass=person".into(),
            ..openldap()
        };
        assert_eq!(check(fields).expect_err("refused").field, "user_filter");
        let fields = DirectoryFields {
            base_dn: "people at example".into(),
            ..openldap()
        };
        assert_eq!(check(fields).expect_err("refused").field, "base_dn");
        let fields = DirectoryFields {
            user_group: Some("cn=vpn,ou=groups,dc=example,dc=org".into()),
            ..openldap()
        };
        assert!(check(fields).is_ok());
        let fields = DirectoryFields {
            user_group: Some("(memberOf=cn=vpn".into()),
            ..openldap()
        };
        assert_eq!(check(fields).expect_err("refused").field, "user_group");
    }

    #[test]
    fn an_escaped_comma_stays_inside_its_value() {
        assert!(dn("base_dn", r"ou=Sales\, Europe,dc=example,dc=org").is_ok());
        assert!(dn("base_dn", r"ou=Sales\").is_err());
    }

    #[test]
    fn attribute_names_and_numeric_oids_are_accepted_and_nothing_else() {
        for good in ["uid", "sAMAccountName", "msDS-PrincipalName", "2.5.4.3"] {
            assert!(attribute("id_attribute", good).is_ok(), "{good}");
        }
        for bad in ["", "1uid", "uid)", "(uid", "2.5..3", "uid name"] {
            assert!(attribute("id_attribute", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_empty_service_password_is_refused_because_it_would_bind_anonymously() {
        assert_eq!(
            check_bind_password("").expect_err("refused").field,
            "bind_password"
        );
        assert!(check_bind_password("s3cret").is_ok());
    }

    #[test]
    fn a_timeout_out_of_range_names_its_field() {
        let fields = DirectoryFields {
            connect_timeout_seconds: 0,
            ..openldap()
        };
        assert_eq!(
            check(fields).expect_err("refused").field,
            "connect_timeout_seconds"
        );
    }
}
