//! Constant tracking: a forward pass over the instructions of one block,
//! ending at a call, that knows which bits of each general-purpose register
//! and of each byte of the stack are constants.
//!
//! The pass models the few instructions compilers use to set up arguments
//! (`mov`, `xor r,r`, `and`/`or`/`xor` with an immediate, `add`/`sub` on
//! known values, `lea`, `movzx`/`movsx`, `push`/`pop`) and, for every other
//! instruction, forgets whatever it writes, as iced-x86's instruction info
//! reports it. So a value is only ever *known* when it is provably the
//! constant, assuming the block is entered only at its start: the caller
//! (the sweep) starts blocks at every branch target it can find.
//!
//! Stack stores are followed through `rsp` and through registers known to
//! be copies of it (`mov rax, rsp`, `lea rbp, [rsp+20h]`, as MSVC and gcc
//! prologues make them). Two assumptions of the Windows x64 ABI, both kept
//! by compiler output: a call preserves the non-volatile registers (rbx,
//! rbp, rsi, rdi, r12–r15) and clobbers the others and the callee's stack
//! argument area; and the outgoing argument area is only written to set up
//! arguments, never through a pointer to it held elsewhere, so a store
//! through any other base does not touch it (a store through `rbp` that is
//! not a known copy of `rsp`, or with an index register, forgets the whole
//! stack all the same).

use iced_x86::{Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register};
use std::collections::BTreeMap;

/// Which bits of a value are known, and what they are. Unknown bits of
/// `bits` are always zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Known {
    /// The value of the known bits.
    pub bits: u64,
    /// The known bits.
    pub mask: u64,
}

impl Known {
    /// Nothing known.
    pub const UNKNOWN: Known = Known { bits: 0, mask: 0 };

    /// A constant.
    pub const fn constant(v: u64) -> Known {
        Known { bits: v, mask: !0 }
    }

    /// The value's low bits selected by `width_mask`, when all are known.
    pub fn value(self, width_mask: u64) -> Option<u64> {
        (self.mask & width_mask == width_mask).then_some(self.bits & width_mask)
    }

    fn and(self, o: Known) -> Known {
        // A bit is known when both are, or when either is a known zero.
        let mask = (self.mask & o.mask) | (self.mask & !self.bits) | (o.mask & !o.bits);
        Known {
            bits: self.bits & o.bits & mask,
            mask,
        }
    }

    fn or(self, o: Known) -> Known {
        // A bit is known when both are, or when either is a known one.
        let mask = (self.mask & o.mask) | (self.mask & self.bits) | (o.mask & o.bits);
        Known {
            bits: (self.bits | o.bits) & mask,
            mask,
        }
    }

    fn xor(self, o: Known) -> Known {
        let mask = self.mask & o.mask;
        Known {
            bits: (self.bits ^ o.bits) & mask,
            mask,
        }
    }

    /// Applies `f` when both operands are known over `width` bytes (carries
    /// make a partly known sum unknown).
    fn arith(self, o: Known, width: usize, f: impl Fn(u64, u64) -> u64) -> Known {
        let m = width_mask(width);
        match (self.value(m), o.value(m)) {
            (Some(a), Some(b)) => Known::constant(f(a, b)),
            _ => Known::UNKNOWN,
        }
    }
}

/// The mask of a value `bytes` wide.
pub fn width_mask(bytes: usize) -> u64 {
    match bytes {
        0 => 0,
        1..=7 => (1u64 << (bytes * 8)) - 1,
        _ => !0,
    }
}

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
    /// The target a `mov reg, [rip+slot]` loads, when `slot` is the IAT slot
    /// of a hooked import.
    fn iat_slot(&self, rva: u32) -> Option<usize>;
    /// The target a `lea reg, [rip+addr]` points to, when `addr` is an
    /// import thunk of a hooked import.
    fn thunk(&self, rva: u32) -> Option<usize>;
}

/// Why an argument is not known: the instruction that last wrote it, or
/// none when it was not written in the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Not written between the block's start and the call.
    BeforeBlock,
    /// Written by the instruction at this RVA.
    At(u32),
    /// Clobbered by the call at this RVA (a volatile register or the stack
    /// argument area).
    Call(u32),
}

