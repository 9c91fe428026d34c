//! Generators of inputs: edits of valid samples that know a little of their structure (lines
//! and fields, XML elements, JSON values), and raw bytes. An edit is a list of operations with
//! positions chosen by `Index`, so proptest can shrink a failing input to a few small edits.

use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Map, Value};

/// Pieces that parsers of numbers, quoting, markup, encodings and limits tend to trip on.
pub const PIECES: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "6",
    "8",
    "30",
    "60",
    "007",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999999",
    "1e308",
    "-0",
    "NaN",
    "\"",
    "\"\"",
    "'",
    ",",
    ",,,,,,",
    ";",
    "#",
    "=",
    "\\",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "\0",
    "\u{FEFF}",
    "\u{202E}",
    "é",
    "🦀",
    "<",
    ">",
    "</",
    "/>",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<!DOCTYPE x [<!ENTITY e \"e\">]>",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "&unknown;",
    "xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\"",
    "urn:ietf:params:xml:ns:keyprov:pskc:hotp",
    "urn:ietf:params:xml:ns:keyprov:pskc#totp",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
    "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=",
    "AAAA",
    "====",
    "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
    "3132333435363738393031323334353637383930",
    "31323",
    "sha1",
    "SHA-256",
    "HMAC-SHA512",
    "md5",
    "hotp",
    "TOTP",
    "serial",
    "login",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "true",
    "\"\"\"",
    "'''",
    "[storage]",
    "[server]",
    "listen = \"0.0.0.0:0\"",
    "inf",
    "+nan",
    "1979-05-27T07:32:00Z",
    "0x10",
    "0o7",
    "1_000",
    "a.b.c",
    "user@example.com",
    "+4915112345678",
    "127.0.0.1",
    "::1",
    "not-an-address",
    "serial:007",
];

/// A piece from `PIECES`, a repetition of one (long values), or a few random characters.
pub fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(PIECES).prop_map(str::to_string),
        1 => (select(PIECES), 2..600usize).prop_map(|(piece, times)| piece.repeat(times)),
        3 => proptest::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
    ]
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
pub enum ByteEdit {
    Insert(Index, String),
    Replace(Index, usize, String),
    Delete(Index, usize),
    /// Copies a span of the input to another place.
    Duplicate(Index, usize, Index),
    Truncate(Index),
    FlipBit(Index, u8),
}

pub fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        3 => (any::<Index>(), piece()).prop_map(|(at, text)| ByteEdit::Insert(at, text)),
        3 => (any::<Index>(), 0..16usize, piece()).prop_map(|(at, len, text)| ByteEdit::Replace(at, len, text)),
        2 => (any::<Index>(), 1..64usize).prop_map(|(at, len)| ByteEdit::Delete(at, len)),
        1 => (any::<Index>(), 1..200usize, any::<Index>()).prop_map(|(at, len, to)| ByteEdit::Duplicate(at, len, to)),
        1 => any::<Index>().prop_map(ByteEdit::Truncate),
        1 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| ByteEdit::FlipBit(at, bit)),
    ]
}

pub fn apply_bytes(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    let position = |at: &Index, len: usize| if len == 0 { 0 } else { at.index(len + 1) };
    match edit {
        ByteEdit::Insert(at, text) => {
            let at = position(at, bytes.len());
            bytes.splice(at..at, text.bytes());
        }
        ByteEdit::Replace(at, len, text) => {
            let at = position(at, bytes.len());
            let end = (at + len).min(bytes.len());
            bytes.splice(at..end, text.bytes());
        }
        ByteEdit::Delete(at, len) => {
            let at = position(at, bytes.len());
            let end = (at + len).min(bytes.len());
            bytes.drain(at..end);
        }
        ByteEdit::Duplicate(at, len, to) => {
            let at = position(at, bytes.len());
            let end = (at + len).min(bytes.len());
            let span = bytes[at..end].to_vec();
            let to = position(to, bytes.len());
            bytes.splice(to..to, span);
        }
        ByteEdit::Truncate(at) => {
            let at = position(at, bytes.len());
            bytes.truncate(at);
        }
        ByteEdit::FlipBit(at, bit) => {
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                bytes[at] ^= 1 << bit;
            }
        }
    }
}

