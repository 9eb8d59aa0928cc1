//! TLS on the client port, Redis's `tls-port`: the node's certificate for
//! clients, and optionally clients' certificates checked against a CA
//! (`tls_auth_clients`, as Redis's `tls-auth-clients`). TLS 1.2 and 1.3,
//! as Redis offers by default. The files are reloaded when they change,
//! from the next connection on.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

use crate::net::{Files, Reloading, TlsError, chain_and_key, provider, roots};

/// Whether clients on the TLS port must present a certificate signed by
/// `tls_ca`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TlsAuthClients {
    /// Every client must.
    Yes,
    /// A client may; one that does must present a valid one.
    Optional,
    /// No client certificate is asked for.
    No,
}

/// The acceptor for the client TLS port.
#[derive(Debug)]
pub(crate) struct ClientTls {
    acceptor: Reloading<TlsAcceptor>,
}

impl ClientTls {
    /// From the node's certificate and key and, unless `auth` is
    /// [`TlsAuthClients::No`], the CA of clients' certificates.
    pub(crate) fn from_files(
        cert: &Path,
        key: &Path,
        ca: Option<&Path>,
        auth: TlsAuthClients,
    ) -> Result<Self, TlsError> {
        let mut paths = vec![cert.to_path_buf(), key.to_path_buf()];
        paths.extend(ca.map(Path::to_path_buf));
        let acceptor = Reloading::from_files(Files::new(paths), move |pems| build(pems, auth))?;
        Ok(ClientTls { acceptor })
    }

    /// The acceptor for a new connection.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.current().as_ref().clone()
    }
}

fn build(pems: &[Vec<u8>], auth: TlsAuthClients) -> Result<TlsAcceptor, TlsError> {
    let (chain, key) = chain_and_key(&pems[0], &pems[1])?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Rustls)?;
    let builder = match (auth, pems.get(2)) {
        (TlsAuthClients::No, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(ca)) => {
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider);
            let verifier = if auth == TlsAuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(TlsError::Verifier)?)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(TlsError::Rustls)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
