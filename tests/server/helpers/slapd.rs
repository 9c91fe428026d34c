//! A real OpenLDAP `slapd`, started by the test that needs it: unprivileged, on a free port of
//! the loopback, with a cn=config of its own in a temporary directory (`slapadd -n0 -F`) and a
//! directory the test generates — thousands of people, so that a search must page (the server
//! answers at most `SIZE_LIMIT` entries to a search without RFC 2696 paging, as Active
//! Directory does with 1,000), a few groups, a service account to bind with.
//!
//! Without slapd the tests are skipped with a line on stderr, unless `CI` is set: CI must run
//! them (`.ci/run` installs `slapd` and `ldap-utils`). A system slapd that Debian's package may
//! have started on port 389 plays no part.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const SCHEMA_DIR: &str = "/etc/ldap/schema";
const MODULE_DIR: &str = "/usr/lib/ldap";

/// The suffix of the test directory.
pub const BASE_DN: &str = "dc=example,dc=org";
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=org";
/// The account otpgate binds with to search, as an administrator would give it.
pub const SERVICE_DN: &str = "cn=otpgate,ou=services,dc=example,dc=org";
pub const SERVICE_PASSWORD: &str = "service-account-secret";
/// The most entries slapd answers to a search without paging (the service account's limit).
pub const SIZE_LIMIT: usize = 1000;
/// People with a password of their own: `uid` and password.
pub const ALICE: (&str, &str) = ("alice", "alice-directory-password");
pub const BOB: (&str, &str) = ("bob", "bob-directory-password");
/// The group of people allowed in (alice and every tenth generated person).
pub const VPN_GROUP_DN: &str = "cn=vpn,ou=groups,dc=example,dc=org";

/// The directory's administrator, who may change any entry (tests change people with it).
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
pub const ROOT_PASSWORD: &str = "root-of-the-test-directory";

/// What the generated directory holds.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// Generated people `person00001`…, besides alice and bob.
    pub people: usize,
    /// Also StartTLS on the `ldap://` address and an `ldaps://` address, with a certificate
    /// for 127.0.0.1 made for the test (its own CA).
    pub tls: bool,
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture {
            people: 2500,
            tls: false,
        }
    }
}

impl Fixture {
    /// Every person in the directory: the generated ones and alice and bob.
    pub fn total_people(&self) -> usize {
        self.people + 2
    }

    /// The login of the generated person `n` (from 1).
    pub fn person(n: usize) -> String {
        format!("person{n:05}")
    }

    fn ldif(&self) -> String {
        let mut ldif = String::with_capacity(self.people * 300);
        ldif.push_str(&format!(
            "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
             dn: ou=services,{BASE_DN}\nobjectClass: organizationalUnit\nou: services\n\n\
             dn: {SERVICE_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n\
             cn: otpgate\nuserPassword: {SERVICE_PASSWORD}\n\n\
             dn: {PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{BASE_DN}\nobjectClass: organizationalUnit\nou: groups\n\n"
        ));
        let person = |uid: &str, first: &str, last: &str, password: Option<&str>| {
            let mut entry = format!(
                "dn: uid={uid},{PEOPLE_DN}\nobjectClass: inetOrgPerson\nuid: {uid}\n\
                 cn: {first} {last}\ngivenName: {first}\nsn: {last}\nmail: {uid}@example.org\n\
                 mobile: +4930{:07}\n",
                uid.len() * 7919 % 10_000_000
            );
            if let Some(password) = password {
                entry.push_str(&format!("userPassword: {password}\n"));
            }
            entry.push('\n');
            entry
        };
        ldif.push_str(&person(ALICE.0, "Alice", "Liddell", Some(ALICE.1)));
        ldif.push_str(&person(BOB.0, "Bob", "Builder", Some(BOB.1)));
        for n in 1..=self.people {
            ldif.push_str(&person(
                &Fixture::person(n),
                "Person",
                &format!("Number {n}"),
                None,
            ));
        }
        ldif.push_str(&format!(
            "dn: {VPN_GROUP_DN}\nobjectClass: groupOfNames\ncn: vpn\nmember: uid={},{PEOPLE_DN}\n",
            ALICE.0
        ));
        for n in (10..=self.people).step_by(10) {
            ldif.push_str(&format!("member: uid={},{PEOPLE_DN}\n", Fixture::person(n)));
        }
        ldif.push('\n');
        ldif
    }
}

/// A running slapd, stopped (killed) when dropped.
pub struct Slapd {
    /// `ldap://127.0.0.1:PORT`
    pub url: String,
    /// `ldaps://127.0.0.1:PORT`, with `Fixture::tls`.
    pub ldaps_url: Option<String>,
    /// The certificate the server presents (its own CA), in PEM, with `Fixture::tls`.
    pub ca_pem: Option<String>,
    pub fixture: Fixture,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether slapd can run here. Says why not on stderr; under CI its absence is a failure.
pub fn slapd_present() -> bool {
    let present = Path::new(SLAPD).exists() && Path::new(SLAPADD).exists();
    if !present {
        let test = std::thread::current()
            .name()
            .unwrap_or("an LDAP test")
            .to_string();
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: CI is set, but {SLAPD} is missing: directory tests must run in CI \
             (`.ci/run` installs slapd and ldap-utils with apt-get)"
        );
        // Straight to stderr: libtest would swallow `eprintln!` of a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "skipping {test}: slapd is not installed (apt-get install slapd ldap-utils)"
        );
    }
    present
}

impl Slapd {
    /// Starts slapd with the default fixture, or `None` (after saying why) without slapd.
    pub async fn start() -> Option<Slapd> {
        Slapd::start_with(Fixture::default()).await
    }

