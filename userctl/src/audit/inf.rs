//! A driver package's INF file, read for what the audit needs: the
//! package's provider, class and version, the services it installs (name,
//! type, start type, group, binary) and the files it carries.
//!
//! INF syntax as Windows reads it: `[Section]` headers, `key = value`
//! lines, values separated by commas, `;` comments outside quotes, `\` at
//! the end of a line to continue it, `%token%` replaced from `[Strings]`,
//! UTF-16LE files with a BOM. Names of sections and keys are
//! case-insensitive.

use civ_engine::path::file_name_str;
use std::collections::BTreeMap;

/// One line of a section: its key (if any) and its values.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Line {
    key: Option<String>,
    values: Vec<String>,
}

/// A service an INF installs (`AddService` and its install section).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct InfService {
    /// The service's name.
    pub name: String,
    /// ServiceType.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_type: Option<u32>,
    /// StartType.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<u32>,
    /// LoadOrderGroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// ServiceBinary, as written (`%13%\x.sys`, `%12%\x.sys`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
}

impl InfService {
    /// The binary's file name.
    pub fn binary_name(&self) -> Option<&str> {
        self.binary.as_deref().map(file_name_str)
    }
}

/// What an INF says about its package.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inf {
    /// `[Version] Provider`.
    pub provider: Option<String>,
    /// `[Version] Class`.
    pub class: Option<String>,
    /// `[Version] DriverVer`'s version (after the date).
    pub driver_version: Option<String>,
    /// The services it installs.
    pub services: Vec<InfService>,
    /// The files of `[SourceDisksFiles*]`.
    pub files: Vec<String>,
}

