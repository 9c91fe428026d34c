//! A resource's Self-Service settings as an administrator saves them: the one rule the panel
//! and the API share (the portal's address, required once the portal is on and unique among
//! resources), and the save with its audit line.

use crate::domain::{FieldError, Refused, RuleError};
use crate::store::resources::{SelfService, SelfServiceSaved, parse_portal_address};
use crate::store::{AuditEntry, Store};

/// Puts the typed Self-Service Page Address into `settings`: empty is no address, which only
/// a portal that is off may have.
pub fn take_address(settings: &mut SelfService, typed: &str) -> Result<(), FieldError> {
    if typed.trim().is_empty() {
        settings.address = None;
        if settings.enabled {
            return Err(FieldError::new(
                "address",
                "Give the page an address: users open the portal there.",
            ));
        }
        return Ok(());
    }
    match parse_portal_address(typed) {
        Ok(address) => {
            settings.address = Some(address);
            Ok(())
        }
        Err(invalid) => Err(FieldError::new("address", format!("Please {}.", invalid.0))),
    }
}

/// Checks and stores the Self-Service settings of the resource `resource_id`, the address as
/// typed; answers what changed, in words (empty when nothing did). The audit line, written
/// with the change, carries the changes.
pub async fn save(
    store: &Store,
    resource_id: i64,
    mut settings: SelfService,
    typed_address: &str,
    entry: AuditEntry,
    now: i64,
) -> Result<Vec<String>, RuleError> {
    take_address(&mut settings, typed_address)?;
    match store
        .save_self_service(resource_id, settings, entry, now)
        .await?
    {
        SelfServiceSaved::Saved(changes) => Ok(changes),
        SelfServiceSaved::NoSuchResource => Err(Refused::NotFound("resource").into()),
        SelfServiceSaved::AddressTaken => {
            Err(FieldError::new("address", "Another resource's portal has this address.").into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_address(enabled: bool, typed: &str) -> Result<Option<String>, FieldError> {
        let mut settings = SelfService {
            enabled,
            ..SelfService::default()
        };
        take_address(&mut settings, typed).map(|()| settings.address)
    }

    #[test]
    fn a_portal_that_is_on_needs_an_address_and_one_that_is_off_may_have_none() {
        assert_eq!(with_address(false, " "), Ok(None));
        let refused = with_address(true, "").expect_err("refused");
        assert_eq!(refused.field, "address");
        assert_eq!(
            refused.message,
            "Give the page an address: users open the portal there."
        );
        assert_eq!(
            with_address(true, " VPN-Users "),
            Ok(Some("vpn-users".into()))
        );
        let refused = with_address(false, "-vpn").expect_err("refused");
        assert!(
            refused.message.starts_with("Please use 2 to 63"),
            "{refused}"
        );
    }
}
