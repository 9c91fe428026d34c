//! The command line: `serve` and the operator's console commands.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, Subcommand};

use crate::app::{self, Application, DataDir};
use crate::config::{self, Config, Overrides};
use crate::crypto::{self, Keys};
use crate::domain::IdOrName;
use crate::provision::{self, ImportFormat};
use crate::store::{self, NewAdmin};

#[derive(Debug, Parser)]
#[command(
    name = "otpgate",
    version,
    about = "On-premise two-factor authentication server",
    long_about = "otpgate checks one-time passwords for VPNs and applications, delivers them by email, \
                  SMS and Telegram, and lets users enrol their own tokens on a self-service portal.\n\n\
                  Without a command, otpgate serves (like `otpgate serve`)."
)]
pub struct Cli {
    /// The configuration file (default: /etc/otpgate/config.toml when it exists, else the
    /// user's configuration directory's otpgate/config.toml when it exists, else built-in defaults).
    #[arg(long, global = true, env = "OTPGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The data directory (database, key file, certificate); overrides `data_dir` of the file.
    #[arg(long, global = true, env = "OTPGATE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// What to log, e.g. `info` or `debug`; overrides `log.level` of the file.
    #[arg(long, global = true, env = "OTPGATE_LOG", value_name = "FILTER")]
    pub log: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: admin panel, self-service portals, API and delivery workers.
    Serve(ServeArgs),
    /// Manage administrators from the console (for a locked-out administrator).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage API keys for applications (resource keys) and scripts (admin keys).
    Apikey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Manage tokens from the console: import hardware token seed files.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Write a consistent copy of the database to FILE, also while the server runs.
    Backup {
        /// Where to write the copy.
        file: PathBuf,
    },
    /// Replace the database with the backup FILE (the server must be stopped).
    Restore {
        /// A file written by `otpgate backup`.
        file: PathBuf,
    },
    /// Check the delivery settings stored in the database.
    Settings {
        #[command(subcommand)]
        command: SettingsCommand,
    },
    /// Work with the configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page in roff format.
    Man,
}

