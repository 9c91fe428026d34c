//! The Overview's section of Approve in Telegram: whether users with a BOT token may approve a
//! sign-in in the chat, number matching, and whether "This wasn't me" locks the token. Saved
//! with the resource's other settings, as the API saves them (`ResourceChanges::approvals`).

use maud::{Markup, html};

use crate::store::approvals::{ApprovalSettings, ApprovalSettingsChange};

/// The section's three checkboxes, ticked as `settings` says.
pub(super) fn approvals_fields(settings: ApprovalSettings) -> Markup {
    html! {
        fieldset #approvals {
            legend { "Approve in Telegram" }
            input type="hidden" name="approvals_shown" value="on";
            p.note { "Instead of typing a code, a user with an active BOT token answers a message of the bot: \"Sign in to this resource?\"" }
            label.check {
                input type="checkbox" name="approvals_allowed" value="on" checked[settings.allowed];
                "Approvals allowed"
            }
            p.note { "Off: BOT tokens only deliver codes to type." }
            label.check {
                input type="checkbox" name="approval_number_matching" value="on" checked[settings.number_matching];
                "Number matching (recommended)"
            }
            p.note { "The sign-in shows a two-digit number and the bot offers three; only the right one approves. A user cannot approve by habit a sign-in that someone else started." }
            label.check {
                input type="checkbox" name="approval_deny_locks" value="on" checked[settings.deny_locks];
                "\"This wasn't me\" locks the token"
            }
            p.note { "A denied sign-in is always refused and audited; with this, the token is also locked until an administrator unlocks it (or the resource's automatic unlock)." }
        }
    }
}

/// The settings as ticked; None for a form without the section (an older page, a script),
/// which leaves them as they are.
pub(super) fn ticked(
    shown: &str,
    allowed: Option<&str>,
    number_matching: Option<&str>,
    deny_locks: Option<&str>,
) -> Option<ApprovalSettings> {
    (shown == "on").then(|| ApprovalSettings {
        allowed: allowed.is_some(),
        number_matching: number_matching.is_some(),
        deny_locks: deny_locks.is_some(),
    })
}

/// The change from `old` to `new`, naming each setting changed in `changed` (for the flash).
pub(super) fn change(
    old: ApprovalSettings,
    new: ApprovalSettings,
    changed: &mut Vec<&'static str>,
) -> ApprovalSettingsChange {
    let mut differs = |before: bool, after: bool, name: &'static str| {
        (before != after).then(|| {
            changed.push(name);
            after
        })
    };
    ApprovalSettingsChange {
        allowed: differs(old.allowed, new.allowed, "approvals allowed"),
        number_matching: differs(old.number_matching, new.number_matching, "number matching"),
        deny_locks: differs(old.deny_locks, new.deny_locks, "deny locks the token"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_settings_that_differ_are_changed_and_named() {
        let old = ApprovalSettings::default();
        let new = ApprovalSettings {
            allowed: true,
            number_matching: true,
            deny_locks: true,
        };
        let mut changed = Vec::new();
        let change = change(old, new, &mut changed);
        assert_eq!(change.allowed, Some(true));
        assert_eq!(change.number_matching, None);
        assert_eq!(change.deny_locks, Some(true));
        assert_eq!(changed, ["approvals allowed", "deny locks the token"]);
    }

    #[test]
    fn a_form_without_the_section_changes_nothing_and_unticked_boxes_are_off() {
        assert_eq!(ticked("", Some("on"), None, None), None);
        assert_eq!(
            ticked("on", None, None, None),
            Some(ApprovalSettings {
                allowed: false,
                number_matching: false,
                deny_locks: false,
            })
        );
    }
}
