//! Microsoft's recommended driver block rules, in the SiPolicy XML form
//! Microsoft publishes them (namespace `urn:schemas-microsoft-com:sipolicy`),
//! and whether a driver matches them.
//!
//! What denies a driver:
//! - a `FileRules/Deny` with `Hash`: the Authenticode image hash (SHA-1 or
//!   SHA-256) or the first page's hash ("Hash Page");
//! - a `FileRules/Deny` with `FileName` (OriginalFileName) and an optional
//!   `MinimumFileVersion`/`MaximumFileVersion`;
//! - a `Signers/Signer` named by a `DeniedSigner` of the kernel scenario
//!   (131, or every scenario when the file has no 131): one of the
//!   signature's certificates has its `CertRoot Type="TBS"` hash, the
//!   signing certificate's CN is its `CertPublisher` when one is given, and
//!   the file matches one of its `FileAttribRef` rules when it has any
//!   (a `FileAttrib` by OriginalFileName and version range).
//!
//! A file that is not XML, not a SiPolicy, or holds no deny rule at all is
//! an error: an audit against it would say "clean" for nothing.

use super::identity::Identity;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The SiPolicy namespace.
const NS: &str = "urn:schemas-microsoft-com:sipolicy";
/// SigningScenario Value of kernel-mode drivers.
const KERNEL_SCENARIO: &str = "131";

/// A version `a.b.c.d`.
pub type Version = [u16; 4];

/// Parses `a.b.c.d` (missing parts are 0).
pub fn parse_version(s: &str) -> Option<Version> {
    let mut v = [0u16; 4];
    let mut parts = s.trim().split('.');
    for slot in v.iter_mut() {
        match parts.next() {
            Some(p) => *slot = p.trim().parse().ok()?,
            None => break,
        }
    }
    parts.next().is_none().then_some(v)
}

/// A file-attribute rule: a name and a version range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileAttrib {
    /// The rule's ID.
    pub id: String,
    /// `FileName` (compared with OriginalFilename), case-insensitively.
    pub file_name: Option<String>,
    /// `InternalName`.
    pub internal_name: Option<String>,
    /// `ProductName`.
    pub product_name: Option<String>,
    /// `FileDescription`.
    pub file_description: Option<String>,
    /// `MinimumFileVersion`.
    pub min: Option<Version>,
    /// `MaximumFileVersion`.
    pub max: Option<Version>,
}

impl FileAttrib {
    fn matches(&self, id: &Identity) -> bool {
        let v = &id.version;
        let same = |rule: &Option<String>, have: &Option<String>| match rule {
            None => true,
            Some(r) if r == "*" => true,
            Some(r) => have.as_ref().is_some_and(|h| h.eq_ignore_ascii_case(r)),
        };
        let named = self.file_name.is_some()
            || self.internal_name.is_some()
            || self.product_name.is_some()
            || self.file_description.is_some();
        if !named
            || !same(&self.file_name, &v.original_filename)
            || !same(&self.internal_name, &v.internal_name)
            || !same(&self.product_name, &v.product)
            || !same(&self.file_description, &v.description)
        {
            return false;
        }
        if self.min.is_none() && self.max.is_none() {
            return true;
        }
        // A range needs the file's version; without one it cannot match.
        let Some(have) = v.version else {
            return false;
        };
        self.min.is_none_or(|m| have >= m) && self.max.is_none_or(|m| have <= m)
    }

    fn describe(&self) -> String {
        let name = self
            .file_name
            .as_deref()
            .or(self.internal_name.as_deref())
            .or(self.product_name.as_deref())
            .unwrap_or("?");
        let show = |v: Option<Version>| {
            v.map(|v| format!("{}.{}.{}.{}", v[0], v[1], v[2], v[3]))
                .unwrap_or_else(|| "any".into())
        };
        match (self.min, self.max) {
            (None, None) => format!("OriginalFileName {name}"),
            (min, max) => format!(
                "OriginalFileName {name}, version {} to {}",
                show(min),
                show(max)
            ),
        }
    }
}

/// A signer rule named by a DeniedSigner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerRule {
    /// The signer's ID.
    pub id: String,
    /// Its Name (the CA's name, as the policy writes it).
    pub name: String,
    /// `CertRoot Type="TBS"` values, upper-case hex.
    pub tbs: Vec<String>,
    /// `CertPublisher`.
    pub publisher: Option<String>,
    /// `FileAttribRef` IDs.
    pub attribs: Vec<String>,
}

/// A hash Deny rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashRule {
    /// The rule's ID.
    pub id: String,
    /// FriendlyName.
    pub friendly: String,
    /// The hash, upper-case hex.
    pub hash: String,
}

/// The parsed policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blocklist {
    /// VersionEx, if given.
    pub version: Option<String>,
    /// Deny rules by hash.
    pub hashes: Vec<HashRule>,
    /// Deny rules by file attributes.
    pub denied_files: Vec<FileAttrib>,
    /// Denied signers.
    pub signers: Vec<SignerRule>,
    /// Every FileAttrib, by ID.
    pub attribs: BTreeMap<String, FileAttrib>,
}

