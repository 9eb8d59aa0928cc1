//! Mutual TLS 1.3 on peer links, and the node identity a certificate
//! proves.
//!
//! Every node holds a certificate signed by the cluster's CA whose subject
//! alternative names include `node-<id>` ([`node_name`]). Both ends of a
//! peer link verify the other's chain against the CA; the connecting side
//! also checks that the certificate names the node it meant to reach, and
//! the accepting side that it names the node the hello claims to be
//! ([`PeerTls::check_peer`]). So `from` on a peer link cannot be forged by
//! anyone without that node's key.
//!
//! The crypto provider is aws-lc-rs, rustls' default: it offers
//! post-quantum key exchange (X25519MLKEM768, so recorded traffic stays
//! private from a future quantum computer) and builds with the Rust
//! toolchain and a C compiler alone (aws-lc-sys no longer needs CMake or
//! Go). rustls deprecated its *ring* provider for lacking post-quantum key
//! exchange.
//!
//! Certificates given as files are reloaded when a file changes: each new
//! connection looks at their modification times, so a rotated certificate
//! is in use from the next connection on, without a restart (as etcd does).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::ids::NodeId;

/// The name a node's certificate must carry (as a DNS subject alternative
/// name) to speak for node `id`.
#[must_use]
pub fn node_name(id: NodeId) -> String {
    format!("node-{}", id.get())
}

/// Why peer TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A PEM input holds nothing usable of what it should.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input ("CA certificate", "certificate", "private key").
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificates or key.
    #[error("TLS setup: {0}")]
    Rustls(#[source] rustls::Error),
    /// The CA certificates cannot verify clients.
    #[error("CA certificates: {0}")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
}

/// PEM files watched for changes: when one was modified since it was
/// last read, they are read again.
#[derive(Debug)]
pub(crate) struct Files {
    paths: Vec<PathBuf>,
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

impl Files {
    /// Watches `paths`, as read just now.
    pub(crate) fn new(paths: Vec<PathBuf>) -> Self {
        let stamps = paths.iter().map(|p| modified(p)).collect();
        Files {
            paths,
            stamps: Mutex::new(stamps),
        }
    }

    /// Every file's contents, in order.
    pub(crate) fn read(&self) -> Result<Vec<Vec<u8>>, TlsError> {
        self.paths
            .iter()
            .map(|path| {
                std::fs::read(path).map_err(|source| TlsError::Read {
                    path: path.clone(),
                    source,
                })
            })
            .collect()
    }

    /// The contents again if a file changed since the last look; `None`
    /// when nothing changed.
    pub(crate) fn changed(&self) -> Option<Result<Vec<Vec<u8>>, TlsError>> {
        let now: Vec<_> = self.paths.iter().map(|p| modified(p)).collect();
        let mut stamps = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        if now == *stamps {
            return None;
        }
        *stamps = now;
        Some(self.read())
    }

    /// The first file, for log lines.
    pub(crate) fn first(&self) -> &Path {
        self.paths.first().map_or(Path::new(""), PathBuf::as_path)
    }
}

/// Builds a configuration from the contents of its files.
type Build<T> = Box<dyn Fn(&[Vec<u8>]) -> Result<T, TlsError> + Send + Sync>;

/// A TLS configuration built from files, rebuilt when they change.
pub(crate) struct Reloading<T> {
    /// Where it was built from, and how; `None` when built from memory.
    source: Option<(Files, Build<T>)>,
    loaded: Mutex<Arc<T>>,
}

impl<T> Reloading<T> {
    /// Built from `files` now, and again whenever one changes.
    pub(crate) fn from_files(
        files: Files,
        build: impl Fn(&[Vec<u8>]) -> Result<T, TlsError> + Send + Sync + 'static,
    ) -> Result<Self, TlsError> {
        let loaded = build(&files.read()?)?;
        Ok(Reloading {
            source: Some((files, Box::new(build))),
            loaded: Mutex::new(Arc::new(loaded)),
        })
    }

