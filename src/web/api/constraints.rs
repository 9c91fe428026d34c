//! What the OpenAPI document says a request may hold, beyond the types the handlers' annotations
//! give: the ranges, lengths and shapes the server checks, taken from the same constants the
//! checks use, and the rules between fields (a PATCH must change something, `authenticate`
//! needs a user or a token and a code or a password, a token's fields depend on its kind). A
//! request the document allows is then one the server takes, unless what is stored says no (a
//! name taken, an object missing) or a rule that no schema can state does (the configured PIN
//! rule, a readable CA file, an SMS template's placeholders); those are named in the
//! descriptions. The document is generated once at start; this runs on it as JSON.

use serde_json::{Map, Value, json};

use crate::domain::{
    MAX_KEY_NAME, MAX_LOGIN, MAX_NAME, MAX_PASSWORD, MAX_SERIAL, MIN_PASSWORD, PIN_LENGTHS,
};
use crate::store::resources::{
    AUTO_UNLOCK, FAIL_LIMITS, MAX_DESCRIPTION, MAX_RESOURCE_NAME, PortalAction, auto_unlock_cost,
};
use crate::store::settings::{CHALLENGE_VALIDITY, PER_HOUR, PORTAL_IDLE_MINUTES, RESEND_COOLDOWN};

/// One line: no control character (C0, DEL, C1), as `char::is_control` says.
const ONE_LINE: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";
/// One line with something in it besides spaces (the server trims).
const NOT_BLANK: &str = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$";
/// A login or a resource name: not blank, one line, and not a number (numbers are ids).
const NOT_A_NUMBER: &str =
    r"^(?!\s*[+-]?[0-9]+\s*$)[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$";
/// `local@domain.tld`, as `Email::parse` takes it.
const EMAIL: &str =
    r"^[^\s@\x00-\x1F\x7F-\x9F]+@[^\s@.\x00-\x1F\x7F-\x9F]+(\.[^\s@.\x00-\x1F\x7F-\x9F]+)+$";
/// The longest email address.
const MAX_EMAIL: usize = 254;
/// A phone number in international form, as `Phone::parse` stores it.
const PHONE: &str = r"^\+[1-9][0-9]{6,14}$";
/// A path segment or query value that names an object: digits are an id (without a leading
/// zero), anything with another character a name (`serial:0042`, `HW-1`, `alice`).
const NAMED_IN_TEXT: &str = r"^(?:[1-9][0-9]{0,17}|.*[^0-9].*)$";
/// A base32 seed of `MIN_SECRET_LEN` to `MAX_SECRET` bytes, without padding.
const BASE32_SEED: &str =
    r"^(?:[A-Za-z2-7]{8})*(?:[A-Za-z2-7]{2}|[A-Za-z2-7]{4,5}|[A-Za-z2-7]{7})?$";
/// An http or https address with a host of letters, digits, dots and dashes (so that any
/// address this allows is one a URL parser takes), an optional port and anything after a slash.
const WEB_ADDRESS: &str = r"^\s*[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]*[A-Za-z0-9](?::[1-9][0-9]{0,3})?(?:[/?][^\s]*)?\s*$";
/// A Self-Service Page Address as `parse_portal_address` takes it (it lowers the case), or
/// nothing.
const PORTAL_ADDRESS_OR_NONE: &str = r"^\s*(?:[A-Za-z0-9][A-Za-z0-9-]{0,61}[A-Za-z0-9])?\s*$";
/// A Self-Service Page Address, which a portal that is on must have.
const PORTAL_ADDRESS: &str = r"^\s*[A-Za-z0-9][A-Za-z0-9-]{0,61}[A-Za-z0-9]\s*$";
/// The public address of the general settings: http or https, a host as in `WEB_ADDRESS`, an
/// optional port and path, no query, fragment or user name; or nothing.
const PUBLIC_ADDRESS_OR_NONE: &str = r"^\s*(?:[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]*[A-Za-z0-9](?::[1-9][0-9]{0,3})?(?:/[^\s?#]*)?)?\s*$";
/// A time of the audit log's filters: a date, or a date and time (seconds and `Z` optional).
const AUDIT_TIME: &str = r"^\s*[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?Z?)?\s*$";
/// A status rule of the SMS gateway: classes (`2xx`) and codes, comma-separated.
const STATUS_RULE: &str =
    r"^\s*(?:[1-5](?:xx|XX)|[1-5][0-9]{2})(?:\s*,\s*(?:[1-5](?:xx|XX)|[1-5][0-9]{2}))*\s*$";

