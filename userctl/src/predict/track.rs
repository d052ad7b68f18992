//! The state of the x86 data-flow analysis: what is known of each
//! general-purpose register (its known bits, its term, the hooked API it
//! points to, the stack address it holds), of the stack ([`Stack`]) and of
//! the constants just stored to globals, and how the states of two paths
//! meet ([`State::meet`]). How one instruction changes it is
//! [`State::step`], in `track/step.rs`: it models the instructions compilers
//! use to set up arguments (`mov`, `xor r,r`, `and`/`or`/`xor`, `add`/`sub`
//! on known values, `lea`, `movzx`/`movsx`, `push`/`pop`, `bts`/`btr`/`btc`,
//! shifts by a constant, `not`) and, for every other instruction, forgets
//! whatever it writes, as iced-x86's instruction info reports it. So a value
//! is only ever *known* when it is provably the constant on every path the
//! analysis was told of.
//!
//! Stack stores are followed through `rsp` and through registers known to
//! be copies of it (`mov rax, rsp`, `lea rbp, [rsp+20h]`). Offsets are from
//! rsp where the analysis started; where paths disagree on rsp, or after an
//! x86 call (the callee may pop its arguments), the stack is re-anchored: a
//! fresh base ([`anchor`]) with nothing known on it. Pointers into the frame
//! held by non-volatile registers (x86's `ebp`, `ebx`, `esi`, `edi`) keep
//! pointing into the old base, where their stores go, apart from the
//! arguments pushed from the fresh one. Two assumptions of the
//! Windows ABIs, both kept by compiler output: a call preserves the
//! non-volatile registers and clobbers the others and the stack below the
//! caller's frame; and the outgoing argument area is only written to set up
//! arguments, never through a pointer held elsewhere, so a store through
//! any other base does not touch it (a store through `rbp` that is not a
//! known copy of `rsp`, or with an index register, forgets the whole stack
//! all the same).

mod step;

use super::stack::Stack;
use super::value::{Known, Sym, Val, width_mask};
use iced_x86::{Instruction, OpAccess, Register};

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
    /// One origin for two paths: the same, or where they merge.
    pub fn meet(self, o: Origin, block: u32) -> Origin {
        if self == o {
            self
        } else {
            Origin::Merge(block)
        }
    }
}

/// A stack base no other can collide with: `anchor(n)` for the n-th
/// re-anchoring (by the RVA where it happens, so that repeated passes of
/// the analysis agree).
pub fn anchor(rva: u32) -> i64 {
    (i64::from(rva) + 1) << 32
}

/// The state of the pass.
#[derive(Debug, PartialEq, Eq)]
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
    /// The stack, by offset from the base.
    stack: Stack,
    /// Constants this path stored to the image's globals, still there:
    /// (RVA, width, value). Any other store that may alias them, and any
    /// call, forgets them all.
    global_stores: Vec<(u32, usize, u64)>,
}

impl Clone for State {
    fn clone(&self) -> Self {
        State {
            wide: self.wide,
            regs: self.regs,
            syms: self.syms,
            origin: self.origin,
            func: self.func,
            alias: self.alias,
            rsp: self.rsp,
            stack: self.stack.clone(),
            global_stores: self.global_stores.clone(),
        }
    }

