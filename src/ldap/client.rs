//! Speaking to a directory: connections over each address in turn (StartTLS or ldaps with the
//! directory's CA or the system's roots, under the connect timeout), the service account's
//! bind, paged searches (RFC 2696) under the search timeout, and binds as a person to check a
//! password. Everything is async on tokio; nothing blocks an executor thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::adapters::{EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};

use super::bind::{BindRefusal, refusal};
use super::entry::{stable_id, stable_id_value};
use super::filter;
pub use super::pool::Attempt;
use super::pool::{Lease, Pool};
use super::settings::{Kind, Tls};
use crate::store::directories::DirectoryFields;

/// Entries asked for in one page of a paged search (below Active Directory's 1,000).
pub const PAGE_SIZE: i32 = 500;

/// Why a directory could not answer. The words say what happened, never a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// No address gave a bound connection; each one's reason, in order.
    #[error("no directory server answered: {}", describe(.0))]
    Unreachable(Vec<Attempt>),
    #[error("the search failed at {url}: {reason}")]
    Search { url: String, reason: String },
    /// Every pooled connection stayed in use for the whole connect timeout.
    #[error("every connection to the directory is in use")]
    Busy,
}

fn describe(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|attempt| format!("{} ({})", attempt.url, attempt.problem))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A person as otpgate reads them from the directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Person {
    pub dn: String,
    /// The first login attribute the entry has.
    pub login: Option<String>,
    /// The stable id in text; None when the entry lacks it (such an entry cannot be linked).
    pub stable_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
}

/// A successful test of the settings: the address that answered, after the service account's
/// bind and a read of the base DN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tested {
    pub url: String,
    /// Addresses before it that did not answer, with their reasons.
    pub skipped: Vec<Attempt>,
}

/// The people the settings find: how many in all (every page read), and the first few.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub url: String,
    pub count: usize,
    pub people: Vec<Person>,
}

/// What a sync reads: every person, and the members of each group asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Everyone {
    pub url: String,
    pub people: Vec<Person>,
    /// For each group asked for, in order: the stable ids of the people in it.
    pub members: Vec<Vec<String>>,
}

/// What a bind as a person said of their password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    Accepted,
    Refused(BindRefusal),
    /// The entry is gone from the directory, or no longer among its people.
    NotInDirectory,
}

/// A directory's settings with the service account's password in clear, for the length of a
/// request.
pub struct Directory {
    fields: DirectoryFields,
    kind: Kind,
    tls: Tls,
    bind_password: String,
    /// Where connections are kept between uses; None: one connection per use.
    pool: Option<Arc<Pool>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("name", &self.fields.name)
            .field("urls", &self.fields.urls)
            .finish_non_exhaustive()
    }
}

struct Bound {
    ldap: Ldap,
    url: String,
    skipped: Vec<Attempt>,
}

impl Directory {
    /// `fields` as `settings::check` left them.
    pub fn new(fields: DirectoryFields, bind_password: String) -> Directory {
        let kind = Kind::parse(&fields.kind).unwrap_or(Kind::OpenLdap);
        let tls = Tls::parse(&fields.tls).unwrap_or(Tls::StartTls);
        Directory {
            fields,
            kind,
            tls,
            bind_password,
            pool: None,
        }
    }

