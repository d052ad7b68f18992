//! The transfer function: how one instruction changes a [`State`]. The
//! instructions compilers use to set up arguments are modeled; every other
//! instruction forgets whatever it writes, as iced-x86's instruction info
//! reports it.

use super::super::value::{Known, Sym, Val, width_mask};
use super::{
    Env, FuncRef, Origin, RBP, RSP, State, VOLATILE_32, VOLATILE_64, absolute_rva, anchor, gpr,
    writes,
};
use iced_x86::{Instruction, InstructionInfoFactory, Mnemonic, OpKind, Register};

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

/// Is it a conditional move (`cmovcc`)?
fn is_cmov(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Cmovo
            | Mnemonic::Cmovno
            | Mnemonic::Cmovb
            | Mnemonic::Cmovae
            | Mnemonic::Cmove
            | Mnemonic::Cmovne
            | Mnemonic::Cmovbe
            | Mnemonic::Cmova
            | Mnemonic::Cmovs
            | Mnemonic::Cmovns
            | Mnemonic::Cmovp
            | Mnemonic::Cmovnp
            | Mnemonic::Cmovl
            | Mnemonic::Cmovge
            | Mnemonic::Cmovle
            | Mnemonic::Cmovg
    )
}

impl State {
    /// The value an operand reads, as far as known. A read of one of the
    /// image's own addresses is the term of that global.
    fn operand(&self, i: &Instruction, op: u32, env: &dyn Env) -> Val {
        match i.op_kind(op) {
            OpKind::Register => self.read(i.op_register(op)),
            OpKind::Memory => match self.stack_offset(i) {
                Some(off) => self.stack.load(off, i.memory_size().size()).0,
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

    /// The two values a conditional move chooses between (`cmovcc dst,
    /// src`), in the state just before it: the destination as it was, and
    /// the source. `None` for any other instruction.
    pub fn choices(&self, i: &Instruction, env: &dyn Env) -> Option<[Val; 2]> {
        if !is_cmov(i.mnemonic()) || i.op_count() != 2 || i.op0_kind() != OpKind::Register {
            return None;
        }
        Some([self.read(i.op0_register()), self.operand(i, 1, env)])
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
                    self.stack.store(off, i.memory_size().size(), v, at);
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
            Mnemonic::Inc | Mnemonic::Dec if i.op_count() == 1 => {
                // `xor ecx, ecx` / `inc ecx`: MSVC's short way to make 1.
                let width = State::dest_width(i);
                let a = self.operand(i, 0, env);
                let f = if i.mnemonic() == Mnemonic::Inc {
                    u64::wrapping_add
                } else {
                    u64::wrapping_sub
                };
                self.put(
                    i,
                    Val::known(a.known.arith(Known::constant(1), width, f)),
                    env,
                    info,
                )
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
            m if is_cmov(m) && i.op0_kind() == OpKind::Register && i.op0_register().size() >= 4 => {
                // Either value: the bits both share, and the choice's term.
                self.choices(i, env).map(|[a, b]| {
                    let v = Val {
                        known: a.known.meet(b.known),
                        sym: Sym::Choice {
                            at,
                            width: i.op0_register().size() as u8,
                        },
                    };
                    self.write(i.op0_register(), v, at);
                })
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
                    self.stack.store(rsp, width, v, at);
                    // A pushed register keeps where it got its value.
                    if let Some(src) = (i.op0_kind() == OpKind::Register)
                        .then(|| gpr(i.op0_register()))
                        .flatten()
                    {
                        self.stack.set_origin(rsp, width, self.origin[src]);
                    }
                }
                Some(())
            }
            Mnemonic::Pop if i.op_count() == 1 && i.op0_kind() == OpKind::Register => {
                let reg = i.op0_register();
                let (v, _) = match self.rsp {
                    Some(rsp) => self.stack.load(rsp, reg.size()),
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
            self.stack
                .set_origin(off, i.memory_size().size(), self.origin[src]);
        }
        // Likewise for an unknown value loaded from the stack: where it was
        // stored (or where the paths disagree on it).
        if i.op0_kind() == OpKind::Register
            && i.op1_kind() == OpKind::Memory
            && let (Some(d), Some(off)) = (gpr(i.op0_register()), self.stack_offset(i))
            && v.known.value(width_mask(i.memory_size().size())).is_none()
        {
            self.origin[d] = self.stack.load(off, i.memory_size().size()).1;
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
        self.stack.forget(Origin::Call(at));
        self.global_stores.clear();
        if !self.wide {
            // ebx, esi, edi and ebp (non-volatile) still point where they
            // did: stores through them stay stores to the frame above esp,
            // apart from the arguments pushed from the fresh base on. (The
            // volatile ones were forgotten above.)
            self.rsp = Some(anchor(at));
        }
    }

    /// Forgets whatever an unmodeled instruction writes.
    fn generic(&mut self, i: &Instruction, env: &dyn Env, info: &mut InstructionInfoFactory) {
        let at = i.ip32();
        let info = info.info(i);
        // Memory first, through the pointers as they were before the
        // instruction (`rep stosd` writes through edi, then moves it).
        for m in info.used_memory() {
            if !writes(m.access()) {
                continue;
            }
            let base = gpr(m.base());
            let size = m.memory_size().size();
            // `rep stos`/`rep movs` write as many elements as ecx says.
            let repeated = i.has_rep_prefix() || i.has_repe_prefix() || i.has_repne_prefix();
            match (self.stack_base(m.base()), m.index()) {
                (Some(b), Register::None) if size > 0 && !repeated => {
                    let disp = if self.wide {
                        m.displacement() as i64
                    } else {
                        i64::from(m.displacement() as u32 as i32)
                    };
                    let off = b.wrapping_add(disp);
                    self.stack.forget_range(off, size, at);
                }
                _ if base == Some(RSP)
                    || base == Some(RBP)
                    || self.stack_base(m.base()).is_some() =>
                {
                    self.stack.forget(Origin::At(at));
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
        for r in info.used_registers() {
            if writes(r.access())
                && let Some(n) = gpr(r.register())
            {
                if n == RSP {
                    // push/pop-like instructions move rsp by a known amount.
                    if i.is_stack_instruction() && i.stack_pointer_increment() != 0 {
                        self.move_rsp(i64::from(i.stack_pointer_increment()), at);
                        self.stack.forget(Origin::At(at));
                    } else {
                        self.lose_rsp(at);
                    }
                } else {
                    self.forget_reg(n, Origin::At(at));
                }
            }
        }
    }
}
