//! What a driver's own global can hold when a call's argument is read from
//! it: the value the image gives it, and every constant the code stores to
//! it, found by a byte scan for references to it and the analysis of each
//! function that has one. A reference that is not a read or a constant
//! store (a store of an unknown value, its address taken) makes it
//! unknowable, and says so.
//!
//! It also recognizes the driver runtime's NX opt-in (`POOL_NX_OPTIN`,
//! `ExInitializeDriverRuntime(DrvRtPoolNxOptIn)`, inlined): a constant
//! stored only after a call to RtlGetVersion or RtlIsNtDdiVersionAvailable
//! and a conditional branch on its answer, is the value on the Windows
//! versions the test admits. The test's constant (major version 6, with
//! minor 2, or NTDDI 0x06020000) makes that Windows 8.

use super::image::Image;
use super::refs::{self, Addressing};
use super::track::{Env, absolute_rva, writes};
use iced_x86::{
    FlowControl, Formatter, Instruction, InstructionInfoFactory, Mnemonic, OpKind, Register,
};

/// Bytes before a global's address a reference may start at and still
/// overlap it (an 8-byte access).
const REACH: u32 = 7;

/// The version test a store is made under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionTest {
    /// The API called: RtlGetVersion or RtlIsNtDdiVersionAvailable.
    pub api: &'static str,
    /// RVA of its call.
    pub call: u32,
    /// RVA of the comparison (or the branch) on its answer.
    pub test: u32,
    /// That instruction, as text.
    pub text: String,
}

/// A constant stored to a global.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    /// RVA of the storing instruction.
    pub at: u32,
    /// The value stored, as wide as the global is read.
    pub value: u64,
    /// The Windows 8 test it is made under, if any.
    pub version: Option<VersionTest>,
}

/// What a global can hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// Its RVA.
    pub rva: u32,
    /// The width it is read at.
    pub size: usize,
    /// The value the image gives it (zero past the section's raw data).
    pub initial: u64,
    /// The constant stores to it.
    pub stores: Vec<Store>,
    /// Why what it holds cannot be told: a reference at this RVA, as text.
    pub blocker: Option<(u32, String)>,
}

impl Facts {
    /// Every value it can hold: the image's, then each store's, once.
    pub fn values(&self) -> Vec<u64> {
        let mut v = vec![self.initial];
        for s in &self.stores {
            if !v.contains(&s.value) {
                v.push(s.value);
            }
        }
        v
    }

    /// Is every store made under a Windows 8 version test (and is there
    /// one)?
    pub fn set_for_windows_8(&self) -> bool {
        !self.stores.is_empty() && self.stores.iter().all(|s| s.version.is_some())
    }
}

/// An instruction in Intel syntax.
pub fn text(i: &Instruction) -> String {
    let mut f = iced_x86::IntelFormatter::new();
    f.options_mut().set_space_after_operand_separator(true);
    let mut out = String::new();
    f.format(i, &mut out);
    out
}

fn mask(size: usize) -> u64 {
    super::value::width_mask(size)
}

/// The value the image gives a global `size` bytes wide: its bytes in the
/// file, zero past the section's raw data (the loader zero-fills).
pub fn initial_value(img: &Image<'_>, rva: u32, size: usize) -> u64 {
    (0..size.min(8)).fold(0u64, |v, k| {
        let b = img
            .pe
            .bytes_at(rva + k as u32, 1, "global")
            .ok()
            .map_or(0, |b| b[0]);
        v | u64::from(b) << (8 * k)
    })
}

/// Finds what a global `size` bytes wide at `rva` can hold (once per
/// image).
pub fn facts(img: &mut Image<'_>, rva: u32, size: usize) -> Facts {
    if let Some(f) = img.facts.get(&(rva, size)) {
        return f.clone();
    }
    let f = match &img.arm {
        Some(a) => a.facts(img, rva, size),
        None => find_facts(img, rva, size),
    };
    img.facts.insert((rva, size), f.clone());
    f
}

