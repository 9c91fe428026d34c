//! The authentication decision: given a resource, a user or token, and what the user typed,
//! is the answer *accepted*, *rejected* or *challenge sent*?
//!
//! The rules (DESIGN.md, "Failed attempts", flows 5 and 6):
//! - the user exists, is enabled and is assigned to the resource; a named token must be the
//!   user's and assigned to the resource;
//! - the password is checked when given, and required when the resource says so;
//! - only the user's tokens assigned to the resource count; disabled and pending tokens are
//!   skipped; a locked token denies; a token's PIN, when set, is typed before or after its code;
//! - a token awaiting re-activation (its bot chat is gone) is not skipped: while it is the
//!   user's second factor, a password alone is refused;
//! - a match is claimed with a compare-and-set in the store, so a code is never accepted twice;
//! - a miss counts against every token that could have answered, locking it at the resource's
//!   limit; a success resets the counter;
//! - unknown users, wrong passwords and wrong codes get the same answer in about the same
//!   time; the precise reason goes to the audit log only.
//!
//! Time comes in as an argument; the store and the keys are passed in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::attempts::{Guard, Standing};
use crate::limiter::TokenBuckets;

use crate::codes;
use crate::config::AuthConfig;
use crate::crypto::{self, Keys, Purpose};
use crate::domain::{
    Refused, RuleError, TokenKind, TokenState, WithoutSecondFactor, mask_destination,
};
use crate::metrics::Metrics;
use crate::otp;
use crate::passwords::PasswordGate;
use crate::store::approvals::{ApprovalState, DenyReason, NewApproval};
use crate::store::auth::{
    ActiveChallenge, Asked, AuthContext, AuthTarget, Claim, Count, NewChallenge, NewTransaction,
    Outcome, Penalty, Tally,
};
use crate::store::logins::{Account, Counted, LockNotice, address_key};
use crate::store::{AuditEntry, Resource, Store, Token, UnixTime};

/// Who asks.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The API key that asks; None for the self-service portal's login.
    pub key_id: Option<i64>,
    /// The audit log's actor: `apikey:ID`, or `user:LOGIN` at the portal.
    pub actor: String,
    /// The resource a resource key is limited to; None for an admin key.
    pub resource_scope: Option<i64>,
    pub client_ip: Option<String>,
    /// What the audit line adds about the caller (a RADIUS gateway's NAS-Identifier).
    pub detail: Option<String>,
}

impl Caller {
    fn actor(&self) -> String {
        self.actor.clone()
    }
}

/// What the user typed, and for which objects.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub target: AuthTarget,
    pub password: Option<String>,
    pub otp: Option<String>,
    pub end_user_ip: Option<String>,
    /// The caller checked the user's first factor itself (the portal's login: a password or an
    /// emailed code), so a resource that requires a password does not ask for it again.
    pub first_factor_checked: bool,
}

/// A token as named in answers.
#[derive(Debug, Clone)]
pub struct TokenRef {
    pub id: i64,
    pub serial: String,
    pub kind: TokenKind,
}

/// A token for which a code is expected (and, for MAIL/SMS/BOT, was sent).
#[derive(Debug, Clone)]
pub struct Expected {
    pub token: TokenRef,
    /// Where the code went, masked; None for TOTP/HOTP.
    pub destination: Option<String>,
    /// What became of the code otpgate sends; None for TOTP/HOTP, whose code the device shows.
    pub delivery: Option<Delivery>,
}

impl Expected {
    /// Whether a message with a new code was queued for this token.
    pub fn sent(&self) -> bool {
        self.delivery == Some(Delivery::Queued)
    }
}

/// What became of a code for a MAIL, SMS or BOT token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued to a configured channel; it leaves at once.
    Queued,
    /// A code was sent moments ago and is still valid: it counts for this transaction too,
    /// and nothing new was sent.
    Cooldown,
    /// The user was sent as many messages on this channel in the last hour as allowed.
    Capped,
    /// The channel is not set up on this server.
    NotConfigured,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Queued => "queued",
            Delivery::Cooldown => "cooldown",
            Delivery::Capped => "capped",
            Delivery::NotConfigured => "not_configured",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Answer {
    Accepted {
        token: Option<TokenRef>,
    },
    Rejected,
    /// Rejected: the code typed is one that was sent, but it expired before it was typed.
    Expired,
    Challenge {
        transaction: String,
        expected: Vec<Expected>,
    },
    /// The transaction's approval is not decided yet (and the wait, if any, ran out).
    Pending {
        expires_at: UnixTime,
    },
}

/// An approval asked for (Approve in Telegram): the login's transaction, which
/// `authenticate` answers once the user decided (or a code typed for it), the number the login
/// shows with number matching, and when the approval expires.
#[derive(Debug, Clone)]
pub struct ApprovalAsked {
    pub transaction: String,
    pub number: Option<u8>,
    pub expires_at: UnixTime,
    /// The BOT token the approval was sent to.
    pub token: TokenRef,
}

/// What a password given for an approval came to (`ask_approval_after_password`).
#[derive(Debug, Clone)]
pub enum PasswordThenApproval {
    /// The resource does not allow approvals, or the user (unknown, or known) has no usable
    /// BOT token there: nothing was checked or written, and the login goes on without one.
    NotAllowed,
    /// The login's answer already: the password was wrong (counted), the account locked or
    /// unknown, or no approval could be sent — all written to the audit log.
    Answered(Answer),
    /// The password was right and the approval's message queued.
    Asked(ApprovalAsked),
}

/// Draws the number a login shows and the three the bot offers, in their order: three
/// different two-digit numbers from the system's random source, the right one at a random
/// place among them.
fn draw_numbers() -> Result<(u8, Vec<u8>), crypto::CryptoError> {
    let mut drawn: Vec<u8> = Vec::with_capacity(3);
    let mut place = None;
    while drawn.len() < 3 || place.is_none() {
        for byte in crypto::random_bytes::<16>()? {
            // 90 numbers (10 to 99): bytes from 180 up are dropped, so that each is as likely;
            // likewise for the place, one of three.
            if drawn.len() < 3 {
                let number = 10 + byte % 90;
                if byte < 180 && !drawn.contains(&number) {
                    drawn.push(number);
                }
            } else if place.is_none() && byte < 255 {
                place = Some(usize::from(byte % 3));
            }
        }
    }
    let place = place.unwrap_or(0);
    Ok((drawn[place], drawn))
}

/// The front end's wait for an approval's decision (the API's `wait`, RADIUS' hold of an
/// Access-Request): until this instant at the latest.
pub type WaitUntil = Option<tokio::time::Instant>;

/// The outcome of matching a typed code against the candidate tokens.
#[derive(Debug)]
enum Evaluation {
    Matched { claim: Claim, token: TokenRef },
    Locked { token_id: i64 },
    Missed(Penalty),
    NoUsableToken,
}

fn token_ref(token: &Token) -> TokenRef {
    TokenRef {
        id: token.id,
        serial: token.serial.clone(),
        kind: token.kind,
    }
}

/// An enabled token that cannot answer now because its bot chat is gone (the user blocked the
/// bot): it is still the user's second factor, so the password alone must not stand in for it.
pub fn awaits_reactivation(token: &Token) -> bool {
    token.enabled && token.state == TokenState::Reactivate
}

fn window_of(token: &Token, config: &AuthConfig) -> otp::Window {
    let override_or = |value: Option<i64>, default: u64| {
        value.and_then(|v| u64::try_from(v).ok()).unwrap_or(default)
    };
    match token.kind {
        TokenKind::Hotp => otp::Window {
            behind: 0,
            ahead: override_or(token.window_ahead, config.hotp_lookahead),
        },
        _ => otp::Window {
            behind: override_or(token.window_behind, config.totp_window),
            ahead: override_or(token.window_ahead, config.totp_window),
        },
    }
}

/// The code part of what was typed for this token, when its PIN (if any) is right.
fn code_for<'a>(token: &Token, typed: &'a str, keys: &Keys) -> Option<&'a str> {
    match &token.pin_hash {
        None => Some(typed),
        Some(pin_hash) => {
            let (pin, code) = otp::split_pin(typed, token.digits, token.pin_position)?;
            keys.pin_matches(pin, pin_hash).then_some(code)
        }
    }
}

struct Candidates<'a> {
    context: &'a AuthContext,
    transaction: Option<&'a str>,
    fail_limit: i64,
    auto_unlock: Option<i64>,
}

