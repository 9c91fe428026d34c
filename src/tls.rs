//! HTTPS material: a configured PEM certificate and key, or a self-signed certificate that
//! otpgate generates on first start, keeps in the data directory and reuses afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate file {file}: {reason}")]
    Certificate { file: PathBuf, reason: String },
    #[error("cannot read the private key file {file}: {reason}")]
    Key { file: PathBuf, reason: String },
    #[error("the private key {key} does not belong to the certificate {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("cannot generate the self-signed certificate in {dir}: {reason}")]
    Generate { dir: PathBuf, reason: String },
}

/// What the server needs to speak TLS, and what to tell the administrator about it.
pub struct TlsMaterial {
    pub server_config: Arc<rustls::ServerConfig>,
    /// SHA-256 fingerprint of the leaf certificate, as `AB:CD:…`.
    pub fingerprint: String,
    pub cert_file: PathBuf,
    /// True when this start generated a new self-signed certificate.
    pub generated: bool,
}

/// The directory, inside the data directory, of the generated certificate.
pub const TLS_DIR: &str = "tls";

/// Installs ring as the process' crypto provider, so that no other backend is ever chosen.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The names a generated certificate covers.
fn wanted_names(config: &TlsConfig) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(host) = gethostname::gethostname().into_string()
        && !host.is_empty()
    {
        names.push(host);
    }
    names.extend([
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ]);
    for extra in &config.extra_names {
        if !names.contains(extra) {
            names.push(extra.clone());
        }
    }
    names
}

/// Loads the configured certificate, or the generated one (creating it when missing or when
/// the configured extra names changed).
pub fn load(config: &TlsConfig, data_dir: &Path) -> Result<TlsMaterial, TlsError> {
    install_crypto_provider();
    if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
        return load_pem(cert, key, false);
    }
    let dir = data_dir.join(TLS_DIR);
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    let names_file = dir.join("names.txt");
    let names = wanted_names(config);
    let recorded = std::fs::read_to_string(&names_file).unwrap_or_default();
    let current = names.join("\n");
    if cert_file.is_file() && key_file.is_file() && recorded.trim() == current {
        return load_pem(&cert_file, &key_file, false);
    }
    generate(&dir, &names).map_err(|reason| TlsError::Generate {
        dir: dir.clone(),
        reason,
    })?;
    load_pem(&cert_file, &key_file, true)
}

fn generate(dir: &Path, names: &[String]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let certified =
        rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| e.to_string())?;
    write_private(
        &dir.join("key.pem"),
        certified.signing_key.serialize_pem().as_bytes(),
    )?;
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("names.txt"), names.join("\n")).map_err(|e| e.to_string())?;
    Ok(())
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| e.to_string())?;
    file.write_all(contents).map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())
}

/// Loads a PEM certificate chain and key and checks that they belong together.
pub fn load_pem(
    cert_file: &Path,
    key_file: &Path,
    generated: bool,
) -> Result<TlsMaterial, TlsError> {
    install_crypto_provider();
    let cert_error = |reason: String| TlsError::Certificate {
        file: cert_file.to_path_buf(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| cert_error("no certificate found in the file".into()))?;
    let fingerprint = fingerprint(leaf.as_ref());
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Key {
        file: key_file.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut server_config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Mismatch {
            cert: cert_file.to_path_buf(),
            key: key_file.to_path_buf(),
            reason: e.to_string(),
        })?;
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        server_config: Arc::new(server_config),
        fingerprint,
        cert_file: cert_file.to_path_buf(),
        generated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_signed_certificate_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().expect("dir");
        let config = TlsConfig::default();
        let first = load(&config, dir.path()).expect("generate");
        assert!(first.generated);
        let second = load(&config, dir.path()).expect("reuse");
        assert!(!second.generated);
        assert_eq!(first.fingerprint, second.fingerprint);
    }

    #[test]
    fn new_extra_names_give_a_new_certificate() {
        let dir = tempfile::tempdir().expect("dir");
        let first = load(&TlsConfig::default(), dir.path()).expect("generate");
        let config = TlsConfig {
            extra_names: vec!["otp.example.lan".into()],
            ..TlsConfig::default()
        };
        let second = load(&config, dir.path()).expect("regenerate");
        assert!(second.generated);
        assert_ne!(first.fingerprint, second.fingerprint);
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused_by_name() {
        let one = tempfile::tempdir().expect("dir");
        let two = tempfile::tempdir().expect("dir");
        load(&TlsConfig::default(), one.path()).expect("generate");
        load(&TlsConfig::default(), two.path()).expect("generate");
        let cert = one.path().join("tls/cert.pem");
        let key = two.path().join("tls/key.pem");
        let error = load_pem(&cert, &key, false)
            .err()
            .expect("mismatch refused");
        assert!(matches!(error, TlsError::Mismatch { .. }), "{error}");
        assert!(error.to_string().contains("key.pem"));
    }

    #[test]
    fn an_unreadable_certificate_file_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let cert = dir.path().join("missing.pem");
        let error = load_pem(&cert, &cert, false).err().expect("refused");
        assert!(error.to_string().contains("missing.pem"), "{error}");
    }
}
