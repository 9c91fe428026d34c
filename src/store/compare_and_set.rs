//! The tests of the store's compare-and-set guards: the conditions in the WHERE clause of an
//! UPDATE or DELETE that let a code, a challenge or a change take effect once, and only on a
//! row still in the state the caller saw. Each test first lets the operation succeed where
//! that matters, then does what a replay, a lost race or a stale page would do, and checks
//! both the answer and the rows afterwards: each fails when its guard is taken out of the
//! statement.

use super::Message;
use super::auth::{self, Claim, NewChallenge, Penalty};
use super::outbox;
use super::portal::{EnrolCode, LoginStage, NewPortalLogin};
use super::tokens::{Refused, TokenCreation};
use super::{
    AdminChange, AuditEntry, NewAdmin, NewSession, NewToken, SessionKind, SessionStage, Store,
    Token, UnixTime, add_resource, add_user, optional, temp_store,
};
use crate::domain::{IdOrName, TokenKind, TokenState};

fn entry(at: UnixTime) -> AuditEntry {
    AuditEntry::new(at, "test", "test", "ok")
}

/// A token as an administrator would create it: active, unassigned, with what its kind needs.
fn new_token(kind: TokenKind, serial: &str) -> NewToken {
    let destination = match kind {
        TokenKind::Mail => Some("ann@example.com".to_owned()),
        TokenKind::Sms => Some("+4915112345678".to_owned()),
        _ => None,
    };
    NewToken {
        serial: serial.to_owned(),
        name: serial.to_owned(),
        kind,
        user_id: None,
        secret: matches!(kind, TokenKind::Totp | TokenKind::Hotp).then(|| b"sealed seed".to_vec()),
        algorithm: crate::otp::Algorithm::Sha1,
        digits: 6,
        period: 30,
        last_step: None,
        destination,
        messenger: None,
        pin_hash: None,
        pin_position: crate::otp::PinPosition::Before,
        state: TokenState::Active,
        activation: None,
    }
}

fn creation(token: NewToken) -> TokenCreation {
    TokenCreation {
        token,
        generate_serial: false,
        user: None,
        resource: None,
    }
}

async fn add_token(store: &Store, token: NewToken) -> i64 {
    store
        .create_token(creation(token), entry(1))
        .await
        .expect("written")
        .expect("created")
        .token
        .id
}

/// The token as stored now, or None when it is gone.
async fn stored_token(store: &Store, id: i64) -> Option<Token> {
    store
        .token_detail(IdOrName::Id(id))
        .await
        .expect("read")
        .map(|detail| detail.record.token)
}

async fn token(store: &Store, id: i64) -> Token {
    stored_token(store, id).await.expect("the token exists")
}

/// The first column of the row `id` that `sql` selects; None when there is no such row.
async fn column<T>(store: &Store, sql: &'static str, id: i64) -> Option<T>
where
    T: rusqlite::types::FromSql + Send + 'static,
{
    store
        .read(move |conn| optional(conn.query_row(sql, [id], |row| row.get(0))))
        .await
        .expect("read")
}

/// The result and reason of the newest audit line.
async fn last_audit(store: &Store) -> (String, Option<String>) {
    store
        .read(|conn| {
            Ok(conn.query_row(
                "SELECT result, reason FROM audit_log ORDER BY id DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?)
        })
        .await
        .expect("audit")
}

fn step(token_id: i64, step: i64) -> Claim {
    Claim::Step {
        token_id,
        step,
        drift: 0,
    }
}

async fn claim(store: &Store, claim: Claim, auto_unlock: Option<i64>, now: UnixTime) -> bool {
    store
        .apply(
            auth::Outcome::Claim {
                claim,
                transaction: None,
                auto_unlock,
                entry: entry(now),
            },
            None,
            now,
        )
        .await
        .expect("claim written")
        .won
}

/// Counts one failed attempt against the token and spends a try of the challenges; a limit
/// of 1 locks the token at once.
async fn penalise(
    store: &Store,
    token_id: i64,
    fail_limit: i64,
    challenge_ids: Vec<i64>,
    now: UnixTime,
) {
    let penalty = Penalty {
        token_ids: vec![token_id],
        fail_limit,
        challenge_ids,
    };
    store
        .apply(
            auth::Outcome::Penalise {
                penalty,
                entry: entry(now),
            },
            None,
            now,
        )
        .await
        .expect("penalty written");
}

/// The user and resource a transaction of these tests belongs to, made the first time.
async fn transaction_owner(store: &Store) -> (i64, i64) {
    let user = match store
        .find_user(IdOrName::Name("transaction owner".to_owned()))
        .await
        .expect("read")
    {
        Some(user) => user.id,
        None => add_user(store, "transaction owner").await,
    };
    let resource = match store
        .find_resource(IdOrName::Name("transaction resource".to_owned()))
        .await
        .expect("read")
    {
        Some(resource) => resource.id,
        None => add_resource(store, "transaction resource").await,
    };
    (user, resource)
}

/// Sends a code to the token (a challenge and its outbox message); the challenge's id.
async fn send_code(
    store: &Store,
    token_id: i64,
    tries: i64,
    expires_at: UnixTime,
    now: UnixTime,
) -> i64 {
    let challenge = NewChallenge {
        token_id,
        code_hash: b"code hash".to_vec(),
        channel: "mail",
        recipient: "ann@example.com".to_owned(),
        subject: "Your code".to_owned(),
        sealed_body: b"sealed body".to_vec(),
    };
    let (user_id, resource_id) = transaction_owner(store).await;
    let asked = auth::Asked {
        transaction: auth::NewTransaction {
            id: format!("transaction-{token_id}-{now}"),
            resource_id,
            user_id,
            password_checked: false,
            expires_at,
        },
        challenges: vec![challenge],
        reused: Vec::new(),
        tries,
        entries: vec![entry(now)],
    };
    store
        .create_challenges(asked, now)
        .await
        .expect("challenge written");
    column(
        store,
        "SELECT id FROM challenges WHERE token_id = ?1 AND purpose = 'auth'",
        token_id,
    )
    .await
    .expect("a challenge")
}

async fn challenge_tries(store: &Store, challenge_id: i64) -> Option<i64> {
    column(
        store,
        "SELECT tries_left FROM challenges WHERE id = ?1",
        challenge_id,
    )
    .await
}

// ----- The replay floor of an accepted TOTP or HOTP code (auth) -----------------------------

#[tokio::test]
async fn a_step_already_claimed_is_not_claimed_again() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Totp, "T-1")).await;
    // Two requests with the same code at once: one wins.
    let (first, second) = tokio::join!(
        claim(&store, step(id, 100), None, 1000),
        claim(&store, step(id, 100), None, 1000),
    );
    assert!(first != second, "exactly one claim wins: {first} {second}");
    assert!(!claim(&store, step(id, 100), None, 1001).await, "a replay");
    assert!(
        !claim(&store, step(id, 99), None, 1001).await,
        "an older code"
    );
    assert_eq!(token(&store, id).await.last_step, Some(100));
    assert_eq!(
        last_audit(&store).await,
        ("rejected".to_owned(), Some("replayed".to_owned()))
    );
    assert!(
        claim(&store, step(id, 101), None, 1030).await,
        "the next code"
    );
}

