//! Approve in Telegram, as the bot speaks it: the buttons under an approval's message, what a
//! pressed button's data names, and what the bot answers and writes afterwards.
//!
//! A button's data is `ap:<approval id>:<choice>` (`ok`, `no`, or a two-digit number). It only
//! names the approval and the choice: the store checks the chat, the Telegram user, the state
//! and the validity before anything changes, so forged data decides nothing.

use crate::clock::UnixTime;
use crate::store::approvals::{Approval, ApprovalState, Choice, Decision, DenyReason};

const PREFIX: &str = "ap:";

/// The toasts Telegram shows when a button is answered.
pub const NOT_YOURS: &str = "This button is not for you, or it is no longer valid.";
/// What an approval's message becomes when it expired unanswered.
pub const EXPIRED: &str = "Expired";
const EXPIRED_TOAST: &str = "This sign-in request expired.";
pub const FAILED: &str = "Sorry, something went wrong. Try again in a minute.";

/// A button under a message: its label and the data Telegram sends back when it is pressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub text: String,
    pub data: String,
}

fn button(approval_id: i64, text: impl Into<String>, choice: Choice) -> Button {
    Button {
        text: text.into(),
        data: press_data(approval_id, choice),
    }
}

/// The buttons of an approval's message: with number matching, its numbers in their order and
/// "Deny — this wasn't me" below; without, Approve and Deny.
pub fn keyboard(approval: &Approval) -> Vec<Vec<Button>> {
    let deny = button(approval.id, "Deny — this wasn't me", Choice::Deny);
    if approval.number.is_some() {
        let numbers = approval
            .choices
            .iter()
            .map(|&n| button(approval.id, format!("{n:02}"), Choice::Number(n)))
            .collect();
        vec![numbers, vec![deny]]
    } else {
        vec![vec![button(approval.id, "Approve", Choice::Approve), deny]]
    }
}

/// The data of a button.
pub fn press_data(approval_id: i64, choice: Choice) -> String {
    match choice {
        Choice::Approve => format!("{PREFIX}{approval_id}:ok"),
        Choice::Deny => format!("{PREFIX}{approval_id}:no"),
        Choice::Number(number) => format!("{PREFIX}{approval_id}:{number:02}"),
    }
}

/// What a button's data names; None for anything that is not one of ours.
pub fn parse_press(data: &str) -> Option<(i64, Choice)> {
    let (id, choice) = data.strip_prefix(PREFIX)?.split_once(':')?;
    if id.is_empty() || id.len() > 18 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: i64 = id.parse().ok()?;
    let choice = match choice {
        "ok" => Choice::Approve,
        "no" => Choice::Deny,
        number if number.len() == 2 && number.bytes().all(|b| b.is_ascii_digit()) => {
            Choice::Number(number.parse().ok()?)
        }
        _ => return None,
    };
    Some((id, choice))
}

/// The question an approval's message asks: "Sign in to VPN from 203.0.113.7, 10:31 UTC?".
pub fn question(resource: &str, address: Option<&str>, at: UnixTime) -> String {
    let address = address.unwrap_or("an unknown address");
    format!(
        "Sign in to {resource} from {address}, {} UTC?",
        clock_time(at)
    )
}

/// The time of day in UTC, "10:31".
fn clock_time(at: UnixTime) -> String {
    let seconds = at.rem_euclid(86_400);
    format!("{:02}:{:02}", seconds / 3600, seconds % 3600 / 60)
}

