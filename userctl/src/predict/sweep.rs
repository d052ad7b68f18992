//! The first pass: a linear sweep over every executable section that finds
//! the candidate call sites of hooked imports and the block leaders (the
//! places where control can arrive other than from the instruction before).
//!
//! It decodes every instruction once and does little per instruction, so
//! it is what the throughput benchmark measures. Leaders are gathered
//! generously: a spurious leader only makes a value unknown, a missing one
//! could make a wrong value look known.

use super::track::absolute_rva;
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, OpKind, Register};

/// One executable section's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Code<'a> {
    /// The section's RVA.
    pub rva: u32,
    /// Its bytes (possibly fewer than its virtual size: the rest is zero
    /// fill, or missing from a truncated file).
    pub bytes: &'a [u8],
}

impl Code<'_> {
    /// Does the section hold this RVA?
    pub fn contains(&self, rva: u32) -> bool {
        rva >= self.rva && ((rva - self.rva) as usize) < self.bytes.len()
    }

    /// The bytes from an RVA on.
    pub fn from(&self, rva: u32) -> &[u8] {
        self.bytes
            .get(rva.wrapping_sub(self.rva) as usize..)
            .unwrap_or(&[])
    }
}

/// How a candidate reaches its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `call qword ptr [rip+slot]`.
    CallIat,
    /// `jmp qword ptr [rip+slot]`: an import thunk, or a tail call.
    JmpIat,
    /// `call rel32`, to be checked against the thunks.
    CallDirect,
    /// `jmp rel32`, likewise (a tail call through a thunk).
    JmpDirect,
    /// `call reg` after a load from a hooked IAT slot or a `lea` of code.
    CallReg,
    /// `jmp reg`, likewise.
    JmpReg,
}

/// A control transfer that may reach a hooked import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// RVA of the instruction.
    pub rva: u32,
    /// Its length.
    pub len: u8,
    /// How it transfers control.
    pub kind: Kind,
    /// The IAT slot (`*Iat`) or the branch target (`*Direct`); 0 for `*Reg`.
    pub target: u32,
    /// Control cannot fall into the instruction: it follows a `ret`, an
    /// unconditional jump, `int3` or padding (or starts the section).
    pub after_stop: bool,
}

/// What the sweep found.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Block leaders, sorted and unique (section starts, branch and call
    /// targets, instructions after an unconditional transfer, function
    /// starts from .pdata, jump table entries).
    pub leaders: Vec<u32>,
    /// For each section (same order as given), one bit per byte: an
    /// instruction of the sweep starts there.
    pub starts: Vec<Vec<u64>>,
    /// The candidates, in address order within each section.
    pub candidates: Vec<Candidate>,
    /// Targets of conditional branches, sorted and unique.
    pub jcc_targets: Vec<u32>,
    /// Targets of direct calls, sorted and unique: function starts.
    pub call_targets: Vec<u32>,
    /// Bytes decoded.
    pub bytes: usize,
}

impl Sweep {
    /// Does an instruction of the sweep start at this RVA of section `s`?
    pub fn is_start(&self, s: usize, section: &Code<'_>, rva: u32) -> bool {
        let Some(off) = rva.checked_sub(section.rva) else {
            return false;
        };
        let off = off as usize;
        self.starts
            .get(s)
            .and_then(|b| b.get(off / 64))
            .is_some_and(|w| w & (1 << (off % 64)) != 0)
    }

    /// The greatest leader at or below an RVA.
    pub fn leader_at_or_below(&self, rva: u32) -> Option<u32> {
        let i = self.leaders.partition_point(|&l| l <= rva);
        i.checked_sub(1).and_then(|i| self.leaders.get(i)).copied()
    }
}

/// A jump table seen being indexed: (table RVA, what each entry is added
/// to for its target: 0 for image-relative entries (MSVC x64), the table's
/// RVA for offsets from it (clang, gcc), minus the image base for
/// absolute addresses (x86)).
pub type Table = (u32, u32);

/// Jump table entries read past this many are taken as the end of the table.
const MAX_TABLE_ENTRIES: u32 = 1024;

