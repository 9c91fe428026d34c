//! The sync of a directory, scheduled and on demand (Sync now): a paged search of everyone the
//! settings find; a person not linked yet becomes a user linked by their stable id; a linked
//! person's login, names, email and phone follow the directory (a rename is a rename); a
//! linked user gone from the directory or out of its group is disabled (never deleted), and
//! enabled again when they come back if a sync disabled them; a login a local user has is a
//! conflict, named. The group → resource mappings are kept in step after the users: the
//! assignments a mapping made are rows of `directory_group_assignments`, so a sync takes away
//! only those. The diff (`plan`) and the brake on disabling everyone or many
//! (`mass_disable`, unless the administrator's Sync now allows it) are pure; `run` writes the
//! plan in batches of `BATCH` people (`store::directory_sync`, one writer job each). `Syncs`
//! lets one sync run per directory; `schedule` is the background task `serve` starts.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::crypto::Keys;
use crate::domain::{FieldError, IdOrName, Refused, RuleError};
use crate::ldap::Person;
use crate::ldap::settings as ldap_settings;
use crate::store::directories::Directory as Stored;
use crate::store::directory_sync::{
    DirectorySyncState, GroupMapping, LinkedUser, MappingAdded, MappingRemoved, SyncBatch,
    SyncResult, UserRef, UserUpdate,
};
use crate::store::{AuditEntry, NewUser, Store, UnixTime};

/// People written in one writer job: big enough that 10,000 take a few dozen jobs, small
/// enough that a job holds the writer for milliseconds.
pub const BATCH: usize = 500;

/// How often the scheduler looks for a directory whose sync is due.
pub const SCHEDULER_TICK: Duration = Duration::from_secs(30);

/// The conflicts and skipped entries a result names at most (it counts them all).
const NAMED: usize = 50;

/// A sync may disable this many users whatever the share, and more only while they are at
/// most `MASS_DISABLE_PERCENT` of the directory's enabled users; see [`mass_disable`].
pub const MASS_DISABLE_FREE: usize = 10;
pub const MASS_DISABLE_PERCENT: usize = 20;

/// Why a sync must not disable `disables` of the directory's `enabled` linked users, having
/// found `found` people: it found no one at all, or it would disable more than
/// `MASS_DISABLE_FREE` users and more than `MASS_DISABLE_PERCENT` % of them. A filter typed
/// wrong, a base DN moved or a group renamed looks to a sync like everyone leaving the company:
/// such a sync changes nothing and says why, until an administrator who checked asks for it
/// with the disabling allowed. None when the sync may go on.
pub fn mass_disable(disables: usize, found: usize, enabled: usize) -> Option<String> {
    let everyone = found == 0 && disables > 0;
    let many = disables > MASS_DISABLE_FREE && disables * 100 > enabled * MASS_DISABLE_PERCENT;
    (everyone || many).then(|| {
        format!(
            "the sync would disable {disables} of the {enabled} enabled users linked to this \
             directory{}, so it changed nothing. Check the directory's base DN, filters and \
             group; if these people really left, sync now allowing it to disable them",
            if found == 0 { " (it found no one)" } else { "" }
        )
    })
}

/// Which of a person's values the directory gives (an attribute mapped): the others stay as
/// they are in otpgate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    pub first_name: bool,
    pub last_name: bool,
    pub email: bool,
    pub mobile: bool,
}

impl Mapped {
    pub fn of(directory: &Stored) -> Mapped {
        let fields = &directory.fields;
        Mapped {
            first_name: !fields.first_name_attribute.is_empty(),
            last_name: !fields.last_name_attribute.is_empty(),
            email: !fields.email_attribute.is_empty(),
            mobile: !fields.mobile_attribute.is_empty(),
        }
    }
}

/// What a sync is to write, worked out from the directory's people and the linked users.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub batch: SyncBatch,
    /// Entries left alone, each with why.
    pub skipped: Vec<String>,
    /// The stable ids of the people found (linked or to be).
    pub present: HashSet<String>,
}

