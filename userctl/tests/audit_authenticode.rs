//! civctl audit's Authenticode hashes and signer certificates, checked
//! against an independent implementation, osslsigncode, on every corpus
//! driver: the digest each vendor's signature carries (and osslsigncode
//! recomputes) must be civctl's SHA-256 image hash; and each image
//! re-signed by osslsigncode with SHA-1 and with SHA-256 must hash, in
//! civctl, to the digest osslsigncode put in that signature. The test's
//! own signing certificate's TBS hash is computed here from its DER bytes
//! (`openssl x509 -outform DER`) and must be what civctl reports.

use civctl::audit::identity::{Identity, identify};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{cmd:?}: {e} (scripts/setup.sh installs osslsigncode and openssl)")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// osslsigncode's "Calculated message digest" and its algorithm.
fn calculated_digest(file: &Path) -> (String, String) {
    let out = Command::new("osslsigncode")
        .args(["verify", "-in"])
        .arg(file)
        .output()
        .expect("osslsigncode");
    // A chain it cannot verify still prints the digests.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|v| v.trim_start_matches([' ', ':']).trim().to_string())
            .unwrap_or_else(|| panic!("no '{label}' for {}:\n{text}", file.display()))
    };
    (
        field("Message digest algorithm  "),
        field("Calculated message digest "),
    )
}

fn corpus_files() -> Vec<PathBuf> {
    let dir = civ_fixtures::corpus_dir();
    civ_fixtures::corpus_expected()
        .iter()
        .map(|r| dir.join(&r.path))
        .collect()
}

fn id_of(path: &Path) -> Identity {
    identify(&std::fs::read(path).expect("read"))
}

/// The TBSCertificate of a DER certificate: the first element of the outer
/// SEQUENCE, header included.
fn tbs_of(der: &[u8]) -> &[u8] {
    fn header(b: &[u8]) -> (usize, usize) {
        assert_eq!(b[0], 0x30, "a SEQUENCE");
        match b[1] {
            n if n < 0x80 => (2, n as usize),
            n => {
                let k = (n & 0x7f) as usize;
                let len = b[2..2 + k].iter().fold(0usize, |a, &x| a << 8 | x as usize);
                (2 + k, len)
            }
        }
    }
    let (outer, _) = header(der);
    let inner = &der[outer..];
    let (h, len) = header(inner);
    &inner[..h + len]
}

#[test]
fn authenticode_hashes_match_osslsigncode_on_every_corpus_driver() {
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("key.pem");
    let cert = work.path().join("cert.pem");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "2",
            "-subj",
            "/CN=civ audit test signer",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let der = work.path().join("cert.der");
    run(Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert)
        .arg("-out")
        .arg(&der));
    let der = std::fs::read(&der).unwrap();
    let tbs: String = Sha256::digest(tbs_of(&der))
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();

    let files = corpus_files();
    assert!(files.len() >= 5, "{files:?}");
    let mut vendor_signed = 0;
    for (i, file) in files.iter().enumerate() {
        let original = id_of(file);
        let auth = original.authenticode.as_ref().expect("an image hash");
        // The vendor's own signature, if any.
        let signed = original.signature.is_some();
        if signed {
            let (alg, digest) = calculated_digest(file);
            assert_eq!(alg, "SHA256", "{}", file.display());
            assert_eq!(auth.sha256, digest, "{}", file.display());
            vendor_signed += 1;
        }
        // Unsigned copy, then signed by osslsigncode with each algorithm.
        let unsigned = work.path().join(format!("{i}.unsigned"));
        if signed {
            run(Command::new("osslsigncode")
                .args(["remove-signature", "-in"])
                .arg(file)
                .arg("-out")
                .arg(&unsigned));
        } else {
            std::fs::copy(file, &unsigned).unwrap();
        }
        for alg in ["sha1", "sha256"] {
            let out = work.path().join(format!("{i}.{alg}"));
            run(Command::new("osslsigncode")
                .args(["sign", "-h", alg, "-certs"])
                .arg(&cert)
                .arg("-key")
                .arg(&key)
                .arg("-in")
                .arg(&unsigned)
                .arg("-out")
                .arg(&out));
            let (got_alg, digest) = calculated_digest(&out);
            assert_eq!(got_alg, alg.to_uppercase(), "{}", out.display());
            let id = id_of(&out);
            let a = id.authenticode.as_ref().unwrap();
            let mine = if alg == "sha1" { &a.sha1 } else { &a.sha256 };
            assert_eq!(*mine, digest, "{} re-signed with {alg}", file.display());
            let sig = id.signature.as_ref().expect("signed");
            assert_eq!(sig.publisher.as_deref(), Some("civ audit test signer"));
            assert_eq!(sig.certificates[0].tbs_hash, tbs, "the signer's TBS hash");
            assert_eq!(sig.certificates[0].tbs_algorithm, "sha256");
        }
    }
    assert!(
        vendor_signed >= 5,
        "{vendor_signed} vendor-signed corpus drivers"
    );
}