#[derive(Clone, Copy, Debug)]
struct StackByte {
    bits: u8,
    mask: u8,
    origin: Origin,
}

/// The state of the pass.
#[derive(Clone, Debug)]
pub struct State {
    regs: [Known; 16],
    origin: [Origin; 16],
    func: [Option<FuncRef>; 16],
    /// Registers that point into the stack, at this offset from rsp at the
    /// block's start (`mov rax, rsp`, `lea rbp, [rsp+20h]`): stores through
    /// them are stack stores.
    alias: [Option<i64>; 16],
    /// rsp minus rsp at the block's start, while known.
    rsp: Option<i64>,
    /// Known bytes of the stack, by offset from rsp at the block's start.
    stack: BTreeMap<i64, StackByte>,
    /// Where the stack was last forgotten wholesale.
    stack_origin: Origin,
}

const RSP: usize = 4;
const RBP: usize = 5;
/// rax, rcx, rdx, r8–r11: what a call clobbers.
const VOLATILE: [usize; 7] = [0, 1, 2, 8, 9, 10, 11];
/// rcx, rdx, r8, r9: the register arguments.
pub const ARG_REGS: [usize; 4] = [1, 2, 8, 9];

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

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

impl State {
    /// The state at a block's start: nothing known, rsp at offset 0.
    pub fn new() -> State {
        State {
            regs: [Known::UNKNOWN; 16],
            origin: [Origin::BeforeBlock; 16],
            func: [None; 16],
            alias: [None; 16],
            rsp: Some(0),
            stack: BTreeMap::new(),
            stack_origin: Origin::BeforeBlock,
        }
    }

    /// A register's known bits, as the 64-bit register.
    pub fn reg(&self, index: usize) -> Known {
        self.regs.get(index).copied().unwrap_or_default()
    }

    /// The hooked API a register points to.
    pub fn func(&self, reg: Register) -> Option<FuncRef> {
        let n = gpr(reg)?;
        // Only the full 64-bit register holds a pointer.
        if reg.is_gpr64() { self.func[n] } else { None }
    }

    /// Who last wrote a register.
    pub fn reg_origin(&self, index: usize) -> Origin {
        self.origin
            .get(index)
            .copied()
            .unwrap_or(Origin::BeforeBlock)
    }

    /// The 8 bytes at `rsp + disp`, as far as known.
    pub fn stack_qword(&self, disp: i64) -> (Known, Origin) {
        match self.rsp {
            Some(rsp) => self.load(rsp.wrapping_add(disp), 8),
            None => (Known::UNKNOWN, self.stack_origin),
        }
    }

    fn read(&self, reg: Register) -> Known {
        let Some(n) = gpr(reg) else {
            return Known::UNKNOWN;
        };
        let v = self.regs[n];
        if is_high_byte(reg) {
            Known {
                bits: (v.bits >> 8) & 0xFF,
                mask: (v.mask >> 8) & 0xFF,
            }
        } else {
            let m = width_mask(reg.size());
            Known {
                bits: v.bits & m,
                mask: v.mask & m,
            }
        }
    }

    /// Writes a register with x64's width rules: a 32-bit write clears the
    /// upper half, 8- and 16-bit writes keep the rest of the register.
    fn write(&mut self, reg: Register, v: Known, at: u32) {
        let Some(n) = gpr(reg) else {
            return;
        };
        let old = self.regs[n];
        let (bits, mask) = match reg.size() {
            8 => (v.bits, v.mask),
            4 => (v.bits & 0xFFFF_FFFF, v.mask | 0xFFFF_FFFF_0000_0000),
            size => {
                let (shift, m) = if is_high_byte(reg) {
                    (8, 0xFF00)
                } else {
                    (0, width_mask(size))
                };
                (
                    (old.bits & !m) | ((v.bits << shift) & m),
                    (old.mask & !m) | ((v.mask << shift) & m),
                )
            }
        };
        self.regs[n] = Known {
            bits: bits & mask,
            mask,
        };
        self.origin[n] = Origin::At(at);
        self.func[n] = None;
        self.alias[n] = None;
        if n == RSP {
            self.lose_rsp(at);
        }
    }