#[tokio::test]
async fn a_disabled_token_claims_no_step() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Totp, "T-1")).await;
    store
        .set_token_enabled(IdOrName::Id(id), false, entry(2))
        .await
        .expect("written")
        .expect("disabled");
    // The decision was taken on a context read before an administrator disabled the token.
    assert!(!claim(&store, step(id, 100), None, 1000).await);
    let token = token(&store, id).await;
    assert_eq!(token.last_step, None);
    assert_eq!(token.last_used_at, None);
}

#[tokio::test]
async fn a_locked_token_claims_no_step_until_it_unlocks() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Totp, "T-1")).await;
    penalise(&store, id, 1, Vec::new(), 1000).await;
    assert_eq!(token(&store, id).await.locked_at, Some(1000));
    assert!(!claim(&store, step(id, 100), None, 1010).await);
    let locked = token(&store, id).await;
    assert_eq!((locked.last_step, locked.locked_at), (None, Some(1000)));
    // Once the resource's automatic unlock has come, the same code is accepted.
    assert!(claim(&store, step(id, 100), Some(10), 1010).await);
    let unlocked = token(&store, id).await;
    assert_eq!(
        (unlocked.last_step, unlocked.locked_at, unlocked.fail_count),
        (Some(100), None, 0)
    );
}

// ----- The claim of a sent code (auth, challenges) ------------------------------------------

#[tokio::test]
async fn a_sent_code_is_claimed_once() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Mail, "M-1")).await;
    let challenge_id = send_code(&store, id, 3, 2000, 1000).await;
    let sent = Claim::Challenge {
        token_id: id,
        challenge_id,
        transaction_id: String::new(),
    };
    let (first, second) = tokio::join!(
        claim(&store, sent.clone(), None, 1001),
        claim(&store, sent.clone(), None, 1001)
    );
    assert!(first != second, "exactly one claim wins: {first} {second}");
    assert!(!claim(&store, sent.clone(), None, 1002).await, "a replay");
    assert_eq!(challenge_tries(&store, challenge_id).await, None);
    assert_eq!(token(&store, id).await.last_used_at, Some(1001));
    assert_eq!(
        last_audit(&store).await,
        ("rejected".to_owned(), Some("replayed".to_owned()))
    );
}

#[tokio::test]
async fn an_expired_challenge_is_not_claimed() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Mail, "M-1")).await;
    let challenge_id = send_code(&store, id, 3, 1300, 1000).await;
    let sent = Claim::Challenge {
        token_id: id,
        challenge_id,
        transaction_id: String::new(),
    };
    assert!(!claim(&store, sent.clone(), None, 1300).await);
    assert_eq!(challenge_tries(&store, challenge_id).await, Some(3));
    assert_eq!(token(&store, id).await.last_used_at, None);
}

#[tokio::test]
async fn a_challenge_without_tries_left_is_not_claimed() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Mail, "M-1")).await;
    let challenge_id = send_code(&store, id, 0, 2000, 1000).await;
    let sent = Claim::Challenge {
        token_id: id,
        challenge_id,
        transaction_id: String::new(),
    };
    assert!(!claim(&store, sent.clone(), None, 1001).await);
    assert_eq!(challenge_tries(&store, challenge_id).await, Some(0));
    assert_eq!(token(&store, id).await.last_used_at, None);
}

#[tokio::test]
async fn a_sent_code_of_a_disabled_token_is_refused() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Mail, "M-1")).await;
    let challenge_id = send_code(&store, id, 3, 2000, 1000).await;
    store
        .set_token_enabled(IdOrName::Id(id), false, entry(1000))
        .await
        .expect("written")
        .expect("disabled");
    let sent = Claim::Challenge {
        token_id: id,
        challenge_id,
        transaction_id: String::new(),
    };
    assert!(!claim(&store, sent.clone(), None, 1001).await);
    assert_eq!(token(&store, id).await.last_used_at, None);
}

#[tokio::test]
async fn a_sent_code_of_a_locked_token_is_refused() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Mail, "M-1")).await;
    let challenge_id = send_code(&store, id, 3, 2000, 1000).await;
    // Another candidate token's failure locked this one; its challenge keeps two tries.
    penalise(&store, id, 1, vec![challenge_id], 1001).await;
    let sent = Claim::Challenge {
        token_id: id,
        challenge_id,
        transaction_id: String::new(),
    };
    assert!(!claim(&store, sent.clone(), None, 1002).await);
    let token = token(&store, id).await;
    assert_eq!((token.locked_at, token.fail_count), (Some(1001), 1));
    assert_eq!(token.last_used_at, None);
}

#[tokio::test]
async fn a_penalty_voids_a_challenge_only_when_its_tries_are_spent() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Mail, "M-1")).await;
    let challenge_id = send_code(&store, id, 2, 2000, 1000).await;
    penalise(&store, id, 10, vec![challenge_id], 1001).await;
    assert_eq!(challenge_tries(&store, challenge_id).await, Some(1));
    penalise(&store, id, 10, vec![challenge_id], 1002).await;
    assert_eq!(challenge_tries(&store, challenge_id).await, None);
}

/// Begins a transaction of the tests' owner, with no codes; `password_checked` as given.
async fn begin(store: &Store, id: &str, password_checked: bool, expires_at: UnixTime) -> i64 {
    let (user_id, resource_id) = transaction_owner(store).await;
    let asked = auth::Asked {
        transaction: auth::NewTransaction {
            id: id.to_owned(),
            resource_id,
            user_id,
            password_checked,
            expires_at,
        },
        challenges: Vec::new(),
        reused: Vec::new(),
        tries: 3,
        entries: Vec::new(),
    };
    store
        .create_challenges(asked, 1000)
        .await
        .expect("transaction written");
    resource_id
}

