//! The transfer function of the ARM64 analysis: the state of one path (x0
//! to x30's values, the image addresses and import slots they hold, the
//! constants just stored to globals), how an A64 instruction changes it, and
//! how two paths meet.

use super::super::image::Image;
use super::super::track::{Env, Origin};
use super::super::value::{Known, Sym, Val, width_mask};
use super::{Analysis, GlobalStore, Insn};
use yaxpeax_arm::armv8::a64::{Opcode, Operand, ShiftStyle, SizeCode};

/// The state of one path.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct State {
    pub(super) regs: [Val; 31],
    pub(super) origin: [Origin; 31],
    /// The image address (RVA) a register holds (`adrp`, `add`).
    addr: [Option<u32>; 31],
    /// The import slot a register was loaded from.
    pub(super) slot: [Option<u32>; 31],
    /// Constants this path stored to globals, still there.
    stores: Vec<(u32, usize, u64)>,
}

impl State {
    pub(super) fn new(entry: Option<u32>) -> State {
        let mut s = State {
            regs: [Val::UNKNOWN; 31],
            origin: [Origin::BeforeBlock; 31],
            addr: [None; 31],
            slot: [None; 31],
            stores: Vec::new(),
        };
        if let Some(entry) = entry {
            for n in 0..8u8 {
                s.regs[usize::from(n)].sym = Sym::Param { n, entry };
            }
        }
        s
    }

    /// Does register n hold the constant this path stored to the one
    /// global `sym` reads (see track.rs)?
    fn holds_global(&self, n: usize, sym: Sym) -> bool {
        super::super::value::holds_global(&self.stores, self.regs[n].known, sym)
    }

    pub(super) fn meet(&mut self, o: &State, block: u32) -> bool {
        // The meet of a state with itself is that state.
        if self == o {
            return false;
        }
        let mut changed = false;
        for n in 0..31 {
            let (a, b) = (self.regs[n].sym, o.regs[n].sym);
            let sym = if a == b {
                a
            } else if b != Sym::None && self.holds_global(n, b) {
                b
            } else if a != Sym::None && o.holds_global(n, a) {
                a
            } else {
                Sym::None
            };
            let mut merged = self.regs[n].meet(o.regs[n]);
            merged.sym = sym;
            if merged != self.regs[n] || self.origin[n] != o.origin[n] {
                let origin = if self.origin[n] == o.origin[n] {
                    self.origin[n]
                } else {
                    Origin::Merge(block)
                };
                changed |= origin != self.origin[n];
                self.origin[n] = origin;
            }
            changed |= merged != self.regs[n];
            self.regs[n] = merged;
            if self.addr[n] != o.addr[n] && self.addr[n].is_some() {
                self.addr[n] = None;
                changed = true;
            }
            if self.slot[n] != o.slot[n] && self.slot[n].is_some() {
                self.slot[n] = None;
                changed = true;
            }
        }
        let stores = self.stores.len();
        self.stores.retain(|s| o.stores.contains(s));
        changed || stores != self.stores.len()
    }

    /// On the path where `cbz`/`cbnz` (at `at`) found register n zero:
    /// its bits are (the low 32 for a W register).
    pub(super) fn know_zero(&mut self, n: usize, wide: bool, at: u32) {
        if let Some(r) = self.regs.get_mut(n) {
            let m = width_mask(width(wide));
            r.known = Known {
                bits: r.known.bits & !m,
                mask: r.known.mask | m,
            };
            r.sym = Sym::None;
            self.origin[n] = Origin::At(at);
            self.addr[n] = None;
            self.slot[n] = None;
        }
    }

    fn forget(&mut self, n: usize, origin: Origin) {
        if let Some(r) = self.regs.get_mut(n) {
            *r = Val::UNKNOWN;
            self.origin[n] = origin;
            self.addr[n] = None;
            self.slot[n] = None;
        }
    }
}

/// A general-purpose register operand: (number, 64-bit). The zero
/// register and sp are not.
pub(super) fn reg(op: &Operand) -> Option<(usize, bool)> {
    match *op {
        Operand::Register(size, n) | Operand::RegisterOrSP(size, n) if n < 31 => {
            Some((usize::from(n), size == SizeCode::X))
        }
        _ => None,
    }
}

fn width(x: bool) -> usize {
    if x { 8 } else { 4 }
}

