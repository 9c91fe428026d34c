//! The notices a user's changes in the portal send to their email address (`notices`).

use super::{Portal, PortalError};
use crate::notices::{self, Account, Change};
use crate::store::Message;
use crate::store::User;
use crate::web::AppState;

/// The notice of `change` to the user's email address as it is before the change.
pub fn notice(
    state: &AppState,
    portal: &Portal,
    user: &User,
    change: Change<'_>,
) -> Result<Option<Message>, PortalError> {
    let place = format!("the self-service page of {}", portal.resource.name);
    let account = Account {
        login: &user.login,
        email: user.email.as_deref(),
        place: &place,
    };
    Ok(notices::notice(
        &state.keys,
        &account,
        change,
        crate::clock::now(),
    )?)
}