/// The toast for a press, and the text the approval's message becomes (None: unchanged).
pub fn answer(decision: &Decision, now: UnixTime) -> (&'static str, Option<String>) {
    match decision {
        Decision::Decided { approval, locked } => match (approval.state, approval.reason) {
            (ApprovalState::Approved, _) => (
                "Approved.",
                Some(format!("Approved {} UTC", clock_time(now))),
            ),
            (_, Some(DenyReason::WrongNumber)) => (
                "Wrong number: the sign-in was denied.",
                Some(denied("Wrong number — denied", *locked)),
            ),
            _ => (
                "Denied.",
                Some(denied(&format!("Denied {} UTC", clock_time(now)), *locked)),
            ),
        },
        Decision::AlreadyDecided(approval) if approval.state == ApprovalState::Expired => {
            (EXPIRED_TOAST, None)
        }
        Decision::AlreadyDecided(_) => ("This sign-in was already answered.", None),
        Decision::Expired(_) => (EXPIRED_TOAST, Some(EXPIRED.into())),
        Decision::Refused => (NOT_YOURS, None),
    }
}

fn denied(text: &str, locked: bool) -> String {
    if locked {
        format!("{text}. Your token is locked until an administrator unlocks it.")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_button_s_data_names_what_it_was_made_for() {
        for choice in [
            Choice::Approve,
            Choice::Deny,
            Choice::Number(7),
            Choice::Number(42),
        ] {
            let data = press_data(12, choice);
            assert!(data.len() <= 64, "Telegram keeps at most 64 bytes");
            assert_eq!(parse_press(&data), Some((12, choice)));
        }
    }

    #[test]
    fn data_that_is_not_a_button_of_ours_names_nothing() {
        for data in [
            "",
            "ap:",
            "ap:1",
            "ap:1:",
            "ap::ok",
            "ap:x:ok",
            "ap:1:yes",
            "ap:1:123",
            "ap:1:4",
            "ap:-1:ok",
            "ap:1:+4",
            "xx:1:ok",
            "ap:99999999999999999999:ok",
        ] {
            assert_eq!(parse_press(data), None, "{data}");
        }
    }

    fn approval(number: Option<u8>, choices: Vec<u8>) -> Approval {
        Approval {
            id: 9,
            transaction_id: "t".into(),
            token_id: 1,
            resource_id: 1,
            chat_id: 2,
            telegram_user_id: 3,
            number,
            choices,
            message_id: None,
            state: ApprovalState::Pending,
            reason: None,
            decided_at: None,
            used_at: None,
            expires_at: 100,
            created_at: 0,
        }
    }

    fn labels(rows: &[Vec<Button>]) -> Vec<Vec<&str>> {
        rows.iter()
            .map(|row| row.iter().map(|b| b.text.as_str()).collect())
            .collect()
    }

    #[test]
    fn without_number_matching_the_buttons_are_approve_and_deny() {
        let rows = keyboard(&approval(None, Vec::new()));
        assert_eq!(labels(&rows), [vec!["Approve", "Deny — this wasn't me"]]);
        assert_eq!(rows[0][0].data, "ap:9:ok");
        assert_eq!(rows[0][1].data, "ap:9:no");
    }

    #[test]
    fn with_number_matching_the_numbers_come_in_their_order_then_deny() {
        let rows = keyboard(&approval(Some(42), vec![85, 42, 17]));
        assert_eq!(
            labels(&rows),
            [vec!["85", "42", "17"], vec!["Deny — this wasn't me"]]
        );
        assert_eq!(rows[0][1].data, "ap:9:42");
    }

    #[test]
    fn the_question_names_the_resource_the_address_and_the_time() {
        let at = 10 * 3600 + 31 * 60;
        assert_eq!(
            question("VPN", Some("203.0.113.7"), at),
            "Sign in to VPN from 203.0.113.7, 10:31 UTC?"
        );
        assert_eq!(
            question("VPN", None, at),
            "Sign in to VPN from an unknown address, 10:31 UTC?"
        );
    }

    #[test]
    fn the_time_of_a_decision_is_told_in_hours_and_minutes() {
        assert_eq!(clock_time(10 * 3600 + 31 * 60 + 59), "10:31");
        assert_eq!(clock_time(86_400 + 5 * 60), "00:05");
    }
}