    fn forget_reg(&mut self, n: usize, origin: Origin) {
        self.regs[n] = Known::UNKNOWN;
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
        self.stack_origin = origin;
    }

    fn forget_stack_range(&mut self, off: i64, len: usize, at: u32) {
        let end = off.saturating_add(len as i64);
        let keys: Vec<i64> = self.stack.range(off..end).map(|(k, _)| *k).collect();
        for k in keys {
            self.stack.remove(&k);
        }
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
            self.stack = self.stack.split_off(&rsp);
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

    fn load(&self, off: i64, len: usize) -> (Known, Origin) {
        let mut k = Known::UNKNOWN;
        let mut origin = None;
        for i in 0..len.min(8) {
            let Some(b) = self.stack.get(&off.wrapping_add(i as i64)) else {
                origin.get_or_insert(self.stack_origin);
                continue;
            };
            k.bits |= u64::from(b.bits) << (i * 8);
            k.mask |= u64::from(b.mask) << (i * 8);
            if b.mask != 0xFF {
                origin.get_or_insert(b.origin);
            }
        }
        (k, origin.unwrap_or(Origin::BeforeBlock))
    }

    fn store(&mut self, off: i64, len: usize, v: Known, at: u32) {
        for i in 0..len.min(8) {
            self.stack.insert(
                off.wrapping_add(i as i64),
                StackByte {
                    bits: (v.bits >> (i * 8)) as u8,
                    mask: (v.mask >> (i * 8)) as u8,
                    origin: Origin::At(at),
                },
            );
        }
        if len > 8 {
            self.forget_stack_range(off.wrapping_add(8), len - 8, at);
        }
    }

    /// Where a base register points in the stack (as an offset from rsp at
    /// the block's start): rsp itself, or a copy of it.
    fn stack_base(&self, base: Register) -> Option<i64> {
        match gpr(base)? {
            RSP => self.rsp,
            n if base.is_gpr64() => self.alias[n],
            _ => None,
        }
    }

    /// The stack offset (from rsp at the block's start) of a memory operand
    /// `[base+disp]` with no index, whose base points into the stack.
    fn stack_offset(&self, i: &Instruction) -> Option<i64> {
        if i.memory_index() != Register::None {
            return None;
        }
        self.stack_base(i.memory_base())
            .map(|b| b.wrapping_add(i.memory_displacement64() as i64))
    }

    /// The value an operand reads, as far as known.
    fn operand(&self, i: &Instruction, op: u32) -> Known {
        match i.op_kind(op) {
            OpKind::Register => self.read(i.op_register(op)),
            OpKind::Memory => match self.stack_offset(i) {
                Some(off) => self.load(off, i.memory_size().size()).0,
                None => Known::UNKNOWN,
            },
            _ => immediate(i, op).map_or(Known::UNKNOWN, Known::constant),
        }
    }

    /// Writes an operand (register or stack memory) of `width` bytes; any
    /// other destination falls back to the generic rule.
    fn put(&mut self, i: &Instruction, v: Known, info: &mut InstructionInfoFactory) -> Option<()> {
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
                    self.generic(i, info);
                    Some(())
                }
            },
            _ => None,
        }
    }

    /// Steps over one instruction that is not the call being judged.
    pub fn step(&mut self, i: &Instruction, env: &dyn Env, info: &mut InstructionInfoFactory) {
        let at = i.ip32();
        let modeled = match i.mnemonic() {
            Mnemonic::Nop => Some(()),
            Mnemonic::Mov if i.op_count() == 2 => self.mov(i, env, info),
            Mnemonic::Xor | Mnemonic::Sub
                if i.op_count() == 2
                    && i.op0_kind() == OpKind::Register
                    && i.op1_kind() == OpKind::Register
                    && i.op0_register() == i.op1_register()
                    && gpr(i.op0_register()).is_some() =>
            {
                // The zeroing idioms.
                self.write(i.op0_register(), Known::constant(0), at);
                Some(())
            }
            Mnemonic::Add | Mnemonic::Sub
                if i.op_count() == 2
                    && i.op0_kind() == OpKind::Register
                    && i.op0_register() == Register::RSP =>
            {
                match immediate(i, 1) {
                    Some(imm) => {
                        let d = imm as i64;
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
            Mnemonic::And | Mnemonic::Or | Mnemonic::Xor | Mnemonic::Add | Mnemonic::Sub
                if i.op_count() == 2 =>
            {
                let width = match i.op0_kind() {
                    OpKind::Register => i.op0_register().size(),
                    _ => i.memory_size().size(),
                };
                let (a, b) = (self.operand(i, 0), self.operand(i, 1));
                let r = match i.mnemonic() {
                    Mnemonic::And => a.and(b),
                    Mnemonic::Or => a.or(b),
                    Mnemonic::Xor => a.xor(b),
                    Mnemonic::Add => a.arith(b, width, u64::wrapping_add),
                    _ => a.arith(b, width, u64::wrapping_sub),
                };
                self.put(i, r, info)
            }
            Mnemonic::Lea => self.lea(i, env),
            Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd
                if i.op0_kind() == OpKind::Register =>
            {
                let src_width = match i.op1_kind() {
                    OpKind::Register => i.op1_register().size(),
                    _ => i.memory_size().size(),
                };
                let v = self.operand(i, 1);
                let m = width_mask(src_width);
                let r = if i.mnemonic() == Mnemonic::Movzx {
                    Known {
                        bits: v.bits & m,
                        mask: (v.mask & m) | !m,
                    }
                } else {
                    match v.value(m) {
                        Some(x) => {
                            let shift = 64 - (src_width.clamp(1, 8) * 8) as u32;
                            Known::constant((((x << shift) as i64) >> shift) as u64)
                        }
                        None => Known::UNKNOWN,
                    }
                };
                self.write(i.op0_register(), r, at);
                Some(())
            }
            Mnemonic::Push if i.op_count() == 1 => {
                let v = self.operand(i, 0);
                let width = match i.op0_kind() {
                    OpKind::Register => i.op0_register().size(),
                    OpKind::Memory => i.memory_size().size(),
                    // push imm8/imm32 pushes 8 sign-extended bytes.
                    _ => 8,
                };
                self.move_rsp(-(width as i64), at);
                if let Some(rsp) = self.rsp {
                    self.store(rsp, width, v, at);
                }
                Some(())
            }
            Mnemonic::Pop if i.op_count() == 1 && i.op0_kind() == OpKind::Register => {
                let reg = i.op0_register();
                let (v, _) = match self.rsp {
                    Some(rsp) => self.load(rsp, reg.size()),
                    None => (Known::UNKNOWN, Origin::At(at)),
                };
                self.move_rsp(reg.size() as i64, at);
                if reg != Register::RSP {
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
            self.generic(i, info);
        }
    }

    fn mov(
        &mut self,
        i: &Instruction,
        env: &dyn Env,
        info: &mut InstructionInfoFactory,
    ) -> Option<()> {
        let at = i.ip32();
        if i.op0_kind() == OpKind::Register
            && i.op1_kind() == OpKind::Memory
            && i.is_ip_rel_memory_operand()
            && i.op0_register().is_gpr64()
        {
            let slot = u32::try_from(i.ip_rel_memory_address()).ok();
            if let Some(target) = slot.and_then(|s| env.iat_slot(s)) {
                let reg = i.op0_register();
                self.write(reg, Known::UNKNOWN, at);
                if let Some(n) = gpr(reg) {
                    self.func[n] = Some(FuncRef {
                        target,
                        loaded_at: at,
                    });
                }
                return Some(());
            }
        }
        if i.op0_kind() == OpKind::Register && gpr(i.op0_register()).is_none() {
            return None;
        }
        if i.op1_kind() == OpKind::Register && gpr(i.op1_register()).is_none() {
            return None;
        }
        let v = self.operand(i, 1);
        let (func, alias) = match i.op1_kind() {
            OpKind::Register if i.op1_register().is_gpr64() => (
                self.func(i.op1_register()),
                self.stack_base(i.op1_register()),
            ),
            _ => (None, None),
        };
        self.put(i, v, info)?;
        // An unknown value copied from another register comes from where
        // that one came from: the reason points at the load, not the copy.
        if i.op0_kind() == OpKind::Register
            && i.op1_kind() == OpKind::Register
            && let (Some(d), Some(s)) = (gpr(i.op0_register()), gpr(i.op1_register()))
            && v.value(width_mask(i.op1_register().size())).is_none()
        {
            self.origin[d] = self.origin[s];
        }
        // A pointer to a hooked API, or into the stack, copied to another
        // register stays one.
        if i.op0_kind() == OpKind::Register
            && i.op0_register().is_gpr64()
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
        if i.is_ip_rel_memory_operand() {
            let addr = u32::try_from(i.ip_rel_memory_address()).ok();
            // The address of code or data is not a constant: the image is
            // relocated. Only a thunk's address is kept, as a call target.
            self.write(dest, Known::UNKNOWN, at);
            if let (Some(n), Some(target)) = (gpr(dest), addr.and_then(|a| env.thunk(a)))
                && dest.is_gpr64()
            {
                self.func[n] = Some(FuncRef {
                    target,
                    loaded_at: at,
                });
            }
            return Some(());
        }
        if i.memory_index() == Register::None
            && dest.is_gpr64()
            && let Some(base) = self.stack_base(i.memory_base())
        {
            // lea rbp, [rsp+20h]: a pointer into the stack.
            self.write(dest, Known::UNKNOWN, at);
            if let Some(n) = gpr(dest).filter(|&n| n != RSP) {
                self.alias[n] = Some(base.wrapping_add(i.memory_displacement64() as i64));
            }
            return Some(());
        }
        let part = |reg: Register| -> Option<u64> {
            match reg {
                Register::None => Some(0),
                r if gpr(r) == Some(RSP) => None,
                r => self.read(r).value(width_mask(r.size())),
            }
        };
        let v = match (part(i.memory_base()), part(i.memory_index())) {
            (Some(base), Some(index)) => Known::constant(
                base.wrapping_add(index.wrapping_mul(u64::from(i.memory_index_scale())))
                    .wrapping_add(i.memory_displacement64()),
            ),
            _ => Known::UNKNOWN,
        };
        self.write(dest, v, at);
        Some(())
    }

    /// After a call returns: the volatile registers and the callee's stack
    /// area are unknown; the non-volatile registers and rsp are as before.
    pub fn after_call(&mut self, at: u32) {
        for n in VOLATILE {
            self.forget_reg(n, Origin::Call(at));
        }
        self.forget_stack(Origin::Call(at));
    }

    /// Forgets whatever an unmodeled instruction writes.
    fn generic(&mut self, i: &Instruction, info: &mut InstructionInfoFactory) {
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
                    let off = b.wrapping_add(m.displacement() as i64);
                    self.forget_stack_range(off, size, at);
                }
                _ if base == Some(RSP)
                    || base == Some(RBP)
                    || self.stack_base(m.base()).is_some() =>
                {
                    self.forget_stack(Origin::At(at))
                }
                _ => {}
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
    }

    fn run(code: &[u8]) -> State {
        let mut s = State::new();
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
    fn known_bit_algebra() {
        let u = Known::UNKNOWN;
        assert_eq!(u.and(Known::constant(0)).value(!0), Some(0));
        assert_eq!(u.or(Known::constant(!0)).value(!0), Some(!0));
        let part = u.or(Known::constant(0x200));
        assert_eq!(part.value(0x200), Some(0x200));
        assert_eq!(part.value(0xFFFF_FFFF), None);
        assert_eq!(
            Known::constant(5).arith(Known::constant(3), 4, u64::wrapping_sub),
            Known::constant(2)
        );
        assert_eq!(part.arith(Known::constant(1), 4, u64::wrapping_add), u);
    }

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
