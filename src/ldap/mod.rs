//! Directories: Active Directory, FreeIPA and OpenLDAP, whose people are otpgate users and
//! whose passwords stay there. `settings` (the rules of a directory's fields, for the API and
//! the panel alike), `filter` (search filters with every value escaped, AD's nested-group
//! rule), `entry` (stable ids: `objectGUID` bytes as a GUID, `entryUUID`), `bind` (why a bind
//! was refused, from AD's sub-codes) are pure; `client` speaks LDAP.

pub mod bind;
pub mod client;
pub mod entry;
pub mod filter;
pub mod pool;
pub mod settings;

pub use client::{
    Attempt, Directory, DirectoryError, Everyone, PasswordCheck, Person, Preview, Tested,
};
pub use pool::Pools;
