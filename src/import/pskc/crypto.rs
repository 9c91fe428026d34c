//! Encrypted values in a PSKC file (RFC 6030 section 6): AES-CBC decryption, the
//! `ValueMAC` check that comes before it, and the PBKDF2 derivation of a key from a
//! password.

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::xml::Element;
use super::{PskcKey, decode_base64, parse_xml_number};
use crate::import::{ImportError, excerpt};

/// The most PBKDF2 rounds honoured, because the count comes from the file and an
/// absurd value would otherwise tie up the server for hours.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// Returns the fragment after `#` in an algorithm URI, which is the part that names
/// the algorithm in the XML Encryption and XML Signature vocabularies.
fn uri_fragment(uri: &str) -> &str {
    let uri = uri.trim();
    uri.rsplit_once('#').map_or(uri, |(_, fragment)| fragment)
}

/// The block ciphers XML Encryption names that PSKC vendors use with CBC.
#[derive(Clone, Copy)]
enum CipherAlgorithm {
    Aes128,
    Aes192,
    Aes256,
}

impl CipherAlgorithm {
    fn from_uri(uri: &str) -> Option<Self> {
        match uri_fragment(uri) {
            "aes128-cbc" => Some(Self::Aes128),
            "aes192-cbc" => Some(Self::Aes192),
            "aes256-cbc" => Some(Self::Aes256),
            _ => None,
        }
    }

    fn key_len(self) -> usize {
        match self {
            Self::Aes128 => 16,
            Self::Aes192 => 24,
            Self::Aes256 => 32,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Aes128 => "aes128-cbc",
            Self::Aes192 => "aes192-cbc",
            Self::Aes256 => "aes256-cbc",
        }
    }

    /// Decrypts IV‖ciphertext and strips PKCS#7 padding; `None` means the key is
    /// wrong or the data was damaged, which the caller reports as one condition.
    fn decrypt(self, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        if data.len() < 32 || !data.len().is_multiple_of(16) {
            return None;
        }
        let (iv, ciphertext) = data.split_at(16);
        let mut buffer = ciphertext.to_vec();
        let plain_len = match self {
            Self::Aes128 => cbc::Decryptor::<Aes128>::new_from_slices(key, iv)
                .ok()?
                .decrypt_padded::<Pkcs7>(&mut buffer)
                .ok()?
                .len(),
            Self::Aes192 => cbc::Decryptor::<Aes192>::new_from_slices(key, iv)
                .ok()?
                .decrypt_padded::<Pkcs7>(&mut buffer)
                .ok()?
                .len(),
            Self::Aes256 => cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
                .ok()?
                .decrypt_padded::<Pkcs7>(&mut buffer)
                .ok()?
                .len(),
        };
        buffer.truncate(plain_len);
        Some(buffer)
    }
}

/// The HMAC hashes accepted for `MACMethod` and for the PBKDF2 pseudo-random function.
#[derive(Clone, Copy)]
pub(super) enum HmacHash {
    Sha1,
    Sha256,
    Sha512,
}

impl HmacHash {
    fn from_uri(uri: &str) -> Option<Self> {
        match uri_fragment(uri) {
            "hmac-sha1" => Some(Self::Sha1),
            "hmac-sha256" => Some(Self::Sha256),
            "hmac-sha512" => Some(Self::Sha512),
            _ => None,
        }
    }

    pub(super) fn tag(self, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        fn compute<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
            let mut mac = <M as KeyInit>::new_from_slice(key).ok()?;
            mac.update(data);
            Some(mac.finalize().into_bytes().to_vec())
        }
        match self {
            Self::Sha1 => compute::<Hmac<Sha1>>(key, data),
            Self::Sha256 => compute::<Hmac<Sha256>>(key, data),
            Self::Sha512 => compute::<Hmac<Sha512>>(key, data),
        }
    }

    fn pbkdf2(self, password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) -> bool {
        let result = match self {
            Self::Sha1 => pbkdf2::pbkdf2::<Hmac<Sha1>>(password, salt, rounds, out),
            Self::Sha256 => pbkdf2::pbkdf2::<Hmac<Sha256>>(password, salt, rounds, out),
            Self::Sha512 => pbkdf2::pbkdf2::<Hmac<Sha512>>(password, salt, rounds, out),
        };
        result.is_ok()
    }
}