/// Decodes an INF's bytes: UTF-16LE with a BOM, else UTF-8 (lossy).
pub fn decode(bytes: &[u8]) -> String {
    match bytes {
        [0xFF, 0xFE, rest @ ..] => {
            let units: Vec<u16> = rest
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Cuts a line at a `;` outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Splits on commas outside quotes; unquotes (`""` is a quote) and trims.
fn split_values(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

/// Finds `=` outside quotes.
fn key_split(s: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '=' if !quoted => return Some((&s[..i], &s[i + 1..])),
            _ => {}
        }
    }
    None
}

/// Sections by lower-case name, their lines in order.
fn sections(text: &str) -> BTreeMap<String, Vec<Line>> {
    let mut out: BTreeMap<String, Vec<Line>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut pending = String::new();
    for raw in text.lines() {
        let line = strip_comment(raw).trim_end();
        // A trailing backslash continues the line.
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        let line = std::mem::take(&mut pending);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[')
            && let Some(end) = rest.find(']')
        {
            let name = rest[..end].trim().to_ascii_lowercase();
            out.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let Some(section) = current.as_ref() else {
            continue;
        };
        let entry = match key_split(line) {
            Some((k, v)) => Line {
                key: Some(k.trim().trim_matches('"').to_string()),
                values: split_values(v),
            },
            None => Line {
                key: None,
                values: split_values(line),
            },
        };
        out.entry(section.clone()).or_default().push(entry);
    }
    out
}

/// Replaces `%token%` from the strings table; `%%` is a percent sign;
/// tokens not in the table (`%12%`, `%13%`) stay as they are.
fn substitute(s: &str, strings: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(0) => {
                out.push('%');
                rest = &after[1..];
            }
            Some(end) => {
                let token = &after[..end];
                match strings.get(&token.to_ascii_lowercase()) {
                    Some(v) => out.push_str(v),
                    None => {
                        out.push('%');
                        out.push_str(token);
                        out.push('%');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn number(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses an INF's text.
pub fn parse(text: &str) -> Inf {
    let sections = sections(text);
    // [Strings] first, then a localized [Strings.xxxx] for tokens it lacks.
    let mut strings: BTreeMap<String, String> = BTreeMap::new();
    for (name, lines) in sections.iter().rev() {
        if name == "strings" || name.starts_with("strings.") {
            for l in lines {
                if let (Some(k), Some(v)) = (&l.key, l.values.first()) {
                    strings.insert(k.to_ascii_lowercase(), v.clone());
                }
            }
        }
    }
    let value = |section: &str, key: &str| -> Option<Vec<String>> {
        sections.get(section)?.iter().find_map(|l| {
            l.key
                .as_ref()
                .filter(|k| k.eq_ignore_ascii_case(key))
                .map(|_| l.values.iter().map(|v| substitute(v, &strings)).collect())
        })
    };
    let first = |section: &str, key: &str| {
        value(section, key)
            .and_then(|v| v.into_iter().next())
            .filter(|s| !s.is_empty())
    };
    let mut inf = Inf {
        provider: first("version", "Provider"),
        class: first("version", "Class"),
        driver_version: value("version", "DriverVer")
            .and_then(|v| v.get(1).cloned())
            .filter(|s| !s.is_empty()),
        ..Inf::default()
    };
    for lines in sections.values() {
        for l in lines {
            if !l
                .key
                .as_ref()
                .is_some_and(|k| k.eq_ignore_ascii_case("AddService"))
            {
                continue;
            }
            let v: Vec<String> = l.values.iter().map(|v| substitute(v, &strings)).collect();
            let Some(name) = v.first().filter(|n| !n.is_empty()) else {
                continue;
            };
            if inf
                .services
                .iter()
                .any(|s| s.name.eq_ignore_ascii_case(name))
            {
                continue;
            }
            let install = v.get(2).map(|s| s.to_ascii_lowercase()).unwrap_or_default();
            inf.services.push(InfService {
                name: name.clone(),
                service_type: first(&install, "ServiceType").and_then(|s| number(&s)),
                start: first(&install, "StartType").and_then(|s| number(&s)),
                group: first(&install, "LoadOrderGroup"),
                binary: first(&install, "ServiceBinary"),
            });
        }
    }
    for (name, lines) in &sections {
        if name == "sourcedisksfiles" || name.starts_with("sourcedisksfiles.") {
            for l in lines {
                if let Some(k) = &l.key {
                    let f = substitute(k, &strings);
                    if !inf.files.iter().any(|x| x.eq_ignore_ascii_case(&f)) {
                        inf.files.push(f);
                    }
                }
            }
        }
    }
    inf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_version_services_and_files() {
        let text = "\
; a comment
[Version]
Signature   = \"$WINDOWS NT$\"
Class       = System
Provider    = %Vendor% ; trailing comment
DriverVer   = 06/21/2006,1.17.333.0

[Manufacturer]
%Vendor% = Models,NTamd64

[Drv.NTamd64.Services]
AddService = ViGEmBus, 0x00000002, Svc_Install

[Svc_Install]
DisplayName    = \"Virtual Gamepad; Bus\"
ServiceType    = 1
StartType      = 3
ErrorControl   = 1
LoadOrderGroup = Extended Base
ServiceBinary  = %13%\\ViGEmBus.sys

[SourceDisksFiles]
ViGEmBus.sys = 1,,
[SourceDisksFiles.amd64]
Extra.dll = 1

[Strings]
Vendor = \"Nefarius Software Solutions e.U.\"
";
        let inf = parse(text);
        assert_eq!(
            inf.provider.as_deref(),
            Some("Nefarius Software Solutions e.U.")
        );
        assert_eq!(inf.class.as_deref(), Some("System"));
        assert_eq!(inf.driver_version.as_deref(), Some("1.17.333.0"));
        assert_eq!(
            inf.services,
            [InfService {
                name: "ViGEmBus".into(),
                service_type: Some(1),
                start: Some(3),
                group: Some("Extended Base".into()),
                binary: Some("%13%\\ViGEmBus.sys".into()),
            }]
        );
        assert_eq!(inf.services[0].binary_name(), Some("ViGEmBus.sys"));
        assert_eq!(inf.files, ["ViGEmBus.sys", "Extra.dll"]);
    }

    #[test]
    fn utf16_continuations_and_quotes() {
        let text = "[Version]\r\nProvider = \"a;b\", \\\r\n  x\r\n[S]\r\nAddService = \"s,1\",2,I\r\n[I]\r\nStartType=0x0\r\n";
        let mut bytes = vec![0xFF, 0xFE];
        for u in text.encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        let inf = parse(&decode(&bytes));
        assert_eq!(inf.provider.as_deref(), Some("a;b"));
        assert_eq!(inf.services[0].name, "s,1");
        assert_eq!(inf.services[0].start, Some(0));
        assert_eq!(substitute("%%x%y%", &BTreeMap::new()), "%x%y%");
    }
}