#[tokio::test]
async fn a_radius_state_takes_its_password_transaction_once() {
    let (_dir, store) = temp_store();
    let resource = begin(&store, "checked", true, 2000).await;
    let (user, _) = transaction_owner(&store).await;
    let take = |id: &str, resource: i64, now: UnixTime| {
        store.take_password_transaction(id.to_owned(), resource, now)
    };
    let other = add_resource(&store, "another resource").await;
    assert_eq!(take("checked", other, 1001).await.expect("taken"), None);
    assert_eq!(take("checked", resource, 2000).await.expect("taken"), None);
    assert_eq!(
        take("checked", resource, 1001).await.expect("taken"),
        Some(user)
    );
    assert_eq!(take("checked", resource, 1002).await.expect("taken"), None);
    begin(&store, "prepared", false, 2000).await;
    assert_eq!(take("prepared", resource, 1001).await.expect("taken"), None);
}

// ----- The BOT activation code (bot) --------------------------------------------------------

fn bot_token(serial: &str, code: &[u8], expires_at: UnixTime) -> NewToken {
    NewToken {
        state: TokenState::Pending,
        activation: Some((code.to_vec(), expires_at)),
        ..new_token(TokenKind::Bot, serial)
    }
}

#[tokio::test]
async fn an_activation_code_binds_one_chat_once() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, bot_token("B-1", b"code A", 2000)).await;
    let first = store
        .activate_bot_token(
            b"code A".to_vec(),
            super::bot::Chat {
                chat_id: 11,
                user_id: 21,
                name: None,
            },
            1000,
        )
        .await
        .expect("written");
    assert_eq!(first.map(|a| a.token_id), Some(id));
    let again = store
        .activate_bot_token(
            b"code A".to_vec(),
            super::bot::Chat {
                chat_id: 12,
                user_id: 22,
                name: None,
            },
            1001,
        )
        .await
        .expect("written");
    assert_eq!(again, None, "the code is used up");
    let token = token(&store, id).await;
    assert_eq!(
        (token.state, token.bot_chat_id),
        (TokenState::Active, Some(11))
    );
}

#[tokio::test]
async fn a_wrong_activation_code_binds_nothing() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, bot_token("B-1", b"code A", 2000)).await;
    let activated = store
        .activate_bot_token(
            b"code B".to_vec(),
            super::bot::Chat {
                chat_id: 11,
                user_id: 21,
                name: None,
            },
            1000,
        )
        .await
        .expect("written");
    assert_eq!(activated, None);
    let token = token(&store, id).await;
    assert_eq!(
        (token.state, token.bot_chat_id),
        (TokenState::Pending, None)
    );
}

#[tokio::test]
async fn an_expired_activation_code_binds_nothing() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, bot_token("B-1", b"code A", 1000)).await;
    let activated = store
        .activate_bot_token(
            b"code A".to_vec(),
            super::bot::Chat {
                chat_id: 11,
                user_id: 21,
                name: None,
            },
            1000,
        )
        .await
        .expect("written");
    assert_eq!(activated, None);
    let token = token(&store, id).await;
    assert_eq!(
        (token.state, token.bot_chat_id),
        (TokenState::Pending, None)
    );
}

#[tokio::test]
async fn an_activation_code_of_a_token_of_another_kind_binds_nothing() {
    let (_dir, store) = temp_store();
    let totp = NewToken {
        activation: Some((b"code A".to_vec(), 2000)),
        state: TokenState::Pending,
        ..new_token(TokenKind::Totp, "T-1")
    };
    let id = add_token(&store, totp).await;
    let activated = store
        .activate_bot_token(
            b"code A".to_vec(),
            super::bot::Chat {
                chat_id: 11,
                user_id: 21,
                name: None,
            },
            1000,
        )
        .await
        .expect("written");
    assert_eq!(activated, None);
    let token = token(&store, id).await;
    assert_eq!(
        (token.state, token.bot_chat_id),
        (TokenState::Pending, None)
    );
}

// ----- The enrolment confirmation code (portal) ---------------------------------------------

fn message(expires_at: UnixTime) -> Message {
    Message {
        channel: "mail",
        recipient: "ann@example.com".to_owned(),
        subject: "Your code".to_owned(),
        sealed_body: b"sealed body".to_vec(),
        expires_at,
    }
}

fn enrol_code(tries: i64, expires_at: UnixTime) -> EnrolCode {
    EnrolCode {
        code_hash: b"code hash".to_vec(),
        tries,
        message: message(expires_at),
    }
}

/// A MAIL token the user has just added in the portal, waiting for its confirmation code.
async fn pending_mail_token(store: &Store, serial: &str, code: EnrolCode) -> i64 {
    let token = NewToken {
        state: TokenState::Pending,
        ..new_token(TokenKind::Mail, serial)
    };
    store
        .enrol_portal_token(creation(token), Some(code), 1000, entry(1000))
        .await
        .expect("written")
        .expect("enrolled")
        .token
        .id
}

async fn enrol_challenge(store: &Store, token_id: i64) -> Option<i64> {
    column(
        store,
        "SELECT id FROM challenges WHERE token_id = ?1 AND purpose = 'enrol'",
        token_id,
    )
    .await
}

async fn confirm(store: &Store, token_id: i64, challenge_id: i64, now: UnixTime) -> bool {
    store
        .confirm_enrol_code(token_id, challenge_id, now, entry(now))
        .await
        .expect("written")
}

#[tokio::test]
async fn an_enrolment_code_confirms_once() {
    let (_dir, store) = temp_store();
    let id = pending_mail_token(&store, "M-1", enrol_code(3, 2000)).await;
    let challenge_id = enrol_challenge(&store, id).await.expect("a code");
    let (first, second) = tokio::join!(
        confirm(&store, id, challenge_id, 1001),
        confirm(&store, id, challenge_id, 1001)
    );
    assert!(
        first != second,
        "exactly one confirmation wins: {first} {second}"
    );
    assert!(!confirm(&store, id, challenge_id, 1002).await, "a replay");
    assert_eq!(token(&store, id).await.state, TokenState::Active);
    assert_eq!(enrol_challenge(&store, id).await, None);
}

#[tokio::test]
async fn an_enrolment_code_of_another_token_confirms_nothing() {
    let (_dir, store) = temp_store();
    let first = pending_mail_token(&store, "M-1", enrol_code(3, 2000)).await;
    let second = pending_mail_token(&store, "M-2", enrol_code(3, 2000)).await;
    let first_code = enrol_challenge(&store, first).await.expect("a code");
    assert!(!confirm(&store, second, first_code, 1001).await);
    assert_eq!(token(&store, second).await.state, TokenState::Pending);
    assert_eq!(enrol_challenge(&store, first).await, Some(first_code));
}