/// One edit of a text made of lines and comma-separated fields (CSV sheets, TOML files).
#[derive(Debug, Clone)]
pub enum LineEdit {
    Bytes(ByteEdit),
    DeleteLine(Index),
    DuplicateLine(Index, usize),
    SwapLines(Index, Index),
    /// Replaces the n-th field (split by `,` or `=`) of a line.
    ReplaceField(Index, Index, String),
    /// Removes a leading `#` (a commented example becomes a setting) or adds one.
    ToggleComment(Index),
}

pub fn line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        3 => byte_edit().prop_map(LineEdit::Bytes),
        1 => any::<Index>().prop_map(LineEdit::DeleteLine),
        1 => (any::<Index>(), 1..50usize).prop_map(|(line, times)| LineEdit::DuplicateLine(line, times)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineEdit::SwapLines(a, b)),
        4 => (any::<Index>(), any::<Index>(), piece()).prop_map(|(line, field, text)| LineEdit::ReplaceField(line, field, text)),
        2 => any::<Index>().prop_map(LineEdit::ToggleComment),
    ]
}

pub fn apply_lines(text: &str, edits: &[LineEdit]) -> String {
    let mut text = text.to_string();
    for edit in edits {
        if let LineEdit::Bytes(edit) = edit {
            let mut bytes = text.into_bytes();
            apply_bytes(&mut bytes, edit);
            text = String::from_utf8_lossy(&bytes).into_owned();
            continue;
        }
        let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        let count = lines.len();
        match edit {
            LineEdit::Bytes(_) => {}
            LineEdit::DeleteLine(line) => {
                lines.remove(line.index(count));
            }
            LineEdit::DuplicateLine(line, times) => {
                let at = line.index(count);
                let copy = lines[at].clone();
                for _ in 0..*times {
                    lines.insert(at, copy.clone());
                }
            }
            LineEdit::SwapLines(a, b) => lines.swap(a.index(count), b.index(count)),
            LineEdit::ReplaceField(line, field, piece) => {
                let line = &mut lines[line.index(count)];
                let separator = if line.contains(',') { ',' } else { '=' };
                let mut fields: Vec<String> = line.split(separator).map(str::to_string).collect();
                let at = field.index(fields.len());
                fields[at] = piece.clone();
                *line = fields.join(&separator.to_string());
            }
            LineEdit::ToggleComment(line) => {
                let line = &mut lines[line.index(count)];
                match line.trim_start().strip_prefix('#') {
                    Some(rest) => *line = rest.trim_start().to_string(),
                    None => line.insert(0, '#'),
                }
            }
        }
        text = lines.join("\n");
    }
    text
}

/// One edit of an XML document that knows its elements.
#[derive(Debug, Clone)]
pub enum XmlEdit {
    Bytes(ByteEdit),
    DeleteElement(Index),
    DuplicateElement(Index, usize),
    /// Moves an element into another place of the document.
    MoveElement(Index, Index),
    ReplaceText(Index, String),
    ReplaceAttribute(Index, String),
}

pub fn xml_edit() -> impl Strategy<Value = XmlEdit> {
    prop_oneof![
        2 => byte_edit().prop_map(XmlEdit::Bytes),
        2 => any::<Index>().prop_map(XmlEdit::DeleteElement),
        2 => (any::<Index>(), 1..4usize).prop_map(|(element, times)| XmlEdit::DuplicateElement(element, times)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(element, to)| XmlEdit::MoveElement(element, to)),
        4 => (any::<Index>(), piece()).prop_map(|(text, piece)| XmlEdit::ReplaceText(text, piece)),
        3 => (any::<Index>(), piece()).prop_map(|(attribute, piece)| XmlEdit::ReplaceAttribute(attribute, piece)),
    ]
}

/// The tags and texts of a document, as byte ranges.
fn xml_tokens(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut tokens = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = if text[start..].starts_with('<') {
            text[start..]
                .find('>')
                .map_or(text.len(), |at| start + at + 1)
        } else {
            text[start..].find('<').map_or(text.len(), |at| start + at)
        };
        tokens.push(start..end);
        start = end;
    }
    tokens
}

