//! [`TlsConfig`]: the certificate and key the connector serves, and their reload handle.

use crate::sync::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The TLS settings of a [`Server`](crate::server::Server): a rustls `ServerConfig` behind a
/// shared, swappable slot.
///
/// Built from a PEM certificate chain and its private key ([`from_pem_files`](Self::from_pem_files),
/// [`from_pem`](Self::from_pem)) or from a rustls configuration of your own
/// ([`from_rustls`](Self::from_rustls)). The PEM constructors use rustls' *ring* provider, TLS
/// 1.3 and 1.2 (libpomelo2, pomelo's C client, speaks only 1.2), no client authentication, and
/// one certificate for every connection whatever SNI name the client sends, or none (libpomelo2
/// sends none).
///
/// # Reloading
///
/// A `TlsConfig` is a cheap handle: clones share one slot. Keep a clone after passing one to
/// [`ServerBuilder::tls`](crate::server::ServerBuilder::tls), and call
/// [`reload_pem_files`](Self::reload_pem_files) (or [`reload_pem`](Self::reload_pem),
/// [`reload_rustls`](Self::reload_rustls)) when the certificate is renewed: connections
/// accepted afterwards get the new certificate, connections already open keep theirs. A reload
/// that fails (unreadable file, key not matching) changes nothing.
///
/// The slot is an `RwLock` read once per accepted TLS connection (never on the data path), so
/// it is not part of the loom models: no hot path depends on its ordering.
///
/// # Session resumption
///
/// The PEM constructors keep rustls' defaults: a per-configuration in-memory cache of 256
/// sessions (stateful resumption, TLS 1.2 session ids and TLS 1.3 tickets that name cache
/// entries); stateless tickets are off. A reload starts with an empty cache.
///
/// # Examples
///
/// ```no_run
/// use gatehouse::server::{Server, TlsConfig};
///
/// let tls = TlsConfig::from_pem_files("cert.pem", "key.pem")?;
/// let builder = Server::builder().tls(tls.clone());
/// // … later, once the certificate was renewed on disk:
/// tls.reload_pem_files("cert.pem", "key.pem")?;
/// # drop(builder);
/// # Ok::<(), gatehouse::server::TlsConfigError>(())
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    slot: Arc<RwLock<Arc<ServerConfig>>>,
}

impl TlsConfig {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
    /// SEC1) from files.
    ///
    /// # Errors
    ///
    /// [`TlsConfigError`]: a file cannot be read (its path is in the error), holds no
    /// certificate or no key, the key is of an unsupported kind, or it does not match the
    /// certificate.
    pub fn from_pem_files(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<TlsConfig, TlsConfigError> {
        Ok(TlsConfig::from_rustls(load_pem_files(
            cert_path.as_ref(),
            key_path.as_ref(),
        )?))
    }

    /// As [`from_pem_files`](Self::from_pem_files), from PEM text in memory.
    ///
    /// # Errors
    ///
    /// As [`from_pem_files`](Self::from_pem_files), without the file errors.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsConfig, TlsConfigError> {
        Ok(TlsConfig::from_rustls(server_config(cert_pem, key_pem)?))
    }

    /// A rustls configuration built by the application (client authentication, ALPN, a
    /// certificate resolver, another crypto provider…), served as is.
    pub fn from_rustls(config: Arc<ServerConfig>) -> TlsConfig {
        TlsConfig {
            slot: Arc::new(RwLock::new(config)),
        }
    }