/// Matches a typed code against every candidate token. Pure but for unsealing seeds.
fn evaluate(
    candidates: &Candidates<'_>,
    typed: &str,
    keys: &Keys,
    config: &AuthConfig,
    now: UnixTime,
) -> Evaluation {
    let mut penalty = Penalty {
        fail_limit: candidates.fail_limit,
        ..Penalty::default()
    };
    let mut any_usable = false;
    for token in candidates.context.tokens.iter().filter(|t| t.is_usable()) {
        any_usable = true;
        let locked = token.is_locked(candidates.auto_unlock, now);
        let code = code_for(token, typed, keys);
        let matched = match token.kind {
            TokenKind::Totp | TokenKind::Hotp => {
                let (params, secret) = match codes::params(token)
                    .and_then(|params| Ok((params, codes::seed(keys, token)?)))
                {
                    Ok(usable) => usable,
                    Err(error) => {
                        tracing::error!(error = %error, "a token cannot be checked");
                        continue;
                    }
                };
                code.and_then(|code| {
                    let window = window_of(token, config);
                    codes::find(
                        &secret,
                        &params,
                        code,
                        window,
                        token.last_step,
                        token.drift,
                        now,
                    )
                })
                .map(|found| Claim::Step {
                    token_id: token.id,
                    step: found.step,
                    drift: found.drift,
                })
            }
            _ => {
                let challenge: Option<&ActiveChallenge> =
                    candidates.context.challenges.iter().find(|c| {
                        c.token_id == token.id
                            && candidates.transaction.is_none_or(|t| t == c.transaction_id)
                    });
                if let Some(challenge) = challenge
                    && !locked
                {
                    penalty.challenge_ids.push(challenge.id);
                }
                challenge.and_then(|challenge| {
                    let code = code?;
                    (code.len() == token.digits as usize
                        && crypto::constant_time_eq(&keys.code_hash(code), &challenge.code_hash))
                    .then(|| Claim::Challenge {
                        token_id: token.id,
                        challenge_id: challenge.id,
                        transaction_id: challenge.transaction_id.clone(),
                    })
                })
            }
        };
        match (matched, locked) {
            (Some(_), true) => return Evaluation::Locked { token_id: token.id },
            (Some(claim), false) => {
                return Evaluation::Matched {
                    claim,
                    token: token_ref(token),
                };
            }
            (None, false) => penalty.token_ids.push(token.id),
            (None, true) => {}
        }
    }
    if !any_usable {
        return Evaluation::NoUsableToken;
    }
    Evaluation::Missed(penalty)
}

/// Where an attempt stands once judged, before its outcome is written.
#[derive(Debug)]
enum Verdict {
    /// Refused, for this reason (the audit log's).
    Rejected(&'static str),
    /// Accepted if the claim is won; a lost claim is a replay.
    Claimed(TokenRef),
    /// Refused unchecked, too soon after failures or over the rate limit: the caller is told
    /// to wait this long. Nothing is written.
    Wait {
        reason: &'static str,
        retry_after_seconds: u64,
    },
}

impl Verdict {
    /// What the verdict does to the account's failed logins in a row: every rejection counts
    /// but that of a locked account (nothing was checked), a claim counts as it turns out.
    fn count(&self) -> Count {
        match self {
            Verdict::Rejected("account_locked") | Verdict::Wait { .. } => Count::Nothing,
            // The directory's own say (an account locked, expired or disabled there) or its
            // trouble is no wrong password: only the directory counts those.
            Verdict::Rejected(reason) if !directory_counts(reason) => Count::Nothing,
            Verdict::Rejected(_) => Count::Failure,
            Verdict::Claimed(_) => Count::ByClaim,
        }
    }
}

/// Whether a rejection of a directory user's password counts as a failed login here: a wrong
/// password (or none) does, the directory's other answers and its failures do not.
fn directory_counts(reason: &str) -> bool {
    !(reason.starts_with("directory_"))
}

fn rejected(audit: &Audit, reason: &'static str) -> (Verdict, Outcome) {
    let entry = audit.finish("rejected", Some(reason));
    (Verdict::Rejected(reason), Outcome::Record(entry))
}

/// What a typed code leads to, and what must be written for it.
fn settle(
    candidates: &Candidates<'_>,
    typed: &str,
    audit: &mut Audit,
    keys: &Keys,
    config: &AuthConfig,
    now: UnixTime,
) -> (Verdict, Outcome) {
    match evaluate(candidates, typed, keys, config, now) {
        Evaluation::Matched { claim, token } => {
            audit.entry.token_id = Some(token.id);
            let entry = audit.finish("accepted", None);
            let auto_unlock = candidates.auto_unlock;
            let transaction = candidates.context.transaction.as_ref();
            let outcome = Outcome::Claim {
                claim,
                transaction: transaction.map(|t| t.id.clone()),
                auto_unlock,
                entry,
            };
            (Verdict::Claimed(token), outcome)
        }
        Evaluation::Locked { token_id } => {
            audit.entry.token_id = Some(token_id);
            rejected(audit, "token_locked")
        }
        Evaluation::NoUsableToken => rejected(audit, "no_token"),
        Evaluation::Missed(penalty) => {
            if let [only] = penalty.token_ids.as_slice() {
                audit.entry.token_id = Some(*only);
            }
            let reason = if typed_too_late(candidates, typed, keys) {
                "expired_otp"
            } else {
                "bad_otp"
            };
            let entry = audit.finish("rejected", Some(reason));
            (
                Verdict::Rejected(reason),
                Outcome::Penalise { penalty, entry },
            )
        }
    }
}

/// Whether a missed code is one that was sent but expired before it was typed: rejected like a
/// wrong one, but told apart in the audit log and to the portal's user.
fn typed_too_late(candidates: &Candidates<'_>, typed: &str, keys: &Keys) -> bool {
    candidates
        .context
        .tokens
        .iter()
        .filter(|token| token.is_usable() && token.kind.is_delivered())
        .any(|token| {
            let Some(code) = code_for(token, typed, keys) else {
                return false;
            };
            candidates
                .context
                .expired_challenges
                .iter()
                .any(|challenge| {
                    challenge.token_id == token.id
                        && candidates
                            .transaction
                            .is_none_or(|t| t == challenge.transaction_id)
                        && code.len() == token.digits as usize
                        && crypto::constant_time_eq(&keys.code_hash(code), &challenge.code_hash)
                })
        })
}

/// The resource of the context, if the caller may use it.
fn admit(scope: Option<i64>, context: &AuthContext) -> Result<&Resource, RuleError> {
    let resource = context
        .resource
        .as_ref()
        .ok_or(Refused::NotFound("resource"))?;
    if scope.is_some_and(|scope| scope != resource.id) {
        return Err(Refused::Forbidden("this API key belongs to another resource".into()).into());
    }
    Ok(resource)
}

/// The login an attempt names its user by, which the directories may know when no user has
/// it.
fn named_login(target: &AuthTarget) -> Option<String> {
    match &target.user {
        Some(crate::domain::IdOrName::Name(login)) => Some(login.clone()),
        _ => None,
    }
}

/// Why the user may not authenticate in this resource at all, if so.
fn refusal(context: &AuthContext) -> Option<&'static str> {
    match &context.user {
        None => Some("unknown_user"),
        Some(user) if !user.enabled => Some("user_disabled"),
        Some(_) if !context.user_assigned => Some("not_assigned"),
        Some(_) if context.token_mismatch => Some("token_not_in_resource"),
        Some(_) => None,
    }
}

/// Who may try now, and what an answer does to the account's failed logins in a row: the
/// rate limit per account (when the front end has one) and the rule of `attempts`. Cheap to
/// clone into the store's writer.
#[derive(Clone)]
struct Doorman {
    guard: Arc<Guard>,
    per_account: Option<Arc<TokenBuckets>>,
    /// The account as the attempt names it (`user:alice`, `token:HW1`), for names that match
    /// no account.
    spelled: String,
    /// The client's address, when failures count per address too.
    address: Option<String>,
    instant: Instant,
    now: UnixTime,
}

impl Doorman {
    fn new(
        authenticator: &Authenticator<'_>,
        target: &AuthTarget,
        instant: Instant,
        now: UnixTime,
    ) -> Doorman {
        let spelled = match (&target.user, &target.token) {
            (Some(user), _) => format!("user:{user}"),
            (None, Some(token)) => format!("token:{token}"),
            (None, None) => String::new(),
        };
        Doorman {
            guard: authenticator.guard.clone(),
            per_account: authenticator.per_account.cloned(),
            spelled,
            address: target.address.as_deref().map(address_key),
            instant,
            now,
        }
    }

    /// The rate limit per account: keyed by the account's id however it was named, by the
    /// name as given when it names none.
    fn limit(&self, context: &AuthContext) -> Result<(), Verdict> {
        let Some(buckets) = &self.per_account else {
            return Ok(());
        };
        let taken = match &context.failures {
            Some((counted, _)) => {
                let account = counted.account;
                buckets.take(
                    &format!("{}#{}", account.kind(), account.id()),
                    self.instant,
                )
            }
            None => buckets.take(&self.spelled.to_lowercase(), self.instant),
        };
        taken.map_err(|retry| Verdict::Wait {
            reason: "rate_limited",
            retry_after_seconds: retry.0.as_secs().max(1),
        })
    }

