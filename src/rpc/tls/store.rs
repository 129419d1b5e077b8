//! Keystores and truststores: reading the certificate chain and private key a server presents,
//! and the certificates a client trusts, from the files Flume users already have.
//!
//! **Formats.** PKCS#12 (`.p12`/`.pfx`, Java's default keystore type since Java 9; opened with
//! the `*-password`) and PEM (certificates, plus for a keystore a PKCS#8, PKCS#1 or SEC1 private
//! key, either after the certificates or in the separate `keystore-key` file). PEM is parsed
//! by the `pem` module of `rustls-pki-types` (which rustls re-exports); sections of any other
//! kind are skipped, and a malformed section is an error naming the file. JKS and JCEKS, Java's
//! proprietary formats, cannot be read: [`StoreType::parse`] accepts their names (many PKCS#12 files are configured as `JKS`, which
//! Java tolerates), the file is sniffed, and a real JKS/JCEKS file is refused with
//! [`JKS_CONVERSION_HINT`] (defined with the errors that quote it).
//!
//! **Detection.** The configured type wins; otherwise a file containing `-----BEGIN ` is PEM
//! and one starting with a DER SEQUENCE byte (`0x30`) is PKCS#12. The JKS/JCEKS magic numbers
//! are checked first, whatever the configured type.
//!
//! **Invariants.** A keystore yields the leaf certificate first (for PKCS#12, the certificate
//! whose `localKeyId` matches the key's), then the rest of the chain, and exactly one key (the
//! first; a second PKCS#12 key is logged and ignored). Encrypted PEM keys are not supported and
//! are reported as such rather than as "no key". A truststore yields at least one certificate,
//! and every certificate in it is trusted. Files are read whole; nothing is cached.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::error::TlsError;
pub use super::error::JKS_CONVERSION_HINT;

/// The magic number that starts every JKS file.
const JKS_MAGIC: [u8; 4] = [0xFE, 0xED, 0xFE, 0xED];
/// The magic number of a JCEKS file.
const JCEKS_MAGIC: [u8; 4] = [0xCE, 0xCE, 0xCE, 0xCE];

/// The format of a keystore or truststore file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    /// PKCS#12 (`.p12`, `.pfx`; Java's default keystore type since Java 9).
    Pkcs12,
    /// PEM text: certificates, and for a keystore a PKCS#8/PKCS#1/SEC1 private key.
    Pem,
}

impl StoreType {
    /// Parses a `*-type` value. `JKS` and `JCEKS` return `Ok(None)`: the file is sniffed and a
    /// real JKS file is refused with the conversion command (many PKCS#12 files are configured
    /// as `JKS`, which Java accepts).
    pub fn parse(what: &'static str, value: &str) -> Result<Option<StoreType>, TlsError> {
        match value.trim().to_ascii_uppercase().as_str() {
            "PKCS12" | "P12" | "PFX" | "PKCS#12" => Ok(Some(StoreType::Pkcs12)),
            "PEM" => Ok(Some(StoreType::Pem)),
            "JKS" | "JCEKS" | "" => Ok(None),
            _ => Err(TlsError::UnknownStoreType {
                what,
                value: value.to_string(),
            }),
        }
    }
}

/// Where a keystore or truststore comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSource {
    /// The file.
    pub path: PathBuf,
    /// PKCS#12 password (empty when unset).
    pub password: Option<String>,
    /// The format; `None` = detect from the content.
    pub store_type: Option<StoreType>,
    /// For a PEM keystore: a separate file holding the private key.
    pub key_path: Option<PathBuf>,
}

impl StoreSource {
    /// A store at `path`, format detected, no password.
    pub fn new(path: impl Into<PathBuf>) -> StoreSource {
        StoreSource {
            path: path.into(),
            password: None,
            store_type: None,
            key_path: None,
        }
    }

    /// With a password.
    pub fn password(mut self, password: impl Into<String>) -> StoreSource {
        self.password = Some(password.into());
        self
    }

