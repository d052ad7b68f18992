//! LOLDrivers' published list (drivers.csv or drivers.json), and whether a
//! driver is on it: by the file's SHA-256 or SHA-1, or by its Authenticode
//! hash ("Authentihash" SHA-256 or SHA-1).
//!
//! drivers.csv has one row per entry, the samples' hashes joined by ", " in
//! the `KnownVulnerableSamples_SHA256`, `..._SHA1`,
//! `..._Authentihash_SHA256` and `..._Authentihash_SHA1` columns;
//! drivers.json is the list of entries, each with `KnownVulnerableSamples`
//! objects (`SHA256`, `SHA1`, `Authentihash: {SHA256, SHA1}`). A file
//! without those columns, or with no hash at all, is an error.

use super::identity::Identity;
use serde::Serialize;
use std::collections::BTreeMap;

/// One LOLDrivers entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// Its Id.
    pub id: String,
    /// `vulnerable driver` or `malicious`.
    pub category: String,
    /// Its Tags (driver file names).
    pub tags: Vec<String>,
}

/// The list, indexed by lower-case hex hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LolDrivers {
    /// The entries.
    pub entries: Vec<Entry>,
    /// File hashes (SHA-256 and SHA-1) to entry indexes.
    pub files: BTreeMap<String, Vec<usize>>,
    /// Authentihashes (SHA-256 and SHA-1) to entry indexes.
    pub authentihashes: BTreeMap<String, Vec<usize>>,
}

/// Why a driver matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LolMatch {
    /// The entry's Id.
    pub id: String,
    /// Its category.
    pub category: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// `file sha256`, `file sha1`, `authentihash sha256` or `authentihash sha1`.
    pub by: &'static str,
}

const SHA256: &str = "KnownVulnerableSamples_SHA256";
const SHA1: &str = "KnownVulnerableSamples_SHA1";
const AUTH_SHA256: &str = "KnownVulnerableSamples_Authentihash_SHA256";
const AUTH_SHA1: &str = "KnownVulnerableSamples_Authentihash_SHA1";

/// The hex hashes of a cell (`a, b, c`), lower-case; empty and `-` skipped.
fn hashes(cell: &str) -> impl Iterator<Item = String> + '_ {
    cell.split([',', ' ', ';', '\n'])
        .map(str::trim)
        .filter(|h| (h.len() == 40 || h.len() == 64) && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
}

impl LolDrivers {
    fn add(&mut self, entry: Entry, files: Vec<String>, auth: Vec<String>) {
        let i = self.entries.len();
        self.entries.push(entry);
        for h in files {
            self.files.entry(h).or_default().push(i);
        }
        for h in auth {
            self.authentihashes.entry(h).or_default().push(i);
        }
    }

    fn finish(self) -> Result<LolDrivers, String> {
        if self.files.is_empty() && self.authentihashes.is_empty() {
            return Err(format!(
                "{} entr(ies) but no hash: not LOLDrivers' list",
                self.entries.len()
            ));
        }
        Ok(self)
    }

    /// Parses drivers.json or drivers.csv (told apart by the first
    /// non-blank character: `[` is JSON).
    pub fn parse(text: &str) -> Result<LolDrivers, String> {
        let text = text.trim_start_matches('\u{feff}');
        if text.trim_start().starts_with('[') {
            Self::parse_json(text)
        } else {
            Self::parse_csv(text)
        }
    }

