//! Who a driver image is, as blocklists name it: its file hashes, its
//! Authenticode image hashes and first-page hashes, its version resource,
//! and the certificates of its signature.
//!
//! The Authenticode image hash comes from the `authenticode` crate, the
//! signature's certificates from `cms`/`x509-cert`, the version resource
//! from `pelite`. The page hash (what a "Hash Page" Deny rule holds) is the
//! hash of the first 4 KiB page: the headers without the checksum and the
//! certificate-table directory entry, zero-padded to the page size; the
//! offsets come from `authenticode`'s own [`PeOffsets`].

use authenticode::{AttributeCertificateIterator, PeOffsets, PeTrait};
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use object::read::pe::{PeFile32, PeFile64};
use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::Certificate;

/// The page size of a page hash.
const PAGE: usize = 4096;

/// A SHA-1 and a SHA-256 digest, upper-case hex as SiPolicy writes them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Digests {
    /// SHA-1.
    pub sha1: String,
    /// SHA-256.
    pub sha256: String,
}

/// The version resource's fields that rules and people use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// OriginalFilename (what a FileAttrib's FileName matches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_filename: Option<String>,
    /// The fixed file version, `a.b.c.d` (what version ranges compare).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_version: Option<String>,
    /// CompanyName: the vendor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// ProductName.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// InternalName.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_name: Option<String>,
    /// FileDescription.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The fixed file version as numbers.
    #[serde(skip)]
    pub version: Option<[u16; 4]>,
}

/// One certificate of the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cert {
    /// The subject's common name (or the whole subject when it has none).
    pub subject: String,
    /// The hash of its DER TBSCertificate, with the algorithm of its own
    /// signature: what a `CertRoot Type="TBS"` holds.
    pub tbs_hash: String,
    /// That algorithm: `sha1`, `sha256`, `sha384` or `sha512`.
    pub tbs_algorithm: &'static str,
}

/// The signature's certificates, the signer's first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Signature {
    /// The signing certificate's common name: what `CertPublisher` matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    /// Every certificate the signature carries.
    pub certificates: Vec<Cert>,
}

/// Everything a blocklist can name a driver by.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// SHA-1 of the file, lower-case hex.
    pub sha1: String,
    /// The Authenticode image hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticode: Option<Digests>,
    /// The first page's hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_hash: Option<Digests>,
    /// The version resource.
    pub version: VersionInfo,
    /// The primary signature, if the image is signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// Why a part could not be read (the rest is still filled in).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The PE as `authenticode` reads it (PE32 or PE32+).
