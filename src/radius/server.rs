//! The RADIUS front end: UDP sockets for authentication and accounting, answering gateways
//! through the same `auth::Authenticator` as the API, with its rules, audit, rate limits,
//! lockout and replay protection. Its errors become answers in one place (`conclude`).
//!
//! The bound on the work an unauthenticated datagram can cause: packets from unknown addresses
//! are dropped before parsing; the others are parsed (no allocation beyond the datagram) and
//! then need a permit of a fixed number of evaluations in flight, else they are dropped and
//! counted. Retransmits (same source, identifier and Request Authenticator) are answered from
//! a cache of recent replies, or joined to the evaluation in flight; never evaluated twice.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::challenge::{self, Binding};
use super::clients::Network;
use super::input::{self, InputMode, split};
use super::packet::CLASS;
use super::packet::{
    ACCESS_ACCEPT, ACCESS_CHALLENGE, ACCESS_REJECT, ACCESS_REQUEST, ACCOUNTING_REQUEST,
    ACCOUNTING_RESPONSE, ACCT_SESSION_ID, ACCT_STATUS_TYPE, Attribute, CALLING_STATION_ID,
    CHAP_PASSWORD, EAP_MESSAGE, MAX_PACKET_LEN, NAS_IDENTIFIER, PROXY_STATE, Packet,
    SESSION_TIMEOUT, STATE, STATUS_SERVER, USER_NAME, USER_PASSWORD, VENDOR_MICROSOFT, reply,
};
use super::replies::{Replies, Seen};
use super::reply::{accept_attributes, class_request_id, encode_reply_attributes, request_id};
use crate::attempts::Guard;
use crate::auth::{Answer, Attempt, Authenticator, Caller, Expected, PasswordThenApproval};
use crate::config::AuthConfig;
use crate::crypto::{Keys, Purpose};
use crate::domain::{IdOrName, Refused, RuleError};
use crate::limiter::TokenBuckets;
use crate::metrics::Metrics;
use crate::passwords::PasswordGate;
use crate::store::auth::AuthTarget;
use crate::store::{AuditEntry, Store};

/// How long a reply is kept for the retransmits of its request (RFC 5080 §2.2.2 suggests the
/// client's whole retry window; gateways retry for 3 to 30 seconds).
pub(super) const REPLY_KEPT: Duration = Duration::from_secs(30);
/// How many writes the cache of replies remembers (a request takes one when it comes and one
/// when it is answered): about 10 MB at most; at 30,000 requests a second a reply stays about
/// two seconds, at the rates of real gateways the whole `REPLY_KEPT`.
pub(super) const REMEMBERED: usize = 131_072;
/// The shared secret inside RadSec's TLS (RFC 6614 §2.3), what radsecproxy uses too.
pub(super) const RADSEC_SECRET: &[u8] = b"radsec";
/// How often a packet from an unknown address is logged, at most.
const UNKNOWN_LOG_EVERY: Duration = Duration::from_secs(10);

/// What the RADIUS server works with; the same services the API's authentication uses.
pub struct Services {
    pub store: Store,
    pub keys: Arc<Keys>,
    pub auth: AuthConfig,
    pub metrics: Arc<Metrics>,
    pub passwords: Arc<PasswordGate>,
    pub guard: Arc<Guard>,
    /// The per-account rate limit the API applies too.
    pub per_account: Arc<TokenBuckets>,
    /// The per-end-user-address rate limit (`Calling-Station-Id`).
    pub end_user_ip: TokenBuckets,
    pub wakeup: crate::delivery::Wakeup,
    /// The directories' connections, and the lookup of logins no user has.
    pub directories: Arc<crate::directories::Service>,
    /// The logins waiting for approvals.
    pub waiters: crate::waiters::Waiters,
}

/// A client as the server holds it: the secret unsealed in memory only.
#[derive(Clone)]
pub(super) struct Client {
    pub(super) name: String,
    network: Network,
    secret: Vec<u8>,
    resource_id: i64,
    require_message_authenticator: bool,
    mode: InputMode,
    /// How long an Access-Request is held for an approval's decision.
    approval_wait: Duration,
    /// The word that asks for an approval (after the password, or as a challenge's answer).
    approval_word: Option<String>,
    /// What its resource adds to an Access-Accept, encoded once per load.
    reply_attributes: Vec<Attribute>,
}

impl Client {
    /// The same client on a RadSec connection, where the shared secret is "radsec" (RFC 6614
    /// §2.3): TLS protects the packets, and the client's own secret stays for UDP.
    pub(super) fn over_tls(&self) -> Client {
        Client {
            secret: RADSEC_SECRET.to_vec(),
            ..self.clone()
        }
    }
}

/// Which port a socket serves, or RadSec, whose one connection carries both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Port {
    Authentication,
    Accounting,
    Tls,
}

impl Port {
    /// Whether requests of `code` are answered here.
    pub(super) fn takes(self, code: u8) -> bool {
        match self {
            Port::Authentication => [ACCESS_REQUEST, STATUS_SERVER].contains(&code),
            Port::Accounting => [ACCOUNTING_REQUEST, STATUS_SERVER].contains(&code),
            Port::Tls => [ACCESS_REQUEST, ACCOUNTING_REQUEST, STATUS_SERVER].contains(&code),
        }
    }

