//! HTTPS: a rustls server configuration from PEM files (the `ring` provider).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

/// A rustls configuration serving the certificate chain in `cert` with the private key in
/// `key`.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let read = |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let chain = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not PEM certificates", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{}: no certificate", cert.display());
    let private_key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .with_context(|| format!("{}: not a PEM private key", key.display()))?
        .with_context(|| format!("{}: no private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .context("the certificate and key do not make a TLS configuration")
}