/// What an operand reads.
pub(super) fn read(s: &State, op: &Operand) -> Val {
    match *op {
        Operand::Register(_, 31) => Val::constant(0),
        Operand::Register(size, n) => {
            let Some(v) = s.regs.get(usize::from(n)).copied() else {
                return Val::UNKNOWN;
            };
            if size == SizeCode::W {
                let m = width_mask(4);
                Val {
                    known: Known {
                        bits: v.known.bits & m,
                        mask: v.known.mask & m,
                    },
                    sym: v.sym.narrowed_to(4),
                }
            } else {
                v
            }
        }
        Operand::RegShift(ShiftStyle::LSL, 0, size, n) => read(s, &Operand::Register(size, n)),
        // `add`/`sub` (immediate) name their registers this way; 31 is sp.
        Operand::RegisterOrSP(size, n) if n < 31 => read(s, &Operand::Register(size, n)),
        Operand::Immediate(i) => Val::constant(u64::from(i)),
        Operand::Imm64(i) => Val::constant(i),
        Operand::Imm16(i) => Val::constant(u64::from(i)),
        Operand::ImmShift(i, sh) => Val::constant(u64::from(i) << sh),
        _ => Val::UNKNOWN,
    }
}

fn write(s: &mut State, d: usize, x: bool, v: Val, at: u32) {
    if d >= 31 {
        return;
    }
    let v = if x {
        v
    } else {
        Val {
            known: Known {
                bits: v.known.bits & 0xFFFF_FFFF,
                mask: v.known.mask | 0xFFFF_FFFF_0000_0000,
            },
            sym: v.sym.narrowed_to(4),
        }
    };
    s.regs[d] = v;
    s.origin[d] = Origin::At(at);
    s.addr[d] = None;
    s.slot[d] = None;
}

/// The RVA a `[xN, #imm]` operand addresses, when xN holds an image
/// address.
fn mem_target(s: &State, op: &Operand) -> Option<u32> {
    match *op {
        Operand::RegPreIndex(n, imm, false) => {
            let base = s.addr.get(usize::from(n)).copied().flatten()?;
            Some(base.wrapping_add(imm as u32))
        }
        _ => None,
    }
}

fn is_mem(op: &Operand) -> bool {
    matches!(
        op,
        Operand::RegPreIndex(..)
            | Operand::RegPostIndex(..)
            | Operand::RegPostIndexReg(..)
            | Operand::RegRegOffset(..)
    )
}

/// The size of a load or store: from the opcode's width and the
/// register's.
fn access_size(op: Opcode, x: bool) -> usize {
    match op {
        Opcode::LDRB | Opcode::STRB | Opcode::LDURB | Opcode::STURB => 1,
        Opcode::LDRH | Opcode::STRH | Opcode::LDURH | Opcode::STURH => 2,
        _ => width(x),
    }
}

