//! A throw-away CA and a server certificate it signed, made with rcgen at test time (nothing is
//! committed): what tests/tls.rs, tests/tls_alloc.rs and benches/tls.rs serve and trust.
//!
//! rcgen is a dev-dependency, so the library cannot host this; the three binaries include the
//! file with `#[path]`.

#![allow(dead_code)] // each binary uses the part it needs

use gatehouse::server::TlsConfig;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// A CA and a leaf it signed.
pub struct TestPki {
    /// The CA certificate, for clients' root stores.
    pub ca_der: CertificateDer<'static>,
    /// The leaf certificate (PEM).
    pub leaf_pem: String,
    /// The leaf's private key (PEM).
    pub key_pem: String,
}

impl TestPki {
    /// A CA named "`name` test CA" and a leaf for `hosts` (IP addresses or DNS names) named
    /// "`name` gate". Panics if rcgen fails (a test setup error).
    pub fn new(name: &str, hosts: &[&str]) -> TestPki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let mut leaf = CertificateParams::new(names).expect("leaf params");
        leaf.distinguished_name
            .push(DnType::CommonName, format!("{name} gate"));
        let leaf_cert = leaf
            .signed_by(&leaf_key, &issuer)
            .expect("leaf certificate");
        TestPki {
            ca_der: ca_cert.der().clone(),
            leaf_pem: leaf_cert.pem(),
            key_pem: leaf_key.serialize_pem(),
        }
    }

    /// The server's TLS configuration with the leaf.
    pub fn server_config(&self) -> TlsConfig {
        TlsConfig::from_pem(self.leaf_pem.as_bytes(), self.key_pem.as_bytes())
            .expect("server config")
    }

    /// A root store trusting only the CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .expect("CA into the root store");
        roots
    }
}