    /// With an explicit format.
    pub fn store_type(mut self, t: StoreType) -> StoreSource {
        self.store_type = Some(t);
        self
    }

    /// With a separate PEM key file.
    pub fn key_path(mut self, p: impl Into<PathBuf>) -> StoreSource {
        self.key_path = Some(p.into());
        self
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Decides the format of `data`: the configured one, else by content. JKS/JCEKS → error.
fn detect_type(
    what: &'static str,
    path: &Path,
    data: &[u8],
    configured: Option<StoreType>,
) -> Result<StoreType, TlsError> {
    if data.len() >= 4 && data[..4] == JKS_MAGIC {
        return Err(TlsError::Jks {
            what,
            path: path.to_path_buf(),
            kind: "JKS",
        });
    }
    if data.len() >= 4 && data[..4] == JCEKS_MAGIC {
        return Err(TlsError::Jks {
            what,
            path: path.to_path_buf(),
            kind: "JCEKS",
        });
    }
    if let Some(t) = configured {
        return Ok(t);
    }
    let looks_pem = data.windows(11).any(|w| w == b"-----BEGIN ");
    if looks_pem {
        Ok(StoreType::Pem)
    } else if data.first() == Some(&0x30) {
        Ok(StoreType::Pkcs12)
    } else {
        Err(TlsError::BadStore {
            what,
            path: path.to_path_buf(),
            message: "neither PEM nor PKCS#12 (DER); set the type to PKCS12 or PEM".into(),
        })
    }
}

fn p12_error(what: &'static str, path: &Path, e: p12_keystore::error::Error) -> TlsError {
    let hint = match e {
        p12_keystore::error::Error::MacError(_) => " (wrong password?)",
        _ => "",
    };
    TlsError::BadStore {
        what,
        path: path.to_path_buf(),
        message: format!("cannot read PKCS#12: {e}{hint}"),
    }
}

/// Why an encrypted PEM key is refused, and what to do instead.
const ENCRYPTED_KEY: &str = "encrypted PEM private keys are not supported: decrypt with \
                             `openssl pkcs8 -in key.pem -out plain.pem` or use a PKCS#12 \
                             keystore with keystore-password";

struct PemItems {
    certs: Vec<CertificateDer<'static>>,
    keys: Vec<PrivateKeyDer<'static>>,
    encrypted_key: bool,
}

fn read_pem(what: &'static str, path: &Path, data: &[u8]) -> Result<PemItems, TlsError> {
    let mut items = PemItems {
        certs: Vec::new(),
        keys: Vec::new(),
        encrypted_key: data.windows(19).any(|w| w == b"ENCRYPTED PRIVATE K")
            || data.windows(14).any(|w| w == b"Proc-Type: 4,E"),
    };
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(data) {
        let (kind, der) = item.map_err(|e| TlsError::BadStore {
            what,
            path: path.to_path_buf(),
            // A legacy encrypted key (`Proc-Type`/`DEK-Info` headers) is not valid base64:
            // say what it is rather than that the PEM is broken.
            message: if items.encrypted_key {
                ENCRYPTED_KEY.to_string()
            } else {
                format!("bad PEM: {e}")
            },
        })?;
        match kind {
            SectionKind::Certificate => items.certs.push(CertificateDer::from(der)),
            SectionKind::RsaPrivateKey => items.keys.push(PrivateKeyDer::Pkcs1(der.into())),
            SectionKind::PrivateKey => items.keys.push(PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::EcPrivateKey => items.keys.push(PrivateKeyDer::Sec1(der.into())),
            _ => {}
        }
    }
    Ok(items)
}

/// Loads a server certificate chain and private key.
pub fn load_keystore(
    src: &StoreSource,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let what = "keystore";
    let data = read_file(what, &src.path)?;
    match detect_type(what, &src.path, &data, src.store_type)? {
        StoreType::Pkcs12 => {
            let pw = src.password.as_deref().unwrap_or("");
            let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&data, pw)
                .map_err(|e| p12_error(what, &src.path, e))?;
            let key = archive.keys.first().ok_or_else(|| TlsError::BadStore {
                what,
                path: src.path.clone(),
                message: "PKCS#12 file holds no private key (is it a truststore?)".into(),
            })?;
            if archive.keys.len() > 1 {
                tracing::warn!(path = %src.path.display(), "PKCS#12 keystore holds several keys; using the first");
            }
            // The leaf is the certificate sharing the key's localKeyId; the rest is the chain.
            let leaf_idx = key
                .local_key_id
                .as_ref()
                .and_then(|id| {
                    archive.certs.iter().position(|c| {
                        c.local_key_id
                            .as_deref()
                            .is_some_and(|cid| cid == id.0.as_slice())
                    })
                })
                .or(if archive.certs.len() == 1 {
                    Some(0)
                } else {
                    None
                })
                .ok_or_else(|| TlsError::BadStore {
                    what,
                    path: src.path.clone(),
                    message: "PKCS#12 file has no certificate for its private key".into(),
                })?;
            let mut chain = vec![CertificateDer::from(
                archive.certs[leaf_idx].cert.as_der().to_vec(),
            )];
            for (i, c) in archive.certs.iter().enumerate() {
                if i != leaf_idx {
                    chain.push(CertificateDer::from(c.cert.as_der().to_vec()));
                }
            }
            let key = PrivateKeyDer::Pkcs8(key.key.as_der().to_vec().into());
            Ok((chain, key))
        }
        StoreType::Pem => {
            let mut items = read_pem(what, &src.path, &data)?;
            let mut key_origin = src.path.clone();
            let mut key_what = what;
            if let Some(kp) = &src.key_path {
                let kdata = read_file("keystore-key", kp)?;
                let k = read_pem("keystore-key", kp, &kdata)?;
                items.keys = k.keys;
                items.encrypted_key = k.encrypted_key;
                key_origin = kp.clone();
                key_what = "keystore-key";
            }
            if items.certs.is_empty() {
                return Err(TlsError::BadStore {
                    what,
                    path: src.path.clone(),
                    message: "PEM keystore holds no CERTIFICATE".into(),
                });
            }
            let key = match items.keys.into_iter().next() {
                Some(k) => k,
                None if items.encrypted_key => {
                    return Err(TlsError::BadStore {
                        what: key_what,
                        path: key_origin,
                        message: ENCRYPTED_KEY.into(),
                    })
                }
                None => {
                    return Err(TlsError::BadStore {
                        what: key_what,
                        path: key_origin,
                        message: "no PRIVATE KEY found: put it in the keystore PEM after the \
                                  certificates, or name its file in keystore-key"
                            .into(),
                    })
                }
            };
            Ok((items.certs, key))
        }
    }
}

/// Loads the trusted certificates of a truststore (every certificate in it is trusted).
pub fn load_truststore(src: &StoreSource) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let what = "truststore";
    let data = read_file(what, &src.path)?;
    let certs: Vec<CertificateDer<'static>> =
        match detect_type(what, &src.path, &data, src.store_type)? {
            StoreType::Pkcs12 => {
                let pw = src.password.as_deref().unwrap_or("");
                let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&data, pw)
                    .map_err(|e| p12_error(what, &src.path, e))?;
                archive
                    .certs
                    .iter()
                    .map(|c| CertificateDer::from(c.cert.as_der().to_vec()))
                    .collect()
            }
            StoreType::Pem => read_pem(what, &src.path, &data)?.certs,
        };
    if certs.is_empty() {
        return Err(TlsError::BadStore {
            what,
            path: src.path.clone(),
            message: "truststore holds no certificate".into(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_type_names() {
        assert_eq!(
            StoreType::parse("keystore", "pkcs12").unwrap(),
            Some(StoreType::Pkcs12)
        );
        assert_eq!(
            StoreType::parse("keystore", "PEM").unwrap(),
            Some(StoreType::Pem)
        );
        assert_eq!(StoreType::parse("keystore", "JKS").unwrap(), None);
        let e = StoreType::parse("truststore", "BKS").unwrap_err();
        assert_eq!(e.key(), "truststore-type");
    }

    const CERT_PEM: &str = include_str!("../../../tests/fixtures/tls/ca.pem");
    const KEY_PEM: &str = include_str!("../../../tests/fixtures/tls/server.key");

    /// The base64 body of the first PEM section in `pem`.
    fn body(pem: &str) -> String {
        pem.lines()
            .skip_while(|l| !l.starts_with("-----BEGIN "))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn section(label: &str, body: &str) -> String {
        format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
    }

    fn der(pem: &str) -> Vec<u8> {
        let (_, d) = <(SectionKind, Vec<u8>)>::from_pem_slice(pem.as_bytes()).unwrap();
        d
    }

    #[test]
    fn pem_sections_map_to_certificates_and_each_key_format() {
        let key = body(KEY_PEM);
        let text = format!(
            "comment before\n{}{}{}{}{}{}",
            CERT_PEM,
            section("X509 CRL", &body(CERT_PEM)),
            section("SOMETHING ELSE", "not even base64 !!"),
            section("RSA PRIVATE KEY", &key),
            section("PRIVATE KEY", &key),
            section("EC PRIVATE KEY", &key),
        );
        let items = read_pem("keystore", Path::new("k.pem"), text.as_bytes()).unwrap();
        assert_eq!(
            items.certs.len(),
            1,
            "the CRL and the unknown section are skipped"
        );
        assert_eq!(items.certs[0].as_ref(), der(CERT_PEM).as_slice());
        assert!(!items.encrypted_key);
        let kinds: Vec<&str> = items
            .keys
            .iter()
            .map(|k| match k {
                PrivateKeyDer::Pkcs1(_) => "pkcs1",
                PrivateKeyDer::Pkcs8(_) => "pkcs8",
                PrivateKeyDer::Sec1(_) => "sec1",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["pkcs1", "pkcs8", "sec1"]);
        assert!(items
            .keys
            .iter()
            .all(|k| k.secret_der() == der(KEY_PEM).as_slice()));
    }

    #[test]
    fn malformed_pem_is_an_error_naming_the_file() {
        let bad_base64 = section("CERTIFICATE", "%%%% not base64 %%%%");
        let e = read_pem("truststore", Path::new("/etc/t.pem"), bad_base64.as_bytes())
            .err()
            .expect("bad base64 must fail");
        assert_eq!(e.key(), "truststore");
        let msg = e.to_string();
        assert!(
            msg.contains("/etc/t.pem") && msg.contains("bad PEM"),
            "{msg}"
        );
        let unterminated = format!("-----BEGIN CERTIFICATE-----\n{}\n", body(CERT_PEM));
        let e = read_pem("truststore", Path::new("t.pem"), unterminated.as_bytes())
            .err()
            .expect("a section without its END line must fail");
        assert!(e.to_string().contains("bad PEM"), "{e}");
    }

    #[test]
    fn encrypted_keys_are_reported_as_encrypted() {
        // PKCS#8 encrypted: a section kind rustls cannot use, so no key at all.
        let pkcs8 = format!(
            "{CERT_PEM}{}",
            section("ENCRYPTED PRIVATE KEY", &body(KEY_PEM))
        );
        let items = read_pem("keystore", Path::new("k.pem"), pkcs8.as_bytes()).unwrap();
        assert!(items.keys.is_empty() && items.encrypted_key);
        // Legacy OpenSSL encryption: headers inside the section are not base64.
        let legacy = section(
            "RSA PRIVATE KEY",
            &format!(
                "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n{}",
                body(KEY_PEM)
            ),
        );
        let e = read_pem("keystore-key", Path::new("k.key"), legacy.as_bytes())
            .err()
            .expect("legacy encrypted key");
        assert_eq!(e.key(), "keystore-key");
        assert!(e.to_string().contains("encrypted PEM private keys"), "{e}");
    }
}