    /// Whether a name without an account may be tried now (no wait, no lock), so that a name
    /// refused unchecked is not looked up in the directories either.
    fn lets_stranger_in(&self) -> bool {
        self.guard
            .stranger_standing(&self.spelled, self.address.as_deref(), self.now)
            == Standing::Open
    }

    /// Whether the attempt may be checked at all: refused unchecked over the rate limit, too
    /// soon after failures, or when the account is locked.
    fn admit(&self, context: &AuthContext) -> Result<(), Verdict> {
        self.limit(context)?;
        let address = self.address.as_deref();
        let standing = match &context.failures {
            Some((_, record)) => self.guard.policy.standing(record, self.now),
            None => self
                .guard
                .stranger_standing(&self.spelled, address, self.now),
        };
        match standing {
            Standing::Open => Ok(()),
            Standing::Wait {
                retry_after_seconds,
            } => Err(Verdict::Wait {
                reason: "too_soon_after_failures",
                retry_after_seconds,
            }),
            Standing::Locked => Err(Verdict::Rejected("account_locked")),
        }
    }

    /// What writing an answer does to the account's failures; a failure of a name without an
    /// account is counted here, in memory.
    fn tally(&self, context: &AuthContext, count: Count, audit: &Audit) -> Option<Tally> {
        let Some((counted, record)) = &context.failures else {
            if count != Count::Failure {
                return None;
            }
            self.guard
                .stranger_failed(&self.spelled, self.address.as_deref(), self.now);
            // The failure is also written, as a known account's is, to the row of an account
            // no one has (id 0), which never locks: so that the time of the answer does not
            // tell which names exist.
            return Some(Tally {
                counted: Counted {
                    account: Account::User(0),
                    address: None,
                },
                count,
                success_writes: false,
                notice: LockNotice {
                    lock_after: u32::MAX,
                    entry: audit.finish("locked", Some("failed_logins")),
                },
            });
        };
        let mut lock = audit.finish("locked", Some("failed_logins"));
        lock.action = format!("{}.lock", counted.account.kind());
        if let Account::Token(id) = counted.account {
            lock.token_id = Some(id);
        }
        Some(Tally {
            counted: counted.clone(),
            count,
            success_writes: record.has_failures() || counted.address.is_some(),
            notice: self.guard.lock_notice(lock),
        })
    }
}

/// A code without a password as the store's writer left it: judged, or handed back to look
/// its login up first.
enum Judged {
    Done(Verdict, Option<Account>),
    LookUp(Box<CodeOnly>),
}

/// What a code typed without a password is worth: every check of the authentication, on
/// the context as the store's writer read it. Pure but for unsealing seeds (and counting the
/// failures of names that match no account, in memory).
struct CodeOnly {
    scope: Option<i64>,
    typed: String,
    transaction: Option<String>,
    first_factor_checked: bool,
    audit: Audit,
    doorman: Doorman,
    keys: Arc<Keys>,
    config: AuthConfig,
    now: UnixTime,
}

impl CodeOnly {
    fn judge(
        mut self,
        context: &AuthContext,
    ) -> Result<(Verdict, Outcome, Option<Tally>), RuleError> {
        let resource = admit(self.scope, context)?;
        let audit = &mut self.audit;
        audit.entry.resource_id = Some(resource.id);
        audit.entry.user_id = context.user.as_ref().map(|user| user.id);
        let (verdict, outcome) = match self.doorman.admit(context) {
            Err(Verdict::Rejected(reason)) => rejected(audit, reason),
            Err(verdict) => (verdict, Outcome::Nothing),
            Ok(()) => Self::decide(
                resource,
                context,
                audit,
                &self.typed,
                self.transaction.as_deref(),
                self.first_factor_checked,
                (&self.keys, &self.config),
                self.now,
            ),
        };
        let tally = self.doorman.tally(context, verdict.count(), audit);
        Ok((verdict, outcome, tally))
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "the parts of one CodeOnly, borrowed apart"
    )]
    fn decide(
        resource: &Resource,
        context: &AuthContext,
        audit: &mut Audit,
        typed: &str,
        transaction: Option<&str>,
        first_factor_checked: bool,
        (keys, config): (&Keys, &AuthConfig),
        now: UnixTime,
    ) -> (Verdict, Outcome) {
        if let Some(reason) = refusal(context) {
            if context.user.is_none() {
                return refuse_unknown(keys, config, typed, audit, resource.fail_limit, now);
            }
            return rejected(audit, reason);
        }
        // A transaction made when the password was checked stands in for it: once (answering
        // it ends it), in this resource, for this user, until it expires — the store only
        // hands over a transaction that is all of these.
        let password_stands = context
            .transaction
            .as_ref()
            .is_some_and(|transaction| transaction.password_checked);
        if resource.password_required && !first_factor_checked && !password_stands {
            return rejected(audit, "password_required");
        }
        let candidates = Candidates {
            context,
            transaction,
            fail_limit: resource.fail_limit,
            auto_unlock: resource.auto_unlock_seconds,
        };
        settle(&candidates, typed.trim(), audit, keys, config, now)
    }
}

/// The least time a rejection takes, from the start of its attempt to its answer.
///
/// A code refused for a login no user has costs what a known user's wrong code costs, within
/// microseconds ([`refuse_unknown`] does the same work), but not to the microsecond: the known
/// user's path decodes more rows and names more in its audit line. Holding every rejection
/// until this long after its attempt began makes the time of the answer the same for both,
/// whatever the work behind it: that work takes well under a millisecond (a few hundred
/// microseconds with its commit's fsync), and the timer, which counts whole milliseconds,
/// rounds both deadlines up alike. Password checks and approvals take longer anyway, and
/// accepted codes are not held.
pub const REJECTION_FLOOR: Duration = Duration::from_millis(1);

/// Refuses a login no user has, after the work a wrong code of a known user's TOTP token
/// costs — the seed unsealed, the window of codes computed and compared, a penalty written (to a
/// token id no row has, so nothing changes) —, so that the time of the answer does not tell
/// which logins exist.
fn refuse_unknown(
    keys: &Keys,
    config: &AuthConfig,
    typed: &str,
    audit: &Audit,
    fail_limit: i64,
    now: UnixTime,
) -> (Verdict, Outcome) {
    let decoy = keys
        .open(Purpose::TokenSecret, keys.decoy_seed())
        .unwrap_or_default();
    let params = otp::Params::new(otp::Algorithm::Sha1, 6, otp::Kind::Totp { period: 30 });
    if let Ok(params) = params {
        let window = otp::Window {
            behind: config.totp_window,
            ahead: config.totp_window,
        };
        let found = codes::find(&decoy, &params, typed.trim(), window, None, 0, now);
        std::hint::black_box(found);
    }
    let entry = audit.finish("rejected", Some("unknown_user"));
    let penalty = Penalty {
        token_ids: vec![0],
        fail_limit,
        challenge_ids: Vec::new(),
    };
    (
        Verdict::Rejected("unknown_user"),
        Outcome::Penalise { penalty, entry },
    )
}

/// The decision service: the store, the keys and the settings it works with. Its errors are a
/// refusal of the request itself (an unknown resource, a key of another resource, a missing
/// field, too many attempts), the password workers being busy, or a failure of the store or
/// the keys; a wrong code or password is no error but the answer `Rejected`.
pub struct Authenticator<'a> {
    pub store: &'a Store,
    pub keys: &'a Arc<Keys>,
    pub config: &'a AuthConfig,
    pub metrics: &'a Metrics,
    /// Where passwords are checked (an unknown user's against a dummy hash, at the same cost).
    pub passwords: &'a PasswordGate,
    /// Failed logins in a row: their waits and locks.
    pub guard: &'a Arc<Guard>,
    /// The front end's rate limit per account, if it has one (the API's).
    pub per_account: Option<&'a Arc<TokenBuckets>>,
    /// Told when messages were queued, so they leave at once.
    pub wakeup: &'a crate::delivery::Wakeup,
    /// The directories' connections, and the lookup of logins no user has.
    pub directories: &'a Arc<crate::directories::Service>,
    /// The logins waiting for approvals: woken when a typed code ends a transaction.
    pub waiters: &'a crate::waiters::Waiters,
}

#[derive(Clone)]
struct Audit {
    entry: AuditEntry,
}

impl Audit {
    fn new(caller: &Caller, action: &str, end_user_ip: Option<String>, now: UnixTime) -> Audit {
        Audit {
            entry: AuditEntry {
                api_key_id: caller.key_id,
                client_ip: caller.client_ip.clone(),
                end_user_ip,
                detail: caller.detail.clone(),
                ..AuditEntry::new(now, caller.actor(), action, "rejected")
            },
        }
    }

    fn finish(&self, result: &str, reason: Option<&str>) -> AuditEntry {
        let mut entry = self.entry.clone();
        entry.result = result.into();
        entry.reason = reason.map(str::to_string);
        entry
    }
}