    /// How the request came, as its audit line says: `UDP` or `RadSec`.
    fn transport(self) -> &'static str {
        match self {
            Port::Authentication | Port::Accounting => "UDP",
            Port::Tls => "RadSec",
        }
    }
}

pub(super) type ReplyKey = super::replies::RequestKey;

pub(super) struct Shared {
    pub(super) services: Services,
    pub(super) replies: Mutex<Replies>,
    pub(super) permits: Arc<Semaphore>,
}

/// The clients as last loaded, and the store's generation they were loaded at.
pub(super) struct ClientTable {
    generation: Option<u64>,
    clients: Vec<Arc<Client>>,
}

impl ClientTable {
    pub(super) fn empty() -> ClientTable {
        ClientTable {
            generation: None,
            clients: Vec::new(),
        }
    }

    pub(super) async fn refresh(&mut self, services: &Services) {
        let generation = services.store.radius_generation();
        if self.generation == Some(generation) {
            return;
        }
        match services.store.radius_clients().await {
            Ok(rows) => {
                let Some(reply_attributes) = load_reply_attributes(services).await else {
                    return;
                };
                self.clients = rows
                    .into_iter()
                    .filter_map(|row| {
                        let secret = services
                            .keys
                            .open(Purpose::Credential, &row.secret_sealed)
                            .map_err(|error| {
                                tracing::error!(client = %row.name, %error, "cannot unseal a RADIUS client's secret")
                            })
                            .ok()?;
                        let mode = InputMode::from_parts(
                            &row.input_mode,
                            row.separator.clone(),
                            u8::try_from(row.code_length).unwrap_or(6),
                        )?;
                        Some(Arc::new(Client {
                            network: row.network.parse().ok()?,
                            name: row.name,
                            secret,
                            resource_id: row.resource_id,
                            require_message_authenticator: row.require_message_authenticator,
                            mode,
                            approval_wait: Duration::from_secs(
                                u64::try_from(row.approval_wait_seconds).unwrap_or(25),
                            ),
                            approval_word: row.approval_word,
                            reply_attributes: reply_attributes
                                .get(&row.resource_id)
                                .cloned()
                                .unwrap_or_default(),
                        }))
                    })
                    .collect();
                self.generation = Some(generation);
            }
            Err(error) => tracing::error!(%error, "cannot load the RADIUS clients"),
        }
    }

    /// The client whose network holds `address` most narrowly.
    pub(super) fn find(&self, address: IpAddr) -> Option<Arc<Client>> {
        self.clients
            .iter()
            .filter(|client| client.network.contains(address))
            .max_by_key(|client| client.network.prefix())
            .cloned()
    }
}

/// Every resource's reply attributes, encoded, by resource id; None (logged) when they cannot
/// be read, so that the table is loaded again at the next packet.
async fn load_reply_attributes(services: &Services) -> Option<HashMap<i64, Vec<Attribute>>> {
    match services.store.all_radius_reply_attributes().await {
        Ok(all) => Some(
            all.into_iter()
                .map(|(resource_id, stored)| {
                    let (attributes, unusable) = encode_reply_attributes(&stored);
                    if !unusable.is_empty() {
                        tracing::error!(
                            resource_id,
                            attributes = %unusable.join(", "),
                            "RADIUS reply attributes left out: the dictionary does not take them"
                        );
                    }
                    (resource_id, attributes)
                })
                .collect(),
        ),
        Err(error) => {
            tracing::error!(%error, "cannot load the RADIUS reply attributes");
            None
        }
    }
}

/// Records how long a packet took from its admission to its answer (or its drop). A login
/// `held` for its approval waited for a person, not for the server: it has a histogram of its
/// own, so that the requests' latency stays the server's.
pub(super) fn observe_duration(
    metrics: &Metrics,
    client: &str,
    packet: &Packet,
    answer: Option<&[u8]>,
    (elapsed, held): (Duration, bool),
) {
    let result = match (packet.code, answer.and_then(|bytes| bytes.first())) {
        (_, None) => "dropped",
        (STATUS_SERVER, Some(_)) => "status",
        (_, Some(&ACCESS_ACCEPT)) => "accepted",
        (_, Some(&ACCESS_REJECT)) => "rejected",
        (_, Some(&ACCESS_CHALLENGE)) => "challenged",
        (_, Some(_)) => "accounting",
    };
    let (name, help) = if held {
        (
            "otpgate_radius_approval_duration_seconds",
            "Time to answer a RADIUS login held for its approval in Telegram, by client and \
             result.",
        )
    } else {
        (
            "otpgate_radius_request_duration_seconds",
            "Time to answer a RADIUS request, by client and result (logins held for their \
             approval apart).",
        )
    };
    metrics.observe(
        name,
        help,
        &[("client", client), ("result", result)],
        elapsed,
    );
}

pub(super) fn drop_packet(metrics: &Metrics, reason: &str) {
    metrics.inc(
        "otpgate_radius_dropped_total",
        "RADIUS packets dropped without an answer, by reason.",
        &[("reason", reason)],
    );
}

