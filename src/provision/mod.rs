//! Token provisioning, the rules every front end shares: creating a token of any kind
//! (`create`), changing one (`update`), importing a seed file (`import`), resynchronising
//! (`resync`), reissuing (`reissue`), a BOT token's activation (`activation`) and
//! enrolment by the first code (`pending`). Each rule
//! takes what it needs as arguments (the keys, the store, the general settings, the time) and
//! answers a `Refused` in the words of the field at fault, never a front end's error.

mod activation;
mod create;
mod import;
mod pending;
pub mod reissue;
mod resync;
mod update;

pub use activation::{Activation, issue as issue_activation};
pub use create::{
    MAX_SECRET, PreparedToken, SecretFormat, Seed, TokenRequest, account_of, enrolment_uri,
    prepare, qr_svg,
};
pub use import::{ImportFormat, prepare as prepare_import};
pub use pending::{FirstCode, confirm_first_code, prepare_pending};
pub use resync::resync;
pub use update::{TokenUpdate, changes};

use crate::clock::UnixTime;
use crate::codes::{self, Found, Unusable};
use crate::crypto::Keys;
use crate::store::Token;

/// Where the code a user typed to take a token into use is (an authenticator app's first code,
/// a hardware token's code at Assign Existing Token): the token's own seed and replay floor, in
/// the usual window.
pub fn first_code(
    keys: &Keys,
    token: &Token,
    typed: &str,
    now: UnixTime,
) -> Result<Option<Found>, Unusable> {
    let params = codes::params(token)?;
    codes::check(keys, token, typed, codes::usual_window(&params), now)
}