/// Resolves the container's encryption and MAC keys on first use and caches them,
/// so plaintext files never need a key and encrypted files derive it only once.
pub(super) struct Crypto<'x, 'k> {
    encryption_key: Option<&'x Element>,
    mac_method: Option<&'x Element>,
    given: PskcKey<'k>,
    key: Option<Vec<u8>>,
    mac: Option<(HmacHash, Vec<u8>)>,
}

impl<'x, 'k> Crypto<'x, 'k> {
    pub(super) fn new(root: &'x Element, given: PskcKey<'k>) -> Self {
        Self {
            encryption_key: root.child("EncryptionKey"),
            mac_method: root.child("MACMethod"),
            given,
            key: None,
            mac: None,
        }
    }

    /// Reads a binary value element (`Secret`) holding a `PlainValue` or an
    /// `EncryptedValue` with its `ValueMAC`.
    pub(super) fn value(
        &mut self,
        element: &Element,
        serial: &str,
    ) -> Result<Vec<u8>, ImportError> {
        if let Some(encrypted) = element.child("EncryptedValue") {
            return self.decrypt_value(element, encrypted, serial);
        }
        match element.child("PlainValue") {
            Some(plain) => decode_base64(plain.text()).ok_or_else(|| {
                ImportError::at(
                    plain.line,
                    format!(
                        "token {serial}: the <{}> value is not valid base64",
                        element.local_name()
                    ),
                )
            }),
            None => Err(ImportError::at(
                element.line,
                format!(
                    "token {serial}: missing {} value",
                    element.local_name().to_lowercase()
                ),
            )),
        }
    }

    /// Reads an integer value element (`Counter`, `TimeInterval`, `Time`), which is a
    /// decimal `PlainValue` or an encrypted big-endian number.
    pub(super) fn integer(
        &mut self,
        element: &Element,
        what: &str,
        serial: &str,
    ) -> Result<u64, ImportError> {
        if let Some(encrypted) = element.child("EncryptedValue") {
            let bytes = self.decrypt_value(element, encrypted, serial)?;
            if bytes.len() > 8 {
                return Err(ImportError::at(
                    encrypted.line,
                    format!("token {serial}: {what} does not fit 64 bits"),
                ));
            }
            return Ok(bytes
                .iter()
                .fold(0_u64, |acc, byte| (acc << 8) | u64::from(*byte)));
        }
        match element.child("PlainValue") {
            Some(plain) => parse_xml_number(plain.text(), what, serial, plain.line),
            None => Err(ImportError::at(
                element.line,
                format!("token {serial}: {what} has no value"),
            )),
        }
    }

    /// Checks the `ValueMAC` of an encrypted value in constant time and only then
    /// decrypts it, so a wrong key or a tampered file is reported rather than
    /// imported as a garbage secret.
    fn decrypt_value(
        &mut self,
        holder: &Element,
        encrypted: &Element,
        serial: &str,
    ) -> Result<Vec<u8>, ImportError> {
        let line = encrypted.line;
        let owner = format!("token {serial}");
        let cipher = encryption_method(encrypted, &owner)?;
        let data = cipher_value(encrypted, &owner)?;
        let key = self.encryption_key(cipher, serial, line)?;
        let value_mac = holder.child("ValueMAC").ok_or_else(|| {
            ImportError::at(
                line,
                format!("token {serial}: the encrypted value has no ValueMAC, so it cannot be authenticated"),
            )
        })?;
        let expected = decode_base64(value_mac.text()).ok_or_else(|| {
            ImportError::at(
                value_mac.line,
                format!("token {serial}: the ValueMAC is not valid base64"),
            )
        })?;
        let (hash, mac_key) = self.mac_key(&key, serial, line)?;
        let actual = hash.tag(&mac_key, &data).ok_or_else(|| {
            ImportError::at(line, format!("token {serial}: the MAC cannot be computed"))
        })?;
        if actual.len() != expected.len() || !bool::from(actual.ct_eq(&expected)) {
            return Err(ImportError::at(
                value_mac.line,
                format!(
                    "token {serial}: wrong key or corrupted file (the ValueMAC does not match)"
                ),
            ));
        }
        cipher.decrypt(&key, &data).ok_or_else(|| {
            ImportError::at(
                line,
                format!("token {serial}: wrong key or corrupted file (the value does not decrypt)"),
            )
        })
    }

