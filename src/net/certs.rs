//! Making the cluster's CA and its nodes' certificates (feature `certs`):
//! what `certusd certs` and the example cluster use. An operator with a
//! PKI of their own needs none of it: any CA works whose node
//! certificates carry the DNS name `node-<id>` ([`super::node_name`]) and
//! allow both server and client authentication.
//!
//! Files in a certificate directory: `ca.pem` and `ca.key` (the CA; keep
//! the key off the nodes), and `node-<id>.pem` and `node-<id>.key` for
//! each node. Keys are written readable by their owner only.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use super::tls::{node_name, verify_node_certificate};
use crate::ids::NodeId;

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// rcgen refused the parameters or a key.
    #[error("certificate generation: {0}")]
    Generate(#[source] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A certificate made does not verify against its CA (for example a
    /// CA loaded with another cluster name than it was made with).
    #[error("the new certificate does not verify against the CA: {0}")]
    Verify(String),
}

/// A cluster's certificate authority.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

/// A node's certificate and key, in PEM.
#[derive(Clone, Debug)]
pub struct NodeCertificate {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// Certificates are valid from the start of this year for `years` years.
fn validity(params: &mut CertificateParams, years: i32) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let year = 1970 + i32::try_from(secs / 31_556_952).unwrap_or(0);
    params.not_before = rcgen::date_time_ymd(year, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + years, 1, 1);
}

fn ca_params(cluster: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "certus peer CA");
    name.push(DnType::OrganizationName, cluster);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, 20);
    params
}

impl CertificateAuthority {
    /// A new CA for `cluster`.
    ///
    /// # Errors
    /// [`CertError::Generate`] if key generation fails.
    pub fn generate(cluster: &str) -> Result<Self, CertError> {
        let key = KeyPair::generate().map_err(CertError::Generate)?;
        let params = ca_params(cluster);
        let cert = params.self_signed(&key).map_err(CertError::Generate)?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA made earlier for `cluster` by [`Self::generate`], from its
    /// certificate and key.
    ///
    /// # Errors
    /// [`CertError::Generate`] if the key does not parse.
    pub fn load(cluster: &str, cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let key = KeyPair::from_pem(key_pem).map_err(CertError::Generate)?;
        Ok(CertificateAuthority {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer: Issuer::new(ca_params(cluster), key),
        })
    }

    /// The CA certificate, for every node.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A certificate for node `node`, naming it `node-<id>` and also the
    /// host names and addresses in `hosts` (for tools that verify them).
    /// It is checked against the CA before it is returned.
    ///
    /// # Errors
    /// [`CertError`] if it cannot be made or does not verify.
    pub fn issue(&self, node: NodeId, hosts: &[String]) -> Result<NodeCertificate, CertError> {
        let mut names = vec![node_name(node)];
        names.extend(hosts.iter().cloned());
        let mut params = CertificateParams::new(names).map_err(CertError::Generate)?;
        params
            .distinguished_name
            .push(DnType::CommonName, node_name(node));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params, 10);
        let key = KeyPair::generate().map_err(CertError::Generate)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(CertError::Generate)?;
        let issued = NodeCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        verify_node_certificate(self.cert_pem.as_bytes(), issued.cert_pem.as_bytes(), node)
            .map_err(CertError::Verify)?;
        Ok(issued)
    }

    /// The CA in `dir` (`ca.pem`, `ca.key`), made there first if absent.
    ///
    /// # Errors
    /// [`CertError`] if the files cannot be read, made or written.
    pub fn open_or_create(dir: &Path, cluster: &str) -> Result<Self, CertError> {
        let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
        if cert.exists() {
            return Self::load(cluster, &read(&cert)?, &read(&key)?);
        }
        let ca = Self::generate(cluster)?;
        write(dir, "ca.key", &ca.key_pem, true)?;
        write(dir, "ca.pem", &ca.cert_pem, false)?;
        Ok(ca)
    }

    /// Issues node `node`'s certificate into `dir` (`node-<id>.pem`,
    /// `node-<id>.key`) and returns the two paths.
    ///
    /// # Errors
    /// [`CertError`] if it cannot be made or written.
    pub fn write_node(
        &self,
        dir: &Path,
        node: NodeId,
        hosts: &[String],
    ) -> Result<(PathBuf, PathBuf), CertError> {
        let issued = self.issue(node, hosts)?;
        let name = node_name(node);
        let key = write(dir, &format!("{name}.key"), &issued.key_pem, true)?;
        let cert = write(dir, &format!("{name}.pem"), &issued.cert_pem, false)?;
        Ok((cert, key))
    }
}

fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `text` to `dir/name`, readable by its owner only when `secret`.
fn write(dir: &Path, name: &str, text: &str, secret: bool) -> Result<PathBuf, CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let io = |source| CertError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if secret {
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_issues_node_certificates_that_verify_and_name_their_node() {
        let ca = CertificateAuthority::generate("prod").expect("ca");
        let node = ca
            .issue(NodeId::new(3), &["127.0.0.1".to_string()])
            .expect("issue");
        let ca_pem = ca.cert_pem().as_bytes();
        verify_node_certificate(ca_pem, node.cert_pem.as_bytes(), NodeId::new(3)).expect("ok");
        let wrong_node = verify_node_certificate(ca_pem, node.cert_pem.as_bytes(), NodeId::new(4));
        assert!(wrong_node.is_err());
        let other = CertificateAuthority::generate("prod").expect("ca");
        let wrong_ca = verify_node_certificate(
            other.cert_pem().as_bytes(),
            node.cert_pem.as_bytes(),
            NodeId::new(3),
        );
        assert!(wrong_ca.is_err());
    }

    #[test]
    fn a_ca_written_to_disk_issues_again_after_loading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = CertificateAuthority::open_or_create(dir.path(), "prod").expect("create");
        let again = CertificateAuthority::open_or_create(dir.path(), "prod").expect("load");
        assert_eq!(first.cert_pem(), again.cert_pem());
        let (cert, key) = again
            .write_node(dir.path(), NodeId::new(7), &[])
            .expect("write");
        assert!(cert.ends_with("node-7.pem") && key.ends_with("node-7.key"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let renamed = CertificateAuthority::open_or_create(dir.path(), "staging").expect("load");
        let err = renamed.issue(NodeId::new(8), &[]).expect_err("wrong name");
        assert!(matches!(err, CertError::Verify(_)), "{err}");
    }
}