fn email() -> Value {
    json!({"format": "email", "maxLength": MAX_EMAIL, "pattern": EMAIL})
}

fn phone() -> Value {
    json!({"pattern": PHONE})
}

fn one_line(max: usize) -> Value {
    json!({"maxLength": max, "pattern": ONE_LINE})
}

fn not_blank(max: usize) -> Value {
    json!({"minLength": 1, "maxLength": max, "pattern": NOT_BLANK})
}

fn range(minimum: i64, maximum: i64) -> Value {
    json!({"minimum": minimum, "maximum": maximum})
}

/// A range of whole numbers, from its constant.
fn range_of<T: Copy + TryInto<i64>>(values: &std::ops::RangeInclusive<T>) -> Value {
    let whole = |value: T| value.try_into().unwrap_or(i64::MAX);
    range(whole(*values.start()), whole(*values.end()))
}

fn base32_seed() -> Value {
    let bytes = crate::import::MIN_SECRET_LEN..=crate::provision::MAX_SECRET;
    json!({
        "minLength": (bytes.start() * 8).div_ceil(5),
        "maxLength": (bytes.end() * 8).div_ceil(5),
        "pattern": BASE32_SEED,
    })
}

fn hex_seed() -> Value {
    let bytes = crate::import::MIN_SECRET_LEN..=crate::provision::MAX_SECRET;
    json!({"pattern": format!("^(?:[0-9A-Fa-f]{{2}}){{{},{}}}$", bytes.start(), bytes.end())})
}

/// An address the end user came from.
fn ip_address(description: &Value) -> Value {
    json!({
        "anyOf": [
            {"type": "string", "format": "ipv4"},
            {"type": "string", "format": "ipv6"},
            {"type": "null"},
        ],
        "description": description,
    })
}