    /// Returns the AES key, deriving it from the password on first use.
    fn encryption_key(
        &mut self,
        cipher: CipherAlgorithm,
        serial: &str,
        line: usize,
    ) -> Result<Vec<u8>, ImportError> {
        let key = match &self.key {
            Some(key) => key.clone(),
            None => {
                let key = self.resolve_key(cipher, serial, line)?;
                self.key = Some(key.clone());
                key
            }
        };
        if key.len() != cipher.key_len() {
            return Err(ImportError::at(
                line,
                format!(
                    "token {serial}: {} needs a {}-byte key, but the key is {} bytes",
                    cipher.name(),
                    cipher.key_len(),
                    key.len()
                ),
            ));
        }
        Ok(key)
    }

    fn resolve_key(
        &self,
        cipher: CipherAlgorithm,
        serial: &str,
        line: usize,
    ) -> Result<Vec<u8>, ImportError> {
        match self.given {
            PskcKey::None => {
                let hint = match self.encryption_key {
                    Some(element) if element.child("DerivedKey").is_some() => {
                        "a password".to_owned()
                    }
                    Some(element) => match element.child("KeyName").map(Element::text) {
                        Some(name) if !name.is_empty() => {
                            format!("the pre-shared key \"{}\"", excerpt(name))
                        }
                        _ => "a pre-shared key".to_owned(),
                    },
                    None => "a key".to_owned(),
                };
                Err(ImportError::at(
                    line,
                    format!(
                        "token {serial}: the secret is encrypted, but no key was given; it needs {hint}"
                    ),
                ))
            }
            PskcKey::PreShared(key) => Ok(key.to_vec()),
            PskcKey::Password(password) => {
                let derived = self
                    .encryption_key
                    .and_then(|element| element.child("DerivedKey"))
                    .ok_or_else(|| {
                        ImportError::at(
                            line,
                            format!(
                                "token {serial}: a password was given, but the file is encrypted with a pre-shared key, not a password-derived one"
                            ),
                        )
                    })?;
                derive_key(derived, password, cipher.key_len())
            }
        }
    }

    /// Returns the MAC hash and key, decrypting the `MACKey` on first use.
    fn mac_key(
        &mut self,
        encryption_key: &[u8],
        serial: &str,
        line: usize,
    ) -> Result<(HmacHash, Vec<u8>), ImportError> {
        if let Some((hash, key)) = &self.mac {
            return Ok((*hash, key.clone()));
        }
        let method = self.mac_method.ok_or_else(|| {
            ImportError::at(
                line,
                format!("token {serial}: the file has no MACMethod, so encrypted values cannot be authenticated"),
            )
        })?;
        let uri = method.attr("Algorithm").unwrap_or("");
        let hash = HmacHash::from_uri(uri).ok_or_else(|| {
            ImportError::at(
                method.line,
                format!("unsupported MAC algorithm \"{}\"", excerpt(uri)),
            )
        })?;
        let mac_key = method
            .child("MACKey")
            .ok_or_else(|| ImportError::at(method.line, "the MACMethod has no MACKey"))?;
        let cipher = encryption_method(mac_key, "the MAC key")?;
        let data = cipher_value(mac_key, "the MAC key")?;
        if encryption_key.len() != cipher.key_len() {
            return Err(ImportError::at(
                mac_key.line,
                format!(
                    "the MAC key uses {}, which needs a {}-byte key, but the key is {} bytes",
                    cipher.name(),
                    cipher.key_len(),
                    encryption_key.len()
                ),
            ));
        }
        let key = cipher.decrypt(encryption_key, &data).ok_or_else(|| {
            ImportError::at(
                mac_key.line,
                format!(
                    "token {serial}: wrong key or corrupted file (the MAC key does not decrypt)"
                ),
            )
        })?;
        self.mac = Some((hash, key.clone()));
        Ok((hash, key))
    }
}