/// The byte ranges of every element, from its start tag to its end tag.
fn xml_elements(text: &str) -> Vec<std::ops::Range<usize>> {
    let tokens = xml_tokens(text);
    let mut elements = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for token in &tokens {
        let tag = &text[token.clone()];
        if !tag.starts_with('<') || tag.starts_with("<?") || tag.starts_with("<!") {
            continue;
        }
        if tag.ends_with("/>") {
            elements.push(token.clone());
        } else if tag.starts_with("</") {
            if let Some(start) = open.pop() {
                elements.push(start..token.end);
            }
        } else {
            open.push(token.start);
        }
    }
    elements
}

pub fn apply_xml(document: &[u8], edits: &[XmlEdit]) -> Vec<u8> {
    let mut bytes = document.to_vec();
    for edit in edits {
        if let XmlEdit::Bytes(edit) = edit {
            apply_bytes(&mut bytes, edit);
            continue;
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let elements = xml_elements(&text);
        let mut text = text;
        match edit {
            XmlEdit::Bytes(_) => {}
            XmlEdit::DeleteElement(pick) if !elements.is_empty() => {
                text.replace_range(elements[pick.index(elements.len())].clone(), "");
            }
            XmlEdit::DuplicateElement(pick, times) if !elements.is_empty() => {
                let element = elements[pick.index(elements.len())].clone();
                let copy = text[element.clone()].repeat(*times);
                text.insert_str(element.end, &copy);
            }
            XmlEdit::MoveElement(pick, to) if !elements.is_empty() => {
                let element = elements[pick.index(elements.len())].clone();
                let moved = text[element.clone()].to_string();
                text.replace_range(element, "");
                let places: Vec<usize> = xml_tokens(&text).iter().map(|t| t.start).collect();
                let at = places.get(to.index(places.len().max(1))).copied();
                text.insert_str(at.unwrap_or(0), &moved);
            }
            XmlEdit::ReplaceText(pick, piece) => {
                let texts: Vec<_> = xml_tokens(&text)
                    .into_iter()
                    .filter(|t| !text[t.clone()].starts_with('<'))
                    .collect();
                if !texts.is_empty() {
                    text.replace_range(texts[pick.index(texts.len())].clone(), piece);
                }
            }
            XmlEdit::ReplaceAttribute(pick, piece) => {
                let values: Vec<std::ops::Range<usize>> = text
                    .match_indices("=\"")
                    .filter_map(|(at, _)| {
                        let start = at + 2;
                        text[start..].find('"').map(|len| start..start + len)
                    })
                    .collect();
                if !values.is_empty() {
                    text.replace_range(values[pick.index(values.len())].clone(), piece);
                }
            }
            _ => {}
        }
        bytes = text.into_bytes();
    }
    bytes
}

/// Numbers at the edges of the API's fields and of the integer types.
const NUMBERS: &[i64] = &[
    0,
    1,
    -1,
    2,
    3,
    5,
    6,
    8,
    10,
    11,
    30,
    60,
    3600,
    86_400,
    i32::MAX as i64,
    i64::MAX,
    i64::MIN,
];

/// Any JSON value, leaning towards the values that API fields are made of.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => prop_oneof![
            any::<i64>(),
            select(NUMBERS),
        ]
        .prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        4 => piece().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((select(FIELDS).prop_map(str::to_string), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The field names of the API's bodies, and a few that are none.
pub const FIELDS: &[&str] = &[
    "resource",
    "user",
    "token",
    "password",
    "otp",
    "transaction",
    "ip",
    "login",
    "first_name",
    "last_name",
    "email",
    "phone",
    "enabled",
    "name",
    "description",
    "fail_limit",
    "password_required",
    "auto_unlock_seconds",
    "without_second_factor",
    "kind",
    "serial",
    "secret",
    "secret_format",
    "algorithm",
    "digits",
    "period",
    "counter",
    "destination",
    "messenger",
    "pin",
    "pin_position",
    "otp1",
    "otp2",
    "format",
    "data",
    "preshared_key",
    "host",
    "port",
    "security",
    "username",
    "from_address",
    "from_name",
    "timeout_seconds",
    "tls_ca_file",
    "method",
    "url",
    "headers",
    "body_format",
    "body",
    "auth",
    "success_status",
    "success_body",
    "id",
    "",
    "__proto__",
    "extra",
];

/// One edit of a JSON body.
#[derive(Debug, Clone)]
pub enum JsonEdit {
    /// Replaces the n-th value of the document (in depth-first order) with another.
    Replace(Index, Value),
    /// Edits the n-th string of the document as bytes.
    EditString(Index, Vec<ByteEdit>),
    /// Removes a field of the n-th object.
    RemoveField(Index, Index),
    /// Adds (or overwrites) a field of the n-th object.
    AddField(Index, String, Value),
}

pub fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        4 => (any::<Index>(), json_value()).prop_map(|(at, value)| JsonEdit::Replace(at, value)),
        2 => (any::<Index>(), proptest::collection::vec(byte_edit(), 1..4)).prop_map(|(at, edits)| JsonEdit::EditString(at, edits)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(at, field)| JsonEdit::RemoveField(at, field)),
        1 => (any::<Index>(), select(FIELDS).prop_map(str::to_string), json_value()).prop_map(|(at, name, value)| JsonEdit::AddField(at, name, value)),
    ]
}

