//! Secrets at rest and the small cryptographic helpers around them.
//!
//! - A 32-byte **master key** lives in its own file in the data directory (mode 0600), apart from
//!   the database, so that a copy of the database alone reveals no token seed or credential.
//! - Values are **sealed** with XChaCha20-Poly1305: `version (1 byte) || nonce (24) || ciphertext`.
//!   The version byte names the key generation, so the key can be rotated later; a purpose label
//!   is bound as associated data, so a sealed SMTP password cannot be passed off as a token seed.
//! - A **key check** value sealed at first start lets otpgate detect a missing or wrong key file at
//!   start-up instead of producing garbage.
//! - **Passwords** are hashed with Argon2id; **PINs** with HMAC-SHA-256 under a key derived from the
//!   master key (a PIN is useless without the token seed that the same key protects).

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The file name of the master key inside the data directory.
pub const KEY_FILE: &str = "secret.key";

const KEY_FILE_MAGIC: &[u8; 8] = b"OTPGKEY1";
const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const KEY_CHECK_PLAINTEXT: &[u8] = b"otpgate key check";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "the key file {0} is missing, but the database holds data sealed with a key; \
         restore the key file from your backup (otpgate will not start without it)"
    )]
    MissingKey(PathBuf),
    #[error(
        "the key file {0} does not match the database (it cannot open the database's key check); \
         restore the key file that belongs to this database"
    )]
    WrongKey(PathBuf),
    #[error("the key file {path} is unreadable or damaged: {reason}")]
    BadKeyFile { path: PathBuf, reason: String },
    #[error("cannot write the key file {path}: {reason}")]
    WriteKey { path: PathBuf, reason: String },
    #[error("a sealed value cannot be opened (wrong key or damaged data)")]
    Unseal,
    #[error("the system's random number generator failed")]
    Random,
    #[error("password hashing failed")]
    Hash,
}

impl From<CryptoError> for crate::domain::RuleError {
    fn from(error: CryptoError) -> crate::domain::RuleError {
        crate::domain::RuleError::Failed(error.into())
    }
}

/// Fills a buffer from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| CryptoError::Random)?;
    Ok(bytes)
}

/// A random URL-safe token (base64url without padding) of `N` random bytes.
pub fn random_token<const N: usize>() -> Result<String, CryptoError> {
    Ok(data_encoding::BASE64URL_NOPAD.encode(&random_bytes::<N>()?))
}

/// `length` characters drawn uniformly from `alphabet` (ASCII, at most 256 characters): each random
/// byte beyond the largest multiple of the alphabet's size is drawn again, so that no
/// character is likelier than another.
pub fn random_text(alphabet: &[u8], length: usize) -> Result<String, CryptoError> {
    let size = alphabet.len();
    if size == 0 || size > 256 {
        return Err(CryptoError::Random);
    }
    let limit = 256 - 256 % size;
    let mut text = String::with_capacity(length);
    while text.len() < length {
        for byte in random_bytes::<64>()? {
            if usize::from(byte) < limit && text.len() < length {
                text.push(char::from(alphabet[usize::from(byte) % size]));
            }
        }
    }
    Ok(text)
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// Compares two byte strings in constant time (for codes, tokens and keys).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// What a sealed value is for; bound into the seal as associated data.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    KeyCheck,
    AdminTotp,
    TokenSecret,
    Credential,
    Message,
    /// The State of a RADIUS Access-Challenge: the login it continues, bound to its client,
    /// user and resource.
    RadiusState,
    /// A secret typed into a panel form, carried sealed in the form while it is tried out
    /// (a directory's service password between Test connection, Preview and Save), so that
    /// the page never holds it in clear.
    FormSecret,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::KeyCheck => b"otpgate/key-check",
            Purpose::AdminTotp => b"otpgate/admin-totp",
            Purpose::TokenSecret => b"otpgate/token-secret",
            Purpose::Credential => b"otpgate/credential",
            Purpose::Message => b"otpgate/message",
            Purpose::RadiusState => b"otpgate/radius-state",
            Purpose::FormSecret => b"otpgate/form-secret",
        }
    }
}