#[tokio::test]
async fn an_enrolment_code_without_tries_left_confirms_nothing() {
    let (_dir, store) = temp_store();
    let id = pending_mail_token(&store, "M-1", enrol_code(0, 2000)).await;
    let challenge_id = enrol_challenge(&store, id).await.expect("a code");
    assert!(!confirm(&store, id, challenge_id, 1001).await);
    assert_eq!(token(&store, id).await.state, TokenState::Pending);
}

#[tokio::test]
async fn an_expired_enrolment_code_confirms_nothing() {
    let (_dir, store) = temp_store();
    let id = pending_mail_token(&store, "M-1", enrol_code(3, 1300)).await;
    let challenge_id = enrol_challenge(&store, id).await.expect("a code");
    assert!(!confirm(&store, id, challenge_id, 1300).await);
    assert_eq!(token(&store, id).await.state, TokenState::Pending);
    assert_eq!(enrol_challenge(&store, id).await, Some(challenge_id));
}

#[tokio::test]
async fn an_enrolment_code_activates_only_a_pending_token() {
    let (_dir, store) = temp_store();
    let bot = NewToken {
        state: TokenState::Reactivate,
        ..new_token(TokenKind::Bot, "B-1")
    };
    let id = add_token(&store, bot).await;
    store
        .resend_enrol_code(id, enrol_code(3, 2000), 1000, entry(1000))
        .await
        .expect("code written");
    let challenge_id = enrol_challenge(&store, id).await.expect("a code");
    confirm(&store, id, challenge_id, 1001).await;
    assert_eq!(token(&store, id).await.state, TokenState::Reactivate);
}

// ----- A wrong enrolment code, and giving up a pending token (portal) -----------------------

#[tokio::test]
async fn a_missed_enrolment_code_counts_only_against_a_pending_token() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Totp, "T-1")).await;
    // A wrong first code typed on a page left open after the token was confirmed elsewhere.
    store
        .enrol_code_missed(id, 5, entry(1000))
        .await
        .expect("written");
    assert_eq!(token(&store, id).await.fail_count, 0);
}

#[tokio::test]
async fn a_spent_enrolment_code_never_removes_an_active_token() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Totp, "T-1")).await;
    for now in 1000..1003 {
        penalise(&store, id, 10, Vec::new(), now).await;
    }
    // The failed logins reach the enrolment's limit, so the miss finds its tries spent.
    store
        .enrol_code_missed(id, 3, entry(1003))
        .await
        .expect("written");
    assert!(stored_token(&store, id).await.is_some());
}

#[tokio::test]
async fn discarding_leaves_a_token_that_is_no_longer_pending() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Totp, "T-1")).await;
    let discarded = store
        .discard_pending_token(id, entry(1000))
        .await
        .expect("written");
    assert!(!discarded);
    assert!(stored_token(&store, id).await.is_some());
}

// ----- The emailed code of a portal login (portal) ------------------------------------------

async fn start_login(store: &Store, resource_id: i64, tries: i64) -> Vec<u8> {
    let id_hash = b"login".to_vec();
    let login = NewPortalLogin {
        id_hash: id_hash.clone(),
        resource_id,
        user_id: None,
        login: "ann".to_owned(),
        stage: LoginStage::EmailCode,
        tries,
        code: Some((b"code hash".to_vec(), message(2000))),
        csrf_token: "csrf".to_owned(),
        expires_at: 2000,
    };
    store
        .start_portal_login(login, 1000, entry(1000))
        .await
        .expect("login written");
    id_hash
}

#[tokio::test]
async fn a_login_code_gives_no_more_tries_than_it_has() {
    let (_dir, store) = temp_store();
    let resource = add_resource(&store, "vpn").await;
    let id_hash = start_login(&store, resource, 2).await;
    let mut taken = 0;
    for _ in 0..5 {
        if store
            .take_portal_login_try(id_hash.clone(), 1001)
            .await
            .expect("written")
        {
            taken += 1;
        }
    }
    assert_eq!(taken, 2, "two tries, however many guesses arrive");
    let login = store
        .portal_login(id_hash, 1001)
        .await
        .expect("read")
        .expect("the login is still there");
    assert_eq!(login.tries_left, 0);
}

#[tokio::test]
async fn no_try_is_taken_of_an_expired_login_code() {
    let (_dir, store) = temp_store();
    let resource = add_resource(&store, "vpn").await;
    let id_hash = start_login(&store, resource, 3).await;
    let taken = store
        .take_portal_login_try(id_hash, 2000)
        .await
        .expect("written");
    assert!(!taken);
}

#[tokio::test]
async fn a_missed_login_code_ends_the_login_only_with_its_last_try() {
    let (_dir, store) = temp_store();
    let resource = add_resource(&store, "vpn").await;
    let id_hash = start_login(&store, resource, 2).await;
    for at in [1001, 1002] {
        assert!(
            store
                .take_portal_login_try(id_hash.clone(), at)
                .await
                .expect("written")
        );
        store
            .portal_login_missed(id_hash.clone(), entry(at))
            .await
            .expect("written");
        let login = store.portal_login(id_hash.clone(), at).await.expect("read");
        assert_eq!(
            login.is_some(),
            at == 1001,
            "only the last try ends the login"
        );
    }
}

#[tokio::test]
async fn a_login_code_is_claimed_once() {
    let (_dir, store) = temp_store();
    let resource = add_resource(&store, "vpn").await;
    let id_hash = start_login(&store, resource, 3).await;
    let (first, second) = tokio::join!(
        store.claim_portal_login_code(id_hash.clone(), 1001),
        store.claim_portal_login_code(id_hash.clone(), 1001),
    );
    assert!(
        first.expect("written") ^ second.expect("written"),
        "exactly one claim wins"
    );
    let login = store
        .portal_login(id_hash, 1001)
        .await
        .expect("read")
        .expect("the login goes on");
    assert_eq!(login.stage, LoginStage::Otp);
}

#[tokio::test]
async fn an_expired_login_code_is_not_claimed() {
    let (_dir, store) = temp_store();
    let resource = add_resource(&store, "vpn").await;
    let id_hash = start_login(&store, resource, 3).await;
    let claimed = store
        .claim_portal_login_code(id_hash, 2000)
        .await
        .expect("written");
    assert!(!claimed);
}

#[tokio::test]
async fn a_miss_after_the_code_was_accepted_does_not_end_the_login() {
    let (_dir, store) = temp_store();
    let resource = add_resource(&store, "vpn").await;
    let id_hash = start_login(&store, resource, 1).await;
    assert!(
        store
            .take_portal_login_try(id_hash.clone(), 1001)
            .await
            .expect("written")
    );
    assert!(
        store
            .claim_portal_login_code(id_hash.clone(), 1001)
            .await
            .expect("written")
    );
    // A wrong code sent from the same page a moment before lands after the right one.
    store
        .portal_login_missed(id_hash.clone(), entry(1002))
        .await
        .expect("written");
    let login = store
        .portal_login(id_hash, 1002)
        .await
        .expect("read")
        .expect("the login goes on");
    assert_eq!(login.stage, LoginStage::Otp);
}