    /// Replaces the certificate and key of this handle and of every clone with those of the
    /// files; the new connections get them.
    ///
    /// # Errors
    ///
    /// As [`from_pem_files`](Self::from_pem_files); the configuration in force is then
    /// unchanged.
    pub fn reload_pem_files(
        &self,
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<(), TlsConfigError> {
        let config = load_pem_files(cert_path.as_ref(), key_path.as_ref())?;
        self.reload_rustls(config);
        Ok(())
    }

    /// As [`reload_pem_files`](Self::reload_pem_files), from PEM text in memory.
    ///
    /// # Errors
    ///
    /// As [`from_pem`](Self::from_pem); the configuration in force is then unchanged.
    pub fn reload_pem(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsConfigError> {
        self.reload_rustls(server_config(cert_pem, key_pem)?);
        Ok(())
    }

    /// Serves `config` to the connections accepted from now on.
    pub fn reload_rustls(&self, config: Arc<ServerConfig>) {
        *self.slot.write() = config;
    }

    /// The configuration in force (what the next accepted connection gets).
    pub fn current(&self) -> Arc<ServerConfig> {
        self.slot.read().clone()
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

/// Why a [`TlsConfig`] could not be built or reloaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The certificate input holds no `CERTIFICATE` section.
    NoCertificate,
    /// The certificate or key input is not valid PEM (a section without its end line,
    /// bad base64…).
    BadPem(String),
    /// The key input holds no private key section (`PRIVATE KEY`, `RSA PRIVATE KEY` or
    /// `EC PRIVATE KEY`).
    NoKey,
    /// The key could not be loaded: an unsupported algorithm or a malformed key.
    UnsupportedKey(rustls::Error),
    /// The key does not belong to the (first) certificate.
    KeyMismatch,
    /// rustls refused the configuration for another reason.
    Rustls(rustls::Error),
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            TlsConfigError::NoCertificate => f.write_str("no PEM certificate found"),
            TlsConfigError::BadPem(what) => write!(f, "invalid PEM: {what}"),
            TlsConfigError::NoKey => f.write_str("no PEM private key found"),
            TlsConfigError::UnsupportedKey(err) => write!(f, "unsupported private key: {err}"),
            TlsConfigError::KeyMismatch => {
                f.write_str("the private key does not match the certificate")
            }
            TlsConfigError::Rustls(err) => write!(f, "TLS configuration refused: {err}"),
        }
    }
}

impl std::error::Error for TlsConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsConfigError::Read { source, .. } => Some(source),
            TlsConfigError::UnsupportedKey(err) | TlsConfigError::Rustls(err) => Some(err),
            _ => None,
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn load_pem_files(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    server_config(&cert_pem, &key_pem)
}

fn bad_pem(err: pem::Error) -> TlsConfigError {
    TlsConfigError::BadPem(err.to_string())
}

/// The PEM constructors' rustls configuration (see [`TlsConfig`]).
pub(crate) fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad_pem)?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|err| match err {
        pem::Error::NoItemsFound => TlsConfigError::NoKey,
        other => bad_pem(other),
    })?;
    let provider = Arc::new(ring_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsConfigError::Rustls)?
        .with_no_client_auth();
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|err| match err {
            rustls::Error::InconsistentKeys(_) => TlsConfigError::KeyMismatch,
            rustls::Error::General(_) => TlsConfigError::UnsupportedKey(err),
            other => TlsConfigError::Rustls(other),
        })?;
    Ok(Arc::new(config))
}

/// rustls' *ring* provider. rustls 0.23.48 deprecates it for lacking post-quantum key exchange
/// (X25519MLKEM768, which only its aws-lc-rs provider has); *ring* is kept on purpose: it
/// builds without cmake, and neither libpomelo2 (TLS 1.2) nor the browsers' WSS need it. An
/// application that wants post-quantum key exchange builds its own `ServerConfig` with
/// aws-lc-rs and passes it to [`TlsConfig::from_rustls`].
///
/// Key exchange groups in cost order: X25519, then P-256, then P-384. *ring*'s own order puts
/// P-384 first, and a TLS 1.3 server picks, among the key shares a client sent, the first in its
/// own order: a client that sends both an X25519 and a P-384 share would cost the server 9.5×
/// more CPU per handshake for nothing (BENCHMARKS.md §7). A client that offers only P-384 still
/// gets it, without a HelloRetryRequest.
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![X25519, SECP256R1, SECP384R1];
    provider
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::NamedGroup;

    #[test]
    fn key_exchange_groups_are_in_cost_order() {
        let names: Vec<NamedGroup> = ring_provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            names,
            [
                NamedGroup::X25519,
                NamedGroup::secp256r1,
                NamedGroup::secp384r1
            ]
        );
    }
}