pub(super) async fn receive(socket: Arc<UdpSocket>, port: Port, shared: Arc<Shared>) {
    let mut table = ClientTable::empty();
    let mut buffer = vec![0u8; MAX_PACKET_LEN];
    let mut unknown_logged: Option<Instant> = None;
    let mut unknown_since_log = 0u64;
    loop {
        let (length, source) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                tracing::warn!(%error, "RADIUS receive failed");
                continue;
            }
        };
        let services = &shared.services;
        table.refresh(services).await;
        let Some(client) = table.find(source.ip()) else {
            drop_packet(&services.metrics, "unknown_client");
            unknown_since_log += 1;
            if unknown_logged.is_none_or(|at| at.elapsed() >= UNKNOWN_LOG_EVERY) {
                tracing::warn!(
                    source = %source.ip(),
                    dropped = unknown_since_log,
                    "RADIUS packets from an address no client has were dropped"
                );
                unknown_logged = Some(Instant::now());
                unknown_since_log = 0;
            }
            continue;
        };
        let Ok(packet) = Packet::parse(&buffer[..length]) else {
            drop_packet(&services.metrics, "malformed");
            continue;
        };
        if !port.takes(packet.code) {
            drop_packet(&services.metrics, "unexpected_code");
            continue;
        }
        let key = (source, packet.identifier, packet.authenticator);
        match admit(&shared, key) {
            Admission::Cached(reply) => {
                duplicate(&services.metrics);
                let _ = socket.send_to(&reply, source).await;
            }
            Admission::Joined => duplicate(&services.metrics),
            Admission::Busy => drop_packet(&services.metrics, "busy"),
            Admission::New(permit) => {
                let shared = shared.clone();
                let socket = socket.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let mut permit = Some(Places {
                        _evaluation: permit,
                        _connection: None,
                    });
                    let answer = handle(
                        &shared.services,
                        &client,
                        &packet,
                        source,
                        port,
                        &mut permit,
                    )
                    .await;
                    let answer = answer.map(Arc::new);
                    observe_duration(
                        &shared.services.metrics,
                        &client.name,
                        &packet,
                        answer.as_deref().map(Vec::as_slice),
                        // A login held for its approval gave its places back.
                        (started.elapsed(), permit.is_none()),
                    );
                    settle(&shared, key, answer.clone());
                    if let Some(bytes) = answer {
                        let _ = socket.send_to(&bytes, source).await;
                    }
                    drop(permit);
                });
            }
        }
    }
}

/// What a request being evaluated holds: its permit among the evaluations in flight and, over
/// RadSec, its place among its connection's requests read ahead. A login held for an approval
/// gives both back before it waits (see [`hold`]), so that held logins crowd out neither the
/// server's other requests nor the other users behind the same RadSec connection (a proxy
/// carries a whole site's gateways on one).
pub(super) struct Places {
    pub(super) _evaluation: OwnedSemaphorePermit,
    pub(super) _connection: Option<OwnedSemaphorePermit>,
}

pub(super) enum Admission {
    /// A retransmit of a request answered moments ago: the same reply again.
    Cached(Arc<Vec<u8>>),
    /// A retransmit of a request being evaluated: its answer will do for both.
    Joined,
    /// Too many requests in flight.
    Busy,
    New(OwnedSemaphorePermit),
}

pub(super) fn admit(shared: &Shared, key: ReplyKey) -> Admission {
    let now = Instant::now();
    let mut replies = shared.replies.lock().unwrap_or_else(|e| e.into_inner());
    match replies.seen(&key, now) {
        Seen::Answered(reply) => return Admission::Cached(reply),
        Seen::InFlight => return Admission::Joined,
        Seen::New => {}
    }
    let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
        return Admission::Busy;
    };
    replies.begin(key, now);
    Admission::New(permit)
}

/// Keeps the reply for the retransmits, or forgets a request that got none (busy, a failure
/// of ours, a packet that failed its checks), so that a retry is evaluated afresh.
pub(super) fn settle(shared: &Shared, key: ReplyKey, answer: Option<Arc<Vec<u8>>>) {
    let mut replies = shared.replies.lock().unwrap_or_else(|e| e.into_inner());
    replies.finish(key, answer, Instant::now());
}

pub(super) fn duplicate(metrics: &Metrics) {
    metrics.inc(
        "otpgate_radius_duplicates_total",
        "RADIUS retransmits answered from the cache or joined to the request in flight.",
        &[],
    );
}

