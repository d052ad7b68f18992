//! The offline registry: a SYSTEM hive file read with `notatin`. The
//! control set in force is `Select\Current` (ControlSet001 when the hive
//! has no Select key).

use super::registry::{CI_KEY, HVCI_DISALLOWED, Registry, SERVICES, Service};
use notatin::cell_key_node::CellKeyNode;
use notatin::cell_value::CellValue;
use notatin::parser::Parser;
use notatin::parser_builder::ParserBuilder;
use std::path::PathBuf;

fn value(key: &CellKeyNode, name: &str) -> Option<CellValue> {
    key.get_value(name).map(|v| v.get_content().0)
}

fn dword(key: &CellKeyNode, name: &str) -> Option<u32> {
    match value(key, name)? {
        CellValue::U32(v) => Some(v),
        CellValue::I32(v) => Some(v as u32),
        CellValue::U64(v) => u32::try_from(v).ok(),
        _ => None,
    }
}

fn string(key: &CellKeyNode, name: &str) -> Option<String> {
    match value(key, name)? {
        CellValue::String(s) => Some(s.trim_end_matches('\0').to_string()),
        CellValue::MultiString(v) => v.into_iter().next(),
        _ => None,
    }
}

fn multi_string(key: &CellKeyNode, name: &str) -> Vec<String> {
    match value(key, name) {
        Some(CellValue::MultiString(v)) => v.into_iter().filter(|s| !s.is_empty()).collect(),
        Some(CellValue::String(s)) if !s.is_empty() => vec![s],
        _ => Vec::new(),
    }
}

fn key(parser: &mut Parser, path: &str) -> Result<Option<CellKeyNode>, String> {
    parser
        .get_key(path, false)
        .map_err(|e| format!("reading key {path}: {e}"))
}

/// Reads the services and HvciDisallowedImages of a SYSTEM hive.
pub fn read_system_hive(path: PathBuf) -> Result<Registry, String> {
    let shown = path.display().to_string();
    let mut parser = ParserBuilder::from_path(path)
        .build()
        .map_err(|e| format!("{shown}: not a registry hive: {e}"))?;
    let current = key(&mut parser, "Select")?
        .and_then(|k| dword(&k, "Current"))
        .unwrap_or(1);
    let set = format!("ControlSet{current:03}");
    let Some(mut services) = key(&mut parser, &format!("{set}\\{SERVICES}"))? else {
        return Err(format!(
            "{shown}: no {set}\\{SERVICES} key: not a SYSTEM hive"
        ));
    };
    let mut out = Registry {
        source: format!("{shown} ({set})"),
        ..Registry::default()
    };
    for k in services.read_sub_keys(&mut parser) {
        let s = Service {
            name: k.key_name.clone(),
            service_type: dword(&k, "Type").unwrap_or(0),
            start: dword(&k, "Start"),
            group: string(&k, "Group").filter(|g| !g.is_empty()),
            image_path: string(&k, "ImagePath"),
        };
        if s.is_driver() {
            out.services.push(s);
        }
    }
    out.services.sort_by_key(|s| s.name.to_ascii_lowercase());
    if let Some(ci) = key(&mut parser, &format!("{set}\\{CI_KEY}"))? {
        out.disallowed = multi_string(&ci, HVCI_DISALLOWED);
    }
    Ok(out)
}