/// The diff of the directory's `people` against the users linked to its entries. Pure.
pub fn plan(people: Vec<Person>, linked: Vec<LinkedUser>, mapped: Mapped) -> Plan {
    let mut by_uid: HashMap<String, LinkedUser> = linked
        .into_iter()
        .map(|user| (user.uid.clone(), user))
        .collect();
    let mut plan = Plan::default();
    for person in people {
        let Some(uid) = person.stable_id.clone() else {
            plan.skipped.push(format!("{}: no stable id", person.dn));
            continue;
        };
        if !plan.present.insert(uid.clone()) {
            plan.skipped
                .push(format!("{}: its stable id is another entry's", person.dn));
            continue;
        }
        // Found, so never disabled, even when the entry cannot be taken as it is now.
        let current = by_uid.remove(&uid);
        let Some(login) = person.login.clone() else {
            plan.skipped
                .push(format!("{}: no login attribute", person.dn));
            continue;
        };
        let user = match super::new_user(&person, &login) {
            Ok(user) => user,
            Err(refused) => {
                plan.skipped
                    .push(format!("{}: {}", person.dn, refusal_words(&refused)));
                continue;
            }
        };
        match current {
            None => plan.batch.creates.push((uid, person.dn, user)),
            Some(current) => {
                let user = kept_unmapped(user, &current, mapped);
                let changed = changes(&user, &current);
                if !changed.is_empty() {
                    plan.batch.updates.push(UserUpdate {
                        id: current.id,
                        old_login: current.login.clone(),
                        user,
                        changed,
                    });
                }
                if !current.enabled && current.disabled_by_sync {
                    plan.batch.enables.push(UserRef {
                        id: current.id,
                        login: current.login,
                    });
                }
            }
        }
    }
    let mut gone: Vec<LinkedUser> = by_uid.into_values().filter(|user| user.enabled).collect();
    gone.sort_by_key(|user| user.id);
    plan.batch.disables = gone
        .into_iter()
        .map(|user| UserRef {
            id: user.id,
            login: user.login,
        })
        .collect();
    plan
}

fn refusal_words(error: &RuleError) -> String {
    match error {
        RuleError::Refused(Refused::Invalid(words)) => words.clone(),
        other => other.to_string(),
    }
}

/// `user` with the values the directory does not give taken from `current`.
fn kept_unmapped(mut user: NewUser, current: &LinkedUser, mapped: Mapped) -> NewUser {
    if !mapped.first_name {
        user.first_name = current.first_name.clone();
    }
    if !mapped.last_name {
        user.last_name = current.last_name.clone();
    }
    if !mapped.email {
        user.email = current.email.clone();
    }
    if !mapped.mobile {
        user.phone = current.phone.clone();
    }
    user
}

fn changes(user: &NewUser, current: &LinkedUser) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if user.login != current.login {
        changed.push("login");
    }
    if user.first_name != current.first_name {
        changed.push("first_name");
    }
    if user.last_name != current.last_name {
        changed.push("last_name");
    }
    if user.email != current.email {
        changed.push("email");
    }
    if user.phone != current.phone {
        changed.push("phone");
    }
    changed
}

/// `batch` cut into batches of at most `size` people each.
pub fn batches(batch: SyncBatch, size: usize) -> Vec<SyncBatch> {
    let size = size.max(1);
    let mut out: Vec<SyncBatch> = Vec::new();
    let mut current = SyncBatch::default();
    let mut count = 0;
    fn push(current: &mut SyncBatch, count: &mut usize, out: &mut Vec<SyncBatch>, size: usize) {
        *count += 1;
        if *count == size {
            out.push(std::mem::take(current));
            *count = 0;
        }
    }
    for create in batch.creates {
        current.creates.push(create);
        push(&mut current, &mut count, &mut out, size);
    }
    for update in batch.updates {
        current.updates.push(update);
        push(&mut current, &mut count, &mut out, size);
    }
    for user in batch.disables {
        current.disables.push(user);
        push(&mut current, &mut count, &mut out, size);
    }
    for user in batch.enables {
        current.enables.push(user);
        push(&mut current, &mut count, &mut out, size);
    }
    if count > 0 {
        out.push(current);
    }
    out
}