enum Pe<'a> {
    P32(PeFile32<'a>),
    P64(PeFile64<'a>),
}

impl<'a> Pe<'a> {
    fn parse(data: &'a [u8]) -> Result<Pe<'a>, String> {
        match PeFile64::parse(data) {
            Ok(p) => Ok(Pe::P64(p)),
            Err(_) => PeFile32::parse(data)
                .map(Pe::P32)
                .map_err(|e| format!("not a PE image: {e}")),
        }
    }

    fn as_trait(&self) -> &dyn PeTrait {
        match self {
            Pe::P32(p) => p,
            Pe::P64(p) => p,
        }
    }
}

fn image_digest<D: Digest + sha2::digest::Update>(pe: &dyn PeTrait) -> Option<String> {
    let mut d = D::new();
    authenticode::authenticode_digest(pe, &mut d).ok()?;
    Some(hex_upper(&d.finalize()))
}

/// The first page as a page hash covers it.
fn first_page(data: &[u8], o: &PeOffsets) -> Option<Vec<u8>> {
    let mut page = Vec::with_capacity(PAGE);
    page.extend_from_slice(data.get(..o.check_sum)?);
    page.extend_from_slice(data.get(o.after_check_sum..o.security_data_dir)?);
    page.extend_from_slice(data.get(o.after_security_data_dir..o.after_header.min(PAGE))?);
    page.resize(PAGE, 0);
    Some(page)
}

fn digests(bytes: &[u8]) -> Digests {
    Digests {
        sha1: hex_upper(&Sha1::digest(bytes)),
        sha256: hex_upper(&Sha256::digest(bytes)),
    }
}

/// Reads everything [`Identity`] holds from a file's bytes.
pub fn identify(data: &[u8]) -> Identity {
    let mut id = Identity {
        sha256: hex_lower(&Sha256::digest(data)),
        sha1: hex_lower(&Sha1::digest(data)),
        ..Identity::default()
    };
    let pe = match Pe::parse(data) {
        Ok(pe) => pe,
        Err(e) => {
            id.notes.push(e);
            return id;
        }
    };
    let t = pe.as_trait();
    match (image_digest::<Sha1>(t), image_digest::<Sha256>(t)) {
        (Some(sha1), Some(sha256)) => id.authenticode = Some(Digests { sha1, sha256 }),
        _ => id.notes.push(
            "the Authenticode image hash could not be computed (offsets out of bounds)".into(),
        ),
    }
    match t.offsets().ok().and_then(|o| first_page(data, &o)) {
        Some(page) => id.page_hash = Some(digests(&page)),
        None => id
            .notes
            .push("no page hash: the headers are out of bounds".into()),
    }
    match version_info(data) {
        Ok(v) => id.version = v,
        Err(e) => id.notes.push(e),
    }
    match signature(t) {
        Ok(s) => id.signature = s,
        Err(e) => id.notes.push(e),
    }
    id
}

/// The version resource, through pelite.
fn version_info(data: &[u8]) -> Result<VersionInfo, String> {
    let file = pelite::PeFile::from_bytes(data).map_err(|e| format!("version resource: {e}"))?;
    let resources = match file.resources() {
        Ok(r) => r,
        // No resource directory: no version, not an error.
        Err(pelite::Error::Null) => return Ok(VersionInfo::default()),
        Err(e) => return Err(format!("resources: {e}")),
    };
    let info = match resources.version_info() {
        Ok(v) => v,
        Err(pelite::resources::FindError::NotFound) => return Ok(VersionInfo::default()),
        Err(e) => return Err(format!("version resource: {e}")),
    };
    let mut v = VersionInfo::default();
    if let Some(fixed) = info.fixed() {
        let f = fixed.dwFileVersion;
        v.version = Some([f.Major, f.Minor, f.Patch, f.Build]);
        v.file_version = Some(format!("{}.{}.{}.{}", f.Major, f.Minor, f.Patch, f.Build));
    }
    // The first translation's strings (drivers have one).
    if let Some(&lang) = info.translation().first() {
        let get = |k: &str| {
            info.value(lang, k)
                .map(|s| s.trim_end_matches('\0').trim().to_string())
                .filter(|s| !s.is_empty())
        };
        v.original_filename = get("OriginalFilename");
        v.company = get("CompanyName");
        v.product = get("ProductName");
        v.internal_name = get("InternalName");
        v.description = get("FileDescription");
    }
    Ok(v)
}

/// The hash algorithm of a certificate's own signature.
fn tbs_algorithm(oid: &ObjectIdentifier) -> Option<&'static str> {
    use const_oid::db::rfc5912::*;
    match *oid {
        SHA_1_WITH_RSA_ENCRYPTION => Some("sha1"),
        SHA_256_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_256 => Some("sha256"),
        SHA_384_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_384 => Some("sha384"),
        SHA_512_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_512 => Some("sha512"),
        _ => None,
    }
}

fn common_name(name: &x509_cert::name::Name) -> String {
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == const_oid::db::rfc4519::CN {
                if let Ok(s) = der::asn1::Utf8StringRef::try_from(&atv.value) {
                    return s.to_string();
                }
                if let Ok(s) = der::asn1::PrintableStringRef::try_from(&atv.value) {
                    return s.to_string();
                }
            }
        }
    }
    name.to_string()
}

fn cert_info(cert: &Certificate) -> Option<Cert> {
    let alg = tbs_algorithm(&cert.signature_algorithm.oid)?;
    let tbs = cert.tbs_certificate.to_der().ok()?;
    let tbs_hash = match alg {
        "sha1" => hex_upper(&Sha1::digest(&tbs)),
        "sha256" => hex_upper(&Sha256::digest(&tbs)),
        "sha384" => hex_upper(&Sha384::digest(&tbs)),
        _ => hex_upper(&Sha512::digest(&tbs)),
    };
    Some(Cert {
        subject: common_name(&cert.tbs_certificate.subject),
        tbs_hash,
        tbs_algorithm: alg,
    })
}

/// The first Authenticode signature's certificates, the signer's first.
fn signature(pe: &dyn PeTrait) -> Result<Option<Signature>, String> {
    let Some(mut certs) =
        AttributeCertificateIterator::new(pe).map_err(|e| format!("certificate table: {e}"))?
    else {
        return Ok(None);
    };
    let Some(first) = certs.next() else {
        return Ok(None);
    };
    let first = first.map_err(|e| format!("certificate table: {e}"))?;
    let mut reader = der::SliceReader::new(first.data).map_err(|e| format!("signature: {e}"))?;
    let info = ContentInfo::decode(&mut reader).map_err(|e| format!("signature: {e}"))?;
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(|e| format!("signature: {e}"))?;
    let all: Vec<&Certificate> = signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            cms::cert::CertificateChoices::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    let signer = signed
        .signer_infos
        .0
        .iter()
        .next()
        .and_then(|si| match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(isn) => all.iter().position(|c| {
                c.tbs_certificate.serial_number == isn.serial_number
                    && c.tbs_certificate.issuer == isn.issuer
            }),
            SignerIdentifier::SubjectKeyIdentifier(_) => None,
        });
    let mut ordered: Vec<&Certificate> = Vec::with_capacity(all.len());
    if let Some(i) = signer
        && let Some(c) = all.get(i)
    {
        ordered.push(c);
    }
    ordered.extend(
        all.iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != signer)
            .map(|(_, c)| *c),
    );
    Ok(Some(Signature {
        publisher: signer
            .and_then(|i| all.get(i))
            .map(|c| common_name(&c.tbs_certificate.subject)),
        certificates: ordered.into_iter().filter_map(cert_info).collect(),
    }))
}