/// The constraints of each request field, by schema and property.
fn fields() -> Vec<(&'static str, &'static str, Value)> {
    let login = json!({"minLength": 1, "maxLength": MAX_LOGIN, "pattern": NOT_A_NUMBER});
    let resource_name =
        json!({"minLength": 1, "maxLength": MAX_RESOURCE_NAME, "pattern": NOT_A_NUMBER});
    let password = json!({"minLength": MIN_PASSWORD, "maxLength": MAX_PASSWORD});
    let pin = json!({
        "minLength": PIN_LENGTHS.start(),
        "maxLength": PIN_LENGTHS.end(),
        "pattern": ONE_LINE,
    });
    let pin_for_enrolment = pin.clone();
    let fail_limit = range(*FAIL_LIMITS.start(), *FAIL_LIMITS.end());
    let auto_unlock = merge(
        &range(*AUTO_UNLOCK.start(), *AUTO_UNLOCK.end()),
        json!({"description": format!(
            "Seconds after which a locked token unlocks itself; absent or null: only an administrator unlocks. {}",
            auto_unlock_cost()
        )}),
    );
    let timeout = range(1, 120);
    let digits = json!({"enum": [6, 8]});
    let limit = json!({"maxLength": MAX_DESCRIPTION});
    vec![
        ("CreateUser", "login", login.clone()),
        ("CreateUser", "first_name", one_line(MAX_NAME)),
        ("CreateUser", "last_name", one_line(MAX_NAME)),
        ("CreateUser", "email", email()),
        ("CreateUser", "phone", phone()),
        ("CreateUser", "password", password.clone()),
        // A login cannot be removed: a string or nothing.
        (
            "UpdateUser",
            "login",
            merge(&login, json!({"type": "string"})),
        ),
        ("UpdateUser", "first_name", one_line(MAX_NAME)),
        ("UpdateUser", "last_name", one_line(MAX_NAME)),
        ("UpdateUser", "email", email()),
        ("UpdateUser", "phone", phone()),
        ("UpdateUser", "enabled", json!({"type": "boolean"})),
        ("SetPassword", "password", password),
        ("CreateResource", "name", resource_name.clone()),
        ("CreateResource", "description", limit.clone()),
        ("CreateResource", "fail_limit", fail_limit.clone()),
        ("CreateResource", "auto_unlock_seconds", auto_unlock.clone()),
        (
            "UpdateResource",
            "name",
            merge(&resource_name, json!({"type": "string"})),
        ),
        ("UpdateResource", "description", limit),
        (
            "UpdateResource",
            "fail_limit",
            merge(&fail_limit, json!({"type": "integer"})),
        ),
        ("UpdateResource", "auto_unlock_seconds", auto_unlock),
        (
            "UpdateResource",
            "password_required",
            json!({"type": "boolean"}),
        ),
        ("CreateToken", "name", one_line(MAX_NAME)),
        ("CreateToken", "serial", not_blank(MAX_SERIAL)),
        (
            "CreateToken",
            "algorithm",
            json!({"enum": ["SHA1", "SHA256", "SHA512", null]}),
        ),
        ("CreateToken", "digits", json!({"enum": [6, 8, null]})),
        ("CreateToken", "period", json!({"enum": [30, 60, null]})),
        ("CreateToken", "counter", range(0, i64::MAX)),
        (
            "CreateToken",
            "messenger",
            json!({"enum": ["telegram", null]}),
        ),
        ("CreateToken", "pin", pin.clone()),
        (
            "CreateToken",
            "pin_position",
            json!({"enum": ["before", "after", null]}),
        ),
        // A change names something to change: no field is null but the PIN (which removes it).
        (
            "UpdateToken",
            "name",
            merge(&one_line(MAX_NAME), json!({"type": "string"})),
        ),
        (
            "UpdateToken",
            "digits",
            merge(&digits, json!({"type": "integer"})),
        ),
        ("UpdateToken", "pin", pin),
        (
            "UpdateToken",
            "pin_position",
            json!({"type": "string", "enum": ["before", "after"]}),
        ),
        ("UpdateToken", "enabled", json!({"type": "boolean"})),
        (
            "UpdateToken",
            "destination",
            json!({
                "type": "string",
                "description": "MAIL tokens: an email address; SMS tokens: a phone number in international form.",
                "anyOf": [email(), phone()],
            }),
        ),
        (
            "ResyncToken",
            "otp1",
            json!({"pattern": "^[0-9]{6}$|^[0-9]{8}$"}),
        ),
        (
            "ResyncToken",
            "otp2",
            json!({"pattern": "^[0-9]{6}$|^[0-9]{8}$"}),
        ),
        ("ImportTokens", "data", json!({"minLength": 1})),
        ("EnrolToken", "kind", json!({"enum": ["TOTP", "HOTP"]})),
        ("EnrolToken", "name", one_line(MAX_NAME)),
        ("EnrolToken", "serial", not_blank(MAX_SERIAL)),
        (
            "EnrolToken",
            "algorithm",
            json!({"enum": ["SHA1", "SHA256", "SHA512", null]}),
        ),
        ("EnrolToken", "digits", json!({"enum": [6, 8, null]})),
        ("EnrolToken", "period", json!({"enum": [30, 60, null]})),
        ("EnrolToken", "pin", pin_for_enrolment),
        (
            "EnrolToken",
            "pin_position",
            json!({"enum": ["before", "after", null]}),
        ),
        (
            "ConfirmToken",
            "otp",
            json!({"pattern": "^\\s*(?:[0-9]{6}|[0-9]{8})\\s*$"}),
        ),
        (
            "MailSettingsRequest",
            "host",
            json!({"minLength": 1, "maxLength": 253, "pattern": r"^\s*[A-Za-z0-9.:_-]*[A-Za-z0-9]\s*$"}),
        ),
        ("MailSettingsRequest", "port", range(1, 65_535)),
        (
            "MailSettingsRequest",
            "username",
            json!({"pattern": ONE_LINE}),
        ),
        ("MailSettingsRequest", "from_address", email()),
        ("MailSettingsRequest", "from_name", one_line(128)),
        ("MailSettingsRequest", "timeout_seconds", timeout.clone()),
        (
            "SmsSettingsRequest",
            "url",
            json!({
                "minLength": 1,
                "pattern": WEB_ADDRESS,
                "description": "The URL; `{phone}` and `{message}` are percent-encoded where they stand. \
                    Each must appear in the URL or the body; with basic or bearer authentication a \
                    secret must be given or stored; a JSON body must be JSON once filled in.",
            }),
        ),
        (
            "SmsSettingsRequest",
            "success_status",
            json!({"pattern": STATUS_RULE}),
        ),
        ("SmsSettingsRequest", "timeout_seconds", timeout.clone()),
        (
            "BotSettingsRequest",
            "token",
            json!({"pattern": r"^\s*(?:[0-9]{1,20}:[A-Za-z0-9_-]+)?\s*$"}),
        ),
        (
            "BotSettingsRequest",
            "api_url",
            json!({"pattern": WEB_ADDRESS}),
        ),
        ("BotSettingsRequest", "poll_timeout_seconds", range(1, 50)),
        ("BotSettingsRequest", "timeout_seconds", timeout),
        // API keys, Self-Service and the general settings.
        ("CreateApiKey", "name", not_blank(MAX_KEY_NAME)),
        (
            "SelfServiceRequest",
            "address",
            json!({"pattern": PORTAL_ADDRESS_OR_NONE}),
        ),
        (
            "SelfServiceRequest",
            "allowed_actions",
            json!({"items": {
                "type": "string",
                "enum": PortalAction::ALL.map(PortalAction::as_str),
            }}),
        ),
        (
            "GeneralSettingsRequest",
            "public_url",
            json!({"pattern": PUBLIC_ADDRESS_OR_NONE}),
        ),
        (
            "GeneralSettingsRequest",
            "default_otp_length",
            json!({"enum": [6, 8]}),
        ),
        (
            "GeneralSettingsRequest",
            "challenge_validity_seconds",
            range_of(&CHALLENGE_VALIDITY),
        ),
        (
            "GeneralSettingsRequest",
            "pin_min_length",
            range_of(&PIN_LENGTHS),
        ),
        (
            "GeneralSettingsRequest",
            "pin_max_length",
            range_of(&PIN_LENGTHS),
        ),
        (
            "GeneralSettingsRequest",
            "portal_idle_minutes",
            range_of(&PORTAL_IDLE_MINUTES),
        ),
        (
            "GeneralSettingsRequest",
            "resend_cooldown_seconds",
            range_of(&RESEND_COOLDOWN),
        ),
        (
            "GeneralSettingsRequest",
            "mail_per_hour",
            range_of(&PER_HOUR),
        ),
        (
            "GeneralSettingsRequest",
            "sms_per_hour",
            range_of(&PER_HOUR),
        ),
        (
            "GeneralSettingsRequest",
            "bot_per_hour",
            range_of(&PER_HOUR),
        ),
        (
            "PutRadiusAttributes",
            "attributes",
            json!({"maxItems": crate::radius::reply::MAX_REPLY_ATTRIBUTES}),
        ),
        (
            "TestRequest",
            "to",
            json!({
                "description": "An email address (mail) or a phone number in international form (SMS).",
                "anyOf": [email(), phone()],
            }),
        ),
    ]
}

