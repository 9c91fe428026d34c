//! Why a directory refused a bind. Active Directory puts the reason in the diagnostic message
//! of an invalidCredentials (49) result: `80090308: LdapErr: DSID-0C09044E, comment:
//! AcceptSecurityContext error, data 775, v4563` — `data` is the sub-code. Pure: no I/O.

/// LDAP's invalidCredentials result code.
pub const INVALID_CREDENTIALS: u32 = 49;

/// Why the directory refused a person's password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindRefusal {
    /// A wrong password (525 no such user, 52e, or any server that says no more).
    WrongPassword,
    /// 530: not permitted to log on at this time.
    OutsideLogonHours,
    /// 531: not permitted to log on at this workstation.
    WorkstationNotAllowed,
    /// 532: the password has expired.
    PasswordExpired,
    /// 533: the account is disabled.
    AccountDisabled,
    /// 701: the account has expired.
    AccountExpired,
    /// 773: the user must set a new password before logging on.
    MustChangePassword,
    /// 775: the account is locked out.
    AccountLocked,
}

impl BindRefusal {
    /// The reason in the audit log.
    pub fn reason(self) -> &'static str {
        match self {
            BindRefusal::WrongPassword => "bad_password",
            BindRefusal::OutsideLogonHours => "directory_logon_hours",
            BindRefusal::WorkstationNotAllowed => "directory_workstation",
            BindRefusal::PasswordExpired => "directory_password_expired",
            BindRefusal::AccountDisabled => "directory_account_disabled",
            BindRefusal::AccountExpired => "directory_account_expired",
            BindRefusal::MustChangePassword => "directory_must_change_password",
            BindRefusal::AccountLocked => "directory_account_locked",
        }
    }

    /// Whether the password itself was wrong (and so counts as a failed login here too).
    pub fn is_wrong_password(self) -> bool {
        self == BindRefusal::WrongPassword
    }
}

/// The refusal of a bind that ended with `code` and the server's diagnostic `message`; None
/// when the result is no refusal of the credentials.
pub fn refusal(code: u32, message: &str) -> Option<BindRefusal> {
    if code != INVALID_CREDENTIALS {
        return None;
    }
    let Some(sub_code) = ad_sub_code(message) else {
        return Some(BindRefusal::WrongPassword);
    };
    Some(match sub_code.as_str() {
        "530" => BindRefusal::OutsideLogonHours,
        "531" => BindRefusal::WorkstationNotAllowed,
        "532" => BindRefusal::PasswordExpired,
        "533" => BindRefusal::AccountDisabled,
        "701" => BindRefusal::AccountExpired,
        "773" => BindRefusal::MustChangePassword,
        "775" => BindRefusal::AccountLocked,
        // 525 (no such user), 52e (wrong password) and whatever else.
        _ => BindRefusal::WrongPassword,
    })
}

/// The hex digits after `data ` in an Active Directory diagnostic message, in lowercase.
fn ad_sub_code(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let at = lower.find(", data ").map(|at| at + ", data ".len())?;
    let digits: String = lower[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    (!digits.is_empty()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad(data: &str) -> String {
        format!(
            "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {data}, v4563\0"
        )
    }

    #[test]
    fn every_active_directory_sub_code_is_read_into_its_reason() {
        let cases = [
            ("52e", BindRefusal::WrongPassword),
            ("525", BindRefusal::WrongPassword),
            ("530", BindRefusal::OutsideLogonHours),
            ("531", BindRefusal::WorkstationNotAllowed),
            ("532", BindRefusal::PasswordExpired),
            ("533", BindRefusal::AccountDisabled),
            ("701", BindRefusal::AccountExpired),
            ("773", BindRefusal::MustChangePassword),
            ("775", BindRefusal::AccountLocked),
        ];
        for (data, expected) in cases {
            assert_eq!(refusal(49, &ad(data)), Some(expected), "data {data}");
        }
        assert_eq!(
            refusal(49, &ad("775")).map(BindRefusal::reason),
            Some("directory_account_locked")
        );
    }

    #[test]
    fn a_server_that_gives_no_sub_code_refused_a_wrong_password() {
        assert_eq!(refusal(49, ""), Some(BindRefusal::WrongPassword));
        assert_eq!(
            refusal(49, "invalid credentials"),
            Some(BindRefusal::WrongPassword)
        );
    }

    #[test]
    fn other_result_codes_are_no_refusal_of_the_password() {
        // 52 unavailable, 53 unwilling to perform, 51 busy: the directory's trouble.
        for code in [0, 51, 52, 53, 80] {
            assert_eq!(refusal(code, &ad("775")), None, "code {code}");
        }
    }

    #[test]
    fn only_a_locked_account_is_no_wrong_password() {
        assert!(BindRefusal::WrongPassword.is_wrong_password());
        assert!(!BindRefusal::AccountLocked.is_wrong_password());
    }
}
