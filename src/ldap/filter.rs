//! Search filters (RFC 4515) built from what people type: every value escaped, so that a login
//! such as `*` or `a)(uid=*` matches only itself. Pure: no I/O.

/// Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: membership through nested groups.
pub const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// Whether `text` is a filter in the string form of RFC 4515.
pub fn is_valid(text: &str) -> bool {
    ldap3::parse_filter(text).is_ok()
}

/// `value` escaped for an assertion value (RFC 4515 §3): `*`, `(`, `)`, `\` and NUL as `\XX`;
/// every other character as it is (UTF-8 travels unescaped).
pub fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '*' => escaped.push_str("\\2a"),
            '(' => escaped.push_str("\\28"),
            ')' => escaped.push_str("\\29"),
            '\\' => escaped.push_str("\\5c"),
            '\0' => escaped.push_str("\\00"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Bytes as an assertion value: every byte `\XX` (for binary attributes such as objectGUID).
pub fn escape_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("\\{byte:02x}")).collect()
}

/// Who is in: the directory's group as a clause, if it has one. A group's DN is matched by
/// `memberOf` — in Active Directory through nested groups too, with the in-chain matching
/// rule —, a filter as it is.
pub fn group_clause(members: Members, group: Option<&str>) -> Option<String> {
    let group = group?.trim();
    if group.starts_with('(') {
        return Some(group.to_string());
    }
    Some(match members {
        Members::InChain => format!("(memberOf:{IN_CHAIN}:={})", escape(group)),
        Members::Direct => format!("(memberOf={})", escape(group)),
    })
}

/// How a group's members are matched: Active Directory follows nested groups with the
/// in-chain rule, other servers match direct members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Members {
    InChain,
    Direct,
}

/// Every person the directory lets in: the user filter and the group.
pub fn people(user_filter: &str, group: Option<String>) -> String {
    match group {
        None => user_filter.to_string(),
        Some(group) => format!("(&{user_filter}{group})"),
    }
}

/// The person whose login is `login` in any of `attributes`, among `people`.
pub fn by_login(people: &str, attributes: &[String], login: &str) -> String {
    let value = escape(login);
    let alternatives: String = attributes
        .iter()
        .map(|attribute| format!("({attribute}={value})"))
        .collect();
    if attributes.len() == 1 {
        format!("(&{people}{alternatives})")
    } else {
        format!("(&{people}(|{alternatives}))")
    }
}

/// The entry whose stable id is `value`, among `people`.
pub fn by_id(people: &str, attribute: &str, value: &StableIdValue) -> String {
    let value = match value {
        StableIdValue::Text(text) => escape(text),
        StableIdValue::Bytes(bytes) => escape_bytes(bytes),
    };
    format!("(&{people}({attribute}={value}))")
}

/// A stable id as the directory compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StableIdValue {
    Text(String),
    Bytes(Vec<u8>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_special_characters_of_a_login_are_escaped() {
        assert_eq!(escape(r"a*b(c)d\e"), r"a\2ab\28c\29d\5ce");
        assert_eq!(escape("nul\0"), r"nul\00");
        assert_eq!(escape("Åsa"), "Åsa");
    }

    #[test]
    fn a_login_that_tries_to_widen_the_filter_matches_only_itself() {
        let filter = by_login("(objectClass=person)", &["uid".into()], "*)(uid=*");
        assert_eq!(filter, r"(&(objectClass=person)(uid=\2a\29\28uid=\2a))");
        assert!(is_valid(&filter));
    }

    #[test]
    fn several_login_attributes_are_alternatives() {
        let filter = by_login(
            "(objectClass=user)",
            &["sAMAccountName".into(), "userPrincipalName".into()],
            "alice",
        );
        assert_eq!(
            filter,
            "(&(objectClass=user)(|(sAMAccountName=alice)(userPrincipalName=alice)))"
        );
        assert!(is_valid(&filter));
    }

    #[test]
    fn an_active_directory_group_matches_nested_members_through_the_in_chain_rule() {
        let clause = group_clause(
            Members::InChain,
            Some("CN=VPN (all),OU=Groups,DC=corp,DC=example"),
        )
        .expect("a clause");
        assert_eq!(
            clause,
            r"(memberOf:1.2.840.113556.1.4.1941:=CN=VPN \28all\29,OU=Groups,DC=corp,DC=example)"
        );
        assert!(is_valid(&clause));
    }

    #[test]
    fn other_directories_match_direct_members_and_a_group_filter_is_taken_as_it_is() {
        assert_eq!(
            group_clause(Members::Direct, Some("cn=vpn,dc=example,dc=org")).as_deref(),
            Some("(memberOf=cn=vpn,dc=example,dc=org)")
        );
        assert_eq!(
            group_clause(Members::Direct, Some("(employeeType=staff)")).as_deref(),
            Some("(employeeType=staff)")
        );
        assert_eq!(group_clause(Members::Direct, None), None);
        assert_eq!(
            people("(objectClass=person)", Some("(o=x)".into())),
            "(&(objectClass=person)(o=x))"
        );
    }

    #[test]
    fn a_binary_stable_id_is_escaped_byte_by_byte() {
        let filter = by_id(
            "(objectClass=user)",
            "objectGUID",
            &StableIdValue::Bytes(vec![0x00, 0x2a, 0xff]),
        );
        assert_eq!(filter, r"(&(objectClass=user)(objectGUID=\00\2a\ff))");
        assert!(is_valid(&filter));
    }
}