fn portal_session(id_hash: &[u8], resource_id: i64) -> NewSession {
    NewSession {
        id_hash: id_hash.to_vec(),
        kind: SessionKind::Portal,
        stage: SessionStage::Full,
        admin_id: None,
        user_id: None,
        resource_id: Some(resource_id),
        csrf_token: "csrf".to_owned(),
        pending_secret: None,
        client_ip: None,
        expires_at: 5000,
    }
}

#[tokio::test]
async fn a_login_opens_one_session() {
    let (_dir, store) = temp_store();
    let resource = add_resource(&store, "vpn").await;
    let id_hash = start_login(&store, resource, 3).await;
    let (first, second) = tokio::join!(
        store.finish_portal_login(
            id_hash.clone(),
            portal_session(b"first session", resource),
            1001,
            entry(1001)
        ),
        store.finish_portal_login(
            id_hash.clone(),
            portal_session(b"second session", resource),
            1001,
            entry(1001)
        ),
    );
    assert!(first.expect("written") ^ second.expect("written"));
    let mut sessions = 0;
    for id in [b"first session".to_vec(), b"second session".to_vec()] {
        if store
            .session(id, SessionKind::Portal, 1001)
            .await
            .expect("read")
            .is_some()
        {
            sessions += 1;
        }
    }
    assert_eq!(sessions, 1);
}

// ----- Reissue and pending changes (portal) -------------------------------------------------

async fn add_admin(store: &Store, login: &str, totp_secret: Option<Vec<u8>>) -> i64 {
    let admin = NewAdmin {
        login: login.to_owned(),
        password_hash: "hash".to_owned(),
        totp_secret,
        totp_last_step: None,
    };
    store
        .create_admin(admin, "test".to_owned(), 1)
        .await
        .expect("admin")
}

/// An administrator's session in the middle of enrolling an authenticator app.
async fn enrolling_admin_session(store: &Store) -> Vec<u8> {
    let admin = add_admin(store, "root", None).await;
    let id_hash = b"admin session".to_vec();
    let session = NewSession {
        id_hash: id_hash.clone(),
        kind: SessionKind::Admin,
        stage: SessionStage::EnrolTotp,
        admin_id: Some(admin),
        user_id: None,
        resource_id: None,
        csrf_token: "csrf".to_owned(),
        pending_secret: Some(b"admin seed".to_vec()),
        client_ip: None,
        expires_at: 2000,
    };
    store.create_session(session, 1000).await.expect("session");
    id_hash
}

async fn admin_pending_secret(store: &Store, id_hash: Vec<u8>) -> Option<Vec<u8>> {
    store
        .session(id_hash, SessionKind::Admin, 1001)
        .await
        .expect("read")
        .expect("the session")
        .pending_secret
}

#[tokio::test]
async fn a_seed_is_reissued_only_for_a_totp_or_hotp_token() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Mail, "M-1")).await;
    let reissued = store
        .reissue_seed(
            b"portal session".to_vec(),
            id,
            b"new seed".to_vec(),
            100,
            1000,
            entry(1000),
        )
        .await
        .expect("written");
    assert!(!reissued);
    let token = token(&store, id).await;
    assert_eq!((token.secret, token.last_step), (None, None));
}

#[tokio::test]
async fn a_destination_is_reissued_only_for_a_mail_or_sms_token() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Totp, "T-1")).await;
    let reissued = store
        .reissue_destination(
            b"portal session".to_vec(),
            id,
            "bob@example.com".to_owned(),
            1000,
            entry(1000),
        )
        .await
        .expect("written");
    assert!(!reissued);
    assert_eq!(token(&store, id).await.destination, None);
}

#[tokio::test]
async fn a_pending_change_is_kept_only_on_a_portal_session() {
    let (_dir, store) = temp_store();
    let id_hash = enrolling_admin_session(&store).await;
    store
        .set_portal_pending(
            id_hash.clone(),
            Some(b"portal change".to_vec()),
            None,
            1000,
            None,
        )
        .await
        .expect("written");
    assert_eq!(
        admin_pending_secret(&store, id_hash).await.as_deref(),
        Some(&b"admin seed"[..])
    );
}

#[tokio::test]
async fn ending_a_portal_change_leaves_an_admin_session_alone() {
    let (_dir, store) = temp_store();
    let id_hash = enrolling_admin_session(&store).await;
    let id = add_token(&store, new_token(TokenKind::Mail, "M-1")).await;
    store
        .reissue_destination(
            id_hash.clone(),
            id,
            "bob@example.com".to_owned(),
            1000,
            entry(1000),
        )
        .await
        .expect("written");
    assert_eq!(
        admin_pending_secret(&store, id_hash).await.as_deref(),
        Some(&b"admin seed"[..])
    );
}

// ----- The claim of a hardware token (portal) -----------------------------------------------

#[tokio::test]
async fn a_token_already_claimed_is_not_claimed_by_another_user() {
    let (_dir, store) = temp_store();
    let resource = add_resource(&store, "vpn").await;
    let ann = add_user(&store, "ann").await;
    let bob = add_user(&store, "bob").await;
    let id = add_token(&store, new_token(TokenKind::Hotp, "HW-1")).await;
    let claimed = store
        .claim_portal_token(id, ann, resource, 100, 1000, entry(1000))
        .await
        .expect("written");
    assert!(claimed);
    // Bob typed the serial and a fresh code from the same device a moment later.
    let claimed = store
        .claim_portal_token(id, bob, resource, 101, 1001, entry(1001))
        .await
        .expect("written");
    assert!(!claimed);
    let token = token(&store, id).await;
    assert_eq!((token.user_id, token.last_step), (Some(ann), Some(100)));
}

#[tokio::test]
async fn a_code_already_used_does_not_claim_a_token() {
    let (_dir, store) = temp_store();
    let resource = add_resource(&store, "vpn").await;
    let ann = add_user(&store, "ann").await;
    let used = NewToken {
        last_step: Some(100),
        ..new_token(TokenKind::Hotp, "HW-1")
    };
    let id = add_token(&store, used).await;
    let claimed = store
        .claim_portal_token(id, ann, resource, 100, 1000, entry(1000))
        .await
        .expect("written");
    assert!(!claimed);
    assert_eq!(token(&store, id).await.user_id, None);
    let claimed = store
        .claim_portal_token(id, ann, resource, 101, 1000, entry(1000))
        .await
        .expect("written");
    assert!(claimed, "the next code claims it");
}

