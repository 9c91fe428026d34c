//! Directory sync benchmark: starts an OpenLDAP slapd of its own (unprivileged, a free
//! loopback port, a private cn=config, N generated people; default 10,000, at most 1,000 a
//! search without paging, as Active Directory), starts the release binary, creates the
//! directory through the API and times Sync now twice: the first sync (every person becomes a
//! user) and a second one in which nothing changed. Prints the time of each request and the
//! sync's own duration and counts. Speed is reported, not asserted: the benchmark fails only
//! when a sync does not answer or does not create everyone.
//!
//! `cargo bench --bench directory_sync`; `OTPGATE_BENCH_PEOPLE` (default 10,000). Needs
//! `slapd` (Debian's `slapd` package).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

mod support;
use support::{Server, create, env_or};

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const SCHEMA_DIR: &str = "/etc/ldap/schema";
const MODULE_DIR: &str = "/usr/lib/ldap";
const BASE_DN: &str = "dc=example,dc=org";
const PEOPLE_DN: &str = "ou=people,dc=example,dc=org";
const SERVICE_DN: &str = "cn=otpgate,ou=services,dc=example,dc=org";
const SERVICE_PASSWORD: &str = "service-account-secret";

/// A slapd of the benchmark's own, killed when dropped.
struct Slapd {
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn people_ldif(people: usize) -> String {
    let mut ldif = format!(
        "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: ou=services,{BASE_DN}\nobjectClass: organizationalUnit\nou: services\n\n\
         dn: {SERVICE_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n\
         cn: otpgate\nuserPassword: {SERVICE_PASSWORD}\n\n\
         dn: {PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people\n\n"
    );
    for n in 1..=people {
        ldif.push_str(&format!(
            "dn: uid=person{n:05},{PEOPLE_DN}\nobjectClass: inetOrgPerson\nuid: person{n:05}\n\
             cn: Person {n}\ngivenName: Person\nsn: Number {n}\nmail: person{n:05}@example.org\n\
             mobile: +4930{n:07}\n\n"
        ));
    }
    ldif
}

fn config_ldif(dir: &Path, data_dir: &Path) -> String {
    let (dir, data_dir) = (dir.display(), data_dir.display());
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
         olcDbDirectory: {data_dir}\nolcDbMaxSize: 1073741824\n\
         olcAccess: {{0}}to attrs=userPassword by anonymous auth by * none\n\
         olcAccess: {{1}}to * by users read by * none\n\
         olcLimits: {{0}}* size.soft=1000 size.hard=1000 size.prtotal=unlimited\n\n"
    )
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
            "slapadd {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn start_slapd(people: usize) -> anyhow::Result<Slapd> {
    if !Path::new(SLAPD).exists() {
        bail!("{SLAPD} is missing: apt-get install slapd ldap-utils");
    }
    let dir = tempfile::tempdir()?;
    let (config_dir, data_dir) = (dir.path().join("slapd.d"), dir.path().join("data"));
    std::fs::create_dir(&config_dir)?;
    std::fs::create_dir(&data_dir)?;
    let config = dir.path().join("config.ldif");
    std::fs::write(&config, config_ldif(dir.path(), &data_dir))?;
    slapadd(&["-n0", "-F"], &config_dir, &config)?;
    let data = dir.path().join("data.ldif");
    std::fs::write(&data, people_ldif(people))?;
    slapadd(&["-q", "-b", BASE_DN, "-F"], &config_dir, &data)?;
    for _ in 0..10 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let url = format!("ldap://127.0.0.1:{port}");
        let mut child = Command::new(SLAPD)
            .args(["-d", "0", "-h", &format!("{url}/"), "-F"])
            .arg(&config_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                break;
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(Slapd {
                    url,
                    child,
                    _dir: dir,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    bail!("slapd did not start on any of ten free ports")
}

async fn sync_now(
    client: &reqwest::Client,
    admin: &(String, reqwest::header::HeaderValue),
) -> anyhow::Result<(Duration, Value)> {
    let started = Instant::now();
    let response = client
        .post(format!("{}/api/v1/directories/bench/sync", admin.0))
        .header(AUTHORIZATION, admin.1.clone())
        .send()
        .await?;
    let status = response.status();
    let report: Value = response.json().await?;
    let elapsed = started.elapsed();
    if status != 200 || report["ok"] != true {
        bail!("Sync now answered {status}: {report}");
    }
    Ok((elapsed, report))
}

fn print(name: &str, elapsed: Duration, report: &Value) {
    println!(
        "{name}: {:.2} s (the sync's own {} ms): {} people, {} created, {} updated, {} disabled, \
         {} skipped",
        elapsed.as_secs_f64(),
        report["duration_ms"],
        report["people"],
        report["created"],
        report["updated"],
        report["disabled"],
        report["skipped"]
    );
}

async fn run() -> anyhow::Result<()> {
    let people = env_or("OTPGATE_BENCH_PEOPLE", 10_000usize)?.max(1);
    let started = Instant::now();
    let slapd = tokio::task::spawn_blocking(move || start_slapd(people)).await??;
    println!(
        "slapd with {people} people on {} ({:.1} s to load)",
        slapd.url,
        started.elapsed().as_secs_f64()
    );
    let binary = support::release_binary()?;
    let server = Server::start(&binary)?;
    println!(
        "otpgate {} (pid {}) listening on {}",
        binary.display(),
        server.child.id(),
        server.url
    );
    let client = server.https_client()?;
    let admin = (server.url.clone(), server.api_key(&["--admin"])?);
    create(
        &client,
        &admin,
        "/directories",
        &json!({
            "name": "bench",
            "kind": "openldap",
            "urls": [slapd.url],
            "tls": "none",
            "bind_dn": SERVICE_DN,
            "bind_password": SERVICE_PASSWORD,
            "base_dn": PEOPLE_DN,
            "sync_interval_minutes": 1440,
        }),
    )
    .await?;

    let (elapsed, first) = sync_now(&client, &admin).await?;
    print("first sync", elapsed, &first);
    if first["created"] != people {
        bail!("the first sync created {} of {people}", first["created"]);
    }
    let (elapsed, second) = sync_now(&client, &admin).await?;
    print("second sync (nothing changed)", elapsed, &second);
    server.stop()?;
    drop(slapd);
    Ok(())
}

fn main() -> ExitCode {
    support::run_main(run())
}