/// Reads the cipher of an encrypted element; only AES-CBC is supported, since that is
/// what RFC 6030 mandates and vendors ship. `owner` names the value in errors.
fn encryption_method(encrypted: &Element, owner: &str) -> Result<CipherAlgorithm, ImportError> {
    let method = encrypted
        .child("EncryptionMethod")
        .ok_or_else(|| ImportError::at(encrypted.line, format!("{owner}: no EncryptionMethod")))?;
    let uri = method.attr("Algorithm").unwrap_or("");
    CipherAlgorithm::from_uri(uri).ok_or_else(|| {
        ImportError::at(
            method.line,
            format!(
                "{owner}: unsupported encryption method \"{}\"; only AES-CBC is supported",
                excerpt(uri)
            ),
        )
    })
}

/// Reads the base64 `CipherValue` of an encrypted element; `owner` names it in errors.
fn cipher_value(encrypted: &Element, owner: &str) -> Result<Vec<u8>, ImportError> {
    let value = encrypted
        .descendant(&["CipherData", "CipherValue"])
        .ok_or_else(|| {
            ImportError::at(
                encrypted.line,
                format!("{owner}: no CipherData/CipherValue"),
            )
        })?;
    decode_base64(value.text()).ok_or_else(|| {
        ImportError::at(
            value.line,
            format!("{owner}: the CipherValue is not valid base64"),
        )
    })
}

/// Derives the encryption key from a password with the file's PBKDF2 parameters
/// (RFC 6030 section 6.2), bounding the iteration count and key length it accepts.
fn derive_key(derived: &Element, password: &str, needed: usize) -> Result<Vec<u8>, ImportError> {
    let method = derived.child("KeyDerivationMethod").ok_or_else(|| {
        ImportError::at(derived.line, "the DerivedKey has no KeyDerivationMethod")
    })?;
    let uri = method.attr("Algorithm").unwrap_or("");
    if uri_fragment(uri) != "pbkdf2" {
        return Err(ImportError::at(
            method.line,
            format!(
                "unsupported key derivation \"{}\"; only PBKDF2 is supported",
                excerpt(uri)
            ),
        ));
    }
    let params = method
        .child("PBKDF2-params")
        .ok_or_else(|| ImportError::at(method.line, "the key derivation has no PBKDF2-params"))?;
    let salt_element = params.descendant(&["Salt", "Specified"]).ok_or_else(|| {
        ImportError::at(
            params.line,
            "the PBKDF2 parameters have no Salt/Specified value",
        )
    })?;
    let salt = decode_base64(salt_element.text())
        .ok_or_else(|| ImportError::at(salt_element.line, "the PBKDF2 salt is not valid base64"))?;
    let rounds_element = params.child("IterationCount").ok_or_else(|| {
        ImportError::at(params.line, "the PBKDF2 parameters have no IterationCount")
    })?;
    let rounds = rounds_element
        .text()
        .parse::<u32>()
        .ok()
        .filter(|rounds| (1..=MAX_PBKDF2_ITERATIONS).contains(rounds))
        .ok_or_else(|| {
            ImportError::at(
                rounds_element.line,
                format!(
                    "the PBKDF2 iteration count must be a number from 1 to {MAX_PBKDF2_ITERATIONS}"
                ),
            )
        })?;
    if let Some(length) = params.child("KeyLength")
        && length.text().parse::<usize>().ok() != Some(needed)
    {
        return Err(ImportError::at(
            length.line,
            format!("the PBKDF2 key length must be {needed} bytes for the cipher in use"),
        ));
    }
    let hash = match params.child("PRF") {
        None => HmacHash::Sha1,
        Some(prf) => match prf.attr("Algorithm").map(str::trim) {
            None | Some("") => HmacHash::Sha1,
            Some(uri) => HmacHash::from_uri(uri).ok_or_else(|| {
                ImportError::at(
                    prf.line,
                    format!("unsupported PBKDF2 PRF \"{}\"", excerpt(uri)),
                )
            })?,
        },
    };
    let mut key = vec![0_u8; needed];
    if !hash.pbkdf2(password.as_bytes(), &salt, rounds, &mut key) {
        return Err(ImportError::at(method.line, "PBKDF2 key derivation failed"));
    }
    Ok(key)
}