/// The answer to one packet, or None to drop it; the same for UDP and RadSec. `permit` is what
/// the request holds while it is evaluated: a login held for an approval gives it back before
/// it waits (see [`hold`]).
pub(super) async fn handle(
    services: &Services,
    client: &Client,
    packet: &Packet,
    source: SocketAddr,
    port: Port,
    permit: &mut Option<Places>,
) -> Option<Vec<u8>> {
    let metrics = &services.metrics;
    let secret = client.secret.as_slice();
    match packet.message_authenticator_valid(secret) {
        Some(true) => {}
        Some(false) => {
            drop_packet(metrics, "bad_message_authenticator");
            return None;
        }
        None => {
            // RFC 5997 §3: a Status-Server always carries one. Proxy-State without one is
            // the shape of the Blast-RADIUS forgery.
            if packet.code == STATUS_SERVER {
                drop_packet(metrics, "missing_message_authenticator");
                return None;
            }
            if packet.code == ACCESS_REQUEST
                && (client.require_message_authenticator || packet.has(PROXY_STATE))
            {
                let reason = if packet.has(PROXY_STATE) {
                    "proxy_state_without_message_authenticator"
                } else {
                    "missing_message_authenticator"
                };
                drop_packet(metrics, reason);
                return None;
            }
        }
    }
    let (code, attributes) = match packet.code {
        STATUS_SERVER => {
            let code = match port {
                Port::Authentication | Port::Tls => ACCESS_ACCEPT,
                Port::Accounting => ACCOUNTING_RESPONSE,
            };
            count(metrics, &client.name, "status");
            (code, Vec::new())
        }
        ACCOUNTING_REQUEST => {
            if !packet.accounting_authenticator_valid(secret) {
                drop_packet(metrics, "bad_authenticator");
                return None;
            }
            record_accounting(services, client, packet, source, port).await?;
            count(metrics, &client.name, "accounting");
            (ACCOUNTING_RESPONSE, Vec::new())
        }
        _ => {
            let (code, result, attributes) =
                match access(services, client, packet, source, port, permit).await? {
                    Access::Accepted => (
                        ACCESS_ACCEPT,
                        "accepted",
                        accept_attributes(
                            packet.first(USER_NAME).unwrap_or_default(),
                            &packet.authenticator,
                            &client.reply_attributes,
                        ),
                    ),
                    Access::Rejected(attributes) => (ACCESS_REJECT, "rejected", attributes),
                    Access::Challenged(attributes) => (ACCESS_CHALLENGE, "challenged", attributes),
                };
            count(metrics, &client.name, result);
            (code, attributes)
        }
    };
    match reply(code, packet, attributes, secret) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            tracing::error!(%error, "cannot encode a RADIUS reply");
            None
        }
    }
}

fn count(metrics: &Metrics, client: &str, result: &str) {
    metrics.inc(
        "otpgate_radius_requests_total",
        "RADIUS requests answered, by client and result.",
        &[("client", client), ("result", result)],
    );
}

/// The end user's address: `Calling-Station-Id` when it is an IP address (gateways put the
/// user's address there; some a MAC address, which is not used), else `Framed-IP-Address`.
fn end_user_ip(packet: &Packet) -> Option<String> {
    packet
        .text(CALLING_STATION_ID)
        .and_then(|text| text.trim().parse::<IpAddr>().ok())
        .or_else(|| {
            packet
                .first(8)
                .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
                .map(IpAddr::from)
        })
        .map(|address| address.to_canonical().to_string())
}

fn caller(client: &Client, packet: &Packet, source: SocketAddr, port: Port) -> Caller {
    Caller {
        key_id: None,
        actor: format!("radius:{}", client.name),
        resource_scope: Some(client.resource_id),
        client_ip: Some(source.ip().to_canonical().to_string()),
        detail: Some(request_detail(packet, port)),
    }
}

/// What the audit line of a request says about it: how it came (UDP or RadSec), the
/// NAS-Identifier, and its id (which the `Class` of its Access-Accept repeats).
fn request_detail(packet: &Packet, port: Port) -> String {
    let id = request_id(&packet.authenticator);
    let transport = port.transport();
    match packet.text(NAS_IDENTIFIER) {
        Some(nas) => format!(
            "{transport}; NAS-Identifier {}; request {id}",
            nas.chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>()
        ),
        None => format!("{transport}; request {id}"),
    }
}

/// Why an Access-Request is refused before any account is looked at: the audit line's reason.
fn unusable(packet: &Packet) -> Option<&'static str> {
    if packet.has(EAP_MESSAGE) {
        Some("eap_not_supported_use_pap")
    } else if packet.has_vendor(VENDOR_MICROSOFT) {
        Some("mschap_not_supported_use_pap")
    } else if packet.has(CHAP_PASSWORD) {
        Some("chap_not_supported_use_pap")
    } else if !packet.has(USER_PASSWORD) {
        Some("no_user_password_use_pap")
    } else if packet.first(USER_NAME).is_none_or(<[u8]>::is_empty) {
        Some("no_user_name")
    } else {
        None
    }
}

/// What an Access-Request comes to.
enum Access {
    Accepted,
    /// Access-Reject, with what it tells the user (the challenge mode's Reply-Message).
    Rejected(Vec<Attribute>),
    /// Access-Challenge: its State, Reply-Message and Session-Timeout.
    Challenged(Vec<Attribute>),
}

