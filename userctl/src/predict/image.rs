//! What the prediction knows of one image: its code, machine, hooked IAT
//! slots and import thunks, function bounds, the other imports' names, and
//! the regions analyzed so far (each analyzed once, whatever asks).

use super::flow::{Flow, MAX_REGION_BYTES};
use super::functions::{Functions, Region};
use super::sweep::Code;
use super::track::Env;
use civ_engine::pe::{ImportName, PeImage};
use std::collections::HashMap;

/// The hooked imports' IAT slots and the thunks found for them.
#[derive(Debug, Default)]
pub struct Imports {
    /// (IAT slot RVA, catalog index), sorted by slot.
    pub slots: Vec<(u32, usize)>,
    /// (thunk RVA, catalog index), sorted by thunk.
    pub thunks: Vec<(u32, usize)>,
    /// The image base.
    pub image_base: u64,
}

impl Env for Imports {
    fn iat_slot(&self, rva: u32) -> Option<usize> {
        self.slots
            .binary_search_by_key(&rva, |s| s.0)
            .ok()
            .map(|i| self.slots[i].1)
    }
    fn thunk(&self, rva: u32) -> Option<usize> {
        self.thunks
            .binary_search_by_key(&rva, |s| s.0)
            .ok()
            .map(|i| self.thunks[i].1)
    }
    fn image_base(&self) -> u64 {
        self.image_base
    }
}

/// One image under prediction.
pub struct Image<'a> {
    /// The PE.
    pub pe: &'a PeImage<'a>,
    /// Its executable sections.
    pub sections: Vec<Code<'a>>,
    /// x64 rather than x86.
    pub wide: bool,
    /// Hooked slots and thunks.
    pub imports: Imports,
    /// `.pdata` function ranges (x64).
    pub functions: Functions,
    /// Exception handler and filter entry points.
    pub handlers: Vec<u32>,
    /// Function starts for images without `.pdata`: call targets, section
    /// starts, sorted.
    pub starts: Vec<u32>,
    /// Every import's IAT slot by name (the version checks of the driver
    /// runtime's opt-in are calls to RtlGetVersion and
    /// RtlIsNtDdiVersionAvailable).
    names: HashMap<u32, String>,
    flows: HashMap<Region, Flow>,
    /// What the callers of each wrapper pass, by (entry, parameter).
    pub passed: HashMap<(u32, usize), super::callers::Passed>,
    /// What each global read so far can hold, by (RVA, width).
    pub facts: HashMap<(u32, usize), super::globals::Facts>,
    /// Bytes decoded so far (regions and the sweep).
    pub decoded: usize,
    /// For an ARM64 image: its analysis (the regions above are x86's).
    pub arm: Option<super::arm64::Analysis>,
    /// The base relocations' RVAs, sorted, once asked for (`None`: the
    /// directory is malformed).
    relocs: std::cell::OnceCell<Option<Vec<u32>>>,
}

impl<'a> Image<'a> {
    /// An image's context; `sections` are its executable sections.
    pub fn new(pe: &'a PeImage<'a>, sections: Vec<Code<'a>>, wide: bool, imports: Imports) -> Self {
        let arm = pe.machine() == super::arm64::MACHINE_ARM64;
        let mut names = HashMap::new();
        let _ = pe.for_each_import(|imp| {
            if let ImportName::Name(n) = imp.name {
                names.insert(imp.iat_rva, String::from_utf8_lossy(n).into_owned());
            }
        });
        // ARM64's .pdata has another layout (arm64.rs reads it).
        let functions = if wide && !arm {
            Functions::read(pe)
        } else {
            Functions::default()
        };
        Image {
            pe,
            sections,
            wide,
            imports,
            functions,
            handlers: Vec::new(),
            starts: Vec::new(),
            names,
            flows: HashMap::new(),
            facts: HashMap::new(),
            passed: HashMap::new(),
            decoded: 0,
            arm: None,
            relocs: std::cell::OnceCell::new(),
        }
    }

    /// Is this an ARM64 image?
    pub fn is_arm64(&self) -> bool {
        self.pe.machine() == super::arm64::MACHINE_ARM64
    }

    /// The name of the import whose IAT slot is at an RVA.
    pub fn import_name(&self, slot: u32) -> Option<&str> {
        self.names.get(&slot).map(String::as_str)
    }

    /// Does a base relocation (the loader rewrites up to 8 bytes at each)
    /// touch `[rva, rva + size)`? A malformed relocation directory counts
    /// as touching everything.
    pub fn relocated(&self, rva: u32, size: usize) -> bool {
        let relocs = self.relocs.get_or_init(|| {
            let mut all = Vec::new();
            self.pe
                .for_each_base_relocation(|r, typ| {
                    if typ != 0 {
                        all.push(r);
                    }
                })
                .ok()?;
            all.sort_unstable();
            Some(all)
        });
        let Some(relocs) = relocs else {
            return true;
        };
        let end = rva.saturating_add(size as u32);
        let from = rva.saturating_sub(7);
        let i = relocs.partition_point(|&r| r < from);
        relocs.get(i).is_some_and(|&r| r < end)
    }

    /// Reads 4 bytes of the image (jump tables).
    pub fn read_u32(&self, rva: u32) -> Option<u32> {
        self.pe
            .bytes_at(rva, 4, "jump table")
            .ok()
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The executable section holding an RVA.
    pub fn section_of(&self, rva: u32) -> Option<&Code<'a>> {
        self.sections.iter().find(|s| s.contains(rva))
    }

    /// The region analyzed for code at an RVA: its function by `.pdata`,
    /// or the leaf code around it; in an image without `.pdata`, from the
    /// nearest function start (a call target) before it to the next.
    pub fn region_of(&self, rva: u32) -> Option<Region> {
        let s = self.section_of(rva)?;
        let (lo, hi) = (s.rva, s.rva + s.bytes.len() as u32);
        let mut region = if !self.functions.is_empty() {
            self.functions.region_of(rva, lo, hi)
        } else {
            let i = self.starts.partition_point(|&f| f <= rva);
            let start = i
                .checked_sub(1)
                .and_then(|i| self.starts.get(i))
                .copied()
                .unwrap_or(lo)
                .max(lo);
            let end = self.starts.get(i).copied().unwrap_or(hi).min(hi);
            Region {
                entry: start,
                ranges: vec![(start, end.max(start))],
                exact: false,
            }
        };
        if region.len() > MAX_REGION_BYTES {
            // Too large to analyze whole: the part just before the RVA.
            let start = rva.saturating_sub(MAX_REGION_BYTES as u32 / 2).max(lo);
            region = Region {
                entry: start,
                ranges: vec![(start, (rva + 16).min(hi))],
                exact: false,
            };
        }
        Some(region)
    }

    /// Analyzes a region, once.
    pub fn ensure(&mut self, region: &Region) {
        if !self.flows.contains_key(region) {
            let read = |rva: u32| self.read_u32(rva);
            let flow = Flow::analyze(
                &self.sections,
                region,
                self.wide,
                &self.handlers,
                &self.imports,
                &read,
            );
            self.decoded += flow.bytes;
            self.flows.insert(region.clone(), flow);
        }
    }

    /// The analysis of a region, once [`Image::ensure`] made it.
    pub fn analyzed(&self, region: &Region) -> Option<&Flow> {
        self.flows.get(region)
    }

    /// The regions analyzed.
    pub fn regions(&self) -> impl Iterator<Item = (&Region, &Flow)> {
        self.flows.iter()
    }
}