    /// The same directory, its lookups and password checks on the connections of `pool`.
    pub fn with_pool(self, pool: Arc<Pool>) -> Directory {
        Directory {
            pool: Some(pool),
            ..self
        }
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.fields.connect_timeout_seconds.clamp(1, 60) as u64)
    }

    fn search_timeout(&self) -> Duration {
        Duration::from_secs(self.fields.search_timeout_seconds.clamp(1, 300) as u64)
    }

    fn people_filter(&self) -> String {
        filter::people(
            &self.fields.user_filter,
            filter::group_clause(self.kind.members(), self.fields.user_group.as_deref()),
        )
    }

    /// The attributes a person is read with.
    fn attributes(&self) -> Vec<String> {
        let mut attributes = self.fields.login_attributes.clone();
        attributes.push(self.fields.id_attribute.clone());
        for mapped in [
            &self.fields.first_name_attribute,
            &self.fields.last_name_attribute,
            &self.fields.email_attribute,
            &self.fields.mobile_attribute,
        ] {
            if !mapped.is_empty() {
                attributes.push(mapped.clone());
            }
        }
        attributes
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        match &self.fields.ca_pem {
            Some(pem) => {
                for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let certificate =
                        certificate.map_err(|_| "the CA certificate cannot be read".to_string())?;
                    roots
                        .add(certificate)
                        .map_err(|_| "the CA certificate cannot be used".to_string())?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|_| "TLS cannot be set up".to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// One connection to `url`, TLS as the settings say, under the connect timeout.
    async fn open(&self, url: &str) -> Result<Ldap, String> {
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.connect_timeout());
        if self.tls != Tls::None {
            settings = settings
                .set_config(self.tls_config()?)
                .set_starttls(self.tls == Tls::StartTls);
        }
        let connecting = LdapConnAsync::with_settings(settings, url);
        let (connection, ldap) = tokio::time::timeout(self.connect_timeout(), connecting)
            .await
            .map_err(|_| format!("no answer within {} s", self.fields.connect_timeout_seconds))?
            .map_err(|error| connection_problem(&error))?;
        let url = url.to_string();
        tokio::spawn(async move {
            if let Err(error) = connection.drive().await {
                tracing::debug!(%url, %error, "directory connection ended");
            }
        });
        Ok(ldap)
    }

    /// A connection bound as the service account: the first address that gives one.
    async fn bind_service(&self) -> Result<Bound, DirectoryError> {
        let mut skipped = Vec::new();
        for url in &self.fields.urls {
            match self.open_and_bind(url).await {
                Ok(ldap) => {
                    return Ok(Bound {
                        ldap,
                        url: url.clone(),
                        skipped,
                    });
                }
                Err(problem) => {
                    tracing::warn!(directory = %self.fields.name, %url, %problem, "directory server skipped");
                    skipped.push(Attempt {
                        url: url.clone(),
                        problem,
                    });
                }
            }
        }
        Err(DirectoryError::Unreachable(skipped))
    }

    async fn open_and_bind(&self, url: &str) -> Result<Ldap, String> {
        let mut ldap = self.open(url).await?;
        let result = ldap
            .with_timeout(self.connect_timeout())
            .simple_bind(&self.fields.bind_dn, &self.bind_password)
            .await
            .map_err(|error| connection_problem(&error))?;
        match result.rc {
            0 => Ok(ldap),
            rc => {
                let _ = ldap.unbind().await;
                Err(match refusal(rc, &result.text) {
                    Some(_) => "the service account's bind DN or password was refused".into(),
                    None => format!("the service account's bind failed ({})", result_name(rc)),
                })
            }
        }
    }

    /// Test connection: the service account binds at the first address that answers, and the
    /// base DN is read.
    pub async fn test(&self) -> Result<Tested, DirectoryError> {
        let Bound {
            mut ldap,
            url,
            skipped,
        } = self.bind_service().await?;
        let found = ldap
            .with_timeout(self.search_timeout())
            .search(
                &self.fields.base_dn,
                Scope::Base,
                "(objectClass=*)",
                vec!["1.1"],
            )
            .await;
        let _ = ldap.unbind().await;
        let search_failed = |reason: String| DirectoryError::Search {
            url: url.clone(),
            reason,
        };
        let result = found.map_err(|error| search_failed(connection_problem(&error)))?;
        match result.1.rc {
            0 if !result.0.is_empty() => Ok(Tested { url, skipped }),
            0 | 32 => Err(search_failed(format!(
                "the base DN {} was not found (or the service account may not read it)",
                self.fields.base_dn
            ))),
            rc => Err(search_failed(result_name(rc))),
        }
    }

    /// Preview: every person the settings find, counted through every page, and the first
    /// `limit` of them.
    pub async fn preview(&self, limit: usize) -> Result<Preview, DirectoryError> {
        let mut bound = self.bind_service().await?;
        let url = bound.url.clone();
        let mut people = Vec::new();
        let mut count = 0;
        let searched = self
            .search(&mut bound.ldap, &self.people_filter(), |person| {
                count += 1;
                if people.len() < limit {
                    people.push(person);
                }
            })
            .await;
        let _ = bound.ldap.unbind().await;
        searched.map_err(|reason| DirectoryError::Search {
            url: url.clone(),
            reason,
        })?;
        Ok(Preview { url, count, people })
    }

    /// A connection bound as the service account: a pooled one when the pool has one, else
    /// the first address that gives one. A directory found down is not tried again for a
    /// few seconds (`pool::DOWN_FOR`): its callers are answered at once.
    async fn service_lease(&self) -> Result<Lease, DirectoryError> {
        let Some(pool) = &self.pool else {
            let bound = self.bind_service().await?;
            return Ok(Lease::alone(bound.ldap, bound.url));
        };
        if let Some(attempts) = pool.down(Instant::now()) {
            return Err(DirectoryError::Unreachable(attempts));
        }
        let permit = pool
            .search
            .permit(self.connect_timeout())
            .await
            .ok_or(DirectoryError::Busy)?;
        if let Some((ldap, url)) = pool.search.take(Instant::now()) {
            return Ok(Lease::pooled(ldap, url, pool.search.clone(), permit));
        }
        match self.bind_service().await {
            Ok(bound) => {
                pool.opened("search");
                Ok(Lease::pooled(
                    bound.ldap,
                    bound.url,
                    pool.search.clone(),
                    permit,
                ))
            }
            Err(DirectoryError::Unreachable(attempts)) => {
                pool.mark_down(attempts.clone(), Instant::now());
                Err(DirectoryError::Unreachable(attempts))
            }
            Err(error) => Err(error),
        }
    }

    /// A connection to bind a person on: from the pool's bind lane (connections that only
    /// ever bind), else a new one at the first address that answers. Its identity is
    /// whoever bound last; it never searches.
    async fn bind_lease(&self) -> Result<Lease, DirectoryError> {
        let pooled = match &self.pool {
            Some(pool) => {
                let permit = pool
                    .bind
                    .permit(self.connect_timeout())
                    .await
                    .ok_or(DirectoryError::Busy)?;
                if let Some((ldap, url)) = pool.bind.take(Instant::now()) {
                    return Ok(Lease::pooled(ldap, url, pool.bind.clone(), permit));
                }
                Some((pool.bind.clone(), permit))
            }
            None => None,
        };
        let mut skipped = Vec::new();
        for url in &self.fields.urls {
            match self.open(url).await {
                Ok(ldap) => {
                    return Ok(match pooled {
                        Some((lane, permit)) => {
                            if let Some(pool) = &self.pool {
                                pool.opened("bind");
                            }
                            Lease::pooled(ldap, url.clone(), lane, permit)
                        }
                        None => Lease::alone(ldap, url.clone()),
                    });
                }
                Err(problem) => skipped.push(Attempt {
                    url: url.clone(),
                    problem,
                }),
            }
        }
        if let Some(pool) = &self.pool {
            pool.mark_down(skipped.clone(), Instant::now());
        }
        Err(DirectoryError::Unreachable(skipped))
    }

    /// Everything a sync reads, on one connection: every person the settings find (every page
    /// read), and for each of `groups` (a DN or a filter) the stable ids of those of them in it.
    pub async fn everyone(&self, groups: &[String]) -> Result<Everyone, DirectoryError> {
        let mut bound = self.bind_service().await?;
        let url = bound.url.clone();
        let mut people = Vec::new();
        let mut searched = self
            .search(&mut bound.ldap, &self.people_filter(), |person| {
                people.push(person)
            })
            .await;
        let mut members = Vec::with_capacity(groups.len());
        for group in groups {
            if searched.is_err() {
                break;
            }
            let clause = filter::group_clause(self.kind.members(), Some(group));
            let mut ids = Vec::new();
            searched = self
                .search(
                    &mut bound.ldap,
                    &filter::people(&self.people_filter(), clause),
                    |person| ids.extend(person.stable_id),
                )
                .await;
            members.push(ids);
        }
        let _ = bound.ldap.unbind().await;
        searched.map_err(|reason| DirectoryError::Search {
            url: url.clone(),
            reason,
        })?;
        Ok(Everyone {
            url,
            people,
            members,
        })
    }

    /// The person whose login is `login`, if the directory lets them in (exactly one entry).
    pub async fn find_person(&self, login: &str) -> Result<Option<Person>, DirectoryError> {
        let mut lease = self.service_lease().await?;
        let filter = filter::by_login(&self.people_filter(), &self.fields.login_attributes, login);
        let found = self.one(&mut lease.ldap, &filter).await;
        let url = lease.url.clone();
        lease.finish(found.is_ok()).await;
        found.map_err(|reason| DirectoryError::Search { url, reason })
    }

    /// Which of `groups` (each a DN or a filter, as a mapping names it) the person whose
    /// stable id is `stable` is in: a search each, on a connection of the service account.
    pub async fn groups_of(
        &self,
        stable: &str,
        groups: &[String],
    ) -> Result<Vec<bool>, DirectoryError> {
        let Some(value) = stable_id_value(&self.fields.id_attribute, stable) else {
            return Ok(vec![false; groups.len()]);
        };
        let mut lease = self.service_lease().await?;
        let mut found = Vec::with_capacity(groups.len());
        let mut searched = Ok(());
        for group in groups {
            let clause = filter::group_clause(self.kind.members(), Some(group));
            let people = filter::people(&self.people_filter(), clause);
            let filter = filter::by_id(&people, &self.fields.id_attribute, &value);
            match self.one(&mut lease.ldap, &filter).await {
                Ok(person) => found.push(person.is_some()),
                Err(reason) => {
                    searched = Err(reason);
                    break;
                }
            }
        }
        let url = lease.url.clone();
        lease.finish(searched.is_ok()).await;
        searched.map_err(|reason| DirectoryError::Search { url, reason })?;
        Ok(found)
    }

    /// Checks a person's password by binding as them: the entry is found by its stable id
    /// (a renamed person keeps theirs) on a connection of the service account, and the bind
    /// made on a connection of the bind lane (see `pool`). An empty password is refused
    /// before any bind: it would be an anonymous bind, which "succeeds" (RFC 4513 §5.1.2).
    pub async fn check_password(
        &self,
        stable: &str,
        password: &str,
    ) -> Result<PasswordCheck, DirectoryError> {
        if password.is_empty() {
            return Ok(PasswordCheck::Refused(BindRefusal::WrongPassword));
        }
        let Some(value) = stable_id_value(&self.fields.id_attribute, stable) else {
            return Ok(PasswordCheck::NotInDirectory);
        };
        let mut lease = self.service_lease().await?;
        let filter = filter::by_id(&self.people_filter(), &self.fields.id_attribute, &value);
        let found = self.one(&mut lease.ldap, &filter).await;
        let url = lease.url.clone();
        lease.finish(found.is_ok()).await;
        let person = match found {
            Ok(Some(person)) => person,
            Ok(None) => return Ok(PasswordCheck::NotInDirectory),
            Err(reason) => return Err(DirectoryError::Search { url, reason }),
        };
        let mut lease = self.bind_lease().await?;
        let result = lease
            .ldap
            .with_timeout(self.connect_timeout())
            .simple_bind(&person.dn, password)
            .await;
        let url = lease.url.clone();
        // A bind the server answered, yes or no, leaves the connection usable.
        lease.finish(result.is_ok()).await;
        let result = result.map_err(|error| DirectoryError::Search {
            url: url.clone(),
            reason: connection_problem(&error),
        })?;
        match result.rc {
            0 => Ok(PasswordCheck::Accepted),
            rc => match refusal(rc, &result.text) {
                Some(refused) => Ok(PasswordCheck::Refused(refused)),
                None => Err(DirectoryError::Search {
                    url,
                    reason: format!("the bind failed ({})", result_name(rc)),
                }),
            },
        }
    }

    /// The one person `filter` finds; None when none or more than one.
    async fn one(&self, ldap: &mut Ldap, filter: &str) -> Result<Option<Person>, String> {
        let mut found = Vec::new();
        self.search(ldap, filter, |person| {
            if found.len() < 2 {
                found.push(person);
            }
        })
        .await?;
        Ok(if found.len() == 1 { found.pop() } else { None })
    }

    /// A paged search under the base DN, each person handed to `each`.
    async fn search(
        &self,
        ldap: &mut Ldap,
        filter: &str,
        mut each: impl FnMut(Person),
    ) -> Result<(), String> {
        let attributes = self.attributes();
        let searching = async {
            let adapters: Vec<Box<dyn ldap3::adapters::Adapter<_, _>>> = vec![
                Box::new(EntriesOnly::new()),
                Box::new(PagedResults::new(PAGE_SIZE)),
            ];
            let mut stream = ldap
                .with_timeout(self.search_timeout())
                .streaming_search_with(
                    adapters,
                    &self.fields.base_dn,
                    Scope::Subtree,
                    filter,
                    attributes.clone(),
                )
                .await
                .map_err(|error| connection_problem(&error))?;
            while let Some(entry) = stream
                .next()
                .await
                .map_err(|error| connection_problem(&error))?
            {
                each(self.person(SearchEntry::construct(entry)));
            }
            let result = stream.finish().await;
            match result.rc {
                0 => Ok(()),
                32 => Err("the base DN was not found".to_string()),
                rc => Err(result_name(rc)),
            }
        };
        tokio::time::timeout(self.search_timeout(), searching)
            .await
            .map_err(|_| format!("no answer within {} s", self.fields.search_timeout_seconds))?
    }

    fn person(&self, entry: SearchEntry) -> Person {
        let text = |attribute: &str| -> Option<String> {
            if attribute.is_empty() {
                return None;
            }
            entry
                .attrs
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
                .and_then(|(_, values)| values.first())
                .map(|value| value.trim().to_string())
                .filter(|value| !value.is_empty())
        };
        let raw = |attribute: &str| -> Option<Vec<u8>> {
            let texts = entry
                .attrs
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
                .and_then(|(_, values)| values.first())
                .map(|value| value.as_bytes().to_vec());
            texts.or_else(|| {
                entry
                    .bin_attrs
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
                    .and_then(|(_, values)| values.first().cloned())
            })
        };
        Person {
            login: self
                .fields
                .login_attributes
                .iter()
                .find_map(|attribute| text(attribute)),
            stable_id: raw(&self.fields.id_attribute)
                .and_then(|value| stable_id(&self.fields.id_attribute, &value)),
            first_name: text(&self.fields.first_name_attribute),
            last_name: text(&self.fields.last_name_attribute),
            email: text(&self.fields.email_attribute),
            mobile: text(&self.fields.mobile_attribute),
            dn: entry.dn,
        }
    }
}

/// An ldap3 error in words for an administrator, without the server's whole answer.
fn connection_problem(error: &ldap3::LdapError) -> String {
    use ldap3::LdapError;
    match error {
        LdapError::Io { source } => match source.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::TimedOut => "connection timed out".into(),
            std::io::ErrorKind::InvalidData => {
                "TLS failed (is the certificate signed by the CA given?)".into()
            }
            _ => format!("connection failed: {source}"),
        },
        LdapError::Timeout { .. } => "no answer in time".into(),
        LdapError::LdapResult { result } => result_name(result.rc),
        LdapError::UrlParsing { .. } | LdapError::UnknownScheme(_) => {
            "the address cannot be used".into()
        }
        other => {
            let text = other.to_string();
            if text.to_ascii_lowercase().contains("certificate")
                || text.to_ascii_lowercase().contains("tls")
            {
                "TLS failed (is the certificate signed by the CA given?)".into()
            } else {
                "the connection failed".into()
            }
        }
    }
}

/// An LDAP result code in words (RFC 4511 appendix A).
fn result_name(rc: u32) -> String {
    let name = match rc {
        1 => "operations error",
        2 => "protocol error",
        3 => "time limit exceeded",
        4 => "size limit exceeded",
        8 => "stronger authentication required",
        13 => "confidentiality required (use StartTLS or ldaps)",
        32 => "no such object",
        34 => "invalid DN syntax",
        48 => "inappropriate authentication",
        49 => "invalid credentials",
        50 => "insufficient access rights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwilling to perform",
        _ => return format!("result code {rc}"),
    };
    format!("{name} ({rc})")
}