/// The master key and what is derived from it. `Debug` never prints key material.
#[derive(Clone)]
pub struct Keys {
    cipher: XChaCha20Poly1305,
    pin_key: [u8; 32],
    code_key: [u8; 32],
    cookie_key: [u8; 32],
    path: PathBuf,
    /// A sealed seed no token has, made on first use (see [`Keys::decoy_seed`]).
    decoy: std::sync::OnceLock<Vec<u8>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn derive(master: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(master)
        .expect("HMAC accepts keys of any length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl Keys {
    fn from_master(master: [u8; 32], path: PathBuf) -> Keys {
        let cipher_key = derive(&master, b"otpgate seal key v1");
        Keys {
            cipher: XChaCha20Poly1305::new(&cipher_key.into()),
            pin_key: derive(&master, b"otpgate pin key v1"),
            code_key: derive(&master, b"otpgate challenge code key v1"),
            cookie_key: derive(&master, b"otpgate cookie key v1"),
            path,
            decoy: std::sync::OnceLock::new(),
        }
    }

    /// A random 20-byte seed, sealed like a token's, that belongs to no token: checking a code
    /// against it costs what checking a token does, so that refusing an unknown login can cost
    /// what refusing a wrong code does. Empty when no randomness could be had.
    pub fn decoy_seed(&self) -> &[u8] {
        self.decoy.get_or_init(|| {
            random_bytes::<20>()
                .and_then(|seed| self.seal(Purpose::TokenSecret, &seed))
                .unwrap_or_default()
        })
    }

    /// Reads the key file, or creates it when `may_create` (a database with nothing sealed yet).
    pub fn load_or_create(path: &Path, may_create: bool) -> Result<Keys, CryptoError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let master = parse_key_file(&bytes).map_err(|reason| CryptoError::BadKeyFile {
                    path: path.to_path_buf(),
                    reason,
                })?;
                Ok(Keys::from_master(master, path.to_path_buf()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !may_create {
                    return Err(CryptoError::MissingKey(path.to_path_buf()));
                }
                let master = random_bytes::<32>()?;
                write_key_file(path, &master).map_err(|e| CryptoError::WriteKey {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
                Ok(Keys::from_master(master, path.to_path_buf()))
            }
            Err(e) => Err(CryptoError::BadKeyFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn seal(&self, purpose: Purpose, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let nonce = XNonce::from(nonce_bytes);
        let mut aad = vec![SEAL_VERSION];
        aad.extend_from_slice(purpose.label());
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Unseal)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(SEAL_VERSION);
        sealed.extend_from_slice(&nonce_bytes);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    pub fn open(&self, purpose: Purpose, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != SEAL_VERSION {
            return Err(CryptoError::Unseal);
        }
        let nonce_bytes: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN]
            .try_into()
            .map_err(|_| CryptoError::Unseal)?;
        let mut aad = vec![sealed[0]];
        aad.extend_from_slice(purpose.label());
        self.cipher
            .decrypt(
                &XNonce::from(nonce_bytes),
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Unseal)
    }

    /// A fresh key check value, stored in the database at first start.
    pub fn key_check(&self) -> Result<String, CryptoError> {
        Ok(data_encoding::BASE64.encode(&self.seal(Purpose::KeyCheck, KEY_CHECK_PLAINTEXT)?))
    }

    /// Verifies a key check value from the database against this key.
    pub fn verify_key_check(&self, stored: &str) -> Result<(), CryptoError> {
        let sealed = data_encoding::BASE64
            .decode(stored.as_bytes())
            .map_err(|_| CryptoError::WrongKey(self.path.clone()))?;
        match self.open(Purpose::KeyCheck, &sealed) {
            Ok(plain) if plain == KEY_CHECK_PLAINTEXT => Ok(()),
            _ => Err(CryptoError::WrongKey(self.path.clone())),
        }
    }

    /// The keyed hash of a PIN.
    pub fn pin_hash(&self, pin: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.pin_key)
            .expect("HMAC accepts keys of any length");
        mac.update(pin.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The keyed hash of a sent code: a short code hashed without a key could be found by
    /// trying them all against a stolen database.
    pub fn code_hash(&self, code: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.code_key)
            .expect("HMAC accepts keys of any length");
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    pub fn pin_matches(&self, pin: &str, stored: &[u8]) -> bool {
        constant_time_eq(&self.pin_hash(pin), stored)
    }

    /// The tag that shows a cookie's value was written by this server, for this cookie name
    /// and path: HMAC-SHA-256 under a key of its own, cut to 16 bytes. For a cookie that is
    /// not looked up in the store (a flash message), which another host of the domain could
    /// otherwise plant.
    pub fn cookie_tag(&self, name: &str, path: &str, value: &str) -> [u8; 16] {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.cookie_key)
            .expect("HMAC accepts keys of any length");
        for part in [name, path, value] {
            // Each part with its length first, so that no two different triples hash alike.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&full[..16]);
        tag
    }
}

fn parse_key_file(bytes: &[u8]) -> Result<[u8; 32], String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not a key file".to_string())?;
    let mut lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    let line = lines.next().ok_or("the file is empty")?;
    let encoded = line
        .strip_prefix(std::str::from_utf8(KEY_FILE_MAGIC).unwrap_or_default())
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or("not a key file (unknown format)")?;
    let decoded = data_encoding::HEXLOWER_PERMISSIVE
        .decode(encoded.trim().as_bytes())
        .map_err(|_| "the key is not hexadecimal".to_string())?;
    decoded
        .try_into()
        .map_err(|_| "the key has the wrong length".to_string())
}

fn write_key_file(path: &Path, master: &[u8; 32]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let magic = std::str::from_utf8(KEY_FILE_MAGIC).unwrap_or_default();
    writeln!(
        file,
        "# otpgate master key: keep it secret, back it up apart from the database.\n{magic}:{}",
        data_encoding::HEXLOWER.encode(master)
    )?;
    file.sync_all()
}

/// The most working memory a stored password hash may ask for, in KiB (Argon2's blocks). Every
/// hash otpgate writes asks for 19 MiB; a hash asking for more than this never matches, so
/// that no stored value can make a check take gigabytes.
const MAX_PASSWORD_MEMORY_KIB: u32 = 64 * 1024;

/// Argon2's working memory, kept between hashes: a password worker allocates it once and
/// reuses it for every hash and check, instead of 19 MiB for each.
#[derive(Default)]
pub struct PasswordMemory {
    blocks: Vec<argon2::Block>,
}

impl PasswordMemory {
    /// The first `count` blocks, growing the memory when it is smaller.
    fn blocks(&mut self, count: usize) -> &mut [argon2::Block] {
        if self.blocks.len() < count {
            self.blocks.resize(count, argon2::Block::default());
        }
        &mut self.blocks[..count]
    }

    /// The bytes held.
    pub fn size(&self) -> usize {
        self.blocks.len() * argon2::Block::SIZE
    }
}

/// Argon2id password hashing with the crate's recommended parameters (19 MiB, two passes).
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    hash_password_in(&mut PasswordMemory::default(), password)
}

/// [`hash_password`] in working memory that is kept.
pub fn hash_password_in(
    memory: &mut PasswordMemory,
    password: &str,
) -> Result<String, CryptoError> {
    use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
    let salt = random_bytes::<16>()?;
    let params = argon2::Params::DEFAULT;
    let argon2 = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params.clone(),
    );
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    argon2
        .hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut out,
            memory.blocks(params.block_count()),
        )
        .map_err(|_| CryptoError::Hash)?;
    let hash = PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|_| CryptoError::Hash)?,
        salt: Some(Salt::new(&salt).map_err(|_| CryptoError::Hash)?),
        hash: Some(Output::new(&out).map_err(|_| CryptoError::Hash)?),
    };
    Ok(hash.to_string())
}