/// An Access-Request: its answer; None to drop it (busy or failed: the gateway retries).
async fn access(
    services: &Services,
    client: &Client,
    packet: &Packet,
    source: SocketAddr,
    port: Port,
    permit: &mut Option<Places>,
) -> Option<Access> {
    let caller = caller(client, packet, source, port);
    let end_user_ip = end_user_ip(packet);
    let refuse = |reason: &'static str| {
        let mut entry = AuditEntry::new(
            crate::clock::now(),
            caller.actor.clone(),
            "auth.authenticate",
            "rejected",
        );
        entry.reason = Some(reason.into());
        entry.client_ip = caller.client_ip.clone();
        entry.end_user_ip = end_user_ip.clone();
        entry.resource_id = Some(client.resource_id);
        entry.detail = caller.detail.clone();
        entry
    };
    if let Some(reason) = unusable(packet) {
        return write_refusal(services, refuse(reason)).await;
    }
    let user = packet.text(USER_NAME).unwrap_or_default();
    let Some(field) = packet.user_password(&client.secret) else {
        return write_refusal(services, refuse("malformed_user_password")).await;
    };
    if client.mode == InputMode::Challenge {
        return challenge_mode(services, client, packet, &field, &caller, &refuse, permit).await;
    }
    let mut rate_taken = false;
    if let Some(password) =
        input::approval_password(&client.mode, &field, client.approval_word.as_deref())
    {
        if over_rate(services, end_user_ip.as_deref()) {
            return write_refusal(services, refuse("rate_limited")).await;
        }
        rate_taken = true;
        if !services.waiters.has_room() {
            return write_refusal(services, refuse("approval_waiters_full")).await;
        }
        let target = target(client, IdOrName::Name(user.clone()), None);
        // The gateway shows nothing before the user answers: Approve and Deny, no number.
        let asked = authenticator(services)
            .ask_approval_after_password(
                &caller,
                target,
                password,
                end_user_ip.clone(),
                false,
                crate::clock::now(),
            )
            .await;
        match asked {
            Ok(PasswordThenApproval::NotAllowed) => {}
            Ok(PasswordThenApproval::Answered(answer)) => {
                return conclude(services, Ok(answer), refuse, Step::Whole).await;
            }
            Ok(PasswordThenApproval::Asked(asked)) => {
                let held = Held {
                    user: IdOrName::Name(user),
                    transaction: asked.transaction,
                    end_user_ip: end_user_ip.clone(),
                };
                return hold(services, client, &caller, held, permit, &refuse).await;
            }
            Err(error) => return conclude(services, Err(error), refuse, Step::Whole).await,
        }
    }
    let typed = match split(&client.mode, &field) {
        Ok(typed) => typed,
        Err(malformed) => return write_refusal(services, refuse(malformed.reason())).await,
    };
    if !rate_taken && over_rate(services, end_user_ip.as_deref()) {
        return write_refusal(services, refuse("rate_limited")).await;
    }
    let attempt = Attempt {
        target: target(client, IdOrName::Name(user), None),
        first_factor_checked: typed.password.is_none(),
        password: typed.password,
        otp: Some(typed.code),
        end_user_ip: end_user_ip.clone(),
    };
    let result = authenticator(services)
        .authenticate(&caller, attempt, crate::clock::now())
        .await;
    conclude(services, result, refuse, Step::Whole).await
}

/// A login that waits for its approval.
struct Held {
    user: IdOrName,
    transaction: String,
    end_user_ip: Option<String>,
}

/// Holds an Access-Request whose approval was asked until the user decides in Telegram or the
/// client's approval wait runs out, whichever comes first: accepted when approved (once),
/// rejected when denied, expired or not decided in time.
///
/// A held login costs memory, not work: the request's permit among the evaluations in flight
/// (`radius.max_in_flight`, meant for the CPU's work of checking passwords and codes) is given
/// back before the wait, and so is its place among its RadSec connection's requests
/// (`radius.radsec_max_in_flight_per_connection`, which bounds what one peer has read ahead),
/// so held logins never crowd out others. They are bounded apart, by the registry of approval
/// waiters (`auth.approval_waiters_max`), shared with the API's waits and asked for room before
/// an approval starts; a login it cannot take is rejected (never dropped: a dropped request
/// would be retried, and a retry would send another message). While held, the request stays in
/// flight in `replies`, so its retransmits join it: it is evaluated once, and sends one message.
///
/// Number matching over RADIUS: a gateway in a one-field mode shows nothing before the user
/// answers, so those approvals offer Approve and Deny with no number; the challenge mode shows
/// the number in the challenge's Reply-Message, and keeps the resource's number matching.
async fn hold(
    services: &Services,
    client: &Client,
    caller: &Caller,
    held: Held,
    permit: &mut Option<Places>,
    refuse: &impl Fn(&'static str) -> AuditEntry,
) -> Option<Access> {
    drop(permit.take());
    let attempt = Attempt {
        target: target(client, held.user, Some(held.transaction.clone())),
        // The password was checked when the approval was asked.
        first_factor_checked: true,
        password: None,
        otp: None,
        end_user_ip: held.end_user_ip,
    };
    let transaction = held.transaction.clone();
    let until = tokio::time::Instant::now() + client.approval_wait;
    let result = authenticator(services)
        .authenticate_or_wait(caller, attempt, Some(until), crate::clock::now())
        .await;
    match result {
        Ok(Answer::Pending { .. }) => {
            // The gateway is answered no: the approval ends too, so that its message says it
            // expired and a late press lets no one in.
            if let Err(error) = services
                .store
                .end_pending_approval(transaction, crate::clock::now())
                .await
            {
                tracing::error!(%error, "cannot end the approval of a RADIUS login");
            }
            write_refusal(services, refuse("approval_wait_over")).await
        }
        Err(RuleError::Busy(_)) => write_refusal(services, refuse("approval_waiters_full")).await,
        other => conclude(services, other, refuse, Step::Whole).await,
    }
}

/// What a request of `client` authenticates: `user` in the client's resource, within
/// `transaction` when it answers one.
fn target(client: &Client, user: IdOrName, transaction: Option<String>) -> AuthTarget {
    AuthTarget {
        resource: IdOrName::Id(client.resource_id),
        user: Some(user),
        token: None,
        transaction,
        address: None,
    }
}

/// The authentication, with the services the API's uses and the API's rate limit per account.
fn authenticator(services: &Services) -> Authenticator<'_> {
    Authenticator {
        store: &services.store,
        keys: &services.keys,
        config: &services.auth,
        metrics: &services.metrics,
        passwords: &services.passwords,
        guard: &services.guard,
        per_account: Some(&services.per_account),
        wakeup: &services.wakeup,
        directories: &services.directories,
        waiters: &services.waiters,
    }
}

