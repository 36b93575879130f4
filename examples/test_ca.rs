//! A throw-away certificate authority for TLS tests, generated at run time (the repository
//! commits no certificate and no key).
//!
//! ```sh
//! cargo run --example test_ca -- DIR            # writes DIR/ca.pem, DIR/cert.pem, DIR/key.pem
//! cargo run --example test_ca -- DIR --force    # replaces those three files if they exist
//! ```
//!
//! * `ca.pem`: a self-signed CA certificate (CN "gatehouse test CA"), the one file a client
//!   trusts (Node's `ca:` option, a rustls `RootCertStore`);
//! * `cert.pem`: a server certificate signed by that CA, with the subject alternative names
//!   `127.0.0.1`, `::1` (IP addresses) and `localhost` (a DNS name), so a client verifies it
//!   whether it connects by IP (and then sends no SNI) or by name;
//! * `key.pem`: the server certificate's private key (PKCS#8, ECDSA P-256), for the gate's
//!   `--tls-key`. The CA's own key is never written: nothing can be signed with this CA later.
//!
//! Both certificates keep rcgen's default validity (1975 to 4096), so a test never fails on a
//! clock. Each run makes new keys: a client must trust the `ca.pem` of the same run.
//!
//! DIR is created if missing. If any of the three files already exists the tool refuses (exit
//! status 1) unless `--force` is given; it never overwrites anything silently. A test script
//! writes into its own fresh temporary directory, where nothing is there to overwrite.
//! On success it prints one line per file written (`test_ca: wrote PATH (what)`).

use clap::Parser;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// Writes a fresh test CA and a server certificate it signed (for 127.0.0.1, ::1 and
/// localhost) as PEM files into DIR.
#[derive(Debug, Parser)]
#[command(name = "test_ca")]
struct Cli {
    /// Directory to write ca.pem, cert.pem and key.pem into (created if missing).
    dir: PathBuf,
    /// Replace ca.pem, cert.pem and key.pem if they already exist in DIR.
    #[arg(long)]
    force: bool,
}

/// The subject alternative names of the server certificate.
const SERVER_NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

/// The three PEM documents of one test CA run.
struct Generated {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

/// Makes a new CA key and certificate, then a server key and a certificate for
/// [`SERVER_NAMES`] signed by that CA.
fn generate() -> Result<Generated, rcgen::Error> {
    let mut ca_params = CertificateParams::new(Vec::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "gatehouse test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    // rcgen turns each name that parses as an IP address into an IP SAN, the rest into DNS SANs.
    let mut server_params = CertificateParams::new(
        SERVER_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    )?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "gatehouse test server");
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.use_authority_key_identifier_extension = true;
    let server_key = KeyPair::generate()?;
    let server_cert = server_params.signed_by(&server_key, &issuer)?;

    Ok(Generated {
        ca_pem: ca_cert.pem(),
        cert_pem: server_cert.pem(),
        key_pem: server_key.serialize_pem(),
    })
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("test_ca: {msg}");
    std::process::exit(1);
}

fn main() {
    let cli = Cli::parse();
    let files = [
        ("ca.pem", "CA certificate: trust this one"),
        (
            "cert.pem",
            "server certificate for 127.0.0.1, ::1, localhost",
        ),
        ("key.pem", "server private key"),
    ];
    let paths: Vec<PathBuf> = files.iter().map(|(name, _)| cli.dir.join(name)).collect();
    if !cli.force {
        let existing: Vec<&Path> = paths
            .iter()
            .map(PathBuf::as_path)
            .filter(|p| p.exists())
            .collect();
        if !existing.is_empty() {
            let list: Vec<String> = existing.iter().map(|p| p.display().to_string()).collect();
            fail(format_args!(
                "refusing to overwrite {} (pass --force to replace)",
                list.join(", ")
            ));
        }
    }
    let generated = generate().unwrap_or_else(|err| fail(format_args!("generation failed: {err}")));
    std::fs::create_dir_all(&cli.dir)
        .unwrap_or_else(|err| fail(format_args!("cannot create {}: {err}", cli.dir.display())));
    let contents = [&generated.ca_pem, &generated.cert_pem, &generated.key_pem];
    for ((path, (_, what)), pem) in paths.iter().zip(files).zip(contents) {
        std::fs::write(path, pem)
            .unwrap_or_else(|err| fail(format_args!("cannot write {}: {err}", path.display())));
        println!("test_ca: wrote {} ({what})", path.display());
    }
}