    /// Built once, from memory.
    pub(crate) fn fixed(value: T) -> Self {
        Reloading {
            source: None,
            loaded: Mutex::new(Arc::new(value)),
        }
    }

    /// The configuration in force, rebuilt first if a file changed. A
    /// rebuild that fails keeps the previous configuration and says why.
    pub(crate) fn current(&self) -> Arc<T> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((files, build)) = &self.source
            && let Some(contents) = files.changed()
        {
            match contents.and_then(|c| build(&c)) {
                Ok(fresh) => {
                    tracing::info!(file = %files.first().display(), "certificates reloaded");
                    *loaded = Arc::new(fresh);
                }
                Err(err) => {
                    tracing::error!(error = %err, "certificates changed but cannot be loaded; keeping the previous ones");
                }
            }
        }
        loaded.clone()
    }
}

impl<T> fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files = self.source.as_ref().map(|(files, _)| files);
        f.debug_struct("Reloading")
            .field("files", &files)
            .finish_non_exhaustive()
    }
}

/// What one set of certificates turns into.
struct Loaded {
    acceptor: TlsAcceptor,
    /// Verifies that the accepting node is the one addressed.
    connector: TlsConnector,
    /// Verifies only that the accepting node belongs to the CA: for a
    /// joining node's first contact with a seed it knows by address alone.
    seed_connector: TlsConnector,
}

/// A node's peer TLS: its certificate and key, the cluster's CA, and an
/// optional allow-list of node ids.
#[derive(Debug)]
pub struct PeerTls {
    allowed: Option<BTreeSet<NodeId>>,
    loaded: Reloading<Loaded>,
}

impl PeerTls {
    /// Peer TLS from PEM text: the CA certificate(s), this node's
    /// certificate chain, and its private key.
    ///
    /// # Errors
    /// [`TlsError`] when an input does not parse or rustls refuses it.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        Ok(PeerTls {
            allowed: None,
            loaded: Reloading::fixed(Loaded::new(ca, cert, key)?),
        })
    }

    /// Peer TLS from PEM files, reloaded whenever one of them changes.
    ///
    /// # Errors
    /// [`TlsError`] when a file cannot be read or parsed.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let files = Files::new(vec![
            ca.to_path_buf(),
            cert.to_path_buf(),
            key.to_path_buf(),
        ]);
        let loaded =
            Reloading::from_files(files, |pems| Loaded::new(&pems[0], &pems[1], &pems[2]))?;
        Ok(PeerTls {
            allowed: None,
            loaded,
        })
    }

    /// Accepts only these nodes as peers, in both directions.
    #[must_use]
    pub fn allow_only(mut self, nodes: impl IntoIterator<Item = NodeId>) -> Self {
        self.allowed = Some(nodes.into_iter().collect());
        self
    }

    /// The acceptor for a new incoming connection.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.current().acceptor.clone()
    }

    /// The connector for a new outgoing connection; `seed` when the node
    /// at the other end is known by address only.
    pub(crate) fn connector(&self, seed: bool) -> TlsConnector {
        let loaded = self.current();
        if seed {
            loaded.seed_connector.clone()
        } else {
            loaded.connector.clone()
        }
    }

    /// Why `node` must not be a peer, if it must not: the certificate a
    /// peer presented (`certs`, end entity first, as verified by the
    /// handshake) must name `node`, and `node` must be allowed.
    pub(crate) fn check_peer(
        &self,
        certs: Option<&[CertificateDer<'_>]>,
        node: NodeId,
    ) -> Result<(), String> {
        self.check_allowed(node)?;
        let end_entity = certs
            .and_then(<[_]>::first)
            .ok_or_else(|| "no client certificate".to_string())?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| format!("unreadable certificate: {e}"))?;
        check_name(&cert, node)
    }

    /// Why `node` is not allowed as a peer, if it is not.
    pub(crate) fn check_allowed(&self, node: NodeId) -> Result<(), String> {
        match &self.allowed {
            Some(allowed) if !allowed.contains(&node) => {
                Err(format!("{} is not in the peer allow-list", node_name(node)))
            }
            _ => Ok(()),
        }
    }

    fn current(&self) -> Arc<Loaded> {
        self.loaded.current()
    }
}