/// The rules between the fields of one request, by schema.
fn rules() -> Vec<(&'static str, Value)> {
    let present = |field: &str| json!({"required": [field], "properties": {field: {"not": {"type": "null"}}}});
    let absent = |fields: &[&str]| {
        let properties: Map<String, Value> = fields
            .iter()
            .map(|field| (field.to_string(), Value::Bool(false)))
            .collect();
        Value::Object(properties)
    };
    let kind_is = |kinds: &[&str]| json!({"properties": {"kind": {"enum": kinds}}});
    vec![
        (
            "AuthenticateRequest",
            json!({"allOf": [
                {"anyOf": [present("user"), present("token")]},
                {"anyOf": [present("otp"), present("password")]},
            ]}),
        ),
        ("UpdateUser", json!({"minProperties": 1})),
        // A portal that is on has an address.
        (
            "SelfServiceRequest",
            json!({
                "if": {"required": ["enabled"], "properties": {"enabled": {"const": true}}},
                "then": {
                    "required": ["address"],
                    "properties": {"address": {"type": "string", "pattern": PORTAL_ADDRESS}},
                },
            }),
        ),
        ("UpdateResource", json!({"minProperties": 1})),
        ("UpdateToken", json!({"minProperties": 1})),
        (
            "CreateToken",
            json!({
                "dependentRequired": {"resource": ["user"], "secret_format": ["secret"]},
                "allOf": [
                    {"if": kind_is(&["MAIL", "SMS", "BOT"]),
                     "then": {"properties": absent(&["secret", "secret_format", "algorithm", "period", "counter"])}},
                    {"if": kind_is(&["TOTP"]), "then": {"properties": absent(&["counter"])}},
                    {"if": kind_is(&["HOTP"]), "then": {"properties": absent(&["period"])}},
                    {"if": kind_is(&["TOTP", "HOTP", "BOT"]), "then": {"properties": absent(&["destination"])}},
                    {"if": kind_is(&["TOTP", "HOTP", "MAIL", "SMS"]), "then": {"properties": absent(&["messenger"])}},
                    {"if": kind_is(&["MAIL"]), "then": {"properties": {"destination": email()}}},
                    {"if": kind_is(&["SMS"]), "then": {"properties": {"destination": phone()}}},
                    {"if": {"required": ["secret_format"], "properties": {"secret_format": {"const": "hex"}}},
                     "then": {"properties": {"secret": hex_seed()}},
                     "else": {"properties": {"secret": base32_seed()}}},
                ],
            }),
        ),
        (
            "EnrolToken",
            json!({
                "dependentRequired": {"resource": ["user"]},
                "if": kind_is(&["HOTP"]),
                "then": {"properties": absent(&["period"])},
            }),
        ),
        (
            "MailSettingsRequest",
            json!({
                "if": {
                    "required": ["security", "username"],
                    "properties": {"security": {"const": "none"}, "username": {"type": "string", "pattern": r"\S"}},
                },
                "then": {
                    "required": ["allow_plaintext_credentials"],
                    "properties": {"allow_plaintext_credentials": {"const": true}},
                },
            }),
        ),
        (
            "SmsSettingsRequest",
            json!({
                "allOf": [
                    {"anyOf": [
                        {"properties": {"url": {"pattern": r"\{message\}"}}},
                        {"required": ["body"], "properties": {"body": {"type": "string", "pattern": r"\{message\}"}}},
                    ]},
                    {"anyOf": [
                        {"properties": {"url": {"pattern": r"\{phone\}"}}},
                        {"required": ["body"], "properties": {"body": {"type": "string", "pattern": r"\{phone\}"}}},
                    ]},
                    // A GET has no body; a body needs its format.
                    {"if": {"required": ["method"], "properties": {"method": {"const": "GET"}}},
                     "then": {"properties": {"body_format": {"enum": ["none", null]}}}},
                    {"if": {"required": ["body"], "properties": {"body": {"type": "string", "minLength": 1}}},
                     "then": {"required": ["body_format"], "properties": {"body_format": {"enum": ["form", "json"]}}}},
                ],
                "if": {
                    "required": ["url", "auth"],
                    "properties": {"url": {"pattern": r"^\s*[Hh][Tt][Tt][Pp]://"}, "auth": {"enum": ["basic", "bearer"]}},
                },
                "then": {
                    "required": ["allow_plaintext_credentials"],
                    "properties": {"allow_plaintext_credentials": {"const": true}},
                },
            }),
        ),
    ]
}

