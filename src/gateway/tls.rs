//! TLS for the WebSocket and API listener: the certificate chain and key from
//! `[server.tls]`, loaded at start and again on every reload, swapped for new
//! connections only (open ones keep the session they negotiated). ALPN offers `h2` and
//! `http/1.1`.

use crate::config::TlsConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::{Arc, RwLock};
use tokio_rustls::rustls;

/// Why a certificate or key could not be used; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The chain file is missing, unreadable or holds no certificate.
    #[error("server.tls.cert `{file}`: {reason}")]
    Cert {
        /// The file.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// The key file is missing or unreadable, or the key does not fit the certificate.
    #[error("server.tls.key `{file}`: {reason}")]
    Key {
        /// The file.
        file: String,
        /// What went wrong.
        reason: String,
    },
}

/// Reads `config`'s chain and key into a server configuration.
pub fn load(config: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_file = config.cert.display().to_string();
    let key_file = config.key.display().to_string();
    let cert_err = |reason: String| TlsError::Cert { file: cert_file.clone(), reason };
    let key_err = |reason: String| TlsError::Key { file: key_file.clone(), reason };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no PEM certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(|e| key_err(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| key_err(e.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// The TLS configuration in force, swapped by reloads.
#[derive(Default)]
pub struct Tls(RwLock<Option<Arc<rustls::ServerConfig>>>);

impl Tls {
    /// The configuration for the next connection; `None` serves plaintext.
    pub fn current(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `config` in force for new connections.
    pub fn set(&self, config: Option<Arc<rustls::ServerConfig>>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = config;
    }
}