// ----- The first code of a pending TOTP token, and resynchronisation (tokens) --------------

#[tokio::test]
async fn a_pending_token_is_confirmed_once() {
    let (_dir, store) = temp_store();
    let pending = NewToken {
        state: TokenState::Pending,
        ..new_token(TokenKind::Totp, "T-1")
    };
    let id = add_token(&store, pending).await;
    store
        .confirm_token(id, 100, entry(1000))
        .await
        .expect("written")
        .expect("confirmed");
    let again = store
        .confirm_token(id, 101, entry(1030))
        .await
        .expect("written");
    assert!(matches!(again, Err(Refused::Conflict(_))), "{again:?}");
    let token = token(&store, id).await;
    assert_eq!(
        (token.state, token.last_step),
        (TokenState::Active, Some(100))
    );
}

#[tokio::test]
async fn a_first_code_already_used_does_not_confirm_a_token() {
    let (_dir, store) = temp_store();
    let pending = NewToken {
        state: TokenState::Pending,
        last_step: Some(100),
        ..new_token(TokenKind::Totp, "T-1")
    };
    let id = add_token(&store, pending).await;
    let confirmed = store
        .confirm_token(id, 100, entry(1000))
        .await
        .expect("written");
    assert!(
        matches!(confirmed, Err(Refused::Conflict(_))),
        "{confirmed:?}"
    );
    let token = token(&store, id).await;
    assert_eq!(
        (token.state, token.last_step),
        (TokenState::Pending, Some(100))
    );
}

#[tokio::test]
async fn a_resync_behind_a_code_used_meanwhile_is_refused() {
    let (_dir, store) = temp_store();
    let id = add_token(&store, new_token(TokenKind::Hotp, "HW-1")).await;
    // The resynchronisation found counter 150; the token was used at 200 before it was stored.
    assert!(claim(&store, step(id, 200), None, 1000).await);
    for found in [150, 200] {
        let resync = store
            .resync_token(id, found, 7, entry(1001))
            .await
            .expect("written");
        assert!(matches!(resync, Err(Refused::Conflict(_))), "{resync:?}");
    }
    let token = token(&store, id).await;
    assert_eq!((token.last_step, token.drift), (Some(200), 0));
}

// ----- Administrators (admins) --------------------------------------------------------------

#[tokio::test]
async fn an_administrator_step_already_claimed_is_not_claimed_again() {
    let (_dir, store) = temp_store();
    let admin = add_admin(&store, "root", Some(b"seed".to_vec())).await;
    let (first, second) = tokio::join!(
        store.claim_admin_totp_step(admin, 100, 1000),
        store.claim_admin_totp_step(admin, 100, 1000),
    );
    let (first, second) = (first.expect("written"), second.expect("written"));
    assert!(first != second, "exactly one claim wins: {first} {second}");
    for older in [100, 99] {
        let claimed = store
            .claim_admin_totp_step(admin, older, 1001)
            .await
            .expect("written");
        assert!(!claimed, "step {older}");
    }
    let stored = store
        .admin_by_id(admin)
        .await
        .expect("read")
        .expect("admin");
    assert_eq!(stored.totp_last_step, Some(100));
}

#[tokio::test]
async fn an_authenticator_app_is_enrolled_once() {
    let (_dir, store) = temp_store();
    let admin = add_admin(&store, "root", None).await;
    let enrolled = store
        .enrol_admin_totp(admin, b"first seed".to_vec(), 100, 1000)
        .await
        .expect("written");
    assert!(enrolled);
    // A second tab kept the enrolment page open with another seed.
    let enrolled = store
        .enrol_admin_totp(admin, b"second seed".to_vec(), 101, 1030)
        .await
        .expect("written");
    assert!(!enrolled);
    let stored = store
        .admin_by_id(admin)
        .await
        .expect("read")
        .expect("admin");
    assert_eq!(stored.totp_secret.as_deref(), Some(&b"first seed"[..]));
    assert_eq!(stored.totp_last_step, Some(100));
}

#[tokio::test]
async fn the_last_enabled_administrator_is_not_disabled() {
    let (_dir, store) = temp_store();
    let one = add_admin(&store, "one", None).await;
    let two = add_admin(&store, "two", None).await;
    let disabled = store
        .set_admin_enabled(two, false, one, entry(1000))
        .await
        .expect("written");
    assert_eq!(disabled, AdminChange::Done);
    // Two's page was still open and disables one.
    let disabled = store
        .set_admin_enabled(one, false, two, entry(1001))
        .await
        .expect("written");
    assert_eq!(disabled, AdminChange::LastActive);
    let one = store.admin_by_id(one).await.expect("read").expect("admin");
    assert!(one.enabled);
}

// ----- API keys (api_keys) ------------------------------------------------------------------

#[tokio::test]
async fn a_revoked_resource_key_is_not_revoked_again() {
    let (_dir, store) = temp_store();
    let resource = add_resource(&store, "vpn").await;
    let key = store
        .create_resource_api_key(
            resource,
            "radius".to_owned(),
            "pfx1".to_owned(),
            b"key hash".to_vec(),
            entry(1),
            1,
        )
        .await
        .expect("written")
        .expect("created");
    let revoke = |now| store.revoke_resource_api_key(resource, key, entry(now), now);
    assert!(revoke(1000).await.expect("written"));
    assert!(!revoke(2000).await.expect("written"));
    let stored = store
        .api_key_by_prefix("pfx1".to_owned())
        .await
        .expect("read")
        .expect("key");
    assert_eq!(stored.revoked_at, Some(1000));
}

#[tokio::test]
async fn a_key_is_revoked_only_through_its_own_resource() {
    let (_dir, store) = temp_store();
    let vpn = add_resource(&store, "vpn").await;
    let mail = add_resource(&store, "mail").await;
    let key = store
        .create_resource_api_key(
            vpn,
            "radius".to_owned(),
            "pfx1".to_owned(),
            b"key hash".to_vec(),
            entry(1),
            1,
        )
        .await
        .expect("written")
        .expect("created");
    let revoked = store
        .revoke_resource_api_key(mail, key, entry(1000), 1000)
        .await
        .expect("written");
    assert!(!revoked);
    let stored = store
        .api_key_by_prefix("pfx1".to_owned())
        .await
        .expect("read")
        .expect("key");
    assert_eq!(stored.revoked_at, None);
}