/// The transfer function; with `out`, stores to globals and taken
/// addresses are recorded (once, in the final replay).
pub(super) fn step(
    s: &mut State,
    x: &Insn,
    img: &Image<'_>,
    mut out: Option<(&mut Analysis, u32)>,
) {
    let at = x.rva;
    let Some(i) = &x.i else { return };
    let ops = &i.operands;
    match i.opcode {
        Opcode::MOVZ | Opcode::MOVN => {
            if let (Some((d, wide)), Operand::ImmShift(imm, sh)) = (reg(&ops[0]), ops[1]) {
                let v = u64::from(imm) << sh;
                let v = if i.opcode == Opcode::MOVN {
                    !v & width_mask(width(wide))
                } else {
                    v
                };
                write(s, d, wide, Val::constant(v), at);
            }
        }
        Opcode::MOVK => {
            if let (Some((d, wide)), Operand::ImmShift(imm, sh)) = (reg(&ops[0]), ops[1]) {
                let field = 0xFFFFu64 << sh;
                let old = s.regs[d].known;
                let k = Known {
                    bits: (old.bits & !field) | (u64::from(imm) << sh),
                    mask: old.mask | field,
                };
                let origin = s.origin[d];
                write(s, d, wide, Val::known(k), at);
                // The value is made by its movz and movk together.
                if old.mask != 0 {
                    s.origin[d] = origin;
                }
            }
        }
        Opcode::ORR | Opcode::AND | Opcode::EOR => {
            if let Some((d, wide)) = reg(&ops[0]) {
                let (a, b) = (read(s, &ops[1]), read(s, &ops[2]));
                let v = match i.opcode {
                    Opcode::ORR => a.logic(b, true, width(wide)),
                    Opcode::AND => a.logic(b, false, width(wide)),
                    _ => Val::known(a.known.xor(b.known)),
                };
                // mov xd, xm (orr xd, xzr, xm) keeps where xm came from.
                let copy = matches!(ops[1], Operand::Register(_, 31));
                let src = match ops[2] {
                    Operand::RegShift(ShiftStyle::LSL, 0, size, n) => {
                        reg(&Operand::Register(size, n))
                    }
                    ref op => reg(op),
                }
                .map(|(r, _)| (s.origin[r], s.addr[r], s.slot[r]));
                write(s, d, wide, v, at);
                if copy && let Some((o, a, sl)) = src {
                    s.origin[d] = o;
                    if wide {
                        s.addr[d] = a;
                        s.slot[d] = sl;
                    }
                }
            }
        }
        Opcode::ADRP | Opcode::ADR => {
            if let (Some((d, _)), Operand::PCOffset(off)) = (reg(&ops[0]), ops[1]) {
                let base = if i.opcode == Opcode::ADRP {
                    i64::from(at) & !0xFFF
                } else {
                    i64::from(at)
                };
                write(s, d, true, Val::UNKNOWN, at);
                let a = (base + off) as u32;
                s.addr[d] = Some(a);
                if i.opcode == Opcode::ADR
                    && let Some((o, _)) = out.as_mut()
                {
                    o.taken.push((at, a));
                }
            }
        }
        Opcode::ADD | Opcode::SUB => {
            if let Some((d, wide)) = reg(&ops[0]) {
                let base = reg(&ops[1]).and_then(|(r, _)| s.addr[r]);
                let (a, b) = (read(s, &ops[1]), read(s, &ops[2]));
                let imm = b.known.value(!0);
                let add = i.opcode == Opcode::ADD;
                let v = Val::known(a.known.arith(b.known, width(wide), |x, y| {
                    if add {
                        x.wrapping_add(y)
                    } else {
                        x.wrapping_sub(y)
                    }
                }));
                write(s, d, wide, v, at);
                if let (Some(base), Some(imm), true) = (base, imm, wide) {
                    let a = if add {
                        base.wrapping_add(imm as u32)
                    } else {
                        base.wrapping_sub(imm as u32)
                    };
                    s.addr[d] = Some(a);
                    if let Some((o, _)) = out.as_mut() {
                        o.taken.push((at, a));
                    }
                }
            }
        }
        Opcode::LDR | Opcode::LDRSW if matches!(ops[1], Operand::PCOffset(_)) => {
            // A literal: compilers put constants they cannot make in two
            // instructions (MSVC: 0x40000010) in a pool beside the code.
            if let (Some((d, wide)), Operand::PCOffset(off)) = (reg(&ops[0]), ops[1]) {
                let signed = i.opcode == Opcode::LDRSW;
                let size = if wide && !signed { 8 } else { 4 };
                let v = literal(img, (i64::from(at) + off) as u32, size, signed);
                write(s, d, wide, v.map_or(Val::UNKNOWN, Val::constant), at);
            }
        }
        Opcode::LDR
        | Opcode::LDRB
        | Opcode::LDRH
        | Opcode::LDUR
        | Opcode::LDURB
        | Opcode::LDURH => {
            if let Some((d, wide)) = reg(&ops[0]) {
                let target = mem_target(s, &ops[1]);
                let size = access_size(i.opcode, wide);
                write(s, d, wide, Val::UNKNOWN, at);
                if let Some(t) = target {
                    if size == 8 && img.import_name(t).is_some()
                        || img.imports.iat_slot(t).is_some()
                    {
                        s.slot[d] = Some(t);
                    } else {
                        let mut v = Val {
                            known: Known::UNKNOWN,
                            sym: Sym::global(t, size),
                        };
                        if size < 8 {
                            v.known = Known {
                                bits: 0,
                                mask: !width_mask(size),
                            };
                        }
                        s.regs[d] = v;
                    }
                }
                writeback(s, &ops[1], at);
            }
        }
        Opcode::STR
        | Opcode::STRB
        | Opcode::STRH
        | Opcode::STUR
        | Opcode::STURB
        | Opcode::STURH => {
            let wide = matches!(ops[0], Operand::Register(SizeCode::X, _));
            let size = access_size(i.opcode, wide);
            match mem_target(s, &ops[1]) {
                Some(t) => {
                    let value = read(s, &ops[0]).known.value(width_mask(size));
                    if let Some((o, f)) = out.as_mut() {
                        o.stores.push(GlobalStore {
                            at,
                            rva: t,
                            size,
                            value,
                            function: *f,
                        });
                    }
                    let end = t.saturating_add(size as u32);
                    s.stores
                        .retain(|&(r, n, _)| r >= end || r.saturating_add(n as u32) <= t);
                    if let Some(v) = value {
                        s.stores.push((t, size, v));
                    }
                }
                None => {
                    if !matches!(
                        ops[1],
                        Operand::RegPreIndex(31, _, _) | Operand::RegPostIndex(31, _)
                    ) {
                        s.stores.clear();
                    }
                }
            }
            writeback(s, &ops[1], at);
        }
        Opcode::CSEL | Opcode::CSINC => {
            // d = cond ? n : m (csinc: m + 1); `cset` is a csinc of zr.
            if let Some((d, wide)) = reg(&ops[0]) {
                let (n, m) = (read(s, &ops[1]), read(s, &ops[2]));
                let m = if i.opcode == Opcode::CSINC {
                    match m.known.value(width_mask(width(wide))) {
                        Some(v) => Val::constant(v.wrapping_add(1) & width_mask(width(wide))),
                        None => Val::UNKNOWN,
                    }
                } else {
                    m
                };
                if let Some((o, _)) = out.as_mut() {
                    o.choices.push((at, [n, m]));
                }
                let v = Val {
                    known: n.known.meet(m.known),
                    sym: Sym::Choice {
                        at,
                        width: width(wide) as u8,
                    },
                };
                write(s, d, wide, v, at);
            }
        }
        Opcode::BL | Opcode::BLR => {
            for r in (0..18).chain([30]) {
                s.forget(r, Origin::Call(at));
            }
            s.stores.clear();
        }
        Opcode::B
        | Opcode::BR
        | Opcode::RET
        | Opcode::Bcc(_)
        | Opcode::CBZ
        | Opcode::CBNZ
        | Opcode::TBZ
        | Opcode::TBNZ => {}
        _ => {
            // Whatever it writes: its first register, the second of a pair
            // load, a written-back base.
            if let Some((d, _)) = reg(&ops[0]) {
                s.forget(d, Origin::At(at));
            }
            if is_mem(&ops[2])
                && let Some((d, _)) = reg(&ops[1])
            {
                s.forget(d, Origin::At(at));
            }
            for op in ops {
                writeback(s, op, at);
            }
            // A store of any kind may hit a global.
            if ops.iter().any(is_mem)
                && !ops.iter().any(|o| {
                    matches!(
                        o,
                        Operand::RegPreIndex(31, _, _) | Operand::RegPostIndex(31, _)
                    )
                })
            {
                s.stores.clear();
                if let Some((o, f)) = out.as_mut()
                    && let Some(t) = ops.iter().find_map(|op| mem_target(s, op))
                {
                    o.stores.push(GlobalStore {
                        at,
                        rva: t,
                        size: 8,
                        value: None,
                        function: *f,
                    });
                }
            }
        }
    }
}

/// The value of a literal `size` bytes wide at an RVA, when nothing can
/// change it: its section is not writable, no base relocation touches it,
/// and the file holds its bytes.
fn literal(img: &Image<'_>, rva: u32, size: usize, signed: bool) -> Option<u64> {
    let section = img.pe.section_containing(rva)?;
    // A pointer the loader relocates is not the file's value.
    if section.is_writable() || img.relocated(rva, size) {
        return None;
    }
    let b = img.pe.bytes_at(rva, size, "literal").ok()?;
    let mut v = [0u8; 8];
    v.get_mut(..size)?.copy_from_slice(b.get(..size)?);
    let v = u64::from_le_bytes(v);
    Some(if signed {
        v as u32 as i32 as i64 as u64
    } else {
        v
    })
}

/// A pre- or post-indexed access writes its base back.
fn writeback(s: &mut State, op: &Operand, at: u32) {
    match *op {
        Operand::RegPreIndex(n, _, true)
        | Operand::RegPostIndex(n, _)
        | Operand::RegPostIndexReg(n, _) => {
            s.forget(usize::from(n), Origin::At(at));
        }
        _ => {}
    }
}