/// Verifies a password against a stored Argon2id hash; a malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    verify_password_in(&mut PasswordMemory::default(), password, hash)
}

/// [`verify_password`] in working memory that is kept.
pub fn verify_password_in(memory: &mut PasswordMemory, password: &str, hash: &str) -> bool {
    use argon2::password_hash::phc::PasswordHash;
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::new(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = argon2::Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_PASSWORD_MEMORY_KIB {
        tracing::error!(
            memory_kib = params.m_cost(),
            "a stored password hash asks for more memory than otpgate gives a check; it never matches"
        );
        return false;
    }
    let mut computed = vec![0u8; expected.len()];
    let blocks = memory.blocks(params.block_count());
    argon2::Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut computed, blocks)
        .is_ok()
        && constant_time_eq(&computed, expected.as_bytes())
}

/// A new API key: what to hand out once, its public prefix, and the hash to store.
pub struct NewApiKey {
    pub key: String,
    pub prefix: String,
    pub hash: Vec<u8>,
}

pub fn new_api_key() -> Result<NewApiKey, CryptoError> {
    let prefix = data_encoding::BASE32_NOPAD
        .encode(&random_bytes::<5>()?)
        .to_lowercase();
    let secret = random_token::<32>()?;
    let key = format!("og_{prefix}.{secret}");
    let hash = sha256(key.as_bytes());
    Ok(NewApiKey { key, prefix, hash })
}

