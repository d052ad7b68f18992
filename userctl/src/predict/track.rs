//! The transfer function of the data-flow analysis: how one instruction
//! changes what is known of each general-purpose register and of each byte
//! of the stack ([`State::step`]), and how the states of two paths meet
//! ([`State::meet`]).
//!
//! It models the instructions compilers use to set up arguments (`mov`,
//! `xor r,r`, `and`/`or`/`xor`, `add`/`sub` on known values, `lea`,
//! `movzx`/`movsx`, `push`/`pop`, `bts`/`btr`/`btc`, shifts by a constant,
//! `not`) and, for every other instruction, forgets whatever it writes, as
//! iced-x86's instruction info reports it. So a value is only ever *known*
//! when it is provably the constant on every path the analysis was told of.
//!
//! Stack stores are followed through `rsp` and through registers known to
//! be copies of it (`mov rax, rsp`, `lea rbp, [rsp+20h]`). Offsets are from
//! rsp where the analysis started; where paths disagree on rsp, or after an
//! x86 call (the callee may pop its arguments), the stack is re-anchored: a
//! fresh base ([`anchor`]) with nothing known on it. Two assumptions of the
//! Windows ABIs, both kept by compiler output: a call preserves the
//! non-volatile registers and clobbers the others and the stack below the
//! caller's frame; and the outgoing argument area is only written to set up
//! arguments, never through a pointer held elsewhere, so a store through
//! any other base does not touch it (a store through `rbp` that is not a
//! known copy of `rsp`, or with an index register, forgets the whole stack
//! all the same).

use super::stackmap::StackMap;
use super::value::{Known, Sym, Val, width_mask};
use iced_x86::{Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register};

/// The hooked API a register points to, as an index the caller gave (the
/// catalog row), and the instruction that loaded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuncRef {
    /// The caller's index of the target.
    pub target: usize,
    /// RVA of the instruction that loaded the pointer.
    pub loaded_at: u32,
}

/// What the tracker needs to know of the image.
pub trait Env {
    /// The target a `mov reg, [slot]` loads, when `slot` is the IAT slot
    /// of a hooked import.
    fn iat_slot(&self, rva: u32) -> Option<usize>;
    /// The target a `lea reg, [addr]` points to, when `addr` is an import
    /// thunk of a hooked import.
    fn thunk(&self, rva: u32) -> Option<usize>;
    /// The image base: x86 code addresses memory by its absolute address.
    fn image_base(&self) -> u64;
}

/// Why an argument is not known: the instruction that last wrote it, or
/// none when it was not written in what was analyzed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Not written between the analysis' start and the call.
    BeforeBlock,
    /// Written by the instruction at this RVA.
    At(u32),
    /// Clobbered by the call at this RVA (a volatile register or the stack
    /// argument area).
    Call(u32),
    /// The paths that reach the block at this RVA disagree on it.
    Merge(u32),
}