fn find_facts(img: &mut Image<'_>, rva: u32, size: usize) -> Facts {
    let mut f = Facts {
        rva,
        size,
        initial: 0,
        stores: Vec::new(),
        blocker: None,
    };
    let in_iat = img
        .pe
        .data_directory(12)
        .is_some_and(|(b, n)| rva >= b && rva < b.saturating_add(n));
    let section = img.pe.section_containing(rva);
    match section {
        None => {
            f.blocker = Some((rva, "it is outside every section".into()));
            return f;
        }
        Some(_) if in_iat || img.imports.iat_slot(rva).is_some() => {
            f.blocker = Some((rva, "it is an import address".into()));
            return f;
        }
        Some(s) if s.is_executable() => {
            f.blocker = Some((rva, "it is in code".into()));
            return f;
        }
        Some(_) => {}
    }
    f.initial = initial_value(img, rva, size);
    let targets: Vec<u32> = (rva.saturating_sub(REACH)..rva + size as u32).collect();
    let (how, tails): (Addressing, &[u32]) = if img.wide {
        (Addressing::RipRelative, &[0, 1, 2, 4])
    } else {
        (Addressing::Absolute(img.imports.image_base as u32), &[0])
    };
    let mut hits = Vec::new();
    for s in &img.sections {
        hits.extend(refs::find(s, &targets, tails, how));
    }
    let mut info = InstructionInfoFactory::new();
    let mut seen = Vec::new();
    for h in hits {
        let Some(region) = img.region_of(h.field) else {
            continue;
        };
        let base = img.imports.image_base;
        img.ensure(&region);
        let Some(flow) = img.analyzed(&region) else {
            continue;
        };
        // The instruction holding the field.
        let k = flow.insns().partition_point(|i| i.ip32() <= h.field);
        let Some(i) = k.checked_sub(1).and_then(|k| flow.insns().get(k)).copied() else {
            continue;
        };
        if h.field >= i.next_ip32() || seen.contains(&i.ip32()) {
            continue;
        }
        seen.push(i.ip32());
        let Some(addr) = absolute_rva(&i, base) else {
            // x86: the field is an immediate (`push offset G`, `mov eax,
            // offset G`: the address is taken) or an indexed access
            // (`[G+ecx*4]`, a write of which may hit it). x64's fields are
            // displacements of `rip`, so are accesses or `lea`.
            if !img.wide {
                let indexed_read = i.memory_index() != Register::None
                    && !info
                        .info(&i)
                        .used_memory()
                        .iter()
                        .any(|m| writes(m.access()));
                if !indexed_read {
                    f.blocker = Some((
                        i.ip32(),
                        format!(
                            "`{}` at {:#x} takes its address or may write it",
                            text(&i),
                            i.ip32()
                        ),
                    ));
                }
            }
            continue;
        };
        let width = if i.mnemonic() == Mnemonic::Lea {
            0
        } else {
            i.memory_size().size() as u32
        };
        let overlaps = addr < rva + size as u32 && addr.saturating_add(width.max(1)) > rva;
        if !overlaps {
            continue;
        }
        if i.mnemonic() == Mnemonic::Lea || width == 0 {
            f.blocker = Some((
                i.ip32(),
                format!("its address is taken by `{}` at {:#x}", text(&i), i.ip32()),
            ));
            continue;
        }
        // Its one absolute memory operand is the global; a push's or a
        // call's write to the stack is not.
        let written = info.info(&i).used_memory().iter().any(|m| {
            writes(m.access())
                && m.index() == Register::None
                && matches!(m.base(), Register::None | Register::RIP | Register::EIP)
        });
        if !written {
            continue;
        }
        let value = if i.mnemonic() == Mnemonic::Mov && addr == rva && width as usize == size {
            match i.op1_kind() {
                OpKind::Register => flow
                    .state_before(i.ip32(), &img.imports)
                    .and_then(|(s, _)| {
                        super::track::gpr(i.op1_register()).and_then(|n| s.reg(n).value(mask(size)))
                    }),
                _ => i.try_immediate(1).ok().map(|v| v & mask(size)),
            }
        } else {
            None
        };
        match value {
            Some(value) => {
                let version = version_test(img, &region, i.ip32());
                f.stores.push(Store {
                    at: i.ip32(),
                    value,
                    version,
                });
            }
            None => {
                f.blocker = Some((
                    i.ip32(),
                    format!(
                        "`{}` at {:#x} writes it with a value not known",
                        text(&i),
                        i.ip32()
                    ),
                ));
            }
        }
    }
    f.stores.sort_by_key(|s| s.at);
    f
}

/// NTDDI_WIN8.
const NTDDI_WIN8: u64 = 0x0602_0000;

/// The Windows 8 test a store at `at` is made under: a call to
/// RtlGetVersion then a comparison with 6 (the major version), or a call
/// to RtlIsNtDdiVersionAvailable(NTDDI_WIN8), each followed by a
/// conditional branch before the store, in the same function.
fn version_test(
    img: &mut Image<'_>,
    region: &super::functions::Region,
    at: u32,
) -> Option<VersionTest> {
    let base = img.imports.image_base;
    img.ensure(region);
    let img = &*img;
    let flow = img.analyzed(region)?;
    let calls: Vec<(u32, &'static str)> = {
        flow.insns()
            .iter()
            .filter(|i| i.ip32() < at && i.flow_control() == FlowControl::IndirectCall)
            .filter_map(|i| {
                let slot = absolute_rva(i, base)?;
                let name = img.import_name(slot)?;
                let api = match name {
                    "RtlGetVersion" => "RtlGetVersion",
                    "RtlIsNtDdiVersionAvailable" => "RtlIsNtDdiVersionAvailable",
                    _ => return None,
                };
                Some((i.ip32(), api))
            })
            .collect()
    };
    for (call, api) in calls.into_iter().rev() {
        let between: Vec<Instruction> = flow
            .insns()
            .iter()
            .filter(|i| i.ip32() > call && i.ip32() < at)
            .copied()
            .collect();
        let branches = between
            .iter()
            .any(|i| i.flow_control() == FlowControl::ConditionalBranch);
        if !branches {
            continue;
        }
        let test = match api {
            "RtlGetVersion" => between
                .iter()
                .find(|i| i.mnemonic() == Mnemonic::Cmp && i.try_immediate(1).ok() == Some(6)),
            _ => {
                let (s, _) = flow.state_before(call, &img.imports)?;
                // The NTDDI version is the first argument.
                let arg = if img.wide {
                    s.reg(super::track::ARG_REGS[0])
                } else {
                    s.stack_at(0, 4).0.known
                };
                if arg.value(0xFFFF_FFFF) != Some(NTDDI_WIN8) {
                    continue;
                }
                between
                    .iter()
                    .find(|i| i.flow_control() == FlowControl::ConditionalBranch)
            }
        };
        if let Some(t) = test {
            return Some(VersionTest {
                api,
                call,
                test: t.ip32(),
                text: text(t),
            });
        }
    }
    None
}