/// How many values of a document (depth first) `wanted` picks.
fn count_values(value: &Value, wanted: &dyn Fn(&Value) -> bool) -> usize {
    let inner = match value {
        Value::Array(items) => items.iter().map(|item| count_values(item, wanted)).sum(),
        Value::Object(fields) => fields.values().map(|item| count_values(item, wanted)).sum(),
        _ => 0,
    };
    inner + usize::from(wanted(value))
}

/// The `n`-th value of a document (depth first) that `wanted` picks.
fn nth_value<'a>(
    value: &'a mut Value,
    n: &mut usize,
    wanted: &dyn Fn(&Value) -> bool,
) -> Option<&'a mut Value> {
    if wanted(value) {
        if *n == 0 {
            return Some(value);
        }
        *n -= 1;
    }
    match value {
        Value::Array(items) => items.iter_mut().find_map(|item| nth_value(item, n, wanted)),
        Value::Object(fields) => fields
            .values_mut()
            .find_map(|item| nth_value(item, n, wanted)),
        _ => None,
    }
}

/// The value of `document` chosen by `at` among those `wanted` picks.
fn pick<'a>(
    document: &'a mut Value,
    at: &Index,
    wanted: &dyn Fn(&Value) -> bool,
) -> Option<&'a mut Value> {
    let count = count_values(document, wanted);
    if count == 0 {
        return None;
    }
    nth_value(document, &mut at.index(count), wanted)
}

pub fn apply_json(document: &Value, edits: &[JsonEdit]) -> Value {
    let mut document = document.clone();
    for edit in edits {
        match edit {
            JsonEdit::Replace(at, value) => {
                if let Some(target) = pick(&mut document, at, &|_| true) {
                    *target = value.clone();
                }
            }
            JsonEdit::EditString(at, edits) => {
                if let Some(target) = pick(&mut document, at, &Value::is_string) {
                    let mut bytes = target.as_str().unwrap_or_default().as_bytes().to_vec();
                    for edit in edits {
                        apply_bytes(&mut bytes, edit);
                    }
                    *target = Value::String(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
            JsonEdit::RemoveField(at, field) => {
                let objects = |v: &Value| v.as_object().is_some_and(|o| !o.is_empty());
                if let Some(fields) =
                    pick(&mut document, at, &objects).and_then(Value::as_object_mut)
                {
                    let name = fields.keys().nth(field.index(fields.len())).cloned();
                    if let Some(name) = name {
                        fields.remove(&name);
                    }
                }
            }
            JsonEdit::AddField(at, name, value) => {
                if let Some(fields) =
                    pick(&mut document, at, &Value::is_object).and_then(Value::as_object_mut)
                {
                    fields.insert(name.clone(), value.clone());
                }
            }
        }
    }
    document
}