/// Whether a directory's scheduled sync is due at `now`: an interval after its last sync
/// ended (worked or failed), or after it was created when it never synced.
pub fn due(state: &DirectorySyncState, now: UnixTime) -> bool {
    let since = state
        .last
        .as_ref()
        .map_or(state.created_at, |last| last.finished_at);
    now >= since.saturating_add(state.sync_interval_minutes.max(1) * 60)
}

/// The directories whose sync runs now: one sync at a time per directory.
#[derive(Debug, Default)]
pub struct Syncs {
    running: Mutex<HashSet<i64>>,
}

/// A sync of one directory under way; the directory is free again when it is dropped.
#[derive(Debug)]
pub struct Running {
    syncs: Arc<Syncs>,
    directory_id: i64,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut running) = self.syncs.running.lock() {
            running.remove(&self.directory_id);
        }
    }
}

impl Syncs {
    /// The right to sync `directory_id`, or None while a sync of it runs.
    pub fn begin(self: &Arc<Self>, directory_id: i64) -> Option<Running> {
        let mut running = self.running.lock().ok()?;
        running.insert(directory_id).then(|| Running {
            syncs: self.clone(),
            directory_id,
        })
    }
}

/// What a sync did: its result as recorded, and the conflicts and skipped entries named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub result: SyncResult,
    /// Each login not linked because another user has it, with its entry (the first 50).
    pub conflict_details: Vec<String>,
    /// Each entry left alone, with why (the first 50).
    pub skipped_details: Vec<String>,
}

/// Sync now, for the API and the panel alike: syncs directory `key` at once, in a task of its
/// own (a client who goes away does not stop a sync halfway), and answers what it did. While
/// a sync of the directory runs (Sync now or the scheduler's), another is refused, naming it.
/// `allow_mass_disable`: the administrator checked, and the sync may disable more users than
/// [`mass_disable`] lets a sync disable unasked.
pub async fn sync_now(
    store: &Store,
    keys: &Arc<Keys>,
    syncs: &Arc<Syncs>,
    key: IdOrName,
    allow_mass_disable: bool,
    audit: AuditEntry,
    now: UnixTime,
) -> Result<SyncReport, RuleError> {
    let stored = super::stored(store, key).await?;
    let running = syncs.begin(stored.id).ok_or_else(|| {
        Refused::Conflict(format!(
            "a sync of the directory \"{}\" is running; its result is shown with the directory when it ends",
            stored.fields.name
        ))
    })?;
    let (store, keys) = (store.clone(), keys.clone());
    tokio::spawn(async move {
        let _running = running;
        run(&store, &keys, stored, allow_mass_disable, audit, now).await
    })
    .await
    .map_err(|error| RuleError::Failed(anyhow::anyhow!("the sync task failed: {error}")))?
}