/// The prefix of a key as sent by a client, if it has the shape of one.
pub fn api_key_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("og_")?;
    let (prefix, secret) = rest.split_once('.')?;
    (prefix.len() == 8 && !secret.is_empty()).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_text_has_its_length_and_only_its_alphabet() {
        let text = random_text(b"abc", 300).expect("random");
        assert_eq!(text.len(), 300);
        assert!(text.bytes().all(|b| b"abc".contains(&b)));
        assert!(
            ["a", "b", "c"].iter().all(|c| text.contains(c)),
            "every character is drawn"
        );
        assert_ne!(
            random_text(b"ab", 64).expect("random"),
            random_text(b"ab", 64).expect("random")
        );
    }

    fn keys() -> (tempfile::TempDir, Keys) {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = Keys::load_or_create(&dir.path().join(KEY_FILE), true).expect("keys");
        (dir, keys)
    }

    #[test]
    fn a_sealed_value_opens_with_the_same_key_and_purpose_only() {
        let (_dir, keys) = keys();
        let sealed = keys.seal(Purpose::TokenSecret, b"seed").expect("seal");
        assert_eq!(sealed[0], SEAL_VERSION);
        assert_eq!(
            keys.open(Purpose::TokenSecret, &sealed).expect("open"),
            b"seed"
        );
        assert!(keys.open(Purpose::Credential, &sealed).is_err());
        let (_other_dir, other) = self::keys();
        assert!(other.open(Purpose::TokenSecret, &sealed).is_err());
    }

    #[test]
    fn the_key_file_is_private_and_reloads_to_the_same_key() {
        let (dir, keys) = keys();
        let path = dir.path().join(KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let check = keys.key_check().expect("check");
        let again = Keys::load_or_create(&path, false).expect("reload");
        again.verify_key_check(&check).expect("same key");
    }

    #[test]
    fn a_missing_key_file_is_refused_when_it_may_not_be_created() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = Keys::load_or_create(&dir.path().join(KEY_FILE), false).expect_err("refused");
        assert!(matches!(error, CryptoError::MissingKey(_)));
    }

    #[test]
    fn a_damaged_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, "garbage").expect("write");
        let error = Keys::load_or_create(&path, true).expect_err("refused");
        assert!(error.to_string().contains("damaged"), "{error}");
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn hashes_made_before_kept_memory_still_verify_and_new_ones_verify_with_the_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let older = argon2::Argon2::default()
            .hash_password_with_salt(b"correct horse", b"sixteen byte salt")
            .expect("hash")
            .to_string();
        let mut memory = PasswordMemory::default();
        assert!(verify_password_in(&mut memory, "correct horse", &older));
        assert!(!verify_password_in(&mut memory, "wrong horse", &older));
        let newer = hash_password_in(&mut memory, "correct horse").expect("hash");
        assert!(
            argon2::Argon2::default()
                .verify_password(b"correct horse", newer.as_str())
                .is_ok()
        );
        assert_eq!(memory.size(), 19 * 1024 * 1024, "the memory is kept, once");
    }

    #[test]
    fn a_hash_asking_for_too_much_memory_never_matches() {
        let greedy = "$argon2id$v=19$m=1048576,t=1,p=1$c2l4dGVlbiBieXRlIHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let mut memory = PasswordMemory::default();
        assert!(!verify_password_in(&mut memory, "anything", greedy));
        assert_eq!(memory.size(), 0, "no memory was taken for it");
    }

    #[test]
    fn pins_are_keyed_hashes() {
        let (_dir, keys) = keys();
        let stored = keys.pin_hash("1234");
        assert!(keys.pin_matches("1234", &stored));
        assert!(!keys.pin_matches("1235", &stored));
        let (_other_dir, other) = self::keys();
        assert!(!other.pin_matches("1234", &stored));
    }
}