    pub async fn start_with(fixture: Fixture) -> Option<Slapd> {
        if !slapd_present() {
            return None;
        }
        Some(
            tokio::task::spawn_blocking(move || Slapd::start_blocking(fixture))
                .await
                .expect("slapd starts"),
        )
    }

    fn start_blocking(fixture: Fixture) -> Slapd {
        let dir = tempfile::tempdir().expect("a temp dir for slapd");
        let config_dir = dir.path().join("slapd.d");
        let data_dir = dir.path().join("data");
        std::fs::create_dir(&config_dir).expect("config dir");
        std::fs::create_dir(&data_dir).expect("data dir");
        let ca_pem = fixture.tls.then(|| {
            let certified =
                rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                    .expect("a certificate");
            let pem = certified.cert.pem();
            std::fs::write(dir.path().join("server.crt"), &pem).expect("server.crt");
            std::fs::write(
                dir.path().join("server.key"),
                certified.signing_key.serialize_pem(),
            )
            .expect("server.key");
            pem
        });
        let config = dir.path().join("config.ldif");
        std::fs::write(
            &config,
            config_ldif(dir.path(), &data_dir, ca_pem.is_some()),
        )
        .expect("config.ldif");
        slapadd(&["-n0", "-F"], &config_dir, &config);
        let data = dir.path().join("data.ldif");
        std::fs::write(&data, fixture.ldif()).expect("data.ldif");
        slapadd(&["-q", "-b", BASE_DN, "-F"], &config_dir, &data);

        // A free port can be taken between our look and slapd's bind: then slapd exits, and
        // another port is tried.
        for _ in 0..10 {
            let port = free_port();
            let url = format!("ldap://127.0.0.1:{port}");
            let ldaps_port = free_port();
            let ldaps_url = ca_pem
                .is_some()
                .then(|| format!("ldaps://127.0.0.1:{ldaps_port}"));
            let listen = match &ldaps_url {
                Some(ldaps_url) => format!("{url}/ {ldaps_url}/"),
                None => format!("{url}/"),
            };
            let mut child = Command::new(SLAPD)
                .arg("-d")
                .arg("0")
                .arg("-h")
                .arg(listen)
                .arg("-F")
                .arg(&config_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("slapd starts");
            if wait_listening(&mut child, port)
                && (ldaps_url.is_none() || wait_listening(&mut child, ldaps_port))
            {
                return Slapd {
                    url,
                    ldaps_url,
                    ca_pem,
                    fixture,
                    child,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let output = child.wait_with_output().expect("slapd ends");
            let _ = writeln!(
                std::io::stderr(),
                "slapd did not listen on {port}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        panic!("slapd did not start on any of ten free ports");
    }

    /// Adds a person to the running directory, as a directory's people change under a running
    /// otpgate.
    pub async fn add_person(&self, uid: &str, password: &str) {
        self.modify(&format!(
            "dn: uid={uid},{PEOPLE_DN}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: {uid}\n\
             cn: New {uid}\ngivenName: New\nsn: {uid}\nmail: {uid}@example.org\n\
             userPassword: {password}\n"
        ))
        .await;
    }

    /// Changes the directory as its administrator with `ldapmodify` (LDIF with changetypes:
    /// modify, add, delete, modrdn).
    pub async fn modify(&self, ldif: &str) {
        let (url, ldif) = (self.url.clone(), ldif.to_string());
        tokio::task::spawn_blocking(move || {
            let mut child = Command::new("ldapmodify")
                .args(["-x", "-H", &url, "-D", ROOT_DN, "-w", ROOT_PASSWORD])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("ldapmodify runs (apt-get install ldap-utils)");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(ldif.as_bytes())
                .expect("LDIF written");
            let output = child.wait_with_output().expect("ldapmodify ends");
            assert!(
                output.status.success(),
                "ldapmodify failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        })
        .await
        .expect("ldapmodify ran");
    }

    /// A `ldap://` address where nothing listens (a directory that is down).
    pub fn unreachable_url() -> String {
        format!("ldap://127.0.0.1:{}", free_port())
    }
}

fn slapadd(args: &[&str], config_dir: &Path, ldif: &Path) {
    let output = Command::new(SLAPADD)
        .args(args)
        .arg(config_dir)
        .arg("-l")
        .arg(ldif)
        .output()
        .expect("slapadd runs");
    assert!(
        output.status.success(),
        "slapadd {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Waits until slapd accepts connections on `port`, or has exited.
fn wait_listening(child: &mut Child, port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A cn=config for one database under `BASE_DN`: people may read the directory once bound,
/// anyone may bind with a password, the service account is held to `SIZE_LIMIT` entries a
/// search unless it pages.
fn config_ldif(dir: &Path, data_dir: &Path, tls: bool) -> String {
    let dir = dir.display();
    let data_dir = data_dir.display();
    let tls = if tls {
        format!(
            "olcTLSCertificateFile: {dir}/server.crt\nolcTLSCertificateKeyFile: {dir}/server.key\n"
        )
    } else {
        String::new()
    };
    format!(
        "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: {dir}/slapd.pid\n\
         olcArgsFile: {dir}/slapd.args\n{tls}\n\
         dn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}\n\
         olcModulePath: {MODULE_DIR}\nolcModuleLoad: back_mdb\n\n\
         dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n\
         include: file://{SCHEMA_DIR}/core.ldif\n\n\
         include: file://{SCHEMA_DIR}/cosine.ldif\n\n\
         include: file://{SCHEMA_DIR}/inetorgperson.ldif\n\n\
         dn: olcDatabase={{-1}}frontend,cn=config\nobjectClass: olcDatabaseConfig\n\
         objectClass: olcFrontendConfig\nolcDatabase: {{-1}}frontend\n\n\
         dn: olcDatabase={{0}}config,cn=config\nobjectClass: olcDatabaseConfig\n\
         olcDatabase: {{0}}config\nolcAccess: {{0}}to * by * none\n\n\
         dn: olcDatabase={{1}}mdb,cn=config\nobjectClass: olcDatabaseConfig\n\
         objectClass: olcMdbConfig\nolcDatabase: {{1}}mdb\nolcSuffix: {BASE_DN}\n\
         olcDbDirectory: {data_dir}\nolcDbMaxSize: 268435456\n\
         olcRootDN: {ROOT_DN}\nolcRootPW: {ROOT_PASSWORD}\n\
         olcAccess: {{0}}to attrs=userPassword by anonymous auth by * none\n\
         olcAccess: {{1}}to * by users read by * none\n\
         olcLimits: {{0}}* size.soft={SIZE_LIMIT} size.hard={SIZE_LIMIT} size.prtotal=unlimited\n\n"
    )
}