/// Syncs the directory `stored` now; `audit` is the line of whoever asks (an administrator's
/// key, or `system` for the scheduler), `now` the time it starts. The caller holds the
/// directory's `Running`. A directory that does not answer is a failed result, not an error:
/// nothing is changed, and the result says why; so is a sync that would disable too many
/// users ([`mass_disable`]) unless `allow_mass_disable`.
pub async fn run(
    store: &Store,
    keys: &Keys,
    stored: Stored,
    allow_mass_disable: bool,
    audit: AuditEntry,
    now: UnixTime,
) -> Result<SyncReport, RuleError> {
    let started = Instant::now();
    let directory = super::for_link(keys, &stored)?;
    let mappings = store.group_mappings(stored.id).await?;
    let groups: Vec<String> = mappings.iter().map(|m| m.group.clone()).collect();
    let mut report = SyncReport::default();
    report.result.started_at = now;
    let everyone = match directory.everyone(&groups).await {
        Ok(everyone) => everyone,
        Err(error) => {
            report.result.error = Some(error.to_string());
            return finish(store, &stored, report, audit, started).await;
        }
    };
    report.result.people = everyone.people.len() as i64;
    let linked = store.directory_users(stored.id).await?;
    let enabled = linked.iter().filter(|user| user.enabled).count();
    let found = everyone.people.len();
    let plan = plan(everyone.people, linked, Mapped::of(&stored));
    report.result.skipped = plan.skipped.len() as i64;
    report.skipped_details = plan.skipped.into_iter().take(NAMED).collect();
    if !allow_mass_disable
        && let Some(refusal) = mass_disable(plan.batch.disables.len(), found, enabled)
    {
        report.result.error = Some(refusal);
        return finish(store, &stored, report, audit, started).await;
    }
    for batch in batches(plan.batch, BATCH) {
        let outcome = store
            .write_sync_batch(stored.id, batch, audit.clone(), now)
            .await?;
        report.result.created += outcome.created as i64;
        report.result.updated += outcome.updated as i64;
        report.result.disabled += outcome.disabled as i64;
        report.result.enabled += outcome.enabled as i64;
        report.result.conflicts += outcome.conflicts.len() as i64;
        let room = NAMED.saturating_sub(report.conflict_details.len());
        report
            .conflict_details
            .extend(outcome.conflicts.into_iter().take(room));
    }
    if !mappings.is_empty() {
        let users: HashMap<String, i64> = store
            .directory_users(stored.id)
            .await?
            .into_iter()
            .filter(|user| plan.present.contains(&user.uid))
            .map(|user| (user.uid, user.id))
            .collect();
        for (mapping, members) in mappings.iter().zip(everyone.members) {
            let members: Vec<i64> = members
                .iter()
                .filter_map(|uid| users.get(uid).copied())
                .collect();
            let (assigned, unassigned) = store
                .keep_mapping_in_step(mapping.id, members, audit.clone())
                .await?;
            report.result.assigned += assigned as i64;
            report.result.unassigned += unassigned as i64;
        }
    }
    report.result.ok = true;
    finish(store, &stored, report, audit, started).await
}

async fn finish(
    store: &Store,
    stored: &Stored,
    mut report: SyncReport,
    audit: AuditEntry,
    started: Instant,
) -> Result<SyncReport, RuleError> {
    let elapsed = started.elapsed();
    report.result.duration_ms = elapsed.as_millis().min(i64::MAX as u128) as i64;
    report.result.finished_at = report.result.started_at + elapsed.as_secs() as i64;
    let result = &report.result;
    let detail = match &result.error {
        Some(error) => format!("{}: {error}", stored.fields.name),
        None => format!(
            "{}: {} found; {} created, {} updated, {} disabled, {} enabled, {} conflicts, \
             {} skipped, {} assigned, {} unassigned",
            stored.fields.name,
            result.people,
            result.created,
            result.updated,
            result.disabled,
            result.enabled,
            result.conflicts,
            result.skipped,
            result.assigned,
            result.unassigned
        ),
    };
    let line = AuditEntry {
        action: "directory.sync".into(),
        result: if result.ok { "ok" } else { "failed" }.into(),
        ..audit
    }
    .detail(detail);
    report.result = store
        .record_sync(stored.id, report.result.clone(), line)
        .await?;
    Ok(report)
}

/// A mapping's group as an administrator types it: a DN, or a filter in parentheses; the
/// same rule as the directory's own group.
pub fn check_group(text: &str) -> Result<String, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(FieldError::new(
            "group",
            "is required: a group's DN or a filter in parentheses",
        ));
    }
    if text.starts_with('(') {
        ldap_settings::search_filter("group", text)
    } else {
        ldap_settings::dn("group", text)
    }
}