/// Whether the end user's address is over its rate limit (`Calling-Station-Id`); takes a
/// request from its bucket.
fn over_rate(services: &Services, end_user_ip: Option<&str>) -> bool {
    end_user_ip.is_some_and(|address| {
        services
            .end_user_ip
            .take(address, std::time::Instant::now())
            .is_err()
    })
}

/// Which step of a login a request is, for what a challenge answered to it becomes.
enum Step<'a> {
    /// Everything in one request: a challenge cannot be answered by this client's users.
    Whole,
    /// The challenge mode's password: a challenge becomes the Access-Challenge, its State
    /// bound to this client, user and resource.
    Password(&'a Binding<'a>),
}

/// The one mapping of the authentication's outcome to a RADIUS answer: accepted, rejected
/// (a refusal of the request is a rejection, with its audit line), challenged (the challenge
/// mode's password step), or dropped (busy, or a failure of ours: the gateway retries).
async fn conclude(
    services: &Services,
    result: Result<Answer, RuleError>,
    refuse: impl Fn(&'static str) -> AuditEntry,
    step: Step<'_>,
) -> Option<Access> {
    match result {
        Ok(Answer::Accepted { .. }) => Some(Access::Accepted),
        // A RADIUS request never answers an approval yet: pending is no access.
        Ok(Answer::Rejected | Answer::Expired | Answer::Pending { .. }) => {
            Some(Access::Rejected(Vec::new()))
        }
        Ok(Answer::Challenge {
            transaction,
            expected,
        }) => match step {
            Step::Password(binding) => {
                challenge_reply(services, binding, &transaction, &expected).await
            }
            // Codes were sent and a challenge opened: without the challenge mode, this
            // client's users cannot answer it here.
            Step::Whole => Some(Access::Rejected(Vec::new())),
        },
        Err(RuleError::Refused(Refused::TooMany { .. })) => {
            write_refusal(services, refuse("too_many_attempts")).await
        }
        Err(RuleError::Refused(refused)) => {
            tracing::debug!(%refused, "RADIUS request refused");
            write_refusal(services, refuse("refused")).await
        }
        Err(RuleError::Busy(_)) => {
            drop_packet(&services.metrics, "busy");
            None
        }
        Err(RuleError::Failed(error)) => {
            tracing::error!(error = %format!("{error:#}"), "RADIUS authentication failed");
            drop_packet(&services.metrics, "failed");
            None
        }
    }
}

/// Writes the audit line of a rejection decided here; the answer is Access-Reject once it is
/// written.
async fn write_refusal(services: &Services, entry: AuditEntry) -> Option<Access> {
    match services.store.audit(entry).await {
        Ok(()) => Some(Access::Rejected(Vec::new())),
        Err(error) => {
            tracing::error!(%error, "cannot write a RADIUS audit line");
            drop_packet(&services.metrics, "failed");
            None
        }
    }
}

/// An Access-Request of a client in the challenge mode. Without a State, its field is the
/// password: a right one is answered with an Access-Challenge (the codes sent, or asked of the
/// user's app or hardware token) whose State stands in for the password once. With a State,
/// the field is the code that answers it: the State must open and be this client's, user's and
/// resource's; its transaction is taken, so the State is spent whatever the code; the code is
/// judged within that transaction with the password counted as checked, and a rejection voids
/// the codes sent for it (the gateway starts over). Every Access-Reject of that step tells the
/// same, whatever the reason.
async fn challenge_mode(
    services: &Services,
    client: &Client,
    packet: &Packet,
    field: &[u8],
    caller: &Caller,
    refuse: &impl Fn(&'static str) -> AuditEntry,
    permit: &mut Option<Places>,
) -> Option<Access> {
    let end_user_ip = end_user_ip(packet);
    let user = packet.text(USER_NAME).unwrap_or_default();
    let binding = Binding {
        client: &client.name,
        user: &user,
        resource_id: client.resource_id,
    };
    let now = crate::clock::now();
    let Some(state) = packet.first(STATE) else {
        let password = match input::password(field) {
            Ok(password) => password,
            Err(malformed) => return write_refusal(services, refuse(malformed.reason())).await,
        };
        if over_rate(services, end_user_ip.as_deref()) {
            return write_refusal(services, refuse("rate_limited")).await;
        }
        if services.waiters.has_room() {
            let target = target(client, IdOrName::Name(user.clone()), None);
            // The challenge's text can show the number: the resource's number matching holds.
            let asked = authenticator(services)
                .ask_approval_after_password(
                    caller,
                    target,
                    password.clone(),
                    end_user_ip.clone(),
                    true,
                    now,
                )
                .await;
            match asked {
                Ok(PasswordThenApproval::NotAllowed) => {}
                Ok(PasswordThenApproval::Answered(answer)) => {
                    return conclude(services, Ok(answer), refuse, Step::Password(&binding)).await;
                }
                Ok(PasswordThenApproval::Asked(asked)) => {
                    return approval_challenge(services, &binding, &asked);
                }
                Err(error) => {
                    return conclude(services, Err(error), refuse, Step::Password(&binding)).await;
                }
            }
        }
        let attempt = Attempt {
            target: target(client, IdOrName::Name(user.clone()), None),
            first_factor_checked: false,
            password: Some(password),
            otp: None,
            end_user_ip,
        };
        let result = authenticator(services)
            .authenticate(caller, attempt, now)
            .await;
        return conclude(services, result, refuse, Step::Password(&binding)).await;
    };
    let told = |access: Option<Access>| {
        access.map(|access| match access {
            Access::Rejected(_) => {
                Access::Rejected(challenge::reply_messages(challenge::NOT_ACCEPTED))
            }
            other => other,
        })
    };
    if over_rate(services, end_user_ip.as_deref()) {
        return told(write_refusal(services, refuse("rate_limited")).await);
    }
    let transaction = match challenge::open(&services.keys, &binding, state, now) {
        Ok(transaction) => transaction,
        Err(unusable) => return told(write_refusal(services, refuse(unusable.reason())).await),
    };
    match services
        .store
        .approval_of_transaction(transaction.clone())
        .await
    {
        Ok(Some(_)) => {
            let held = Held {
                user: IdOrName::Name(user.clone()),
                transaction,
                end_user_ip,
            };
            return approval_answer(services, client, field, caller, held, refuse, permit).await;
        }
        Ok(None) => {}
        Err(error) => {
            tracing::error!(%error, "cannot read a RADIUS challenge's approval");
            drop_packet(&services.metrics, "failed");
            return None;
        }
    }
    let taken = services
        .store
        .take_password_transaction(transaction.clone(), client.resource_id, now)
        .await;
    let user_id = match taken {
        Ok(Some(user_id)) => user_id,
        Ok(None) => return told(write_refusal(services, refuse("state_used")).await),
        Err(error) => {
            tracing::error!(%error, "cannot take a RADIUS challenge's transaction");
            drop_packet(&services.metrics, "failed");
            return None;
        }
    };
    let access = match split(&client.mode, field) {
        Err(malformed) => write_refusal(services, refuse(malformed.reason())).await,
        Ok(typed) => {
            let attempt = Attempt {
                target: target(client, IdOrName::Id(user_id), Some(transaction.clone())),
                // The transaction just taken stood in for the password checked for this user
                // in this resource.
                first_factor_checked: true,
                password: None,
                otp: Some(typed.code),
                end_user_ip,
            };
            let result = authenticator(services)
                .authenticate(caller, attempt, now)
                .await;
            conclude(services, result, refuse, Step::Whole).await
        }
    };
    if !matches!(access, Some(Access::Accepted))
        && let Err(error) = services.store.void_transaction_codes(transaction).await
    {
        tracing::error!(%error, "cannot void the codes of a RADIUS challenge");
    }
    told(access)
}

/// The Access-Challenge of a right password whose approval was asked in Telegram: its State
/// (the approval's transaction, sealed and bound), a Reply-Message that says to approve in
/// Telegram — with the number to choose, under number matching — or type the code, and the
/// approval's remaining life as Session-Timeout. No code is sent: the user approves, or types
/// the code of their authenticator app or hardware token.
fn approval_challenge(
    services: &Services,
    binding: &Binding<'_>,
    asked: &crate::auth::ApprovalAsked,
) -> Option<Access> {
    let now = crate::clock::now();
    let state = match challenge::seal(
        &services.keys,
        binding,
        &asked.transaction,
        asked.expires_at,
    ) {
        Ok(state) => state,
        Err(error) => {
            tracing::error!(%error, "cannot answer a RADIUS password with a challenge");
            drop_packet(&services.metrics, "failed");
            return None;
        }
    };
    let remaining = u32::try_from((asked.expires_at - now).max(1)).unwrap_or(u32::MAX);
    let mut attributes = vec![Attribute::new(STATE, state)];
    attributes.extend(challenge::reply_messages(&challenge::approval_prompt(
        asked.number,
    )));
    attributes.push(Attribute::new(SESSION_TIMEOUT, remaining.to_be_bytes()));
    Some(Access::Challenged(attributes))
}

/// The answer to a challenge whose approval was asked: nothing or the approval word waits for
/// the approval (held, see [`hold`]); anything else is a code, judged within the approval's
/// transaction with the password counted as checked. The State is not taken as a code
/// challenge's is: the approval is claimed once, and a code typed ends the transaction (and
/// the approval with it); a wrong code counts as a failed login.
async fn approval_answer(
    services: &Services,
    client: &Client,
    field: &[u8],
    caller: &Caller,
    held: Held,
    refuse: &impl Fn(&'static str) -> AuditEntry,
    permit: &mut Option<Places>,
) -> Option<Access> {
    let Ok(text) = std::str::from_utf8(field).map(str::trim) else {
        let access = write_refusal(services, refuse(input::Malformed::NotText.reason())).await;
        return access
            .map(|_| Access::Rejected(challenge::reply_messages(challenge::NOT_ACCEPTED)));
    };
    let waits = text.is_empty()
        || client
            .approval_word
            .as_deref()
            .is_some_and(|word| text.eq_ignore_ascii_case(word));
    let access = if waits {
        let access = hold(services, client, caller, held, permit, refuse).await;
        return access.map(|access| match access {
            Access::Rejected(_) => {
                Access::Rejected(challenge::reply_messages(challenge::NOT_APPROVED))
            }
            other => other,
        });
    } else {
        let attempt = Attempt {
            target: target(client, held.user, Some(held.transaction)),
            // The State, bound to this client, user and resource, is given only for a right
            // password.
            first_factor_checked: true,
            password: None,
            otp: Some(text.to_string()),
            end_user_ip: held.end_user_ip,
        };
        let result = authenticator(services)
            .authenticate(caller, attempt, crate::clock::now())
            .await;
        conclude(services, result, refuse, Step::Whole).await
    };
    access.map(|access| match access {
        Access::Rejected(_) => Access::Rejected(challenge::reply_messages(challenge::NOT_ACCEPTED)),
        other => other,
    })
}

/// The Access-Challenge of a right password: its State (the transaction, sealed and bound),
/// the Reply-Message that names the codes the user may type, and the challenge's remaining
/// life as Session-Timeout (RFC 2865 §5.27). When no code can answer it (none could be sent,
/// and no app or hardware token is expected), the login ends in an Access-Reject that says so.
async fn challenge_reply(
    services: &Services,
    binding: &Binding<'_>,
    transaction: &str,
    expected: &[Expected],
) -> Option<Access> {
    let now = crate::clock::now();
    let failed = |error: &dyn std::fmt::Display| {
        tracing::error!(%error, "cannot answer a RADIUS password with a challenge");
        drop_packet(&services.metrics, "failed");
        None
    };
    let Some(prompt) = challenge::prompt(expected) else {
        let taken = services
            .store
            .take_password_transaction(transaction.to_string(), binding.resource_id, now)
            .await;
        return match taken {
            Ok(_) => Some(Access::Rejected(challenge::reply_messages(
                challenge::NOTHING_SENT,
            ))),
            Err(error) => failed(&error),
        };
    };
    let expires_at = match services
        .store
        .transaction_expiry(transaction.to_string(), now)
        .await
    {
        Ok(Some(expires_at)) => expires_at,
        // Expired in the moment since it was made: the user logs in again.
        Ok(None) => return Some(Access::Rejected(Vec::new())),
        Err(error) => return failed(&error),
    };
    let state = match challenge::seal(&services.keys, binding, transaction, expires_at) {
        Ok(state) => state,
        Err(error) => return failed(&error),
    };
    let remaining = u32::try_from((expires_at - now).max(1)).unwrap_or(u32::MAX);
    let mut attributes = vec![Attribute::new(STATE, state)];
    attributes.extend(challenge::reply_messages(&prompt));
    attributes.push(Attribute::new(SESSION_TIMEOUT, remaining.to_be_bytes()));
    Some(Access::Challenged(attributes))
}

/// Records an Accounting-Request in the audit log (RFC 2866: answered only once recorded).
async fn record_accounting(
    services: &Services,
    client: &Client,
    packet: &Packet,
    source: SocketAddr,
    port: Port,
) -> Option<()> {
    let status = match packet
        .first(ACCT_STATUS_TYPE)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map(u32::from_be_bytes)
    {
        Some(1) => "start".to_string(),
        Some(2) => "stop".to_string(),
        Some(3) => "interim".to_string(),
        Some(7) => "accounting-on".to_string(),
        Some(8) => "accounting-off".to_string(),
        Some(other) => format!("status {other}"),
        None => "no status".to_string(),
    };
    let short = |kind: u8| {
        packet
            .text(kind)
            .map(|text| {
                text.chars()
                    .filter(|c| !c.is_control())
                    .take(64)
                    .collect::<String>()
            })
            .unwrap_or_default()
    };
    let caller = caller(client, packet, source, port);
    let mut entry = AuditEntry::new(crate::clock::now(), caller.actor, "radius.accounting", "ok");
    entry.client_ip = caller.client_ip;
    entry.end_user_ip = end_user_ip(packet);
    entry.resource_id = Some(client.resource_id);
    entry.detail = Some(format!(
        "{}; {status}; user {}; session {}; NAS-Identifier {}{}",
        port.transport(),
        short(USER_NAME),
        short(ACCT_SESSION_ID),
        short(NAS_IDENTIFIER),
        accounting_class(packet)
    ));
    match services.store.audit(entry).await {
        Ok(()) => Some(()),
        Err(error) => {
            tracing::error!(%error, "cannot record a RADIUS accounting request");
            drop_packet(&services.metrics, "failed");
            None
        }
    }
}

/// The authentication an Accounting-Request belongs to, when its `Class` is one this server
/// gave: `; request <id>`, the id of the authentication's audit line.
fn accounting_class(packet: &Packet) -> String {
    packet
        .attributes
        .iter()
        .filter(|attribute| attribute.kind == CLASS)
        .find_map(|attribute| class_request_id(&attribute.value))
        .map(|id| format!("; request {id}"))
        .unwrap_or_default()
}