/// Why a driver matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockMatch {
    /// The rule's (or signer's) ID.
    pub rule: String,
    /// `hash`, `page-hash`, `file`, or `signer`.
    pub kind: &'static str,
    /// What matched, in words.
    pub detail: String,
    /// A version range decided the match: a newer version may not be denied.
    pub version_range: bool,
}

/// Counts of what the policy holds, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BlocklistSummary {
    /// Deny rules by hash.
    pub hash_rules: usize,
    /// Deny rules by file attributes.
    pub file_rules: usize,
    /// Denied signers.
    pub signer_rules: usize,
}

fn attr(node: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    node.attribute(name)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn version_attr(node: roxmltree::Node<'_, '_>, name: &str) -> Result<Option<Version>, String> {
    match attr(node, name) {
        None => Ok(None),
        Some(s) => parse_version(&s).map(Some).ok_or_else(|| {
            format!(
                "{name}=\"{s}\" of rule {} is not a version a.b.c.d",
                node.attribute("ID").unwrap_or("?")
            )
        }),
    }
}

fn file_attrib(node: roxmltree::Node<'_, '_>) -> Result<FileAttrib, String> {
    Ok(FileAttrib {
        id: attr(node, "ID").unwrap_or_default(),
        file_name: attr(node, "FileName"),
        internal_name: attr(node, "InternalName"),
        product_name: attr(node, "ProductName"),
        file_description: attr(node, "FileDescription"),
        min: version_attr(node, "MinimumFileVersion")?,
        max: version_attr(node, "MaximumFileVersion")?,
    })
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn children<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'input>> {
    node.children()
        .filter(move |n| n.is_element() && n.tag_name().name() == name)
}

impl Blocklist {
    /// Parses a SiPolicy XML document.
    pub fn parse(text: &str) -> Result<Blocklist, String> {
        let doc = roxmltree::Document::parse(text).map_err(|e| format!("not XML: {e}"))?;
        let root = doc.root_element();
        if root.tag_name().name() != "SiPolicy" || root.tag_name().namespace() != Some(NS) {
            return Err(format!(
                "not a SiPolicy document (root element <{}> in namespace {}; expected <SiPolicy xmlns=\"{NS}\">)",
                root.tag_name().name(),
                root.tag_name().namespace().unwrap_or("none")
            ));
        }
        let mut list = Blocklist {
            version: children(root, "VersionEx")
                .next()
                .and_then(|n| n.text())
                .map(|s| s.trim().to_string()),
            ..Blocklist::default()
        };
        for rules in children(root, "FileRules") {
            for rule in rules.children().filter(|n| n.is_element()) {
                match rule.tag_name().name() {
                    "FileAttrib" => {
                        let a = file_attrib(rule)?;
                        list.attribs.insert(a.id.clone(), a);
                    }
                    "Deny" => {
                        let id = attr(rule, "ID").unwrap_or_default();
                        if let Some(hash) = attr(rule, "Hash") {
                            if !is_hex(&hash) {
                                return Err(format!("Deny {id}: Hash=\"{hash}\" is not hex"));
                            }
                            list.hashes.push(HashRule {
                                id,
                                friendly: attr(rule, "FriendlyName").unwrap_or_default(),
                                hash: hash.to_ascii_uppercase(),
                            });
                        } else {
                            let a = file_attrib(rule)?;
                            // FileName="*" denies everything: not a driver rule.
                            if a.file_name.as_deref() != Some("*") {
                                list.denied_files.push(a);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let denied = denied_signer_ids(root);
        for signers in children(root, "Signers") {
            for s in children(signers, "Signer") {
                let id = attr(s, "ID").unwrap_or_default();
                if !denied.contains(&id) {
                    continue;
                }
                let mut tbs = Vec::new();
                for root_cert in children(s, "CertRoot") {
                    if root_cert.attribute("Type") == Some("TBS") {
                        let v = attr(root_cert, "Value").unwrap_or_default();
                        if !is_hex(&v) {
                            return Err(format!("Signer {id}: CertRoot Value=\"{v}\" is not hex"));
                        }
                        tbs.push(v.to_ascii_uppercase());
                    }
                }
                // A well-known root (Type="Wellknown") names Microsoft's
                // own roots: not something a third-party driver matches here.
                if tbs.is_empty() {
                    continue;
                }
                list.signers.push(SignerRule {
                    name: attr(s, "Name").unwrap_or_default(),
                    tbs,
                    publisher: children(s, "CertPublisher")
                        .next()
                        .and_then(|p| attr(p, "Value")),
                    attribs: children(s, "FileAttribRef")
                        .filter_map(|r| attr(r, "RuleID"))
                        .collect(),
                    id,
                });
            }
        }
        if list.hashes.is_empty() && list.denied_files.is_empty() && list.signers.is_empty() {
            return Err(
                "the policy denies nothing (no Deny rule, no DeniedSigner): not a block list"
                    .into(),
            );
        }
        Ok(list)
    }

    /// What the policy holds.
    pub fn summary(&self) -> BlocklistSummary {
        BlocklistSummary {
            hash_rules: self.hashes.len(),
            file_rules: self.denied_files.len(),
            signer_rules: self.signers.len(),
        }
    }

    /// Every rule the driver matches.
    pub fn matches(&self, id: &Identity) -> Vec<BlockMatch> {
        let mut out = Vec::new();
        let digests = [
            (
                "hash",
                "Authenticode SHA-1",
                id.authenticode.as_ref().map(|d| &d.sha1),
            ),
            (
                "hash",
                "Authenticode SHA-256",
                id.authenticode.as_ref().map(|d| &d.sha256),
            ),
            (
                "page-hash",
                "first-page SHA-1",
                id.page_hash.as_ref().map(|d| &d.sha1),
            ),
            (
                "page-hash",
                "first-page SHA-256",
                id.page_hash.as_ref().map(|d| &d.sha256),
            ),
        ];
        for rule in &self.hashes {
            if let Some((kind, what, _)) = digests
                .iter()
                .find(|(_, _, d)| d.is_some_and(|d| *d == rule.hash))
            {
                out.push(BlockMatch {
                    rule: rule.id.clone(),
                    kind,
                    detail: format!("{what} {} ({})", rule.hash, rule.friendly),
                    version_range: false,
                });
            }
        }
        for a in &self.denied_files {
            if a.matches(id) {
                out.push(BlockMatch {
                    rule: a.id.clone(),
                    kind: "file",
                    detail: a.describe(),
                    version_range: a.max.is_some(),
                });
            }
        }
        if let Some(sig) = &id.signature {
            for s in &self.signers {
                let Some(cert) = sig
                    .certificates
                    .iter()
                    .find(|c| s.tbs.contains(&c.tbs_hash))
                else {
                    continue;
                };
                if let Some(p) = &s.publisher
                    && sig.publisher.as_ref().is_none_or(|have| have != p)
                {
                    continue;
                }
                let attribs: Vec<&FileAttrib> = s
                    .attribs
                    .iter()
                    .filter_map(|r| self.attribs.get(r))
                    .collect();
                let by_file = attribs.iter().find(|a| a.matches(id));
                if !s.attribs.is_empty() && by_file.is_none() {
                    continue;
                }
                let mut detail =
                    format!("certificate \"{}\" (TBS {})", cert.subject, cert.tbs_hash);
                if let Some(p) = &s.publisher {
                    detail.push_str(&format!(", publisher \"{p}\""));
                }
                if let Some(a) = by_file {
                    detail.push_str(&format!(", {}", a.describe()));
                }
                out.push(BlockMatch {
                    rule: s.id.clone(),
                    kind: "signer",
                    detail,
                    version_range: by_file.is_some_and(|a| a.max.is_some()),
                });
            }
        }
        out
    }
}

/// The SignerIds of DeniedSigner elements in the kernel scenario (131), or
/// in every scenario when the policy has no kernel scenario.
fn denied_signer_ids(root: roxmltree::Node<'_, '_>) -> BTreeSet<String> {
    let scenarios: Vec<roxmltree::Node<'_, '_>> = children(root, "SigningScenarios")
        .flat_map(|s| children(s, "SigningScenario"))
        .collect();
    let kernel: Vec<_> = scenarios
        .iter()
        .filter(|s| s.attribute("Value") == Some(KERNEL_SCENARIO))
        .copied()
        .collect();
    let chosen = if kernel.is_empty() { scenarios } else { kernel };
    chosen
        .iter()
        .flat_map(|s| s.descendants())
        .filter(|n| n.is_element() && n.tag_name().name() == "DeniedSigner")
        .filter_map(|n| attr(n, "SignerId"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare_as_numbers() {
        assert_eq!(parse_version("10.0.2.65535"), Some([10, 0, 2, 65535]));
        assert_eq!(parse_version("3.1"), Some([3, 1, 0, 0]));
        assert_eq!(parse_version("1.2.3.4.5"), None);
        assert_eq!(parse_version("1.x"), None);
        assert!(parse_version("3.10.0.0") > parse_version("3.9.0.0"));
    }

    #[test]
    fn bad_documents_are_errors_not_empty_lists() {
        assert!(
            Blocklist::parse("<SiPolicy")
                .unwrap_err()
                .starts_with("not XML")
        );
        assert!(
            Blocklist::parse("<Policy xmlns=\"urn:x\"/>")
                .unwrap_err()
                .contains("not a SiPolicy")
        );
        let empty = format!("<SiPolicy xmlns=\"{NS}\"><FileRules/></SiPolicy>");
        assert!(
            Blocklist::parse(&empty)
                .unwrap_err()
                .contains("denies nothing")
        );
        let bad_hash = format!(
            "<SiPolicy xmlns=\"{NS}\"><FileRules><Deny ID=\"a\" Hash=\"XYZ\"/></FileRules></SiPolicy>"
        );
        assert!(Blocklist::parse(&bad_hash).unwrap_err().contains("not hex"));
    }
}