#[test]
fn a_key_revoked_from_the_console_is_not_revoked_again() {
    let (_dir, store) = temp_store();
    store
        .create_api_key_blocking(
            "admin".to_owned(),
            "pfx1".to_owned(),
            b"key hash".to_vec(),
            None,
            1,
        )
        .expect("created");
    assert!(
        store
            .revoke_api_key_blocking("pfx1".to_owned(), 1000)
            .expect("written")
    );
    assert!(
        !store
            .revoke_api_key_blocking("pfx1".to_owned(), 2000)
            .expect("written")
    );
    let keys = store.api_keys_blocking().expect("read");
    assert_eq!(keys[0].revoked_at, Some(1000));
}

// ----- The outbox (outbox) ------------------------------------------------------------------

/// A queued message carrying a code; its id.
async fn queued_message(store: &Store) -> i64 {
    let id = add_token(store, new_token(TokenKind::Mail, "M-1")).await;
    send_code(store, id, 3, 2000, 1000).await;
    let (due, _) = store.due_messages("mail", 1000, 10).await.expect("read");
    due[0].id
}

async fn message_status(store: &Store, id: i64) -> (String, i64) {
    store
        .read(move |conn| {
            Ok(conn.query_row(
                "SELECT status, attempts FROM outbox WHERE id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?)
        })
        .await
        .expect("read")
}

async fn record(store: &Store, id: i64, outcome: outbox::Outcome, now: UnixTime) -> bool {
    store
        .record_delivery(id, outcome, now)
        .await
        .expect("written")
}

#[tokio::test]
async fn a_sent_message_does_not_expire_afterwards() {
    let (_dir, store) = temp_store();
    let id = queued_message(&store).await;
    assert!(record(&store, id, outbox::Outcome::Sent, 1001).await);
    // The worker found it expired in a list read before the send was recorded.
    let expired = store
        .expire_messages(vec![id], 2000)
        .await
        .expect("written");
    assert_eq!(expired, 0);
    assert_eq!(message_status(&store, id).await, ("sent".to_owned(), 1));
}

#[tokio::test]
async fn an_expired_message_is_not_marked_sent() {
    let (_dir, store) = temp_store();
    let id = queued_message(&store).await;
    let expired = store
        .expire_messages(vec![id], 2000)
        .await
        .expect("written");
    assert_eq!(expired, 1);
    assert!(!record(&store, id, outbox::Outcome::Sent, 2001).await);
    assert_eq!(message_status(&store, id).await, ("expired".to_owned(), 0));
}

#[tokio::test]
async fn a_message_that_left_the_queue_is_not_retried() {
    let (_dir, store) = temp_store();
    let id = queued_message(&store).await;
    assert!(record(&store, id, outbox::Outcome::Sent, 1001).await);
    let retry = outbox::Outcome::Retry {
        next_attempt_at: 1100,
        error: "timeout".to_owned(),
    };
    assert!(!record(&store, id, retry, 1002).await);
    assert_eq!(message_status(&store, id).await, ("sent".to_owned(), 1));
}

#[tokio::test]
async fn a_message_that_left_the_queue_does_not_fail() {
    let (_dir, store) = temp_store();
    let id = queued_message(&store).await;
    assert!(record(&store, id, outbox::Outcome::Sent, 1001).await);
    let failed = outbox::Outcome::Failed {
        error: "mailbox unknown".to_owned(),
    };
    assert!(!record(&store, id, failed, 1002).await);
    assert_eq!(message_status(&store, id).await, ("sent".to_owned(), 1));
}

// ----- Approvals (approvals) ----------------------------------------------------------------

const CHAT: super::approvals::Presser = super::approvals::Presser {
    chat_id: 11,
    telegram_user_id: 21,
};

/// Asks the owner of a bound BOT token for an approval valid until `expires_at`; its id and
/// transaction.
async fn ask_approval(
    store: &Store,
    number: Option<u8>,
    deny_locks: bool,
    expires_at: UnixTime,
) -> (i64, String, i64) {
    use super::approvals::{ApprovalSettingsChange, NewApproval};
    let token_id = add_token(store, new_token(TokenKind::Bot, &format!("B-{expires_at}"))).await;
    let (user_id, resource_id) = transaction_owner(store).await;
    let change = ApprovalSettingsChange {
        allowed: Some(true),
        number_matching: Some(number.is_some()),
        deny_locks: Some(deny_locks),
    };
    store
        .change_approval_settings(resource_id, change, 1, entry(1))
        .await
        .expect("written")
        .expect("the resource exists");
    let transaction = format!("approval-{token_id}");
    let new = NewApproval {
        transaction: auth::NewTransaction {
            id: transaction.clone(),
            resource_id,
            user_id,
            password_checked: true,
            expires_at,
        },
        token_id,
        chat_id: CHAT.chat_id,
        telegram_user_id: CHAT.telegram_user_id,
        number,
        choices: number.map(|n| vec![17, n, 85]).unwrap_or_default(),
        sealed_body: b"sealed body".to_vec(),
        entry: entry(1000),
    };
    let id = store
        .create_approval(new, 1000)
        .await
        .expect("approval written");
    (id, transaction, token_id)
}

async fn approval_state(store: &Store, id: i64) -> String {
    column(store, "SELECT state FROM approvals WHERE id = ?1", id)
        .await
        .expect("the approval exists")
}

#[tokio::test]
async fn an_approval_queues_its_message_once_with_its_transaction() {
    let (_dir, store) = temp_store();
    let (id, transaction, _) = ask_approval(&store, Some(42), false, 2000).await;
    let messages: Option<i64> = column(
        &store,
        "SELECT COUNT(*) FROM outbox WHERE approval_id = ?1 AND channel = 'bot' AND recipient = '11'",
        id,
    )
    .await;
    assert_eq!(messages, Some(1));
    let approval = store
        .approval_of_transaction(transaction)
        .await
        .expect("read")
        .expect("found");
    assert_eq!((approval.id, approval.number), (id, Some(42)));
    assert_eq!(approval.choices, [17, 42, 85]);
    assert!(store.set_approval_message(id, 500).await.expect("written"));
    assert!(!store.set_approval_message(id, 501).await.expect("written"));
    let message: Option<i64> =
        column(&store, "SELECT message_id FROM approvals WHERE id = ?1", id).await;
    assert_eq!(message, Some(500));
}

#[tokio::test]
async fn an_approval_is_decided_once() {
    use super::approvals::{Choice, Decision};
    let (_dir, store) = temp_store();
    let (id, _, _) = ask_approval(&store, Some(42), false, 2000).await;
    let first = store
        .decide_approval(id, CHAT, Choice::Number(42), 1001)
        .await
        .expect("written");
    assert!(matches!(first, Decision::Decided { locked: false, .. }));
    let second = store
        .decide_approval(id, CHAT, Choice::Deny, 1002)
        .await
        .expect("written");
    assert!(matches!(second, Decision::AlreadyDecided(_)));
    assert_eq!(approval_state(&store, id).await, "approved");
}

#[tokio::test]
async fn an_approval_refuses_another_telegram_user_and_another_chat() {
    use super::approvals::{Choice, Decision, Presser};
    let (_dir, store) = temp_store();
    let (id, _, _) = ask_approval(&store, None, false, 2000).await;
    for presser in [
        Presser {
            chat_id: 11,
            telegram_user_id: 99,
        },
        Presser {
            chat_id: 12,
            telegram_user_id: 21,
        },
    ] {
        let decision = store
            .decide_approval(id, presser, Choice::Approve, 1001)
            .await
            .expect("written");
        assert_eq!(decision, Decision::Refused);
    }
    assert_eq!(approval_state(&store, id).await, "pending");
    // The right user still can.
    let decision = store
        .decide_approval(id, CHAT, Choice::Approve, 1002)
        .await
        .expect("written");
    assert!(matches!(decision, Decision::Decided { .. }));
}

#[tokio::test]
async fn a_wrong_number_denies_the_approval_and_ends_its_login() {
    use super::approvals::{Choice, Decision, DenyReason};
    let (_dir, store) = temp_store();
    let (id, transaction, _) = ask_approval(&store, Some(42), false, 2000).await;
    let decision = store
        .decide_approval(id, CHAT, Choice::Number(17), 1001)
        .await
        .expect("written");
    let Decision::Decided { approval, .. } = decision else {
        panic!("decided: {decision:?}");
    };
    assert_eq!(approval.reason, Some(DenyReason::WrongNumber));
    assert_eq!(approval_state(&store, id).await, "denied");
    assert!(
        !store
            .consume_approval(transaction, 1002)
            .await
            .expect("written")
    );
}

#[tokio::test]
async fn a_button_the_approval_does_not_offer_changes_nothing() {
    use super::approvals::{Choice, Decision};
    let (_dir, store) = temp_store();
    let (matching, _, _) = ask_approval(&store, Some(42), false, 2000).await;
    let decision = store
        .decide_approval(matching, CHAT, Choice::Approve, 1001)
        .await
        .expect("written");
    assert_eq!(decision, Decision::Refused);
    assert_eq!(approval_state(&store, matching).await, "pending");
}

#[tokio::test]
async fn a_denial_locks_the_token_only_when_the_resource_says_so() {
    use super::approvals::{Choice, Decision};
    for deny_locks in [false, true] {
        let (_dir, store) = temp_store();
        let (id, _, token_id) = ask_approval(&store, None, deny_locks, 2000).await;
        let decision = store
            .decide_approval(id, CHAT, Choice::Deny, 1001)
            .await
            .expect("written");
        assert!(matches!(decision, Decision::Decided { locked, .. } if locked == deny_locks));
        assert_eq!(
            token(&store, token_id).await.locked_at.is_some(),
            deny_locks
        );
        let (result, reason) = last_audit(&store).await;
        assert_eq!(
            (result.as_str(), reason.as_deref()),
            ("denied", Some("denied"))
        );
    }
}

#[tokio::test]
async fn a_press_after_the_validity_decides_nothing_but_the_expiry() {
    use super::approvals::{Choice, Decision};
    let (_dir, store) = temp_store();
    let (id, transaction, _) = ask_approval(&store, None, false, 2000).await;
    let decision = store
        .decide_approval(id, CHAT, Choice::Approve, 2000)
        .await
        .expect("written");
    assert!(matches!(decision, Decision::Expired(_)));
    assert_eq!(approval_state(&store, id).await, "expired");
    let again = store
        .decide_approval(id, CHAT, Choice::Approve, 2001)
        .await
        .expect("written");
    assert!(
        matches!(again, Decision::AlreadyDecided(_)),
        "the expiry is told once: {again:?}"
    );
    assert!(
        !store
            .consume_approval(transaction, 2001)
            .await
            .expect("written")
    );
}

#[tokio::test]
async fn expiry_marks_only_pending_approvals_past_their_validity() {
    use super::approvals::Choice;
    let (_dir, store) = temp_store();
    let (early, _, _) = ask_approval(&store, None, false, 1500).await;
    store
        .decide_approval(early, CHAT, Choice::Approve, 1001)
        .await
        .expect("written");
    let (late, _, _) = ask_approval(&store, None, false, 3000).await;
    let (due, _, _) = ask_approval(&store, None, false, 1600).await;
    let expired = store.expire_approvals(2000, 100).await.expect("written");
    assert_eq!(expired.iter().map(|a| a.id).collect::<Vec<_>>(), [due]);
    assert_eq!(approval_state(&store, early).await, "approved");
    assert_eq!(approval_state(&store, late).await, "pending");
    assert!(
        store
            .expire_approvals(2001, 100)
            .await
            .expect("written")
            .is_empty()
    );
}

#[tokio::test]
async fn an_approved_login_is_let_in_once() {
    use super::approvals::Choice;
    let (_dir, store) = temp_store();
    let (id, transaction, _) = ask_approval(&store, None, false, 2000).await;
    assert!(
        !store
            .consume_approval(transaction.clone(), 1001)
            .await
            .expect("written"),
        "a pending approval lets no one in"
    );
    store
        .decide_approval(id, CHAT, Choice::Approve, 1002)
        .await
        .expect("written");
    assert!(
        store
            .consume_approval(transaction.clone(), 1003)
            .await
            .expect("written")
    );
    assert!(
        !store
            .consume_approval(transaction.clone(), 1004)
            .await
            .expect("written")
    );
    let live: Option<i64> = store
        .read(move |conn| {
            optional(conn.query_row(
                "SELECT 1 FROM auth_transactions WHERE id = ?1",
                [transaction],
                |row| row.get(0),
            ))
        })
        .await
        .expect("read");
    assert_eq!(live, None);
}

#[tokio::test]
async fn an_approval_is_not_let_in_after_its_transaction_expired() {
    use super::approvals::Choice;
    let (_dir, store) = temp_store();
    let (id, transaction, _) = ask_approval(&store, None, false, 2000).await;
    store
        .decide_approval(id, CHAT, Choice::Approve, 1001)
        .await
        .expect("written");
    assert!(
        !store
            .consume_approval(transaction, 2000)
            .await
            .expect("written")
    );
    let used: Option<Option<i64>> =
        column(&store, "SELECT used_at FROM approvals WHERE id = ?1", id).await;
    assert_eq!(
        used,
        Some(None),
        "the use was rolled back with the transaction"
    );
}