impl Origin {
    fn meet(self, o: Origin, block: u32) -> Origin {
        if self == o {
            self
        } else {
            Origin::Merge(block)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StackByte {
    bits: u8,
    mask: u8,
    origin: Origin,
}

/// A stack base no other can collide with: `anchor(n)` for the n-th
/// re-anchoring (by the RVA where it happens, so that repeated passes of
/// the analysis agree).
pub fn anchor(rva: u32) -> i64 {
    (i64::from(rva) + 1) << 32
}

/// The state of the pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// 64-bit code (x64) rather than 32-bit (x86).
    wide: bool,
    regs: [Known; 16],
    syms: [Sym; 16],
    origin: [Origin; 16],
    func: [Option<FuncRef>; 16],
    /// Registers that point into the stack, at this offset from the base
    /// (`mov rax, rsp`, `lea rbp, [rsp+20h]`): stores through them are
    /// stack stores.
    alias: [Option<i64>; 16],
    /// rsp minus the base, while known.
    rsp: Option<i64>,
    /// Known bytes of the stack, by offset from the base.
    stack: StackMap<StackByte>,
    /// Terms stored on the stack: offset -> (width, term).
    stack_sym: StackMap<(u8, Sym)>,
    /// Where the stack was last forgotten wholesale.
    stack_origin: Origin,
    /// Constants this path stored to the image's globals, still there:
    /// (RVA, width, value). Any other store that may alias them, and any
    /// call, forgets them all.
    global_stores: Vec<(u32, usize, u64)>,
}

const RSP: usize = 4;
const RBP: usize = 5;
/// rax, rcx, rdx, r8–r11: what an x64 call clobbers.
const VOLATILE_64: [usize; 7] = [0, 1, 2, 8, 9, 10, 11];
/// eax, ecx, edx: what an x86 call clobbers.
const VOLATILE_32: [usize; 3] = [0, 1, 2];
/// rcx, rdx, r8, r9: the x64 register arguments.
pub const ARG_REGS: [usize; 4] = [1, 2, 8, 9];
/// Stack parameters given a term at a function's entry, at most.
const MAX_STACK_PARAMS: u8 = 12;

/// The index (0 = rax ... 15 = r15) of a general-purpose register of any
/// width, `None` for every other register.
pub fn gpr(reg: Register) -> Option<usize> {
    if !reg.is_gpr() {
        return None;
    }
    let full = reg.full_register();
    full.is_gpr64().then(|| full.number())
}

fn is_high_byte(reg: Register) -> bool {
    matches!(
        reg,
        Register::AH | Register::CH | Register::DH | Register::BH
    )
}

fn writes(access: OpAccess) -> bool {
    matches!(
        access,
        OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
    )
}

fn immediate(i: &Instruction, op: u32) -> Option<u64> {
    match i.op_kind(op) {
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate64
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32to64 => i.try_immediate(op).ok(),
        _ => None,
    }
}

/// The RVA a memory operand with no base or index register addresses:
/// `[rip+disp]` on x64 (the decoder's IP is an RVA), `[disp]` on x86 (an
/// absolute address, less the image base).
pub fn absolute_rva(i: &Instruction, image_base: u64) -> Option<u32> {
    if i.is_ip_rel_memory_operand() {
        return u32::try_from(i.ip_rel_memory_address()).ok();
    }
    if i.memory_base() == Register::None && i.memory_index() == Register::None {
        let va = i.memory_displacement64();
        return u32::try_from(va.checked_sub(image_base)?).ok();
    }
    None
}

impl State {
    /// The state where nothing is known: rsp at `base`.
    pub fn fresh(wide: bool, base: i64) -> State {
        State {
            wide,
            regs: [Known::UNKNOWN; 16],
            syms: [Sym::None; 16],
            origin: [Origin::BeforeBlock; 16],
            func: [None; 16],
            alias: [None; 16],
            rsp: Some(base),
            stack: StackMap::new(),
            stack_sym: StackMap::new(),
            stack_origin: Origin::BeforeBlock,
            global_stores: Vec::new(),
        }
    }

    /// The state at a block's start with nothing known, rsp at offset 0.
    pub fn new(wide: bool) -> State {
        State::fresh(wide, 0)
    }

    /// The state at a function's entry: nothing known, but each parameter
    /// is its term ([`Sym::Param`]): rcx, rdx, r8, r9 and the stack above
    /// the return address on x64; the stack on x86 (stdcall and cdecl).
    pub fn entry(wide: bool, entry: u32) -> State {
        let mut s = State::new(wide);
        let slot = if wide { 8 } else { 4 };
        let first_on_stack = if wide {
            for (n, r) in ARG_REGS.iter().enumerate() {
                s.syms[*r] = Sym::Param { n: n as u8, entry };
            }
            4
        } else {
            0
        };
        for n in first_on_stack..MAX_STACK_PARAMS {
            let off = slot * (i64::from(n) + 1);
            s.stack_sym
                .insert(off, (slot as u8, Sym::Param { n, entry }));
        }
        s
    }

    /// Is this 64-bit code?
    pub fn is_wide(&self) -> bool {
        self.wide
    }

    /// A register's known bits, as the 64-bit register.
    pub fn reg(&self, index: usize) -> Known {
        self.regs.get(index).copied().unwrap_or_default()
    }

    /// A register's value (known bits and term).
    pub fn reg_val(&self, index: usize) -> Val {
        Val {
            known: self.reg(index),
            sym: self.syms.get(index).copied().unwrap_or_default(),
        }
    }

    /// The hooked API a register points to.
    pub fn func(&self, reg: Register) -> Option<FuncRef> {
        let n = gpr(reg)?;
        // Only the full register holds a pointer.
        let full = if self.wide {
            reg.is_gpr64()
        } else {
            reg.is_gpr32()
        };
        if full { self.func[n] } else { None }
    }

    /// Who last wrote a register.
    pub fn reg_origin(&self, index: usize) -> Origin {
        self.origin
            .get(index)
            .copied()
            .unwrap_or(Origin::BeforeBlock)
    }

    /// The `len` bytes at `rsp + disp`, as far as known.
    pub fn stack_at(&self, disp: i64, len: usize) -> (Val, Origin) {
        match self.rsp {
            Some(rsp) => self.load(rsp.wrapping_add(disp), len),
            None => (Val::UNKNOWN, self.stack_origin),
        }
    }

    /// The 8 bytes at `rsp + disp`, as far as known.
    pub fn stack_qword(&self, disp: i64) -> (Known, Origin) {
        let (v, o) = self.stack_at(disp, 8);
        (v.known, o)
    }

    /// Does register n hold the constant this path stored to the global
    /// the term `sym` reads (so it equals that global's contents here)?
    fn holds_global(&self, n: usize, sym: Sym) -> bool {
        super::value::holds_global(&self.global_stores, self.regs[n], sym)
    }

    /// Merges the state of another path into this one at the block at
    /// `block`; true if this state changed.
    pub fn meet(&mut self, o: &State, block: u32) -> bool {
        // The fixed-size parts are compared after; the maps say as they go.
        let (regs, syms, func, origin, alias) =
            (self.regs, self.syms, self.func, self.origin, self.alias);
        let (rsp, stack_origin, stores) = (self.rsp, self.stack_origin, self.global_stores.len());
        let mut changed = false;
        for n in 0..16 {
            if self.syms[n] != o.syms[n] {
                // A constant just stored to a global is that global's
                // contents: on the path that stored it, the register is
                // the global's term too (the driver runtime's defaults,
                // set and used in the same function).
                self.syms[n] = if o.syms[n] != Sym::None && self.holds_global(n, o.syms[n]) {
                    o.syms[n]
                } else if self.syms[n] != Sym::None && o.holds_global(n, self.syms[n]) {
                    self.syms[n]
                } else {
                    Sym::None
                };
            }
            self.regs[n] = self.regs[n].meet(o.regs[n]);
            if self.func[n] != o.func[n] {
                self.func[n] = None;
            }
            if self.regs[n] != regs[n]
                || self.syms[n] != syms[n]
                || self.func[n] != func[n]
                || self.origin[n] != o.origin[n]
            {
                self.origin[n] = self.origin[n].meet(o.origin[n], block);
            }
        }
        self.global_stores.retain(|g| o.global_stores.contains(g));
        if self.rsp == o.rsp {
            for n in 0..16 {
                if self.alias[n] != o.alias[n] {
                    self.alias[n] = None;
                }
            }
            self.stack.retain(|k, a| {
                let Some(b) = o.stack.get(k) else {
                    changed = true;
                    return false;
                };
                let m = Known {
                    bits: u64::from(a.bits),
                    mask: u64::from(a.mask),
                }
                .meet(Known {
                    bits: u64::from(b.bits),
                    mask: u64::from(b.mask),
                });
                let new = StackByte {
                    bits: m.bits as u8,
                    mask: m.mask as u8,
                    origin: a.origin.meet(b.origin, block),
                };
                changed |= new != *a;
                *a = new;
                true
            });
            self.stack_sym.retain(|k, v| {
                let keep = o.stack_sym.get(k) == Some(v);
                changed |= !keep;
                keep
            });
            if self.stack_origin != o.stack_origin {
                self.stack_origin = Origin::Merge(block);
            }
        } else {
            // The paths disagree on rsp: start the stack afresh here.
            self.alias = [None; 16];
            self.regs[RSP] = Known::UNKNOWN;
            self.rsp = Some(anchor(block));
            if self.stack.iter().next().is_some() || self.stack_sym.iter().next().is_some() {
                changed = true;
            }
            self.forget_stack(Origin::Merge(block));
        }
        changed
            || regs != self.regs
            || syms != self.syms
            || func != self.func
            || origin != self.origin
            || alias != self.alias
            || rsp != self.rsp
            || stack_origin != self.stack_origin
            || stores != self.global_stores.len()
    }

    fn read(&self, reg: Register) -> Val {
        let Some(n) = gpr(reg) else {
            return Val::UNKNOWN;
        };
        let v = self.regs[n];
        if is_high_byte(reg) {
            Val::known(Known {
                bits: (v.bits >> 8) & 0xFF,
                mask: (v.mask >> 8) & 0xFF,
            })
        } else {
            let m = width_mask(reg.size());
            Val {
                known: Known {
                    bits: v.bits & m,
                    mask: v.mask & m,
                },
                // A term is kept in 32- and 64-bit reads only.
                sym: if reg.size() >= 4 {
                    self.syms[n]
                } else {
                    Sym::None
                },
            }
        }
    }

    /// Writes a register with x64's width rules: a 32-bit write clears the
    /// upper half, 8- and 16-bit writes keep the rest of the register.
    fn write(&mut self, reg: Register, v: Val, at: u32) {
        let Some(n) = gpr(reg) else {
            return;
        };
        let old = self.regs[n];
        let (bits, mask, sym) = match reg.size() {
            8 => (v.known.bits, v.known.mask, v.sym),
            4 => (
                v.known.bits & 0xFFFF_FFFF,
                v.known.mask | 0xFFFF_FFFF_0000_0000,
                v.sym,
            ),
            size => {
                let (shift, m) = if is_high_byte(reg) {
                    (8, 0xFF00)
                } else {
                    (0, width_mask(size))
                };
                (
                    (old.bits & !m) | ((v.known.bits << shift) & m),
                    (old.mask & !m) | ((v.known.mask << shift) & m),
                    Sym::None,
                )
            }
        };
        self.regs[n] = Known {
            bits: bits & mask,
            mask,
        };
        self.syms[n] = sym;
        self.origin[n] = Origin::At(at);
        self.func[n] = None;
        self.alias[n] = None;
        if n == RSP {
            self.lose_rsp(at);
        }
    }

    fn forget_reg(&mut self, n: usize, origin: Origin) {
        self.regs[n] = Known::UNKNOWN;
        self.syms[n] = Sym::None;
        self.origin[n] = origin;
        self.func[n] = None;
        self.alias[n] = None;
    }

    fn lose_rsp(&mut self, at: u32) {
        self.rsp = None;
        self.alias = [None; 16];
        self.forget_stack(Origin::At(at));
    }

    fn forget_stack(&mut self, origin: Origin) {
        self.stack.clear();
        self.stack_sym.clear();
        self.stack_origin = origin;
    }

    /// Drops the terms stored over any of the bytes `off..off+len`.
    fn drop_stack_syms(&mut self, off: i64, len: usize) {
        let end = off.saturating_add(len as i64);
        self.stack_sym
            .retain(|k, (w, _)| k >= end || k.saturating_add(i64::from(*w)) <= off);
    }

    fn forget_stack_range(&mut self, off: i64, len: usize, at: u32) {
        let end = off.saturating_add(len as i64);
        self.stack.remove_range(off, end);
        self.drop_stack_syms(off, len);
        // Bytes not in the map read as unknown, written here.
        for k in off..end.min(off + 64) {
            self.stack.insert(
                k,
                StackByte {
                    bits: 0,
                    mask: 0,
                    origin: Origin::At(at),
                },
            );
        }
    }

    /// Bytes below rsp may be overwritten at any time (interrupts use the
    /// kernel stack; x64 Windows has no red zone), so they are dropped when
    /// rsp moves up.
    fn drop_below_rsp(&mut self) {
        if let Some(rsp) = self.rsp {
            self.stack.drop_below(rsp);
            self.stack_sym.drop_below(rsp);
        }
    }

    fn move_rsp(&mut self, delta: i64, at: u32) {
        match self.rsp.and_then(|r| r.checked_add(delta)) {
            Some(r) => {
                self.rsp = Some(r);
                self.regs[RSP] = Known::UNKNOWN;
                self.origin[RSP] = Origin::At(at);
                self.drop_below_rsp();
            }
            None => self.lose_rsp(at),
        }
    }

    fn load(&self, off: i64, len: usize) -> (Val, Origin) {
        let mut k = Known::UNKNOWN;
        let mut origin = None;
        // For a known value, who wrote its first byte.
        let mut writer = None;
        for i in 0..len.min(8) {
            let Some(b) = self.stack.get(off.wrapping_add(i as i64)) else {
                origin.get_or_insert(self.stack_origin);
                continue;
            };
            k.bits |= u64::from(b.bits) << (i * 8);
            k.mask |= u64::from(b.mask) << (i * 8);
            writer.get_or_insert(b.origin);
            if b.mask != 0xFF {
                origin.get_or_insert(b.origin);
            }
        }
        let origin = origin.or(writer);
        let sym = match self.stack_sym.get(off) {
            Some(&(w, s)) if usize::from(w) >= len && len >= 4 => s,
            _ => Sym::None,
        };
        (Val { known: k, sym }, origin.unwrap_or(Origin::BeforeBlock))
    }

    fn store(&mut self, off: i64, len: usize, v: Val, at: u32) {
        self.drop_stack_syms(off, len);
        for i in 0..len.min(8) {
            self.stack.insert(
                off.wrapping_add(i as i64),
                StackByte {
                    bits: (v.known.bits >> (i * 8)) as u8,
                    mask: (v.known.mask >> (i * 8)) as u8,
                    origin: Origin::At(at),
                },
            );
        }
        if len > 8 {
            self.forget_stack_range(off.wrapping_add(8), len - 8, at);
        } else if v.sym != Sym::None && len >= 4 {
            self.stack_sym.insert(off, (len as u8, v.sym));
        }
    }

    /// Says who wrote the stack bytes `off..off+len` (a register's value
    /// stored there comes from where the register got it).
    fn set_stack_origin(&mut self, off: i64, len: usize, origin: Origin) {
        for k in 0..len.min(8) {
            if let Some(b) = self.stack.get_mut(off.wrapping_add(k as i64)) {
                b.origin = origin;
            }
        }
    }

    /// Where a base register points in the stack (as an offset from the
    /// base): rsp itself, or a copy of it.
    fn stack_base(&self, base: Register) -> Option<i64> {
        match gpr(base)? {
            RSP => self.rsp,
            n if base.is_gpr64() || (!self.wide && base.is_gpr32()) => self.alias[n],
            _ => None,
        }
    }

    /// The stack offset (from the base) of a memory operand `[base+disp]`
    /// with no index, whose base points into the stack.
    fn stack_offset(&self, i: &Instruction) -> Option<i64> {
        if i.memory_index() != Register::None {
            return None;
        }
        let disp = if self.wide {
            i.memory_displacement64() as i64
        } else {
            i64::from(i.memory_displacement32() as i32)
        };
        self.stack_base(i.memory_base())
            .map(|b| b.wrapping_add(disp))
    }

    /// The value an operand reads, as far as known. A read of one of the
    /// image's own addresses is the term of that global.
    fn operand(&self, i: &Instruction, op: u32, env: &dyn Env) -> Val {
        match i.op_kind(op) {
            OpKind::Register => self.read(i.op_register(op)),
            OpKind::Memory => match self.stack_offset(i) {
                Some(off) => self.load(off, i.memory_size().size()).0,
                None => {
                    let size = i.memory_size().size();
                    match absolute_rva(i, env.image_base()) {
                        Some(rva) if (1..=8).contains(&size) => Val {
                            known: Known::UNKNOWN,
                            sym: Sym::global(rva, size),
                        },
                        _ => Val::UNKNOWN,
                    }
                }
            },
            _ => immediate(i, op).map_or(Val::UNKNOWN, Val::constant),
        }
    }

    /// Writes the destination operand (register or stack memory); any
    /// other destination falls back to the generic rule.
    fn put(
        &mut self,
        i: &Instruction,
        v: Val,
        env: &dyn Env,
        info: &mut InstructionInfoFactory,
    ) -> Option<()> {
        let at = i.ip32();
        match i.op0_kind() {
            OpKind::Register if gpr(i.op0_register()).is_some() => {
                self.write(i.op0_register(), v, at);
                Some(())
            }
            OpKind::Memory => match self.stack_offset(i) {
                Some(off) => {
                    self.store(off, i.memory_size().size(), v, at);
                    Some(())
                }
                None => {
                    self.generic(i, env, info);
                    let size = i.memory_size().size();
                    if let (Some(g), Some(x)) = (
                        absolute_rva(i, env.image_base()),
                        v.known.value(width_mask(size)),
                    ) && i.mnemonic() == Mnemonic::Mov
                    {
                        self.global_stores.push((g, size, x));
                    }
                    Some(())
                }
            },
            _ => None,
        }
    }

    /// The width in bytes of the destination operand.
    fn dest_width(i: &Instruction) -> usize {
        match i.op0_kind() {
            OpKind::Register => i.op0_register().size(),
            _ => i.memory_size().size(),
        }
    }

    /// Steps over one instruction that is not the call being judged.
    pub fn step(&mut self, i: &Instruction, env: &dyn Env, info: &mut InstructionInfoFactory) {
        let at = i.ip32();
        let two = i.op_count() == 2;
        let modeled = match i.mnemonic() {
            Mnemonic::Nop => Some(()),
            Mnemonic::Mov if two => self.mov(i, env, info),
            Mnemonic::Xor | Mnemonic::Sub
                if two
                    && i.op0_kind() == OpKind::Register
                    && i.op1_kind() == OpKind::Register
                    && i.op0_register() == i.op1_register()
                    && gpr(i.op0_register()).is_some() =>
            {
                // The zeroing idioms.
                self.write(i.op0_register(), Val::constant(0), at);
                Some(())
            }
            Mnemonic::Add | Mnemonic::Sub
                if two
                    && i.op0_kind() == OpKind::Register
                    && gpr(i.op0_register()) == Some(RSP) =>
            {
                match immediate(i, 1) {
                    Some(imm) => {
                        let d = if self.wide {
                            imm as i64
                        } else {
                            i64::from(imm as u32 as i32)
                        };
                        let delta = if i.mnemonic() == Mnemonic::Add {
                            Some(d)
                        } else {
                            d.checked_neg()
                        };
                        match delta {
                            Some(d) => self.move_rsp(d, at),
                            None => self.lose_rsp(at),
                        }
                    }
                    None => self.lose_rsp(at),
                }
                Some(())
            }
            Mnemonic::And | Mnemonic::Or | Mnemonic::Xor | Mnemonic::Add | Mnemonic::Sub if two => {
                let width = State::dest_width(i);
                let (a, b) = (self.operand(i, 0, env), self.operand(i, 1, env));
                let r = match i.mnemonic() {
                    Mnemonic::And => a.logic(b, false, width),
                    Mnemonic::Or => a.logic(b, true, width),
                    Mnemonic::Xor => Val::known(a.known.xor(b.known)),
                    Mnemonic::Add => Val::known(a.known.arith(b.known, width, u64::wrapping_add)),
                    _ => Val::known(a.known.arith(b.known, width, u64::wrapping_sub)),
                };
                self.put(i, r, env, info)
            }
            Mnemonic::Not if i.op_count() == 1 => {
                let a = self.operand(i, 0, env);
                self.put(i, Val::known(a.known.xor(Known::constant(!0))), env, info)
            }
            Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc if two => {
                let width = State::dest_width(i);
                match immediate(i, 1) {
                    Some(n) => {
                        let set = match i.mnemonic() {
                            Mnemonic::Bts => Some(true),
                            Mnemonic::Btr => Some(false),
                            _ => None,
                        };
                        let a = self.operand(i, 0, env);
                        let n = (n as u32) % (width.clamp(1, 8) as u32 * 8);
                        let known = a.known.bit(n, set);
                        // Setting or clearing a bit keeps the term; flipping
                        // one does not.
                        let sym = if set.is_some() { a.sym } else { Sym::None };
                        self.put(i, Val { known, sym }, env, info)
                    }
                    None => None,
                }
            }
            Mnemonic::Shl | Mnemonic::Sal | Mnemonic::Shr if two => {
                let width = State::dest_width(i);
                match immediate(i, 1) {
                    Some(n) => {
                        let a = self.operand(i, 0, env).known;
                        let known = if i.mnemonic() == Mnemonic::Shr {
                            a.shr(n as u32, width)
                        } else {
                            a.shl(n as u32, width)
                        };
                        self.put(i, Val::known(known), env, info)
                    }
                    None => None,
                }
            }
            Mnemonic::Lea => self.lea(i, env),
            Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd
                if i.op0_kind() == OpKind::Register =>
            {
                let src_width = match i.op1_kind() {
                    OpKind::Register => i.op1_register().size(),
                    _ => i.memory_size().size(),
                };
                let v = self.operand(i, 1, env);
                let m = width_mask(src_width);
                let r = if i.mnemonic() == Mnemonic::Movzx {
                    Val {
                        known: Known {
                            bits: v.known.bits & m,
                            mask: (v.known.mask & m) | !m,
                        },
                        sym: v.sym,
                    }
                } else {
                    match v.known.value(m) {
                        Some(x) => {
                            let shift = 64 - (src_width.clamp(1, 8) * 8) as u32;
                            Val::constant((((x << shift) as i64) >> shift) as u64)
                        }
                        None => Val::UNKNOWN,
                    }
                };
                self.write(i.op0_register(), r, at);
                Some(())
            }
            Mnemonic::Push if i.op_count() == 1 => {
                let v = self.operand(i, 0, env);
                let slot = if self.wide { 8 } else { 4 };
                let width = match i.op0_kind() {
                    OpKind::Register => i.op0_register().size(),
                    OpKind::Memory => i.memory_size().size(),
                    // push imm pushes a sign-extended slot.
                    _ => slot,
                };
                self.move_rsp(-(width as i64), at);
                if let Some(rsp) = self.rsp {
                    self.store(rsp, width, v, at);
                    // A pushed register keeps where it got its value.
                    if let Some(src) = (i.op0_kind() == OpKind::Register)
                        .then(|| gpr(i.op0_register()))
                        .flatten()
                    {
                        self.set_stack_origin(rsp, width, self.origin[src]);
                    }
                }
                Some(())
            }
            Mnemonic::Pop if i.op_count() == 1 && i.op0_kind() == OpKind::Register => {
                let reg = i.op0_register();
                let (v, _) = match self.rsp {
                    Some(rsp) => self.load(rsp, reg.size()),
                    None => (Val::UNKNOWN, Origin::At(at)),
                };
                self.move_rsp(reg.size() as i64, at);
                if gpr(reg) != Some(RSP) {
                    self.write(reg, v, at);
                }
                Some(())
            }
            Mnemonic::Call => {
                self.after_call(at);
                Some(())
            }
            _ => None,
        };
        if modeled.is_none() {
            self.generic(i, env, info);
        }
    }

    fn mov(
        &mut self,
        i: &Instruction,
        env: &dyn Env,
        info: &mut InstructionInfoFactory,
    ) -> Option<()> {
        let at = i.ip32();
        let pointer_width = if self.wide { 8 } else { 4 };
        if i.op0_kind() == OpKind::Register
            && i.op1_kind() == OpKind::Memory
            && i.op0_register().size() == pointer_width
            && let Some(target) = absolute_rva(i, env.image_base()).and_then(|s| env.iat_slot(s))
        {
            let reg = i.op0_register();
            self.write(reg, Val::UNKNOWN, at);
            if let Some(n) = gpr(reg) {
                self.func[n] = Some(FuncRef {
                    target,
                    loaded_at: at,
                });
            }
            return Some(());
        }
        if i.op0_kind() == OpKind::Register && gpr(i.op0_register()).is_none() {
            return None;
        }
        if i.op1_kind() == OpKind::Register && gpr(i.op1_register()).is_none() {
            return None;
        }
        let v = self.operand(i, 1, env);
        let (func, alias) = match i.op1_kind() {
            OpKind::Register if i.op1_register().size() == pointer_width => (
                self.func(i.op1_register()),
                self.stack_base(i.op1_register()),
            ),
            _ => (None, None),
        };
        self.put(i, v, env, info)?;
        // A value copied from another register comes from where that one
        // came from: the reason points at the load or the constant, not
        // the copy.
        if i.op0_kind() == OpKind::Register
            && i.op1_kind() == OpKind::Register
            && let (Some(d), Some(s)) = (gpr(i.op0_register()), gpr(i.op1_register()))
        {
            self.origin[d] = self.origin[s];
        }
        // And a value stored to the stack keeps where the register got it.
        if i.op0_kind() == OpKind::Memory
            && i.op1_kind() == OpKind::Register
            && let (Some(src), Some(off)) = (gpr(i.op1_register()), self.stack_offset(i))
        {
            self.set_stack_origin(off, i.memory_size().size(), self.origin[src]);
        }
        // Likewise for an unknown value loaded from the stack: where it was
        // stored (or where the paths disagree on it).
        if i.op0_kind() == OpKind::Register
            && i.op1_kind() == OpKind::Memory
            && let (Some(d), Some(off)) = (gpr(i.op0_register()), self.stack_offset(i))
            && v.known.value(width_mask(i.memory_size().size())).is_none()
        {
            self.origin[d] = self.load(off, i.memory_size().size()).1;
        }
        // A pointer to a hooked API, or into the stack, copied to another
        // register stays one.
        if i.op0_kind() == OpKind::Register
            && i.op0_register().size() == pointer_width
            && let Some(n) = gpr(i.op0_register())
        {
            self.func[n] = func;
            if n != RSP {
                self.alias[n] = alias;
            }
        }
        Some(())
    }

    fn lea(&mut self, i: &Instruction, env: &dyn Env) -> Option<()> {
        let at = i.ip32();
        let dest = i.op0_register();
        gpr(dest)?;
        let pointer_width = if self.wide { 8 } else { 4 };
        if let Some(addr) = absolute_rva(i, env.image_base()) {
            // The address of code or data is not a constant: the image is
            // relocated. Only a thunk's address is kept, as a call target.
            self.write(dest, Val::UNKNOWN, at);
            if let (Some(n), Some(target)) = (gpr(dest), env.thunk(addr))
                && dest.size() == pointer_width
            {
                self.func[n] = Some(FuncRef {
                    target,
                    loaded_at: at,
                });
            }
            return Some(());
        }
        if i.memory_index() == Register::None
            && dest.size() == pointer_width
            && let Some(off) = self.stack_offset(i)
        {
            // lea rbp, [rsp+20h]: a pointer into the stack.
            self.write(dest, Val::UNKNOWN, at);
            if let Some(n) = gpr(dest).filter(|&n| n != RSP) {
                self.alias[n] = Some(off);
            }
            return Some(());
        }
        let part = |reg: Register| -> Option<u64> {
            match reg {
                Register::None => Some(0),
                r if gpr(r) == Some(RSP) => None,
                r => self.read(r).known.value(width_mask(r.size())),
            }
        };
        let v = match (part(i.memory_base()), part(i.memory_index())) {
            (Some(base), Some(index)) => Val::constant(
                base.wrapping_add(index.wrapping_mul(u64::from(i.memory_index_scale())))
                    .wrapping_add(i.memory_displacement64()),
            ),
            _ => Val::UNKNOWN,
        };
        self.write(dest, v, at);
        Some(())
    }

    /// After a call returns: the volatile registers and the callee's stack
    /// area are unknown; the non-volatile registers are as before, and so
    /// is rsp on x64. On x86 the callee may have popped its arguments
    /// (stdcall), so the stack is re-anchored.
    pub fn after_call(&mut self, at: u32) {
        let volatile: &[usize] = if self.wide {
            &VOLATILE_64
        } else {
            &VOLATILE_32
        };
        for &n in volatile {
            self.forget_reg(n, Origin::Call(at));
        }
        self.forget_stack(Origin::Call(at));
        self.global_stores.clear();
        if !self.wide {
            self.alias = [None; 16];
            self.rsp = Some(anchor(at));
        }
    }

    /// Forgets whatever an unmodeled instruction writes.
    fn generic(&mut self, i: &Instruction, env: &dyn Env, info: &mut InstructionInfoFactory) {
        let at = i.ip32();
        let info = info.info(i);
        for r in info.used_registers() {
            if writes(r.access())
                && let Some(n) = gpr(r.register())
            {
                if n == RSP {
                    // push/pop-like instructions move rsp by a known amount.
                    if i.is_stack_instruction() && i.stack_pointer_increment() != 0 {
                        self.move_rsp(i64::from(i.stack_pointer_increment()), at);
                        self.forget_stack(Origin::At(at));
                    } else {
                        self.lose_rsp(at);
                    }
                } else {
                    self.forget_reg(n, Origin::At(at));
                }
            }
        }
        for m in info.used_memory() {
            if !writes(m.access()) {
                continue;
            }
            let base = gpr(m.base());
            let size = m.memory_size().size();
            match (self.stack_base(m.base()), m.index()) {
                (Some(b), Register::None) if size > 0 => {
                    let disp = if self.wide {
                        m.displacement() as i64
                    } else {
                        i64::from(m.displacement() as u32 as i32)
                    };
                    let off = b.wrapping_add(disp);
                    self.forget_stack_range(off, size, at);
                }
                _ if base == Some(RSP)
                    || base == Some(RBP)
                    || self.stack_base(m.base()).is_some() =>
                {
                    self.forget_stack(Origin::At(at));
                    self.global_stores.clear();
                }
                _ => match absolute_rva(i, env.image_base()) {
                    // A store to a global's address: the stores it
                    // overlaps are gone.
                    Some(g) if m.index() == Register::None => {
                        let end = g.saturating_add(size as u32);
                        self.global_stores
                            .retain(|&(r, n, _)| r >= end || r.saturating_add(n as u32) <= g);
                    }
                    // Through a pointer: it may alias any global.
                    _ => self.global_stores.clear(),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    struct NoEnv;
    impl Env for NoEnv {
        fn iat_slot(&self, rva: u32) -> Option<usize> {
            (rva == 0x2000).then_some(7)
        }
        fn thunk(&self, _: u32) -> Option<usize> {
            None
        }
        fn image_base(&self) -> u64 {
            0x1_4000_0000
        }
    }

    fn run(code: &[u8]) -> State {
        let mut s = State::new(true);
        let mut info = InstructionInfoFactory::new();
        let mut d = Decoder::with_ip(64, code, 0x1000, DecoderOptions::NONE);
        for i in &mut d {
            s.step(&i, &NoEnv, &mut info);
        }
        s
    }

    const RCX: usize = 1;
    const RDX: usize = 2;

    #[test]
    fn mov_xor_and_or() {
        // xor ecx,ecx ; or ecx,200h ; mov edx,40h ; and edx,0Fh
        let s = run(&[
            0x31, 0xC9, 0x81, 0xC9, 0x00, 0x02, 0x00, 0x00, 0xBA, 0x40, 0, 0, 0, 0x83, 0xE2, 0x0F,
        ]);
        assert_eq!(s.reg(RCX).value(!0), Some(0x200));
        assert_eq!(s.reg(RDX).value(!0), Some(0));
    }

    #[test]
    fn partial_writes_merge_and_32_bit_writes_zero_extend() {
        // mov dl, 1 (rdx unknown before): the low byte is known, the rest not.
        let s = run(&[0xB2, 0x01]);
        assert_eq!(s.reg(RDX).value(0xFF), Some(1));
        assert_eq!(s.reg(RDX).value(0xFFFF), None);
        // mov rdx, -1 ; mov edx, 5 -> 5.
        let s = run(&[0x48, 0xC7, 0xC2, 0xFF, 0xFF, 0xFF, 0xFF, 0xBA, 5, 0, 0, 0]);
        assert_eq!(s.reg(RDX).value(!0), Some(5));
        // mov ecx, 1234h ; mov ch, 0 -> 0x34.
        let s = run(&[0xB9, 0x34, 0x12, 0, 0, 0xB5, 0x00]);
        assert_eq!(s.reg(RCX).value(!0), Some(0x34));
    }

    #[test]
    fn loads_from_memory_are_unknown() {
        // mov ecx, dword ptr [rip+100h]
        let s = run(&[0x8B, 0x0D, 0x00, 0x01, 0x00, 0x00]);
        assert_eq!(s.reg(RCX).value(0xFFFF_FFFF), None);
        assert_eq!(s.reg_origin(RCX), Origin::At(0x1000));
    }

    #[test]
    fn stack_stores_follow_rsp() {
        // sub rsp,38h ; mov dword ptr [rsp+28h],10h ; and qword ptr [rsp+20h],0
        let s = run(&[
            0x48, 0x83, 0xEC, 0x38, 0xC7, 0x44, 0x24, 0x28, 0x10, 0, 0, 0, 0x48, 0x83, 0x64, 0x24,
            0x20, 0x00,
        ]);
        assert_eq!(s.stack_qword(0x28).0.value(0xFFFF_FFFF), Some(0x10));
        assert_eq!(s.stack_qword(0x28).0.value(!0), None);
        assert_eq!(s.stack_qword(0x20).0.value(!0), Some(0));
        // push 5 ; pop rcx
        let s = run(&[0x6A, 0x05, 0x59]);
        assert_eq!(s.reg(RCX).value(!0), Some(5));
    }

    #[test]
    fn calls_clobber_volatile_registers_and_the_argument_area() {
        // xor ecx,ecx ; xor ebx,ebx ; mov dword ptr [rsp+28h],10h ; call $+5
        let s = run(&[
            0x31, 0xC9, 0x31, 0xDB, 0xC7, 0x44, 0x24, 0x28, 0x10, 0, 0, 0, 0xE8, 0, 0, 0, 0,
        ]);
        assert_eq!(s.reg(RCX).value(!0), None);
        assert_eq!(s.reg_origin(RCX), Origin::Call(0x100C));
        assert_eq!(s.reg(3).value(!0), Some(0));
        assert_eq!(s.stack_qword(0x28).0.value(0xFF), None);
    }

    #[test]
    fn unmodeled_writes_forget() {
        // mov ecx,4 ; shl ecx,1 ; mov eax,4 ; cpuid (writes eax..edx)
        let s = run(&[0xB9, 4, 0, 0, 0, 0xD1, 0xE1, 0xB8, 4, 0, 0, 0, 0x0F, 0xA2]);
        assert_eq!(s.reg(RCX).value(!0), None);
        assert_eq!(s.reg(0).value(!0), None);
        // mov dword ptr [rsp+28h],10h ; mov rsp, rbp: rsp unknown, stack gone.
        let s = run(&[0xC7, 0x44, 0x24, 0x28, 0x10, 0, 0, 0, 0x48, 0x89, 0xEC]);
        assert_eq!(s.stack_qword(0x28).0.value(0xFF), None);
        // mov dword ptr [rsp+28h],10h ; mov dword ptr [rbp-8],eax: rbp may
        // point into the frame, so the stack is forgotten.
        let s = run(&[0xC7, 0x44, 0x24, 0x28, 0x10, 0, 0, 0, 0x89, 0x45, 0xF8]);
        assert_eq!(s.stack_qword(0x28).0.value(0xFF), None);
    }

    #[test]
    fn copies_of_rsp_address_the_stack() {
        // mov rax,rsp ; sub rsp,60h ; mov dword ptr [rax-38h],10h: that is
        // [rsp+28h].
        let s = run(&[
            0x48, 0x89, 0xE0, 0x48, 0x83, 0xEC, 0x60, 0xC7, 0x40, 0xC8, 0x10, 0, 0, 0,
        ]);
        assert_eq!(s.stack_qword(0x28).0.value(0xFFFF_FFFF), Some(0x10));
        // ... then mov qword ptr [rax-38h], rbx (unknown) overwrites it.
        let s = run(&[
            0x48, 0x89, 0xE0, 0x48, 0x83, 0xEC, 0x60, 0xC7, 0x40, 0xC8, 0x10, 0, 0, 0, 0x48, 0x89,
            0x58, 0xC8,
        ]);
        assert_eq!(s.stack_qword(0x28).0.value(0xFF), None);
        // lea rbp,[rsp+20h] ; mov dword ptr [rbp+8],5 -> [rsp+28h].
        let s = run(&[0x48, 0x8D, 0x6C, 0x24, 0x20, 0xC7, 0x45, 0x08, 5, 0, 0, 0]);
        assert_eq!(s.stack_qword(0x28).0.value(0xFF), Some(5));
    }

    #[test]
    fn iat_loads_are_function_pointers() {
        // mov rax, qword ptr [rip+...] -> slot 0x2000 ; mov rsi, rax
        let disp = 0x2000u32 - 0x1007;
        let mut code = vec![0x48, 0x8B, 0x05];
        code.extend_from_slice(&disp.to_le_bytes());
        code.extend_from_slice(&[0x48, 0x89, 0xC6]);
        let s = run(&code);
        assert_eq!(s.func(Register::RAX).map(|f| f.target), Some(7));
        assert_eq!(s.func(Register::RSI).map(|f| f.target), Some(7));
        assert_eq!(s.func(Register::EAX), None);
    }
}