    /// drivers.csv.
    pub fn parse_csv(text: &str) -> Result<LolDrivers, String> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| format!("not CSV: {e}"))?
            .clone();
        let col = |name: &str| headers.iter().position(|h| h.trim() == name);
        let (Some(sha256), Some(auth256)) = (col(SHA256), col(AUTH_SHA256)) else {
            return Err(format!(
                "not LOLDrivers' drivers.csv: no {SHA256} and {AUTH_SHA256} columns (columns: {})",
                headers.iter().take(8).collect::<Vec<_>>().join(", ")
            ));
        };
        let (sha1, auth1) = (col(SHA1), col(AUTH_SHA1));
        let (id, category, tags) = (col("Id"), col("Category"), col("Tags"));
        let mut list = LolDrivers::default();
        for (n, row) in reader.records().enumerate() {
            let row = row.map_err(|e| format!("row {}: {e}", n + 2))?;
            let cell = |c: Option<usize>| c.and_then(|c| row.get(c)).unwrap_or("");
            let files: Vec<String> = hashes(cell(Some(sha256)))
                .chain(hashes(cell(sha1)))
                .collect();
            let auth: Vec<String> = hashes(cell(Some(auth256)))
                .chain(hashes(cell(auth1)))
                .collect();
            let entry = Entry {
                id: cell(id).to_string(),
                category: cell(category).to_string(),
                tags: cell(tags)
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect(),
            };
            list.add(entry, files, auth);
        }
        list.finish()
    }

    /// drivers.json.
    pub fn parse_json(text: &str) -> Result<LolDrivers, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let Some(items) = value.as_array() else {
            return Err("not LOLDrivers' drivers.json: not a list of entries".into());
        };
        let s = |v: &serde_json::Value, k: &str| {
            v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string()
        };
        let mut list = LolDrivers::default();
        for (n, item) in items.iter().enumerate() {
            let Some(samples) = item
                .get("KnownVulnerableSamples")
                .and_then(|x| x.as_array())
            else {
                return Err(format!(
                    "not LOLDrivers' drivers.json: entry {n} has no KnownVulnerableSamples list"
                ));
            };
            let mut files = Vec::new();
            let mut auth = Vec::new();
            for sample in samples {
                files.extend(hashes(&s(sample, "SHA256")).chain(hashes(&s(sample, "SHA1"))));
                if let Some(a) = sample.get("Authentihash") {
                    auth.extend(hashes(&s(a, "SHA256")).chain(hashes(&s(a, "SHA1"))));
                }
            }
            let entry = Entry {
                id: s(item, "Id"),
                category: s(item, "Category"),
                tags: item
                    .get("Tags")
                    .and_then(|t| t.as_array())
                    .map(|t| {
                        t.iter()
                            .filter_map(|x| x.as_str())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            list.add(entry, files, auth);
        }
        list.finish()
    }

    /// The entries a driver is on, each once.
    pub fn matches(&self, id: &Identity) -> Vec<LolMatch> {
        let mut keys: Vec<(&'static str, String, bool)> = vec![
            ("file sha256", id.sha256.clone(), false),
            ("file sha1", id.sha1.clone(), false),
        ];
        if let Some(a) = &id.authenticode {
            keys.push(("authentihash sha256", a.sha256.to_ascii_lowercase(), true));
            keys.push(("authentihash sha1", a.sha1.to_ascii_lowercase(), true));
        }
        let mut out: Vec<LolMatch> = Vec::new();
        for (by, key, auth) in keys {
            let map = if auth {
                &self.authentihashes
            } else {
                &self.files
            };
            for &i in map.get(&key).into_iter().flatten() {
                let Some(e) = self.entries.get(i) else {
                    continue;
                };
                if out.iter().any(|m| m.id == e.id) {
                    continue;
                }
                out.push(LolMatch {
                    id: e.id.clone(),
                    category: e.category.clone(),
                    tags: e.tags.clone(),
                    by,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_or_foreign_files_are_errors() {
        assert!(LolDrivers::parse("[{").unwrap_err().starts_with("not JSON"));
        assert!(
            LolDrivers::parse("{\"a\":1}")
                .unwrap_err()
                .contains("not LOLDrivers' drivers.csv")
        );
        assert!(
            LolDrivers::parse("[{\"Id\":\"x\"}]")
                .unwrap_err()
                .contains("no KnownVulnerableSamples")
        );
        assert!(
            LolDrivers::parse("Id,Name\n1,2\n")
                .unwrap_err()
                .contains("no KnownVulnerableSamples_SHA256")
        );
        let ragged = format!("Id,{SHA256},{AUTH_SHA256}\n1,2\n");
        assert!(LolDrivers::parse(&ragged).unwrap_err().starts_with("row 2"));
        let empty = format!("Id,{SHA256},{AUTH_SHA256}\nx,,\n");
        assert!(LolDrivers::parse(&empty).unwrap_err().contains("no hash"));
    }
}