/// Maps `group` of directory `directory` to `resource`: its people are assigned to the
/// resource by each sync.
pub async fn add_mapping(
    store: &Store,
    directory: IdOrName,
    group: &str,
    resource: IdOrName,
    audit: AuditEntry,
    now: UnixTime,
) -> Result<GroupMapping, RuleError> {
    let group = check_group(group)?;
    match store
        .add_group_mapping(directory, group, resource, audit, now)
        .await?
    {
        MappingAdded::Added(mapping) => Ok(mapping),
        MappingAdded::NoSuchDirectory => Err(Refused::NotFound("directory").into()),
        MappingAdded::NoSuchResource => Err(FieldError::new("resource", "no such resource").into()),
        MappingAdded::Exists => {
            Err(Refused::Conflict("this group is mapped to this resource already".into()).into())
        }
    }
}

/// The mappings of directory `directory`.
pub async fn mappings(store: &Store, directory: IdOrName) -> Result<Vec<GroupMapping>, RuleError> {
    let stored = super::stored(store, directory).await?;
    Ok(store.group_mappings(stored.id).await?)
}

/// Removes a mapping, and the assignments it made (an administrator's stay).
pub async fn remove_mapping(
    store: &Store,
    directory: IdOrName,
    mapping_id: i64,
    audit: AuditEntry,
) -> Result<usize, RuleError> {
    match store
        .remove_group_mapping(directory, mapping_id, audit)
        .await?
    {
        MappingRemoved::Removed(taken) => Ok(taken),
        MappingRemoved::NotFound => Err(Refused::NotFound("group mapping").into()),
    }
}