/// Whether `cert` (PEM, end entity first) is a certificate for node `node`
/// issued by the CA in `ca` (PEM), usable at both ends of a peer link now;
/// if not, why.
///
/// # Errors
/// The reason, as text for an operator.
pub fn verify_node_certificate(ca: &[u8], cert: &[u8], node: NodeId) -> Result<(), String> {
    let roots = roots(ca).map_err(|e| e.to_string())?;
    let chain = certificates(cert, "node certificate").map_err(|e| e.to_string())?;
    let end_entity = webpki::EndEntityCert::try_from(&chain[0]).map_err(|e| e.to_string())?;
    let algorithms = provider().signature_verification_algorithms.all;
    for usage in [
        webpki::KeyUsage::server_auth(),
        webpki::KeyUsage::client_auth(),
    ] {
        end_entity
            .verify_for_usage(
                algorithms,
                &roots.roots,
                &chain[1..],
                UnixTime::now(),
                usage,
                None,
                None,
            )
            .map_err(|e| format!("not issued by this CA for peer links: {e}"))?;
    }
    check_name(&end_entity, node)
}

/// Whether `cert` names node `node` (the DNS name `node-<id>`).
fn check_name(cert: &webpki::EndEntityCert<'_>, node: NodeId) -> Result<(), String> {
    cert.verify_is_valid_for_subject_name(&server_name(node)?)
        .map_err(|_| format!("the certificate does not name {}", node_name(node)))
}

/// The rustls name of node `id`'s certificate.
pub(crate) fn server_name(id: NodeId) -> Result<ServerName<'static>, String> {
    ServerName::try_from(node_name(id)).map_err(|e| format!("bad node name: {e}"))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            reason: "no certificate in it".to_string(),
        });
    }
    Ok(certs)
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The CA certificates in `pem`, as trust anchors.
pub(crate) fn roots(pem: &[u8]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in certificates(pem, "CA certificate")? {
        roots.add(ca).map_err(TlsError::Rustls)?;
    }
    Ok(Arc::new(roots))
}

/// A certificate chain and its key.
pub(crate) fn chain_and_key(
    cert: &[u8],
    key: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = certificates(cert, "certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
        what: "private key",
        reason: e.to_string(),
    })?;
    Ok((chain, key))
}

impl Loaded {
    fn new(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let roots = roots(ca)?;
        let (chain, key) = chain_and_key(cert, key)?;
        let provider = provider();
        let tls13 = &[&rustls::version::TLS13];
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(TlsError::Verifier)?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(tls13)
            .map_err(TlsError::Rustls)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(TlsError::Rustls)?;
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(tls13)
            .map_err(TlsError::Rustls)?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(TlsError::Rustls)?;
        let seed = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(tls13)
            .map_err(TlsError::Rustls)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SeedVerifier { roots, provider }))
            .with_client_auth_cert(chain, key)
            .map_err(TlsError::Rustls)?;
        Ok(Loaded {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            seed_connector: TlsConnector::from(Arc::new(seed)),
        })
    }
}

/// Verifies a seed's certificate chain against the CA, whatever node it
/// names: a joining node knows its seeds by address, not by id.
#[derive(Debug)]
struct SeedVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SeedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let invalid = |e: webpki::Error| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(e),
            )))
        };
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(invalid)?;
        cert.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &self.roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(invalid)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is offered.
        Err(rustls::Error::General("TLS 1.2 is not offered".to_string()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
