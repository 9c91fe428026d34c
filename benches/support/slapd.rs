//! A real OpenLDAP slapd for a benchmark: unprivileged, on a free loopback port, with a
//! cn=config of its own in a temporary directory (`slapadd -n0 -F`) and `people` generated
//! people, each with a password of their own. The same recipe as the tests' slapd, which a
//! benchmark cannot import.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const SCHEMA_DIR: &str = "/etc/ldap/schema";
const MODULE_DIR: &str = "/usr/lib/ldap";

pub const BASE_DN: &str = "dc=example,dc=org";
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=org";
pub const SERVICE_DN: &str = "cn=otpgate,ou=services,dc=example,dc=org";
pub const SERVICE_PASSWORD: &str = "service-account-secret";

/// The login of generated person `n`.
pub fn login(n: usize) -> String {
    format!("person{n:05}")
}

/// The directory password of generated person `n`.
pub fn password(n: usize) -> String {
    format!("directory password of person {n}")
}

/// A running slapd, killed when dropped.
pub struct Slapd {
    /// `ldap://127.0.0.1:PORT`
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Slapd {
    /// Starts slapd with `people` people; an error says what is missing.
    pub fn start(people: usize) -> anyhow::Result<Slapd> {
        if !Path::new(SLAPD).exists() || !Path::new(SLAPADD).exists() {
            bail!("{SLAPD} is missing: apt-get install slapd ldap-utils");
        }
        let dir = tempfile::tempdir()?;
        let config_dir = dir.path().join("slapd.d");
        let data_dir = dir.path().join("data");
        std::fs::create_dir(&config_dir)?;
        std::fs::create_dir(&data_dir)?;
        let config = dir.path().join("config.ldif");
        std::fs::write(&config, config_ldif(dir.path(), &data_dir))?;
        slapadd(&["-n0", "-F"], &config_dir, &config)?;
        let data = dir.path().join("data.ldif");
        std::fs::write(&data, ldif(people))?;
        slapadd(&["-q", "-b", BASE_DN, "-F"], &config_dir, &data)?;
        for _ in 0..10 {
            let port = free_port()?;
            let url = format!("ldap://127.0.0.1:{port}");
            let mut child = Command::new(SLAPD)
                .args(["-d", "0", "-h"])
                .arg(format!("{url}/"))
                .arg("-F")
                .arg(&config_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("slapd starts")?;
            if wait_listening(&mut child, port) {
                return Ok(Slapd {
                    url,
                    child,
                    _dir: dir,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        bail!("slapd did not start on any of ten free ports")
    }
}

fn ldif(people: usize) -> String {
    let mut ldif = format!(
        "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: ou=services,{BASE_DN}\nobjectClass: organizationalUnit\nou: services\n\n\
         dn: {SERVICE_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n\
         cn: otpgate\nuserPassword: {SERVICE_PASSWORD}\n\n\
         dn: {PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people\n\n"
    );
    for n in 0..people {
        let uid = login(n);
        ldif.push_str(&format!(
            "dn: uid={uid},{PEOPLE_DN}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: Person {n}\n\
             givenName: Person\nsn: Number {n}\nmail: {uid}@example.org\nuserPassword: {}\n\n",
            password(n)
        ));
    }
    ldif
}

fn slapadd(args: &[&str], config_dir: &Path, ldif: &Path) -> anyhow::Result<()> {
    let output = Command::new(SLAPADD)
        .args(args)
        .arg(config_dir)
        .arg("-l")
        .arg(ldif)
        .output()
        .context("slapadd runs")?;
    if !output.status.success() {
        bail!(
            "slapadd {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

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

/// One mdb database under `BASE_DN`: people may read once bound, anyone may bind with a
/// password, and a search answers at most 1,000 entries unless it pages (as Active Directory).
fn config_ldif(dir: &Path, data_dir: &Path) -> String {
    let dir = dir.display();
    let data_dir = data_dir.display();
    format!(
        "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: {dir}/slapd.pid\n\
         olcArgsFile: {dir}/slapd.args\n\n\
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
         olcDbIndex: objectClass eq\nolcDbIndex: uid eq\nolcDbIndex: entryUUID eq\n\
         olcAccess: {{0}}to attrs=userPassword by anonymous auth by * none\n\
         olcAccess: {{1}}to * by users read by * none\n\
         olcLimits: {{0}}* size.soft=1000 size.hard=1000 size.prtotal=unlimited\n\n"
    )
}