/// The scheduler, started by `serve`: every `SCHEDULER_TICK` it syncs each directory whose
/// sync is due, each in a task of its own, one at a time per directory. A directory that does
/// not answer is logged once (until a sync of it works again) and tried at the next interval.
pub async fn schedule(store: Store, keys: Arc<Keys>, syncs: Arc<Syncs>) {
    let failing: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let mut interval = tokio::time::interval(SCHEDULER_TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = crate::clock::now();
        let states = match store.directory_sync_states().await {
            Ok(states) => states,
            Err(error) => {
                tracing::warn!(%error, "the directories to sync could not be read");
                continue;
            }
        };
        for state in states.into_iter().filter(|state| due(state, now)) {
            let Some(running) = syncs.begin(state.directory_id) else {
                continue;
            };
            let (store, keys, failing) = (store.clone(), keys.clone(), failing.clone());
            tokio::spawn(async move {
                let _running = running;
                let audit = AuditEntry::new(now, "system", "directory.sync", "ok");
                let outcome = async {
                    let stored = super::stored(&store, IdOrName::Id(state.directory_id)).await?;
                    // A scheduled sync never disables more than a sync may unasked.
                    run(&store, &keys, stored, false, audit, now).await
                }
                .await;
                let error = match outcome {
                    Ok(report) => report.result.error,
                    Err(error) => Some(error.to_string()),
                };
                let Ok(mut failing) = failing.lock() else {
                    return;
                };
                match error {
                    Some(error) => {
                        if failing.insert(state.directory_id) {
                            tracing::warn!(directory = %state.name, %error,
                                "the directory's sync failed; it is tried again at the next interval");
                        }
                    }
                    None => {
                        if failing.remove(&state.directory_id) {
                            tracing::info!(directory = %state.name, "the directory syncs again");
                        }
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_that_finds_no_one_or_would_disable_many_is_stopped() {
        // Nobody found: not one disable.
        assert!(mass_disable(1, 0, 1).is_some());
        assert!(mass_disable(0, 0, 0).is_none());
        // A few whatever their share; more only up to a fifth.
        assert!(mass_disable(MASS_DISABLE_FREE, 1, MASS_DISABLE_FREE).is_none());
        assert!(mass_disable(20, 80, 100).is_none());
        let refused = mass_disable(21, 79, 100).expect("refused");
        assert!(
            refused.contains("disable 21 of the 100 enabled users"),
            "{refused}"
        );
        assert!(mass_disable(11, 10, 21).is_some());
        assert!(
            mass_disable(0, 0, 5).is_none(),
            "an empty directory of no one linked"
        );
    }

    fn person(uid: &str, login: &str, first: &str) -> Person {
        Person {
            dn: format!("uid={login},ou=people"),
            login: Some(login.into()),
            stable_id: Some(uid.into()),
            first_name: Some(first.into()),
            last_name: Some("Liddell".into()),
            email: Some(format!("{login}@example.org")),
            mobile: None,
        }
    }

    fn linked(id: i64, uid: &str, login: &str, first: &str) -> LinkedUser {
        LinkedUser {
            id,
            uid: uid.into(),
            login: login.into(),
            first_name: first.into(),
            last_name: "Liddell".into(),
            email: Some(format!("{login}@example.org")),
            phone: None,
            enabled: true,
            disabled_by_sync: false,
        }
    }

    const ALL: Mapped = Mapped {
        first_name: true,
        last_name: true,
        email: true,
        mobile: true,
    };

    #[test]
    fn a_person_not_linked_is_created_and_one_unchanged_is_left_alone() {
        let plan = plan(
            vec![person("u1", "alice", "Alice"), person("u2", "bob", "Bob")],
            vec![linked(7, "u1", "alice", "Alice")],
            ALL,
        );
        assert_eq!(plan.batch.creates.len(), 1);
        assert_eq!(plan.batch.creates[0].0, "u2");
        assert_eq!(plan.batch.creates[0].2.login, "bob");
        assert!(plan.batch.updates.is_empty());
        assert!(plan.batch.disables.is_empty());
        assert_eq!(plan.present.len(), 2);
    }

    #[test]
    fn a_rename_by_the_same_stable_id_is_an_update_not_a_new_user() {
        let plan = plan(
            vec![person("u1", "alice.l", "Alicia")],
            vec![linked(7, "u1", "alice", "Alice")],
            ALL,
        );
        assert!(plan.batch.creates.is_empty());
        let update = &plan.batch.updates[0];
        assert_eq!(update.id, 7);
        assert_eq!(update.old_login, "alice");
        assert_eq!(update.user.login, "alice.l");
        assert_eq!(update.changed, ["login", "first_name", "email"]);
    }

    #[test]
    fn a_value_the_directory_does_not_give_is_kept() {
        let mut current = linked(7, "u1", "alice", "Alice");
        current.phone = Some("+4930123456".into());
        let plan = plan(
            vec![person("u1", "alice", "Alice")],
            vec![current],
            Mapped {
                mobile: false,
                ..ALL
            },
        );
        assert!(plan.batch.updates.is_empty(), "{:?}", plan.batch.updates);
    }

    #[test]
    fn a_user_gone_is_disabled_and_one_the_sync_disabled_comes_back_enabled() {
        let mut back = linked(8, "u2", "bob", "Bob");
        back.enabled = false;
        back.disabled_by_sync = true;
        let mut disabled_by_hand = linked(9, "u3", "carol", "Carol");
        disabled_by_hand.enabled = false;
        let plan = plan(
            vec![person("u2", "bob", "Bob"), person("u3", "carol", "Carol")],
            vec![linked(7, "u1", "alice", "Alice"), back, disabled_by_hand],
            ALL,
        );
        assert_eq!(
            plan.batch.disables,
            [UserRef {
                id: 7,
                login: "alice".into()
            }]
        );
        assert_eq!(
            plan.batch.enables,
            [UserRef {
                id: 8,
                login: "bob".into()
            }]
        );
    }

    #[test]
    fn a_user_gone_and_disabled_already_is_not_disabled_again() {
        let mut gone = linked(7, "u1", "alice", "Alice");
        gone.enabled = false;
        let plan = plan(Vec::new(), vec![gone], ALL);
        assert!(plan.batch.disables.is_empty());
    }

    #[test]
    fn entries_without_a_stable_id_or_a_usable_login_are_skipped_and_named() {
        let mut no_id = person("x", "nobody", "No");
        no_id.stable_id = None;
        let mut bad_login = person("u9", "x", "Bad");
        bad_login.login = Some("bad\u{7}login".into());
        let twin = person("u1", "alice2", "Twin");
        let plan = plan(
            vec![person("u1", "alice", "Alice"), no_id, bad_login, twin],
            Vec::new(),
            ALL,
        );
        assert_eq!(plan.batch.creates.len(), 1);
        assert_eq!(plan.skipped.len(), 3, "{:?}", plan.skipped);
        assert!(
            plan.skipped[0].contains("no stable id"),
            "{:?}",
            plan.skipped
        );
        assert!(plan.skipped[1].contains("bad"), "{:?}", plan.skipped);
        assert!(
            plan.skipped[2].contains("another entry"),
            "{:?}",
            plan.skipped
        );
    }

    #[test]
    fn a_linked_user_whose_new_login_cannot_be_taken_is_not_disabled() {
        let mut renamed = person("u1", "alice", "Alice");
        renamed.login = Some(String::new());
        let plan = plan(vec![renamed], vec![linked(7, "u1", "alice", "Alice")], ALL);
        assert!(plan.batch.disables.is_empty());
        assert_eq!(plan.skipped.len(), 1);
    }

    #[test]
    fn batches_hold_at_most_the_batch_size_and_lose_nobody() {
        let people: Vec<Person> = (0..1234)
            .map(|n| person(&format!("u{n}"), &format!("p{n}"), "P"))
            .collect();
        let mut plan = plan(people, vec![linked(1, "gone", "gone", "G")], ALL);
        plan.batch.enables.push(UserRef {
            id: 2,
            login: "back".into(),
        });
        let cut = batches(plan.batch, 500);
        let sizes: Vec<usize> = cut
            .iter()
            .map(|b| b.creates.len() + b.updates.len() + b.disables.len() + b.enables.len())
            .collect();
        assert_eq!(sizes, [500, 500, 236]);
        assert_eq!(cut[2].disables.len(), 1);
        assert_eq!(cut[2].enables.len(), 1);
    }

    #[test]
    fn a_sync_is_due_an_interval_after_the_last_one_ended_or_the_directory_was_made() {
        let mut state = DirectorySyncState {
            directory_id: 1,
            name: "Example".into(),
            sync_interval_minutes: 15,
            created_at: 1_000,
            last: None,
            users: 0,
            enabled_users: 0,
        };
        assert!(!due(&state, 1_000 + 15 * 60 - 1));
        assert!(due(&state, 1_000 + 15 * 60));
        state.last = Some(SyncResult {
            finished_at: 5_000,
            ..SyncResult::default()
        });
        assert!(!due(&state, 5_000 + 899));
        assert!(due(&state, 5_900));
    }

    #[test]
    fn one_sync_at_a_time_per_directory() {
        let syncs = Arc::new(Syncs::default());
        let first = syncs.begin(1).expect("free");
        assert!(syncs.begin(1).is_none());
        assert!(syncs.begin(2).is_some());
        drop(first);
        assert!(syncs.begin(1).is_some());
    }

    #[test]
    fn a_mappings_group_is_a_dn_or_a_filter() {
        assert_eq!(
            check_group(" cn=vpn,ou=groups,dc=example,dc=org ").expect("a DN"),
            "cn=vpn,ou=groups,dc=example,dc=org"
        );
        assert!(check_group("(employeeType=vpn)").is_ok());
        assert_eq!(check_group("(employeeType=vpn").unwrap_err().field, "group");
        assert_eq!(check_group("").unwrap_err().field, "group");
    }
}