/// Is the slot a hooked IAT slot? Sorted slots, few of them.
fn is_slot(slots: &[u32], rva: Option<u32>) -> bool {
    rva.is_some_and(|r| slots.binary_search(&r).is_ok())
}

/// The code targets of jump tables: entries are read until one is not in
/// a code section (or `MAX_TABLE_ENTRIES`).
pub fn table_targets(
    mut tables: Vec<Table>,
    sections: &[Code<'_>],
    read_u32: &dyn Fn(u32) -> Option<u32>,
) -> Vec<u32> {
    tables.sort_unstable();
    tables.dedup();
    let mut out = Vec::new();
    for (table, add) in tables {
        for n in 0..MAX_TABLE_ENTRIES {
            let Some(entry) = table.checked_add(n * 4).and_then(read_u32) else {
                break;
            };
            let target = entry.wrapping_add(add);
            if !sections.iter().any(|s| s.contains(target)) {
                break;
            }
            out.push(target);
        }
    }
    out
}

/// Sweeps the sections as `bitness` (64 or 32) code. `slots` are the IAT
/// slots of hooked imports (sorted); `function_starts` come from the
/// exception directory; `read_u32` reads image data at an RVA (for jump
/// tables); x86 code addresses memory absolutely, less `image_base`.
pub fn sweep(
    sections: &[Code<'_>],
    bitness: u32,
    image_base: u64,
    slots: &[u32],
    function_starts: &[u32],
    read_u32: &dyn Fn(u32) -> Option<u32>,
) -> Sweep {
    let mut out = Sweep::default();
    let mut tables: Vec<Table> = Vec::new();
    let mut i = Instruction::default();
    for section in sections {
        let mut starts = vec![0u64; section.bytes.len().div_ceil(64)];
        out.leaders.push(section.rva);
        out.bytes += section.bytes.len();
        let mut d = Decoder::with_ip(
            bitness,
            section.bytes,
            u64::from(section.rva),
            DecoderOptions::NONE,
        );
        // The last `lea reg, [rip+x]` per register: where a jump table's
        // base comes from.
        let mut lea_rip = [u32::MAX; 16];
        // A hooked IAT slot or code address was loaded since the last
        // unconditional transfer: a `call reg` may reach an import.
        let mut pointer_loaded = false;
        // Control cannot fall into the next instruction.
        let mut stopped = true;
        while d.can_decode() {
            d.decode_out(&mut i);
            let after_stop = stopped;
            stopped = false;
            let rva = i.ip32();
            let off = (rva - section.rva) as usize;
            if let Some(w) = starts.get_mut(off / 64) {
                *w |= 1 << (off % 64);
            }
            let len = i.len() as u8;
            match i.flow_control() {
                FlowControl::Next => {
                    if i.memory_index() != Register::None
                        || i.is_ip_rel_memory_operand()
                        || bitness == 32
                    {
                        note_memory(
                            &i,
                            image_base,
                            slots,
                            &mut lea_rip,
                            &mut pointer_loaded,
                            &mut tables,
                        );
                    }
                    // Padding after a stop is still unreachable by falling.
                    stopped = after_stop && i.mnemonic() == iced_x86::Mnemonic::Nop;
                }
                FlowControl::ConditionalBranch => {
                    if is_near(&i) {
                        out.leaders.push(i.near_branch_target() as u32);
                        out.jcc_targets.push(i.near_branch_target() as u32);
                    }
                }
                FlowControl::UnconditionalBranch => {
                    if is_near(&i) {
                        out.leaders.push(i.near_branch_target() as u32);
                        out.candidates.push(Candidate {
                            rva,
                            len,
                            kind: Kind::JmpDirect,
                            target: i.near_branch_target() as u32,
                            after_stop,
                        });
                    }
                    out.leaders.push(i.next_ip32());
                    pointer_loaded = false;
                    stopped = true;
                }
                FlowControl::Call => {
                    if is_near(&i) {
                        out.leaders.push(i.near_branch_target() as u32);
                        out.call_targets.push(i.near_branch_target() as u32);
                        out.candidates.push(Candidate {
                            rva,
                            len,
                            kind: Kind::CallDirect,
                            target: i.near_branch_target() as u32,
                            after_stop,
                        });
                    }
                }
                FlowControl::IndirectCall | FlowControl::IndirectBranch => {
                    let call = i.flow_control() == FlowControl::IndirectCall;
                    let slot = if i.op0_kind() == OpKind::Memory {
                        absolute_rva(&i, image_base)
                    } else {
                        None
                    };
                    if let Some(slot) = slot {
                        if is_slot(slots, Some(slot)) {
                            out.candidates.push(Candidate {
                                rva,
                                len,
                                kind: if call { Kind::CallIat } else { Kind::JmpIat },
                                target: slot,
                                after_stop,
                            });
                        }
                    } else if i.op0_kind() == OpKind::Register && pointer_loaded {
                        out.candidates.push(Candidate {
                            rva,
                            len,
                            kind: if call { Kind::CallReg } else { Kind::JmpReg },
                            target: 0,
                            after_stop,
                        });
                    }
                    if !call
                        && i.op0_kind() == OpKind::Memory
                        && i.memory_base() == Register::None
                        && i.memory_index_scale() == 4
                        && let Some(t) = u32::try_from(i.memory_displacement64())
                            .ok()
                            .and_then(|va| va.checked_sub(image_base as u32))
                    {
                        // x86: `jmp dword ptr [table+eax*4]`, absolute entries.
                        tables.push((t, 0u32.wrapping_sub(image_base as u32)));
                    }
                    if !call {
                        out.leaders.push(i.next_ip32());
                        pointer_loaded = false;
                        stopped = true;
                    }
                }
                FlowControl::Return | FlowControl::Interrupt | FlowControl::Exception => {
                    // ret, int3, ud2 and undecodable bytes (INVALID):
                    // whatever follows is reached from elsewhere, if at all.
                    out.leaders.push(i.next_ip32());
                    pointer_loaded = false;
                    stopped = true;
                }
                FlowControl::XbeginXabortXend => {
                    out.leaders.push(i.next_ip32());
                    if is_near(&i) {
                        out.leaders.push(i.near_branch_target() as u32);
                    }
                }
            }
            if i.is_invalid() {
                out.leaders.push(i.next_ip32());
            }
        }
        out.starts.push(starts);
    }
    out.leaders.extend_from_slice(function_starts);
    let targets = table_targets(tables, sections, read_u32);
    out.leaders.extend(targets);
    out.leaders.sort_unstable();
    out.leaders.dedup();
    out.jcc_targets.sort_unstable();
    out.jcc_targets.dedup();
    out.call_targets.sort_unstable();
    out.call_targets.dedup();
    out
}

/// A direct branch or call (rel8/rel32), in either bitness.
pub fn is_near(i: &Instruction) -> bool {
    matches!(
        i.op0_kind(),
        OpKind::NearBranch64 | OpKind::NearBranch32 | OpKind::NearBranch16
    )
}

/// Notes what a non-branching instruction with a memory operand tells:
/// a load from a hooked IAT slot, a `lea` of an address, an indexed load
/// from a jump table (the table found is pushed to `tables`).
pub fn note_memory(
    i: &Instruction,
    image_base: u64,
    slots: &[u32],
    lea_rip: &mut [u32; 16],
    pointer_loaded: &mut bool,
    tables: &mut Vec<Table>,
) {
    if !(0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory) {
        return;
    }
    if i.is_ip_rel_memory_operand() {
        let addr = u32::try_from(i.ip_rel_memory_address()).ok();
        if i.mnemonic() == iced_x86::Mnemonic::Lea {
            *pointer_loaded = true;
            let reg = i.op0_register().full_register();
            if reg.is_gpr64() {
                lea_rip[reg.number() & 15] = addr.unwrap_or(u32::MAX);
            }
        } else if is_slot(slots, addr) {
            *pointer_loaded = true;
        }
        return;
    }
    if let Some(addr) = absolute_rva(i, image_base) {
        // x86: `mov eax, [slot]` or `lea eax, [func]` / `mov eax, offset`.
        if i.mnemonic() == iced_x86::Mnemonic::Lea || is_slot(slots, Some(addr)) {
            *pointer_loaded = true;
        }
        return;
    }

    if i.memory_index_scale() != 4 {
        return;
    }
    let base = i.memory_base().full_register();
    if !base.is_gpr64() {
        return;
    }
    let base_rva = lea_rip[base.number() & 15];
    if base_rva == u32::MAX {
        return;
    }
    let disp = i.memory_displacement64();
    if base_rva == 0 && disp != 0 {
        // MSVC: `lea rdx, [__ImageBase]` ; `mov ecx, [rdx+rax*4+table]`.
        if let Ok(t) = u32::try_from(disp) {
            tables.push((t, 0));
        }
    } else if base_rva != 0 && disp == 0 {
        // clang and gcc: `lea rcx, [rip+table]` ; `movsxd rax, [rcx+rax*4]`.
        tables.push((base_rva, base_rva));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8], slots: &[u32]) -> Sweep {
        let code = [Code { rva: 0x1000, bytes }];
        sweep(&code, 64, 0, slots, &[], &|_| None)
    }

    #[test]
    fn finds_iat_calls_thunks_and_leaders() {
        // 1000: call [rip+0FFAh] -> 2000 ; 1006: jne 100a ; 1008: jmp [rip+..]
        let mut code = vec![0xFF, 0x15, 0xFA, 0x0F, 0x00, 0x00];
        code.extend_from_slice(&[0x75, 0x02]);
        code.extend_from_slice(&[0xFF, 0x25, 0xF2, 0x0F, 0x00, 0x00]);
        code.push(0xC3);
        let s = one(&code, &[0x2000]);
        assert_eq!(
            s.candidates,
            [
                Candidate {
                    rva: 0x1000,
                    len: 6,
                    kind: Kind::CallIat,
                    target: 0x2000,
                    after_stop: true,
                },
                Candidate {
                    rva: 0x1008,
                    len: 6,
                    kind: Kind::JmpIat,
                    target: 0x2000,
                    after_stop: false,
                }
            ]
        );
        assert_eq!(s.leaders, [0x1000, 0x100A, 0x100E, 0x100F]);
        assert!(s.is_start(
            0,
            &Code {
                rva: 0x1000,
                bytes: &code
            },
            0x1006
        ));
        assert!(!s.is_start(
            0,
            &Code {
                rva: 0x1000,
                bytes: &code
            },
            0x1007
        ));
        assert_eq!(s.leader_at_or_below(0x1009), Some(0x1000));
        assert_eq!(s.leader_at_or_below(0x0FFF), None);
    }

    #[test]
    fn garbage_and_truncation_do_not_panic() {
        let mut x: u32 = 0x1234_5678;
        let bytes: Vec<u8> = (0..50_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for cut in [0, 1, 2, 7, 15, 4096, bytes.len()] {
            let s = one(&bytes[..cut], &[0x2000, 0x2008]);
            assert!(s.bytes == cut);
        }
        // A truncated `call [rip+x]` at the end.
        let s = one(&[0x90, 0xFF, 0x15, 0xFA], &[0x2000]);
        assert!(s.candidates.is_empty());
    }

    #[test]
    fn msvc_jump_table_entries_are_leaders() {
        // lea rdx,[rip-1007h] (= RVA 0) ; mov ecx,[rdx+rax*4+3000h] ; ret
        let code = [
            0x48, 0x8D, 0x15, 0xF9, 0xEF, 0xFF, 0xFF, 0x8B, 0x8C, 0x82, 0x00, 0x30, 0x00, 0x00,
            0xC3, 0x90, 0x90, 0x90,
        ];
        let sections = [Code {
            rva: 0x1000,
            bytes: &code,
        }];
        let table = |rva: u32| match rva {
            0x3000 => Some(0x1010),
            0x3004 => Some(0x1011),
            0x3008 => Some(0x9999),
            _ => None,
        };
        let s = sweep(&sections, 64, 0, &[], &[], &table);
        assert!(s.leaders.contains(&0x1010));
        assert!(s.leaders.contains(&0x1011));
        assert!(!s.leaders.contains(&0x9999));
    }
}