    // Keeps the buffers of the scratch state the analysis steps blocks in.
    fn clone_from(&mut self, source: &Self) {
        self.wide = source.wide;
        self.regs = source.regs;
        self.syms = source.syms;
        self.origin = source.origin;
        self.func = source.func;
        self.alias = source.alias;
        self.rsp = source.rsp;
        self.stack.clone_from(&source.stack);
        self.global_stores.clone_from(&source.global_stores);
    }
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

/// Does an operand access write (maybe, or after reading)?
pub fn writes(access: OpAccess) -> bool {
    matches!(
        access,
        OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
    )
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
            stack: Stack::default(),
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
        s.stack
            .reserve_terms(usize::from(MAX_STACK_PARAMS - first_on_stack));
        for n in first_on_stack..MAX_STACK_PARAMS {
            let off = slot * (i64::from(n) + 1);
            s.stack
                .put_term(off, slot as usize, Sym::Param { n, entry });
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
            Some(rsp) => self.stack.load(rsp.wrapping_add(disp), len),
            None => (Val::UNKNOWN, self.stack.origin()),
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
        // Most joins bring nothing new (a loop's second pass, both arms
        // of a branch that did not touch the arguments), and the meet of
        // a state with itself is that state.
        if self == o {
            return false;
        }
        // The fixed-size parts are compared after; the maps say as they go.
        let (regs, syms, func, origin, alias) =
            (self.regs, self.syms, self.func, self.origin, self.alias);
        let (rsp, stores) = (self.rsp, self.global_stores.len());
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
            changed |= self.stack.meet(&o.stack, block);
        } else {
            // The paths disagree on rsp: start the stack afresh here. The
            // pointers into the old base (x86's ebp after calls) are kept
            // when the paths agree on every one of them: a pointer lost
            // here could later write the frame unseen.
            if self.alias != o.alias {
                self.alias = [None; 16];
            }
            self.regs[RSP] = Known::UNKNOWN;
            self.rsp = Some(anchor(block));
            changed |= !self.stack.is_empty();
            self.stack.forget(Origin::Merge(block));
        }
        changed
            || regs != self.regs
            || syms != self.syms
            || func != self.func
            || origin != self.origin
            || alias != self.alias
            || rsp != self.rsp
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
                    self.syms[n].narrowed_to(reg.size())
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
                v.sym.narrowed_to(4),
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

    /// On a path where `test reg, reg` found it zero: its bits are zero
    /// (the rest of a 32-, 16- or 8-bit register's as before), said by the
    /// test at `at`.
    pub fn know_zero(&mut self, reg: Register, at: u32) {
        let Some(n) = gpr(reg) else {
            return;
        };
        if is_high_byte(reg) || n == RSP {
            return;
        }
        let m = width_mask(reg.size());
        let old = self.regs[n];
        self.regs[n] = Known {
            bits: old.bits & !m,
            mask: old.mask | m,
        };
        self.syms[n] = Sym::None;
        self.origin[n] = Origin::At(at);
        self.func[n] = None;
        self.alias[n] = None;
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
        self.stack.forget(Origin::At(at));
    }

    /// Bytes below rsp may be overwritten at any time (interrupts use the
    /// kernel stack; x64 Windows has no red zone), so they are dropped when
    /// rsp moves up.
    fn drop_below_rsp(&mut self) {
        if let Some(rsp) = self.rsp {
            self.stack.drop_below(rsp);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, InstructionInfoFactory};

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

    /// The state after `code`, 64- or 32-bit, from nothing known.
    fn run_as(bitness: u32, code: &[u8]) -> State {
        let mut s = State::new(bitness == 64);
        let mut info = InstructionInfoFactory::new();
        let mut d = Decoder::with_ip(bitness, code, 0x1000, DecoderOptions::NONE);
        for i in &mut d {
            s.step(&i, &NoEnv, &mut info);
        }
        s
    }

    fn run(code: &[u8]) -> State {
        run_as(64, code)
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
    fn x86_frame_pointers_survive_calls_and_a_rep_store_forgets_the_frame() {
        // push ebp ; mov ebp,esp ; lea edi,[ebp-20h] ; call $+5 ;
        // mov dword ptr [ebp-20h],200h
        let stored = [
            0x55, 0x8B, 0xEC, 0x8D, 0x7D, 0xE0, 0xE8, 0, 0, 0, 0, 0xC7, 0x45, 0xE0, 0x00, 0x02, 0,
            0,
        ];
        // ... mov eax,[ebp-20h]: ebp still points at the frame after the
        // call, so eax is what was stored through it.
        let mut code = stored.to_vec();
        code.extend([0x8B, 0x45, 0xE0]);
        assert_eq!(run_as(32, &code).reg(0).value(0xFFFF_FFFF), Some(0x200));
        // ... unless `rep stosd` through edi (also still pointing at the
        // frame) wrote over it first: then nothing is known of the frame.
        let mut code = stored.to_vec();
        code.extend([0xF3, 0xAB, 0x8B, 0x45, 0xE0]);
        assert_eq!(run_as(32, &code).reg(0).value(0xFF), None);
    }

    #[test]
    fn a_choice_is_a_term_only_while_its_value_is_whole() {
        // mov eax,200h ; mov edx,1 ; test r8d,r8d ; cmovne eax,edx
        let choice = [
            0xB8, 0x00, 0x02, 0, 0, 0xBA, 0x01, 0, 0, 0, 0x45, 0x85, 0xC0, 0x0F, 0x45, 0xC2,
        ];
        let s = run(&choice);
        assert!(matches!(
            s.reg_val(0).sym,
            Sym::Choice {
                at: 0x100D,
                width: 4
            }
        ));
        // ... mov ecx,eax keeps it; mov cl,al does not.
        let mut code = choice.to_vec();
        code.extend([0x89, 0xC1]);
        assert!(matches!(run(&code).reg_val(RCX).sym, Sym::Choice { .. }));
        let mut code = choice.to_vec();
        code.extend([0x8B, 0x0B, 0x88, 0xC1]); // mov ecx,[rbx] ; mov cl,al
        assert_eq!(run(&code).reg_val(RCX).sym, Sym::None);
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