#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on, e.g. 0.0.0.0:8443 (port 0 picks a free port).
    #[arg(long, env = "OTPGATE_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an administrator, who links an authenticator app at the first login.
    Create {
        /// The login name.
        login: String,
        /// Read the password from the first line of standard input instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the administrators.
    List,
    /// Set a new password for an administrator and end their sessions.
    ResetPassword {
        /// The login name.
        login: String,
        /// Read the password from the first line of standard input instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Forget an administrator's authenticator app: the next login links a new one.
    #[command(name = "reset-2fa")]
    Reset2fa {
        /// The login name.
        login: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key and print it once; only its hash is kept.
    Create {
        /// A name that says who uses the key, e.g. "vpn-gateway".
        #[arg(long)]
        name: String,
        /// A key for the authentication endpoints of this resource: its id, or its name (a
        /// name made of digits is written name:2024).
        #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
        resource: Option<String>,
        /// A key that may manage every object.
        #[arg(long)]
        admin: bool,
    },
    /// List the keys (never the keys themselves).
    List,
    /// Revoke a key by its id or prefix.
    Revoke {
        /// The id or prefix shown by `otpgate apikey list`.
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Import every token of a PSKC or CSV seed file, or none: unassigned, active, seeds sealed.
    Import {
        /// The seed file.
        file: PathBuf,
        /// The file's format (default: from the extension, .xml/.pskc/.pskcxml or .csv).
        #[arg(long, value_enum)]
        format: Option<SeedFormat>,
        /// PSKC: the pre-shared AES key in hexadecimal.
        #[arg(long, value_name = "HEX", conflicts_with = "password_stdin")]
        preshared_key: Option<String>,
        /// PSKC: read the file's password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// The email (SMTP) settings.
    Mail {
        #[command(subcommand)]
        command: MailSettingsCommand,
    },
    /// The SMS gateway settings.
    Sms {
        #[command(subcommand)]
        command: SmsSettingsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum MailSettingsCommand {
    /// Send a test email now and print the SMTP server's answer or error.
    Test {
        /// The address to send to.
        address: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SmsSettingsCommand {
    /// Send a test text message now and print the gateway's answer or error.
    Test {
        /// The phone number to send to, in international form (+ and country code).
        phone: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate the configuration, and print the effective values.
    Check,
}

/// Runs the command line and turns any error into a message and a failing exit code.
pub fn main() -> ExitCode {
    // Before any command opens the database, as SQLite only takes a page cache before then.
    crate::store::install_sqlite_hooks();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("otpgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_file(cli: &Cli) -> Option<PathBuf> {
    cli.config.clone().or_else(config::default_config_file)
}

fn load_config(cli: &Cli, listen: Option<String>) -> anyhow::Result<(Config, Option<PathBuf>)> {
    let file = config_file(cli);
    let overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        listen,
        log_level: cli.log.clone(),
    };
    let config = Config::load(file.as_deref(), &overrides)?;
    Ok((config, file))
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Under systemd the journal stamps every line itself.
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!under_journal && std::io::stderr().is_terminal());
    let _ = if under_journal {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        None => serve(
            &cli,
            ServeArgs::default()
                .listen
                .or_else(|| std::env::var("OTPGATE_LISTEN").ok()),
        ),
        Some(Command::Serve(args)) => serve(&cli, args.listen.clone()),
        Some(Command::Admin { command }) => admin(&cli, command),
        Some(Command::Apikey { command }) => apikey(&cli, command),
        Some(Command::Tokens { command }) => tokens(&cli, command),
        Some(Command::Backup { file }) => backup(&cli, file),
        Some(Command::Restore { file }) => restore(&cli, file),
        Some(Command::Settings { command }) => settings(&cli, command),
        Some(Command::Config {
            command: ConfigCommand::Check,
        }) => config_check(&cli),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "otpgate",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Some(Command::Man) => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
    }
}

fn serve(cli: &Cli, listen: Option<String>) -> anyhow::Result<()> {
    let (config, file) = load_config(cli, listen)?;
    init_logging(&config.log.level);
    match &file {
        Some(file) => tracing::info!(file = %file.display(), "configuration loaded"),
        None => tracing::info!("no configuration file: running on built-in defaults"),
    }
    actix_web::rt::System::new().block_on(async move {
        let application = Application::build(config).await?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening on {}", application.listen_url())?;
        stdout.flush()?;
        tracing::info!(url = %application.listen_url(), "listening");
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        application.run_until_stopped().await?;
        Ok(())
    })
}

fn data_dir(cli: &Cli) -> anyhow::Result<(Config, PathBuf)> {
    let (config, _) = load_config(cli, None)?;
    let dir = config::resolve_data_dir(&config)?;
    Ok((config, dir))
}

fn open_store(cli: &Cli) -> anyhow::Result<store::Store> {
    let (config, dir) = data_dir(cli)?;
    app::create_private_dir(&dir)?;
    let (store, _keys) = app::open_store_and_keys(&config, &dir)?;
    Ok(store)
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no terminal to ask for the password: pass --password-stdin and send it on standard input"
        );
    }
    let first = rpassword::prompt_password("New password: ")?;
    let second = rpassword::prompt_password("New password again: ")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(first)
}

/// An administrator's new password, read and checked against the administrators' rule, its
/// hash, and the store to save it in.
fn with_new_password(
    cli: &Cli,
    login: &str,
    password_stdin: bool,
) -> anyhow::Result<(store::Store, String)> {
    let password = read_password(password_stdin)?;
    crate::domain::admin_credentials(login, &password, &password)?;
    let store = open_store(cli)?;
    let password_hash = crypto::hash_password(&password)?;
    Ok((store, password_hash))
}

fn admin(cli: &Cli, command: &AdminCommand) -> anyhow::Result<()> {
    let now = crate::clock::now();
    let actor = "console".to_string();
    match command {
        AdminCommand::Create {
            login,
            password_stdin,
        } => {
            let (store, password_hash) = with_new_password(cli, login, *password_stdin)?;
            store.create_admin_blocking(
                NewAdmin {
                    login: login.clone(),
                    password_hash,
                    totp_secret: None,
                    totp_last_step: None,
                },
                actor,
                now,
            )?;
            store.close();
            println!(
                "administrator {login} created; they link an authenticator app at the first login"
            );
        }
        AdminCommand::List => {
            let store = open_store(cli)?;
            let admins = store.admins_blocking()?;
            store.close();
            if admins.is_empty() {
                println!("no administrators");
            }
            for admin in admins {
                println!(
                    "{}\t{}\t{}",
                    admin.login,
                    if admin.enabled { "enabled" } else { "disabled" },
                    if admin.totp_secret.is_some() {
                        "2fa linked"
                    } else {
                        "2fa not linked"
                    }
                );
            }
        }
        AdminCommand::ResetPassword {
            login,
            password_stdin,
        } => {
            let (store, password_hash) = with_new_password(cli, login, *password_stdin)?;
            let found =
                store.reset_admin_password_blocking(login.clone(), password_hash, actor, now)?;
            store.close();
            if !found {
                bail!("no administrator named {login}");
            }
            println!("password of {login} changed; their sessions are ended");
        }
        AdminCommand::Reset2fa { login } => {
            let store = open_store(cli)?;
            let found = store.reset_admin_2fa_blocking(login.clone(), actor, now)?;
            store.close();
            if !found {
                bail!("no administrator named {login}");
            }
            println!("{login} will link a new authenticator app at the next login");
        }
    }
    Ok(())
}

fn apikey(cli: &Cli, command: &ApiKeyCommand) -> anyhow::Result<()> {
    let now = crate::clock::now();
    let store = open_store(cli)?;
    let result = match command {
        ApiKeyCommand::Create { name, resource, .. } => {
            let name = crate::domain::key_name(name)?;
            let resource = resource
                .as_deref()
                .map(|text| IdOrName::from_text(text, "name"))
                .transpose()?;
            let key = crypto::new_api_key()?;
            store.create_api_key_blocking(name, key.prefix.clone(), key.hash, resource, now)?;
            println!("{}", key.key);
            eprintln!("this key is shown once: store it in the application's configuration now");
            Ok(())
        }
        ApiKeyCommand::List => {
            for key in store.api_keys_blocking()? {
                let scope = match (&key.scope, &key.resource_name) {
                    (crate::domain::KeyScope::Admin, _) => "admin".to_string(),
                    (_, Some(name)) => format!("resource:{name}"),
                    (_, None) => "resource".to_string(),
                };
                println!(
                    "{}\tog_{}\t{}\t{}\t{}",
                    key.id,
                    key.prefix,
                    key.name,
                    scope,
                    if key.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                );
            }
            Ok(())
        }
        ApiKeyCommand::Revoke { key } => {
            let key = key.trim_start_matches("og_").to_string();
            if store.revoke_api_key_blocking(key.clone(), now)? {
                println!("key {key} revoked");
                Ok(())
            } else {
                Err(anyhow::anyhow!("no active key {key}"))
            }
        }
    };
    store.close();
    result
}

/// The formats of `tokens import --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeedFormat {
    /// PSKC (RFC 6030) XML.
    Pskc,
    /// `serial,secret[,type,digits,period_or_counter,algorithm]` lines.
    Csv,
}

impl From<SeedFormat> for ImportFormat {
    fn from(format: SeedFormat) -> ImportFormat {
        match format {
            SeedFormat::Pskc => ImportFormat::Pskc,
            SeedFormat::Csv => ImportFormat::Csv,
        }
    }
}

fn tokens(cli: &Cli, command: &TokensCommand) -> anyhow::Result<()> {
    let TokensCommand::Import {
        file,
        format,
        preshared_key,
        password_stdin,
    } = command;
    let format = match format {
        Some(format) => ImportFormat::from(*format),
        None => file
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(ImportFormat::from_file_name)
            .context("cannot tell the format from the file name: pass --format pskc or csv")?,
    };
    let data = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let password = if *password_stdin {
        Some(read_password(true)?)
    } else {
        None
    };
    let (config, dir) = data_dir(cli)?;
    let (store, keys) = app::open_store_and_keys(&config, &dir)?;
    let result = provision::prepare_import(
        &keys,
        format,
        &data,
        preshared_key.as_deref(),
        password.as_deref(),
    )
    .map_err(anyhow::Error::from)
    .and_then(|tokens| {
        let audit = store::AuditEntry::new(crate::clock::now(), "console", "token.import", "ok");
        Ok(store.import_tokens_blocking(tokens, audit)??)
    });
    store.close();
    let serials = result?;
    println!(
        "imported {}",
        crate::domain::words::count(serials.len() as u64, "token", "tokens")
    );
    Ok(())
}

fn backup(cli: &Cli, file: &Path) -> anyhow::Result<()> {
    let (config, dir) = data_dir(cli)?;
    let database = dir.join(store::DATABASE_FILE);
    if !database.is_file() {
        bail!("there is no database at {}", database.display());
    }
    store::backup_file(
        &database,
        file,
        std::time::Duration::from_millis(config.storage.busy_timeout_ms),
    )
    .with_context(|| format!("cannot back up to {}", file.display()))?;
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    println!("backup written to {} ({size} bytes)", file.display());
    println!(
        "keep a copy of the key file {} apart from it: the backup's secrets cannot be read without it",
        dir.join(crypto::KEY_FILE).display()
    );
    Ok(())
}

fn restore(cli: &Cli, file: &Path) -> anyhow::Result<()> {
    let (_, dir) = data_dir(cli)?;
    if !file.is_file() {
        bail!("there is no file {}", file.display());
    }
    let lock = DataDir::lock(&dir)?;
    let version = store::validate_database(file)?;
    let key_path = dir.join(crypto::KEY_FILE);
    if let Some(check) = store::read_setting_from_file(file, "key_check")? {
        let keys = Keys::load_or_create(&key_path, false).with_context(|| {
            format!(
                "put the key file that belongs to this backup at {} first",
                key_path.display()
            )
        })?;
        keys.verify_key_check(&check).context(
            "the backup was made with another key file; put that key file in the data directory first",
        )?;
    }
    store::replace_database(file, &lock.path().join(store::DATABASE_FILE))?;
    println!(
        "restored {} (schema version {version}) into {}",
        file.display(),
        dir.display()
    );
    Ok(())
}

/// Sends a test message with the stored settings, as the server would, and prints the answer.
fn settings(cli: &Cli, command: &SettingsCommand) -> anyhow::Result<()> {
    let (channel, to) = match command {
        SettingsCommand::Mail {
            command: MailSettingsCommand::Test { address },
        } => (
            crate::delivery::mail::CHANNEL,
            crate::domain::Email::parse(address)?.into_string(),
        ),
        SettingsCommand::Sms {
            command: SmsSettingsCommand::Test { phone },
        } => (
            crate::delivery::sms::CHANNEL,
            crate::domain::Phone::parse(phone)?.into_string(),
        ),
    };
    let (config, dir) = data_dir(cli)?;
    let (store, keys) = app::open_store_and_keys(&config, &dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(crate::delivery::send_test(&store, &keys, channel, to));
    let audit = crate::store::AuditEntry::new(
        crate::clock::now(),
        "console",
        format!("settings.{channel}.test"),
        if result.is_ok() { "ok" } else { "failed" },
    );
    if let Err(e) = store.audit_blocking(audit) {
        eprintln!("otpgate: the audit log could not be written: {e}");
    }
    store.close();
    match result {
        Ok(accepted) => {
            println!("{}", accepted.0);
            Ok(())
        }
        Err(error) => bail!("the test message was not accepted: {error}"),
    }
}

fn config_check(cli: &Cli) -> anyhow::Result<()> {
    let (config, file) = load_config(cli, None)?;
    if let (Some(cert), Some(key)) = (&config.tls.cert_file, &config.tls.key_file) {
        crate::tls::load_pem(cert, key, false)?;
    }
    if let Some(client_ca) = &config.radius.radsec_client_ca
        && !config.radius.radsec_listen.is_empty()
    {
        crate::tls::client_verifier(client_ca).context("radius.radsec_client_ca")?;
    }
    let dir = config::resolve_data_dir(&config)?;
    match &file {
        Some(file) => println!("# configuration file: {}", file.display()),
        None => println!("# no configuration file: built-in defaults"),
    }
    println!("# data directory: {}", dir.display());
    print!("{}", config.to_toml());
    eprintln!("configuration OK");
    Ok(())
}