/// The schema of parameters, by where they are and their name.
fn parameters() -> Vec<(&'static str, &'static str, Value)> {
    let named = json!({"type": "string", "minLength": 1, "pattern": NAMED_IN_TEXT});
    let optional_named = json!({"type": "string", "minLength": 1, "pattern": NAMED_IN_TEXT});
    vec![
        ("path", "user", named.clone()),
        ("path", "token", named.clone()),
        ("path", "resource", named),
        ("query", "user", optional_named.clone()),
        ("query", "resource", optional_named),
        (
            "query",
            "limit",
            json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": super::query::MAX_LIMIT}),
        ),
        (
            "query",
            "offset",
            json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": i32::MAX}),
        ),
        (
            "query",
            "kind",
            json!({"type": "string", "enum": ["TOTP", "HOTP", "MAIL", "SMS", "BOT"]}),
        ),
        ("query", "assigned", json!({"type": "boolean"})),
        ("query", "enabled", json!({"type": "boolean"})),
        ("query", "has_token", json!({"type": "boolean"})),
    ]
}

/// Parameters whose values differ between endpoints of the same name.
fn parameters_of(path: &str) -> Vec<(&'static str, &'static str, Value)> {
    if path.starts_with("/api/v1/api-keys/") {
        vec![(
            "path",
            "key",
            json!({"type": "integer", "format": "int64", "minimum": 1}),
        )]
    } else if path.ends_with("/deliveries") {
        vec![
            (
                "query",
                "status",
                json!({"type": "string", "enum": ["queued", "sent", "failed", "expired"]}),
            ),
            (
                "query",
                "channel",
                json!({"type": "string", "enum": ["mail", "sms", "bot"]}),
            ),
        ]
    } else if path.ends_with("/audit") || path.ends_with("/audit.csv") {
        let time = json!({"type": "string", "pattern": AUDIT_TIME, "description":
            "A date, or a date and time, in UTC; a day the calendar does not have is refused."});
        vec![
            ("query", "from", time.clone()),
            ("query", "to", time),
            (
                "query",
                "result",
                json!({"type": "string", "enum": crate::audit::RESULTS}),
            ),
            (
                "query",
                "cursor",
                json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}),
            ),
        ]
    } else if path.ends_with("/tokens") {
        vec![(
            "query",
            "state",
            json!({"type": "string", "enum": ["pending", "active", "reactivate", "locked", "disabled"]}),
        )]
    } else {
        Vec::new()
    }
}