impl Authenticator<'_> {
    fn count(&self, endpoint: &str, result: &str, reason: &str) {
        self.metrics.inc(
            "otpgate_auth_results_total",
            "Authentication and prepare results by endpoint, result and reason.",
            &[
                ("endpoint", endpoint),
                ("result", result),
                ("reason", reason),
            ],
        );
    }

    /// Writes the audit line of an answer that claims nothing, with what it does to the
    /// account's failures, and counts a lock it causes.
    async fn record(
        &self,
        entry: AuditEntry,
        tally: Option<Tally>,
        now: UnixTime,
    ) -> Result<(), RuleError> {
        let account = tally.as_ref().map(|tally| tally.counted.account);
        let applied = self.store.apply(Outcome::Record(entry), tally, now).await?;
        if applied.locked
            && let Some(account) = account
        {
            self.guard.locked(account);
        }
        Ok(())
    }

    /// A rejection, written with its audit line and counted as a failure of the account.
    async fn reject(
        &self,
        context: &AuthContext,
        doorman: &Doorman,
        audit: &Audit,
        reason: &'static str,
        now: UnixTime,
    ) -> Result<Answer, RuleError> {
        let verdict = Verdict::Rejected(reason);
        let tally = doorman.tally(context, verdict.count(), audit);
        self.record(audit.finish("rejected", Some(reason)), tally, now)
            .await?;
        self.count("authenticate", "rejected", reason);
        Ok(Answer::Rejected)
    }

    /// The context of a `prepare` or an approval asked for, past the rate limits (a wait is
    /// refused as too many attempts).
    async fn admitted(
        &self,
        caller: &Caller,
        target: AuthTarget,
        now: UnixTime,
    ) -> Result<AuthContext, RuleError> {
        let doorman = Doorman::new(self, &target, Instant::now(), now);
        let context = self.context(caller, target, now).await?;
        if let Err(Verdict::Wait {
            reason,
            retry_after_seconds,
        }) = doorman.limit(&context)
        {
            self.count("prepare", "refused", reason);
            return Err(Refused::TooMany {
                retry_after_seconds,
            }
            .into());
        }
        Ok(context)
    }

    /// Loads the context and checks the caller's scope and the resource.
    async fn context(
        &self,
        caller: &Caller,
        target: AuthTarget,
        now: UnixTime,
    ) -> Result<AuthContext, RuleError> {
        let context = self.store.auth_context(target, now).await?;
        admit(caller.resource_scope, &context)?;
        Ok(context)
    }

    /// A code without a password judged in one job of the store's writer: the verdict and
    /// the account it counted against; or, nothing written, the attempt handed back when the
    /// store found no user of `look_up`'s login but directories that may know them, and the
    /// login was not looked up in vain a moment ago.
    async fn judge_code(
        &self,
        target: AuthTarget,
        code_only: CodeOnly,
        look_up: Option<String>,
        now: UnixTime,
    ) -> Result<(Judged, crate::store::auth::Applied), RuleError> {
        let directories = look_up.map(|login| (self.directories.clone(), login));
        let (judged, applied) = self
            .store
            .judge(target, now, move |context| {
                if context.user.is_none()
                    && context.directory_may_know
                    && code_only.doorman.lets_stranger_in()
                    && let Some((directories, login)) = &directories
                    && !directories.recently_missed(login)
                {
                    return (
                        Ok(Judged::LookUp(Box::new(code_only))),
                        Outcome::Nothing,
                        None,
                    );
                }
                let account = context.failures.as_ref().map(|(c, _)| c.account);
                match code_only.judge(context) {
                    Ok((verdict, outcome, tally)) => {
                        (Ok(Judged::Done(verdict, account)), outcome, tally)
                    }
                    Err(error) => (Err(error), Outcome::Nothing, None),
                }
            })
            .await?;
        Ok((judged?, applied))
    }

    /// `user`'s password: checked by their directory's bind, or against otpgate's hash. The
    /// inner error is the reason of a wrong one.
    async fn check_password(
        &self,
        user: &crate::store::User,
        password: &str,
    ) -> Result<Result<(), &'static str>, RuleError> {
        crate::directories::check_password(
            self.store,
            self.keys,
            self.directories,
            self.passwords,
            user,
            password,
        )
        .await
    }

    pub async fn authenticate(
        &self,
        caller: &Caller,
        attempt: Attempt,
        now: UnixTime,
    ) -> Result<Answer, RuleError> {
        self.authenticate_or_wait(caller, attempt, None, now).await
    }

    /// Until when a login asked to wait `seconds` for an approval's decision may wait: at most
    /// `auth.approval_wait_max_seconds`; None for no wait.
    pub fn approval_deadline(&self, seconds: u64) -> WaitUntil {
        let seconds = seconds.min(self.config.approval_wait_max_seconds);
        (seconds > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(seconds))
    }

    /// An authentication; an attempt that gives the transaction of an approval and no code
    /// (with the password where the resource requires one) is answered by the approval:
    /// accepted once it is approved (once), rejected when it was denied or expired, otherwise
    /// pending — after waiting for the decision until `wait_until`, if given.
    ///
    /// No rejection is answered sooner than [`REJECTION_FLOOR`] after the attempt began.
    pub async fn authenticate_or_wait(
        &self,
        caller: &Caller,
        attempt: Attempt,
        wait_until: WaitUntil,
        now: UnixTime,
    ) -> Result<Answer, RuleError> {
        let began = tokio::time::Instant::now();
        if attempt.otp.is_none()
            && attempt.password.is_none()
            && attempt.target.transaction.is_none()
        {
            return Err(
                Refused::field("otp", "give the one-time password, the password, or both").into(),
            );
        }
        let transaction = attempt.target.transaction.clone();
        let answer = self
            .authenticate_once(caller, attempt, wait_until, now)
            .await;
        // A code typed for a transaction ends it, and its approval with it: whoever waits for
        // that approval is told at once.
        if let (Ok(Answer::Accepted { .. }), Some(transaction)) = (&answer, &transaction) {
            self.waiters.wake(transaction);
        }
        if let Ok(Answer::Rejected | Answer::Expired) = answer {
            tokio::time::sleep_until(began + REJECTION_FLOOR).await;
        }
        answer
    }

    async fn authenticate_once(
        &self,
        caller: &Caller,
        attempt: Attempt,
        wait_until: WaitUntil,
        now: UnixTime,
    ) -> Result<Answer, RuleError> {
        if attempt.target.user.is_none() && attempt.target.token.is_none() {
            return Err(Refused::field(
                "user",
                "name the user, or the token for a token-only authentication",
            )
            .into());
        }
        let mut audit = Audit::new(
            caller,
            "auth.authenticate",
            attempt.end_user_ip.clone(),
            now,
        );
        let doorman = Doorman::new(self, &attempt.target, Instant::now(), now);
        if let (None, Some(typed)) = (&attempt.password, &attempt.otp) {
            let code_only = CodeOnly {
                scope: caller.resource_scope,
                typed: typed.clone(),
                transaction: attempt.target.transaction.clone(),
                first_factor_checked: attempt.first_factor_checked,
                audit,
                doorman,
                keys: self.keys.clone(),
                config: self.config.clone(),
                now,
            };
            let look_up = named_login(&attempt.target);
            let (first, applied) = self
                .judge_code(attempt.target.clone(), code_only, look_up.clone(), now)
                .await?;
            let (judged, applied) = match (first, look_up) {
                (Judged::LookUp(code_only), Some(login)) => {
                    // Nothing was written: the login is looked up, and the code judged again
                    // with whoever the directories made of it.
                    self.directories
                        .look_up(self.store, self.keys, &login, now)
                        .await?;
                    self.judge_code(attempt.target, *code_only, None, now)
                        .await?
                }
                (first, _) => (first, applied),
            };
            let Judged::Done(verdict, account) = judged else {
                return Err(RuleError::Failed(anyhow::anyhow!(
                    "a code was handed back for a lookup twice"
                )));
            };
            if applied.locked
                && let Some(account) = account
            {
                self.guard.locked(account);
            }
            return self.conclude(verdict, applied.won);
        }
        let mut context = self.context(caller, attempt.target.clone(), now).await?;
        if context.user.is_none()
            && context.directory_may_know
            && doorman.lets_stranger_in()
            && let Some(login) = named_login(&attempt.target)
            && self
                .directories
                .look_up(self.store, self.keys, &login, now)
                .await?
                .is_some()
        {
            context = self.context(caller, attempt.target.clone(), now).await?;
        }
        let Some(resource) = context.resource.clone() else {
            return Err(Refused::NotFound("resource").into());
        };
        audit.entry.resource_id = Some(resource.id);
        audit.entry.user_id = context.user.as_ref().map(|user| user.id);
        match doorman.admit(&context) {
            Ok(()) => {}
            Err(Verdict::Rejected(reason)) => {
                return self.reject(&context, &doorman, &audit, reason, now).await;
            }
            Err(verdict) => return self.conclude(verdict, false),
        }
        if let Some(reason) = refusal(&context) {
            // As long as a wrong password takes, so that the answer's time tells nothing.
            if reason != "token_not_in_resource"
                && let Some(password) = attempt.password
            {
                self.passwords.verify(password, None).await?;
            }
            return self.reject(&context, &doorman, &audit, reason, now).await;
        }
        let Some(user) = context.user.clone() else {
            return self
                .reject(&context, &doorman, &audit, "unknown_user", now)
                .await;
        };
        match &attempt.password {
            Some(password) => {
                if let Err(reason) = self.check_password(&user, password).await? {
                    return self.reject(&context, &doorman, &audit, reason, now).await;
                }
            }
            None if resource.password_required && !attempt.first_factor_checked => {
                return self
                    .reject(&context, &doorman, &audit, "password_required", now)
                    .await;
            }
            None => {}
        }

        let Some(typed) = attempt.otp.as_deref().map(str::trim) else {
            if context.approval.is_some() {
                return self
                    .answer_approval(&context, &doorman, &audit, wait_until, now)
                    .await;
            }
            if attempt.password.is_none() {
                // A transaction without an approval, and nothing typed: nothing was guessed,
                // so nothing counts.
                return self.reject_uncounted(&audit, "no_approval", now).await;
            }
            return self
                .password_only(&context, &doorman, &resource, &audit, now)
                .await;
        };

        let candidates = Candidates {
            context: &context,
            transaction: attempt.target.transaction.as_deref(),
            fail_limit: resource.fail_limit,
            auto_unlock: resource.auto_unlock_seconds,
        };
        let (verdict, outcome) =
            settle(&candidates, typed, &mut audit, self.keys, self.config, now);
        let tally = doorman.tally(&context, verdict.count(), &audit);
        let account = tally.as_ref().map(|tally| tally.counted.account);
        let applied = self.store.apply(outcome, tally, now).await?;
        if applied.locked
            && let Some(account) = account
        {
            self.guard.locked(account);
        }
        self.conclude(verdict, applied.won)
    }

    /// A rejection that does not count against the account (nothing was guessed), with its
    /// audit line.
    async fn reject_uncounted(
        &self,
        audit: &Audit,
        reason: &'static str,
        now: UnixTime,
    ) -> Result<Answer, RuleError> {
        self.record(audit.finish("rejected", Some(reason)), None, now)
            .await?;
        self.count("authenticate", "rejected", reason);
        Ok(Answer::Rejected)
    }

    /// The answer of an approval (the context's): waits for its decision until `wait_until`
    /// (and at most until it expires) while it is pending, then lets the login in once if it
    /// was approved. A denial, a wrong number or an expiry rejects without counting as a
    /// failed login: nothing was guessed — the user said no in Telegram, and whether that
    /// locks the token is the resource's `deny_locks`.
    async fn answer_approval(
        &self,
        context: &AuthContext,
        doorman: &Doorman,
        audit: &Audit,
        wait_until: WaitUntil,
        now: UnixTime,
    ) -> Result<Answer, RuleError> {
        let Some(mut approval) = context.approval.clone() else {
            return self.reject_uncounted(audit, "no_approval", now).await;
        };
        let Some(token) = context.tokens.iter().find(|t| t.id == approval.token_id) else {
            return self.reject_uncounted(audit, "no_approval", now).await;
        };
        let mut audit = audit.clone();
        audit.entry.token_id = Some(token.id);
        audit.entry.detail = Some(match &audit.entry.detail {
            Some(caller) => format!("{caller}; approval={}", approval.id),
            None => format!("approval={}", approval.id),
        });
        // Time passes while the login waits: measured on the monotonic clock from `now`.
        let started = tokio::time::Instant::now();
        let now_at = |instant: tokio::time::Instant| {
            now + instant.saturating_duration_since(started).as_secs() as i64
        };
        let mut at = now;
        if let Some(deadline) = wait_until
            && approval.state_at(now) == ApprovalState::Pending
        {
            // Registered before the approval is read again, so that no decision is missed.
            let mut waiter = self
                .waiters
                .register(&approval.transaction_id)
                .map_err(|_| {
                    RuleError::from(crate::domain::Busy {
                        retry_after_seconds: 1,
                    })
                })?;
            loop {
                if let Some(fresh) = self.store.approval(approval.id).await? {
                    approval = fresh;
                }
                at = now_at(tokio::time::Instant::now());
                // Until the wait or the approval runs out; a typed code ending the transaction
                // moves the approval's end to then.
                let expiry =
                    started + Duration::from_secs((approval.expires_at - now).max(0) as u64);
                let until = deadline.min(expiry);
                if approval.state_at(at) != ApprovalState::Pending
                    || tokio::time::Instant::now() >= until
                {
                    break;
                }
                waiter.wait(until).await;
            }
        }
        let reason = match approval.state_at(at) {
            ApprovalState::Pending => {
                self.count("authenticate", "pending", "approval");
                return Ok(Answer::Pending {
                    expires_at: approval.expires_at,
                });
            }
            ApprovalState::Approved => None,
            ApprovalState::Denied if approval.reason == Some(DenyReason::WrongNumber) => {
                Some("approval_wrong_number")
            }
            ApprovalState::Denied => Some("approval_denied"),
            ApprovalState::Expired => Some("approval_expired"),
        };
        if let Some(reason) = reason {
            return self.reject_uncounted(&audit, reason, at).await;
        }
        if !token.is_usable()
            || token.is_locked(
                context
                    .resource
                    .as_ref()
                    .and_then(|r| r.auto_unlock_seconds),
                at,
            )
        {
            return self.reject_uncounted(&audit, "token_locked", at).await;
        }
        let verdict = Verdict::Claimed(token_ref(token));
        let tally = doorman.tally(context, verdict.count(), &audit);
        let account = tally.as_ref().map(|tally| tally.counted.account);
        let outcome = Outcome::Approval {
            transaction_id: approval.transaction_id.clone(),
            entry: audit.finish("accepted", Some("approval")),
        };
        let applied = self.store.apply(outcome, tally, at).await?;
        if applied.locked
            && let Some(account) = account
        {
            self.guard.locked(account);
        }
        self.conclude(verdict, applied.won)
    }

    /// A right password and no code: the codes are asked for (and sent where otpgate sends
    /// them), with a transaction that stands in for the password once. A user without an
    /// active second factor here gets what the resource's policy says; one whose every
    /// second factor is locked is refused.
    async fn password_only(
        &self,
        context: &AuthContext,
        doorman: &Doorman,
        resource: &Resource,
        audit: &Audit,
        now: UnixTime,
    ) -> Result<Answer, RuleError> {
        if !context.tokens.iter().any(Token::is_usable) {
            if context.tokens.iter().any(awaits_reactivation) {
                return self
                    .reject(context, doorman, audit, "token_needs_reactivation", now)
                    .await;
            }
            return match resource.without_second_factor {
                WithoutSecondFactor::Refuse => {
                    self.reject(context, doorman, audit, "no_second_factor", now)
                        .await
                }
                WithoutSecondFactor::PasswordOnly => {
                    let tally = doorman.tally(context, Count::Success, audit);
                    self.record(audit.finish("accepted", Some("password_only")), tally, now)
                        .await?;
                    self.count("authenticate", "accepted", "password_only");
                    Ok(Answer::Accepted { token: None })
                }
            };
        }
        let open = |t: &&Token| t.is_usable() && !t.is_locked(resource.auto_unlock_seconds, now);
        if let Some(locked) = context.tokens.iter().find(|t| t.is_usable())
            && !context.tokens.iter().any(|t| open(&t))
        {
            let mut audit = audit.clone();
            audit.entry.token_id = Some(locked.id);
            return self
                .reject(context, doorman, &audit, "token_locked", now)
                .await;
        }
        let answer = self.send_challenges(context, audit, true, now).await?;
        self.count("authenticate", "challenge", "otp_needed");
        Ok(answer)
    }

    /// The answer to a judged attempt whose outcome is written, counted in the metrics.
    fn conclude(&self, verdict: Verdict, won: bool) -> Result<Answer, RuleError> {
        let (answer, result, reason) = match verdict {
            Verdict::Claimed(token) if won => {
                (Answer::Accepted { token: Some(token) }, "accepted", "ok")
            }
            Verdict::Claimed(_) => (Answer::Rejected, "rejected", "replayed"),
            Verdict::Rejected("expired_otp") => (Answer::Expired, "rejected", "expired_otp"),
            Verdict::Rejected(reason) => (Answer::Rejected, "rejected", reason),
            Verdict::Wait {
                reason,
                retry_after_seconds,
            } => {
                self.count("authenticate", "refused", reason);
                return Err(Refused::TooMany {
                    retry_after_seconds,
                }
                .into());
            }
        };
        self.count("authenticate", result, reason);
        Ok(answer)
    }

    /// Begins a transaction: creates and queues challenges for the MAIL, SMS and BOT tokens
    /// among the candidates — unless a code sent moments ago is still good, the user had their
    /// hourly share of messages, or the channel is not set up, each said per token — and lists
    /// the TOTP/HOTP tokens whose codes are expected too. `password_checked`: the transaction
    /// stands in for the password.
    async fn send_challenges(
        &self,
        context: &AuthContext,
        audit: &Audit,
        password_checked: bool,
        now: UnixTime,
    ) -> Result<Answer, RuleError> {
        let (Some(resource), Some(user)) = (&context.resource, &context.user) else {
            return Err(Refused::NotFound("resource").into());
        };
        let transaction = crypto::random_token::<16>()?;
        // The general settings when stored, else the configuration file's validity and the
        // default limits.
        let general = self.store.general_settings().await?;
        let validity = general
            .as_ref()
            .map_or(self.config.challenge_validity_seconds, |general| {
                general.challenge_validity_seconds
            }) as i64;
        let limits = general.map(|general| general.sending).unwrap_or_default();
        let sending = self.store.sending(user.id, now - 3600).await?;
        let configured = |channel: &str| {
            sending.settings.iter().any(|(name, settings)| {
                *name == channel && crate::delivery::settings::is_configured(channel, settings)
            })
        };
        let mut queued: Vec<(&str, u32)> = Vec::new();
        let minutes = crate::domain::words::minutes(validity.max(0) as u64);
        let mut expected = Vec::new();
        let mut challenges = Vec::new();
        let mut reused = Vec::new();
        let mut refusals = Vec::new();
        for token in context
            .tokens
            .iter()
            .filter(|t| t.is_usable() && !t.is_locked(resource.auto_unlock_seconds, now))
        {
            if !token.kind.is_delivered() {
                expected.push(Expected {
                    token: token_ref(token),
                    destination: None,
                    delivery: None,
                });
                continue;
            }
            let (channel, recipient) = match token.kind {
                TokenKind::Mail => ("mail", token.destination.clone()),
                TokenKind::Sms => ("sms", token.destination.clone()),
                _ => ("bot", token.bot_chat_id.map(|id| id.to_string())),
            };
            let Some(recipient) = recipient else { continue };
            let recent = context.challenges.iter().find(|challenge| {
                challenge.token_id == token.id
                    && now - challenge.created_at < i64::from(limits.resend_cooldown_seconds)
            });
            let sent_here = queued.iter().filter(|(name, _)| *name == channel).count() as u32;
            let delivery = if !configured(channel) {
                Delivery::NotConfigured
            } else if let Some(recent) = recent {
                reused.push(recent.id);
                Delivery::Cooldown
            } else if sending.sent(channel) + sent_here >= limits.per_hour(channel) {
                Delivery::Capped
            } else {
                Delivery::Queued
            };
            if delivery == Delivery::Queued {
                let random = crypto::random_bytes::<64>()?;
                let Some(code) = otp::numeric_code(&random, token.digits) else {
                    continue;
                };
                let body = format!(
                    "{code} is your one-time password for {}. It is valid for {minutes}. \
                     If you did not try to log in, tell your administrator.",
                    resource.name
                );
                challenges.push(NewChallenge {
                    token_id: token.id,
                    code_hash: self.keys.code_hash(&code),
                    channel,
                    recipient: recipient.clone(),
                    subject: format!("Your one-time password for {}", resource.name),
                    sealed_body: self.keys.seal(Purpose::Message, body.as_bytes())?,
                });
                queued.push((channel, 1));
            } else {
                self.metrics.inc(
                    "otpgate_sends_held_total",
                    "Codes not sent, by channel and reason: cooldown, capped, not_configured.",
                    &[("channel", channel), ("reason", delivery.as_str())],
                );
                let mut entry = audit.finish("skipped", Some(delivery.as_str()));
                entry.action = "auth.send".into();
                entry.token_id = Some(token.id);
                entry.detail = Some(channel.to_string());
                refusals.push(entry);
            }
            expected.push(Expected {
                token: token_ref(token),
                destination: Some(match token.kind {
                    TokenKind::Bot => "Telegram".to_string(),
                    _ => mask_destination(&recipient),
                }),
                delivery: Some(delivery),
            });
        }
        let sent = challenges.len();
        let mut entries = vec![AuditEntry {
            detail: Some(crate::domain::words::count(
                sent as u64,
                "code sent",
                "codes sent",
            )),
            ..audit.finish("challenge", None)
        }];
        entries.extend(refusals);
        let asked = Asked {
            transaction: NewTransaction {
                id: transaction.clone(),
                resource_id: resource.id,
                user_id: user.id,
                password_checked,
                expires_at: now + validity,
            },
            challenges,
            reused,
            tries: i64::from(self.config.challenge_tries),
            entries,
        };
        self.store.create_challenges(asked, now).await?;
        if sent > 0 {
            self.wakeup.wake();
        }
        Ok(Answer::Challenge {
            transaction,
            expected,
        })
    }

    /// Asks the user to approve a login in Telegram instead of typing a code (Approve in
    /// Telegram): begins a transaction with an approval for the user's BOT token in the
    /// resource (the one named, or the first usable one), and queues its message once — "Sign
    /// in to <resource> from <address>, <time>?" with the buttons of the numbers (number
    /// matching) or Approve, and Deny. No code is sent to any token: the user approves, or
    /// types the code of a TOTP or HOTP token, with this transaction. Refused when the resource
    /// does not allow approvals, when the user has no usable BOT token here (an unknown user is
    /// told the same), or when the bot is not set up or had its hourly share of messages.
    pub async fn ask_approval(
        &self,
        caller: &Caller,
        target: AuthTarget,
        end_user_ip: Option<String>,
        now: UnixTime,
    ) -> Result<ApprovalAsked, RuleError> {
        self.start_approval(caller, target, end_user_ip, true, now)
            .await
    }

    /// Approve in Telegram after a password (RADIUS, where the gateway sends both at once, or
    /// the password first): the password is checked first, as `authenticate` checks one —
    /// with the rate limits, the waits after failures, the lockout, a directory user's bind,
    /// and a wrong password counted as a failed login — and only a right one starts the
    /// approval and queues its one message. `number_shown`: the login can show the user a
    /// number before they answer (a challenge's text); without it the bot offers Approve and
    /// Deny whatever the resource's number matching (one-field logins show nothing before the
    /// answer). Nothing is checked, written or sent when the resource does not allow
    /// approvals or the user has no usable BOT token there. The approval's transaction stands for the password checked here: its login
    /// is answered by `authenticate_or_wait` with the transaction, no code, and
    /// `first_factor_checked`.
    pub async fn ask_approval_after_password(
        &self,
        caller: &Caller,
        target: AuthTarget,
        password: String,
        end_user_ip: Option<String>,
        number_shown: bool,
        now: UnixTime,
    ) -> Result<PasswordThenApproval, RuleError> {
        let mut audit = Audit::new(caller, "auth.authenticate", end_user_ip.clone(), now);
        let doorman = Doorman::new(self, &target, Instant::now(), now);
        let mut context = self.context(caller, target.clone(), now).await?;
        let Some(allowed) = context.resource.as_ref().map(|r| r.approvals.allowed) else {
            return Err(Refused::NotFound("resource").into());
        };
        if !allowed {
            return Ok(PasswordThenApproval::NotAllowed);
        }
        if context.user.is_none()
            && context.directory_may_know
            && doorman.lets_stranger_in()
            && let Some(login) = named_login(&target)
            && self
                .directories
                .look_up(self.store, self.keys, &login, now)
                .await?
                .is_some()
        {
            context = self.context(caller, target.clone(), now).await?;
        }
        let auto_unlock = context
            .resource
            .as_ref()
            .and_then(|r| r.auto_unlock_seconds);
        let can_approve = context.tokens.iter().any(|t| {
            t.kind == TokenKind::Bot
                && t.is_usable()
                && t.bot_chat_id.is_some()
                && !t.is_locked(auto_unlock, now)
        });
        if !can_approve {
            return Ok(PasswordThenApproval::NotAllowed);
        }
        audit.entry.resource_id = context.resource.as_ref().map(|r| r.id);
        audit.entry.user_id = context.user.as_ref().map(|user| user.id);
        let rejected = |answer: Answer| Ok(PasswordThenApproval::Answered(answer));
        match doorman.admit(&context) {
            Ok(()) => {}
            Err(Verdict::Rejected(reason)) => {
                return rejected(self.reject(&context, &doorman, &audit, reason, now).await?);
            }
            Err(verdict) => return rejected(self.conclude(verdict, false)?),
        }
        if let Some(reason) = refusal(&context) {
            // As long as a wrong password takes, so that the answer's time tells nothing.
            if reason != "token_not_in_resource" {
                self.passwords.verify(password, None).await?;
            }
            return rejected(self.reject(&context, &doorman, &audit, reason, now).await?);
        }
        let Some(user) = context.user.clone() else {
            return rejected(
                self.reject(&context, &doorman, &audit, "unknown_user", now)
                    .await?,
            );
        };
        if let Err(reason) = self.check_password(&user, &password).await? {
            return rejected(self.reject(&context, &doorman, &audit, reason, now).await?);
        }
        match self
            .start_approval(caller, target, end_user_ip, number_shown, now)
            .await
        {
            Ok(asked) => Ok(PasswordThenApproval::Asked(asked)),
            // The bot not set up or its hourly share sent: the right password alone lets no one
            // in, and nothing was guessed.
            Err(RuleError::Refused(Refused::Field(_) | Refused::Conflict(_))) => rejected(
                self.reject_uncounted(&audit, "approval_unavailable", now)
                    .await?,
            ),
            Err(error) => Err(error),
        }
    }

    /// `ask_approval`, with the numbers drawn only when the resource matches numbers and the
    /// login can show one (`number_shown`).
    async fn start_approval(
        &self,
        caller: &Caller,
        target: AuthTarget,
        end_user_ip: Option<String>,
        number_shown: bool,
        now: UnixTime,
    ) -> Result<ApprovalAsked, RuleError> {
        let named = target.token.is_some();
        let context = self.admitted(caller, target, now).await?;
        let Some(resource) = context.resource.as_ref() else {
            return Err(Refused::NotFound("resource").into());
        };
        if !resource.approvals.allowed {
            return Err(Refused::field(
                "approve",
                "this resource does not allow approvals in Telegram",
            )
            .into());
        }
        if named && context.tokens.iter().any(|t| t.kind != TokenKind::Bot) {
            return Err(Refused::field("token", "only a BOT token can approve a sign-in").into());
        }
        let mut audit = Audit::new(caller, "auth.prepare", end_user_ip.clone(), now);
        audit.entry.resource_id = Some(resource.id);
        audit.entry.user_id = context.user.as_ref().map(|u| u.id);
        let bot = match (refusal(&context), &context.user) {
            (None, Some(user)) => context
                .tokens
                .iter()
                .find(|t| {
                    t.kind == TokenKind::Bot
                        && t.is_usable()
                        && t.bot_chat_id.is_some()
                        && !t.is_locked(resource.auto_unlock_seconds, now)
                })
                .map(|token| (user, token)),
            _ => None,
        };
        let chat = match bot {
            Some((_, token)) => self.store.bot_chat(token.id).await?,
            None => None,
        };
        let (Some((user, token)), Some(chat)) = (bot, chat) else {
            let reason = refusal(&context).unwrap_or("no_bot_token");
            self.store
                .audit(audit.finish("rejected", Some(reason)))
                .await?;
            self.count("prepare", "rejected", reason);
            return Err(Refused::field(
                "approve",
                "the user has no active BOT token in this resource to approve with",
            )
            .into());
        };
        audit.entry.token_id = Some(token.id);
        let general = self.store.general_settings().await?;
        let validity = general
            .as_ref()
            .map_or(self.config.challenge_validity_seconds, |general| {
                general.challenge_validity_seconds
            }) as i64;
        let limits = general.map(|general| general.sending).unwrap_or_default();
        let sending = self.store.sending(user.id, now - 3600).await?;
        let configured = sending.settings.iter().any(|(name, settings)| {
            *name == "bot" && crate::delivery::settings::is_configured("bot", settings)
        });
        if !configured {
            return Err(
                Refused::Conflict("the Telegram bot is not set up on this server".into()).into(),
            );
        }
        if sending.sent("bot") >= limits.per_hour("bot") {
            self.store
                .audit(audit.finish("rejected", Some("capped")))
                .await?;
            return Err(Refused::Conflict(
                "the user was sent as many Telegram messages this hour as allowed".into(),
            )
            .into());
        }
        let (number, choices) = if resource.approvals.number_matching && number_shown {
            let (number, choices) = draw_numbers()?;
            (Some(number), choices)
        } else {
            (None, Vec::new())
        };
        let text = crate::delivery::approval::question(&resource.name, end_user_ip.as_deref(), now);
        let transaction = crypto::random_token::<16>()?;
        let expires_at = now + validity;
        let new = NewApproval {
            transaction: NewTransaction {
                id: transaction.clone(),
                resource_id: resource.id,
                user_id: user.id,
                password_checked: false,
                expires_at,
            },
            token_id: token.id,
            chat_id: chat.chat_id,
            telegram_user_id: chat.user_id,
            number,
            choices,
            sealed_body: self.keys.seal(Purpose::Message, text.as_bytes())?,
            // A challenge like a sent code's, told apart by its detail.
            entry: AuditEntry {
                detail: Some("approval asked in Telegram".into()),
                ..audit.finish("challenge", None)
            },
        };
        self.store.create_approval(new, now).await?;
        self.wakeup.wake();
        self.count("prepare", "challenge", "approval");
        Ok(ApprovalAsked {
            transaction,
            number,
            expires_at,
            token: token_ref(token),
        })
    }

    /// Sends codes to the user's MAIL, SMS and BOT tokens in the resource (or the one named).
    pub async fn prepare(
        &self,
        caller: &Caller,
        target: AuthTarget,
        end_user_ip: Option<String>,
        now: UnixTime,
    ) -> Result<Answer, RuleError> {
        let named = target.token.is_some();
        let context = self.admitted(caller, target, now).await?;
        let mut audit = Audit::new(caller, "auth.prepare", end_user_ip, now);
        audit.entry.resource_id = context.resource.as_ref().map(|r| r.id);
        audit.entry.user_id = context.user.as_ref().map(|u| u.id);
        if let Some(reason) = refusal(&context) {
            // The same empty answer as for a user without sendable tokens.
            self.store
                .audit(audit.finish("rejected", Some(reason)))
                .await?;
            self.count("prepare", "rejected", reason);
            return Ok(Answer::Challenge {
                transaction: String::new(),
                expected: Vec::new(),
            });
        }
        if named && context.tokens.iter().any(|t| !t.kind.is_delivered()) {
            return Err(Refused::field(
                "token",
                "otpgate sends codes only for MAIL, SMS and BOT tokens",
            )
            .into());
        }
        let mut delivered = context.clone();
        delivered.tokens.retain(|t| t.kind.is_delivered());
        let answer = self.send_challenges(&delivered, &audit, false, now).await?;
        self.count("prepare", "challenge", "ok");
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IdOrName;
    use crate::store::Resource;

    fn keys() -> (tempfile::TempDir, Keys) {
        let dir = tempfile::tempdir().expect("dir");
        let keys = Keys::load_or_create(&dir.path().join("k"), true).expect("keys");
        (dir, keys)
    }

    const SECRET: &[u8] = b"12345678901234567890";

    fn token(keys: &Keys, id: i64, kind: TokenKind) -> Token {
        Token {
            id,
            serial: format!("T{id}"),
            name: "t".into(),
            kind,
            user_id: Some(1),
            secret: Some(keys.seal(Purpose::TokenSecret, SECRET).expect("seal")),
            algorithm: otp::Algorithm::Sha1,
            digits: 6,
            period: 30,
            last_step: None,
            drift: 0,
            window_behind: None,
            window_ahead: None,
            destination: None,
            messenger: None,
            bot_chat_id: None,
            pin_hash: None,
            pin_position: otp::PinPosition::Before,
            enabled: true,
            state: TokenState::Active,
            fail_count: 0,
            locked_at: None,
            last_used_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn context(tokens: Vec<Token>) -> AuthContext {
        AuthContext {
            resource: Some(Resource {
                id: 1,
                name: "vpn".into(),
                description: String::new(),
                fail_limit: 5,
                password_required: false,
                auto_unlock_seconds: None,
                without_second_factor: Default::default(),
                approvals: Default::default(),
                created_at: 0,
                updated_at: 0,
            }),
            tokens,
            ..AuthContext::default()
        }
    }

    fn run(context: &AuthContext, typed: &str, keys: &Keys, now: UnixTime) -> Evaluation {
        let candidates = Candidates {
            context,
            transaction: None,
            fail_limit: 5,
            auto_unlock: Some(600),
        };
        evaluate(&candidates, typed, keys, &AuthConfig::default(), now)
    }

    const NOW: UnixTime = 1_111_111_111;

    fn totp_code(offset: i64) -> String {
        otp::hotp(SECRET, otp::Algorithm::Sha1, 6, (NOW / 30 + offset) as u64)
    }

    #[test]
    fn an_approval_offers_three_different_two_digit_numbers_the_right_one_anywhere() {
        let mut places = [0; 3];
        for _ in 0..300 {
            let (number, choices) = draw_numbers().expect("random");
            assert_eq!(choices.len(), 3);
            assert!(choices.iter().all(|n| (10..=99).contains(n)), "{choices:?}");
            assert!(
                choices[0] != choices[1] && choices[1] != choices[2] && choices[0] != choices[2]
            );
            let place = choices.iter().position(|&n| n == number).expect("offered");
            places[place] += 1;
        }
        assert!(places.iter().all(|&n| n > 0), "{places:?}");
    }

    #[test]
    fn a_current_totp_code_matches_its_token() {
        let (_d, keys) = keys();
        let ctx = context(vec![token(&keys, 7, TokenKind::Totp)]);
        match run(&ctx, &totp_code(0), &keys, NOW) {
            Evaluation::Matched {
                token,
                claim: Claim::Step { step, .. },
            } => {
                assert_eq!(token.id, 7);
                assert_eq!(step, NOW / 30);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_disabled_token_is_skipped_and_a_pending_one_too() {
        let (_d, keys) = keys();
        let mut disabled = token(&keys, 1, TokenKind::Totp);
        disabled.enabled = false;
        let mut pending = token(&keys, 2, TokenKind::Totp);
        pending.state = TokenState::Pending;
        let ctx = context(vec![disabled, pending]);
        assert!(matches!(
            run(&ctx, &totp_code(0), &keys, NOW),
            Evaluation::NoUsableToken
        ));
    }

    #[test]
    fn a_locked_token_denies_even_the_right_code() {
        let (_d, keys) = keys();
        let mut locked = token(&keys, 3, TokenKind::Totp);
        locked.locked_at = Some(NOW - 10);
        let ctx = context(vec![locked]);
        assert!(matches!(
            run(&ctx, &totp_code(0), &keys, NOW),
            Evaluation::Locked { token_id: 3 }
        ));
    }

    #[test]
    fn a_lock_older_than_the_automatic_unlock_time_no_longer_denies() {
        let (_d, keys) = keys();
        let mut locked = token(&keys, 3, TokenKind::Totp);
        locked.locked_at = Some(NOW - 601);
        let ctx = context(vec![locked]);
        assert!(matches!(
            run(&ctx, &totp_code(0), &keys, NOW),
            Evaluation::Matched { .. }
        ));
    }

    #[test]
    fn a_wrong_code_penalises_every_usable_token() {
        let (_d, keys) = keys();
        let ctx = context(vec![
            token(&keys, 1, TokenKind::Totp),
            token(&keys, 2, TokenKind::Hotp),
        ]);
        match run(&ctx, "000000", &keys, NOW) {
            Evaluation::Missed(penalty) => assert_eq!(penalty.token_ids, vec![1, 2]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_pin_is_required_in_its_position() {
        let (_d, keys) = keys();
        let mut with_pin = token(&keys, 4, TokenKind::Totp);
        with_pin.pin_hash = Some(keys.pin_hash("4321"));
        with_pin.pin_position = otp::PinPosition::After;
        let ctx = context(vec![with_pin]);
        let code = totp_code(0);
        assert!(matches!(
            run(&ctx, &code, &keys, NOW),
            Evaluation::Missed(_)
        ));
        assert!(matches!(
            run(&ctx, &format!("4321{code}"), &keys, NOW),
            Evaluation::Missed(_)
        ));
        assert!(matches!(
            run(&ctx, &format!("{code}9999"), &keys, NOW),
            Evaluation::Missed(_)
        ));
        assert!(matches!(
            run(&ctx, &format!("{code}4321"), &keys, NOW),
            Evaluation::Matched { .. }
        ));
    }

    #[test]
    fn a_sent_code_matches_its_challenge_only() {
        let (_d, keys) = keys();
        let mut ctx = context(vec![token(&keys, 5, TokenKind::Mail)]);
        ctx.challenges.push(ActiveChallenge {
            id: 9,
            token_id: 5,
            transaction_id: "tx".into(),
            code_hash: keys.code_hash("123456"),
            tries_left: 3,
            created_at: 0,
        });
        assert!(matches!(
            run(&ctx, "123456", &keys, NOW),
            Evaluation::Matched {
                claim: Claim::Challenge {
                    challenge_id: 9,
                    ..
                },
                ..
            }
        ));
        match run(&ctx, "654321", &keys, NOW) {
            Evaluation::Missed(penalty) => assert_eq!(penalty.challenge_ids, vec![9]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_hotp_code_ahead_within_the_look_ahead_matches() {
        let (_d, keys) = keys();
        let mut hotp = token(&keys, 6, TokenKind::Hotp);
        hotp.last_step = Some(4);
        let ctx = context(vec![hotp]);
        let code = otp::hotp(SECRET, otp::Algorithm::Sha1, 6, 9);
        assert!(matches!(
            run(&ctx, &code, &keys, NOW),
            Evaluation::Matched {
                claim: Claim::Step { step: 9, .. },
                ..
            }
        ));
        let too_far = otp::hotp(SECRET, otp::Algorithm::Sha1, 6, 30);
        assert!(matches!(
            run(&ctx, &too_far, &keys, NOW),
            Evaluation::Missed(_)
        ));
    }

    /// What an authenticator borrows, over a real store in a temporary directory holding the
    /// resource `vpn` and the user `alice` with the HOTP token of RFC 4226's test seed.
    struct Parts {
        _dir: tempfile::TempDir,
        store: Store,
        keys: Arc<Keys>,
        config: AuthConfig,
        metrics: Arc<Metrics>,
        passwords: PasswordGate,
        guard: Arc<Guard>,
        wakeup: crate::delivery::Wakeup,
        directories: Arc<crate::directories::Service>,
        waiters: crate::waiters::Waiters,
    }

    impl Parts {
        async fn new() -> Parts {
            use crate::provision::{self, SecretFormat, TokenRequest};
            let (dir, store) = crate::store::temp_store();
            crate::store::add_resource(&store, "vpn").await;
            crate::store::add_user(&store, "alice").await;
            let keys = Arc::new(Keys::load_or_create(&dir.path().join("k"), true).expect("keys"));
            let now = crate::clock::now();
            let request = TokenRequest {
                user: Some(IdOrName::Name("alice".into())),
                resource: Some(IdOrName::Name("vpn".into())),
                secret: Some(data_encoding::HEXLOWER.encode(SECRET)),
                secret_format: Some(SecretFormat::Hex),
                ..TokenRequest::new(TokenKind::Hotp)
            };
            let general = crate::store::GeneralSettings::default();
            let prepared = provision::prepare(&keys, &request, now, &general).expect("token");
            let entry = AuditEntry::new(now, "test", "test", "ok");
            store
                .create_token(prepared.creation, entry)
                .await
                .expect("stored")
                .expect("token");
            let metrics = Arc::new(Metrics::default());
            let logins = crate::attempts::Policy::of(&crate::config::LoginsConfig::default());
            Parts {
                _dir: dir,
                store,
                keys,
                config: AuthConfig::default(),
                passwords: PasswordGate::start(
                    crate::config::PasswordsConfig::default().gate_size(),
                    metrics.clone(),
                )
                .expect("gate"),
                guard: Arc::new(Guard::new(logins, metrics.clone())),
                wakeup: Default::default(),
                directories: Arc::new(crate::directories::Service::new(metrics.clone())),
                waiters: crate::waiters::Waiters::new(1),
                metrics,
            }
        }

        fn authenticator(&self) -> Authenticator<'_> {
            Authenticator {
                store: &self.store,
                keys: &self.keys,
                config: &self.config,
                metrics: &self.metrics,
                passwords: &self.passwords,
                guard: &self.guard,
                per_account: None,
                wakeup: &self.wakeup,
                directories: &self.directories,
                waiters: &self.waiters,
            }
        }
    }

    fn code_only(login: &str, code: &str) -> Attempt {
        Attempt {
            target: AuthTarget {
                resource: IdOrName::Name("vpn".into()),
                user: Some(IdOrName::Name(login.into())),
                token: None,
                transaction: None,
                address: None,
            },
            password: None,
            otp: Some(code.into()),
            end_user_ip: None,
            first_factor_checked: false,
        }
    }

    /// The clock is tokio's, paused: it moves only when every task waits for a timer, so the
    /// time an answer took here is exactly what the rules waited for, not what the work cost.
    #[tokio::test(start_paused = true)]
    async fn a_refused_code_waits_for_the_floor_alike_for_a_known_user_and_an_unknown_login() {
        let parts = Parts::new().await;
        let authenticator = parts.authenticator();
        let caller = Caller {
            key_id: None,
            actor: "test".into(),
            resource_scope: None,
            client_ip: None,
            detail: None,
        };
        for login in ["alice", "nobody"] {
            let began = tokio::time::Instant::now();
            let answer = authenticator
                .authenticate(&caller, code_only(login, "000000"), crate::clock::now())
                .await
                .expect("answered");
            assert!(matches!(answer, Answer::Rejected), "{login}: {answer:?}");
            assert!(
                began.elapsed() >= REJECTION_FLOOR,
                "{login}: answered {:?} after the attempt began",
                began.elapsed()
            );
        }
        // An accepted code is not held: RFC 4226's first value for the test seed.
        let began = tokio::time::Instant::now();
        let answer = authenticator
            .authenticate(&caller, code_only("alice", "755224"), crate::clock::now())
            .await
            .expect("answered");
        assert!(matches!(answer, Answer::Accepted { .. }), "{answer:?}");
        assert_eq!(began.elapsed(), Duration::ZERO);
    }
}
