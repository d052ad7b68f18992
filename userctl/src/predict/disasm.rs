//! The disassembly of a predicted site's block, x86 and x64 in Intel
//! syntax with IAT slots named `__imp_<import>`, ARM64 in its own (the
//! slots are reached by `adrp`/`ldr` pairs, so they stay addresses): what a
//! person reads to check a prediction.

use super::Site;
use super::sweep::Code;
use civ_engine::pe::{ImportName, PeImage};
use iced_x86::{
    Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, SymbolResolver, SymbolResult,
};
use std::collections::HashMap;

/// Names the image's IAT slots.
struct Imports(HashMap<u64, String>);

impl SymbolResolver for Imports {
    fn symbol(
        &mut self,
        _: &Instruction,
        _: u32,
        _: Option<u32>,
        address: u64,
        _: u32,
    ) -> Option<SymbolResult<'_>> {
        self.0
            .get(&address)
            .map(|n| SymbolResult::with_str(address, n.as_str()))
    }
}

/// Names of every IAT slot (`__imp_Name`, `__imp_#ordinal`), by RVA.
pub fn import_names(pe: &PeImage<'_>) -> HashMap<u64, String> {
    let mut names = HashMap::new();
    // An unreadable import table just leaves the slots unnamed.
    let _ = pe.for_each_import(|imp| {
        let name = match imp.name {
            ImportName::Name(n) => format!("__imp_{}", String::from_utf8_lossy(n)),
            ImportName::Ordinal(o) => format!("__imp_#{o}"),
        };
        names.insert(u64::from(imp.iat_rva), name);
    });
    names
}

/// The instructions from the site's block start to the site, one line
/// each (`rva  instruction`), the last `max` of them; a first line `...`
/// says that earlier ones were left out.
pub fn site_lines(pe: &PeImage<'_>, sections: &[Code<'_>], site: &Site, max: usize) -> Vec<String> {
    let Some(section) = sections.iter().find(|s| s.contains(site.rva)) else {
        return Vec::new();
    };
    let mut lines = if pe.machine() == super::arm64::MACHINE_ARM64 {
        a64_lines(section, site)
    } else {
        x86_lines(pe, section, site)
    };
    if lines.len() > max {
        let cut = lines.len() - max;
        lines.drain(..cut);
        lines.insert(0, "...".into());
    }
    lines
}

/// ARM64: one instruction per 4 bytes, from the block start to the site.
fn a64_lines(section: &Code<'_>, site: &Site) -> Vec<String> {
    let end = site.rva.saturating_add(4);
    super::arm64::decode_code(section, site.block_start, end)
        .into_iter()
        .map(|x| {
            let text = x.i.map_or_else(|| "(bad)".to_string(), |i| i.to_string());
            format!("{:08x}  {text}", x.rva)
        })
        .collect()
}

/// x86 and x64, in Intel syntax.
fn x86_lines(pe: &PeImage<'_>, section: &Code<'_>, site: &Site) -> Vec<String> {
    let mut names = import_names(pe);
    if let Some(t) = site.thunk {
        names.insert(u64::from(t), format!("{}_thunk", site.hook.name));
    }
    let mut f = IntelFormatter::with_options(Some(Box::new(Imports(names))), None);
    f.options_mut().set_first_operand_char_index(8);
    f.options_mut().set_space_after_operand_separator(true);
    let bitness = if pe.is_64() { 64 } else { 32 };
    let mut d = Decoder::with_ip(
        bitness,
        section.from(site.block_start),
        u64::from(site.block_start),
        DecoderOptions::NONE,
    );
    let mut lines = Vec::new();
    let mut i = Instruction::default();
    while d.can_decode() {
        d.decode_out(&mut i);
        if i.ip32() > site.rva {
            break;
        }
        let mut text = String::new();
        f.format(&i, &mut text);
        lines.push(format!("{:08x}  {text}", i.ip32()));
        if i.ip32() == site.rva {
            break;
        }
    }
    lines
}