/// `base` with the keys of `over` set over it.
fn merge(base: &Value, over: Value) -> Value {
    let mut merged = base.clone();
    if let (Some(target), Value::Object(over)) = (merged.as_object_mut(), over) {
        target.extend(over);
    }
    merged
}

/// The OpenAPI document with the server's constraints stated in it.
pub fn state_constraints(document: &mut Value) {
    if let Some(id_or_name) = document.pointer_mut("/components/schemas/IdOrName") {
        let description = id_or_name.get("description").cloned();
        *id_or_name = json!({
            "oneOf": [
                {"type": "integer", "format": "int64", "minimum": 1, "description": "An id."},
                {"type": "string", "minLength": 1, "pattern": NOT_BLANK,
                 "description": "A name, login or serial, also when it is made of digits."},
            ],
            "description": description,
        });
    }
    for (schema, property, constraints) in fields() {
        let pointer = format!("/components/schemas/{schema}/properties/{property}");
        if let Some(Value::Object(target)) = document.pointer_mut(&pointer)
            && let Value::Object(constraints) = constraints
        {
            target.extend(constraints);
        }
    }
    for schema in ["AuthenticateRequest", "PrepareRequest"] {
        let pointer = format!("/components/schemas/{schema}/properties/ip");
        if let Some(ip) = document.pointer_mut(&pointer) {
            let description = ip.get("description").cloned().unwrap_or(Value::Null);
            *ip = ip_address(&description);
        }
    }
    for (schema, rule) in rules() {
        let pointer = format!("/components/schemas/{schema}");
        if let Some(Value::Object(target)) = document.pointer_mut(&pointer)
            && let Value::Object(rule) = rule
        {
            target.extend(rule);
        }
    }
    let Some(Value::Object(paths)) = document.get_mut("paths") else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let mut known = parameters();
        known.extend(parameters_of(path));
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for operation in operations.values_mut() {
            let Some(Value::Array(list)) = operation.get_mut("parameters") else {
                continue;
            };
            for parameter in list {
                let place = parameter.get("in").and_then(Value::as_str).unwrap_or("");
                let name = parameter.get("name").and_then(Value::as_str).unwrap_or("");
                if let Some((_, _, schema)) = known
                    .iter()
                    .find(|(at, called, _)| *at == place && *called == name)
                {
                    parameter["schema"] = schema.clone();
                }
            }
        }
    }
}
