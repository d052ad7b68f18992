//! Does a Windows stack walk find the return address at every instruction?
//!
//! For each function, a data-flow pass follows the stack pointer from the
//! function's start (where the return address is at `[rsp]`) through
//! every instruction control reaches: pushes, pops, `sub`/`add rsp`, a
//! frame register set from RSP and RSP restored from it. At each of those
//! instructions a model of the x64 unwinder (RtlVirtualUnwind's rules, as
//! Microsoft's "x64 exception handling" and "prolog and epilog" pages
//! state them) says where it would read the return address: inside a
//! prolog, only the unwind codes of the instructions already run; inside
//! an epilog (`add rsp, n` or `lea rsp, [fp + n]`, pops, then `ret`, a
//! jump out of the function, `jmp [rip + x]` or a REX.W indirect jump),
//! the rest of the epilog, emulated; elsewhere, all the codes; and with no
//! RUNTIME_FUNCTION, `[rsp]` (a leaf). Any difference is a place where a
//! crash dump's stack walk would go wrong.

use super::code::{Code, Function, flow, gpr, written_registers};
use super::image::Image;
use super::{RuntimeFunction, UnwindChain, UnwindOp};
use iced_x86::{FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpKind, Register};

/// What the walk knows of the stack before an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stack {
    /// Bytes from RSP up to the return address (0 at the start).
    depth: Option<i64>,
    /// For each register holding a stack address: its distance below the
    /// return address.
    frame: [Option<i64>; 16],
    /// A constant in RAX (the size `sub rsp, rax` takes after a probe).
    rax: Option<u64>,
    /// Two paths reached here with different depths.
    conflict: bool,
}

const RSP: usize = 4;

/// The stack after `ins`. `in_prolog`: the instruction lies in its
/// function's prolog, where a call can only be the stack probe
/// (`__chkstk`), which keeps RAX.
fn step(ins: &Instruction, s: &Stack, in_prolog: bool, info: &mut InstructionInfoFactory) -> Stack {
    let mut out = *s;
    let depth = s.depth;
    let imm = |i: u32| ins.try_immediate(i).ok().map(|v| v as i64);
    let op0 = (ins.op_count() > 0 && ins.op0_kind() == OpKind::Register)
        .then(|| gpr(ins.op0_register()))
        .flatten();
    let op1_reg = (ins.op_count() > 1 && ins.op_kind(1) == OpKind::Register)
        .then(|| gpr(ins.op1_register()))
        .flatten();
    // The stack address `[reg + disp]` denotes, as a depth.
    let lea_depth = || -> Option<i64> {
        if ins.memory_index() != Register::None {
            return None;
        }
        let base = gpr(ins.memory_base())?;
        let k = if base == RSP { depth? } else { s.frame[base]? };
        Some(k - ins.memory_displacement64() as i64)
    };
    let mut new_rsp: Option<Option<i64>> = None;
    let mut new_reg: Option<(usize, Option<i64>)> = None;
    match ins.mnemonic() {
        Mnemonic::Push | Mnemonic::Pushfq => new_rsp = Some(depth.map(|d| d + 8)),
        Mnemonic::Pop | Mnemonic::Popfq if op0 != Some(RSP) => new_rsp = Some(depth.map(|d| d - 8)),
        Mnemonic::Sub if op0 == Some(RSP) => {
            let n = imm(1).or_else(|| (op1_reg == Some(0)).then_some(s.rax? as i64));
            new_rsp = Some(depth.zip(n).map(|(d, n)| d + n));
        }
        Mnemonic::Add if op0 == Some(RSP) => {
            new_rsp = Some(depth.zip(imm(1)).map(|(d, n)| d - n));
        }
        Mnemonic::Lea if op0 == Some(RSP) => new_rsp = Some(lea_depth()),
        Mnemonic::Lea if op0.is_some() => new_reg = op0.map(|r| (r, lea_depth())),
        Mnemonic::Mov if op0 == Some(RSP) => new_rsp = Some(op1_reg.and_then(|r| s.frame[r])),
        Mnemonic::Mov if op0.is_some() && op1_reg == Some(RSP) => new_reg = op0.map(|r| (r, depth)),
        Mnemonic::Mov if op0.is_some() && op1_reg.is_some() => {
            new_reg = op0.zip(op1_reg).map(|(d, r)| (d, s.frame[r]))
        }
        Mnemonic::Leave => new_rsp = Some(s.frame[5].map(|k| k - 8)),
        _ => {}
    }
    // Whatever else the instruction writes is no longer known; a call may
    // change the volatile registers, except that the stack probe a prolog
    // calls keeps RAX.
    let call = matches!(
        ins.flow_control(),
        FlowControl::Call | FlowControl::IndirectCall
    );
    for r in written_registers(info, ins) {
        if r == RSP {
            // Pushes, pops, calls and returns are counted above.
            if new_rsp.is_none() && !call && ins.flow_control() != FlowControl::Return {
                new_rsp = Some(None);
            }
        } else {
            out.frame[r] = None;
            if r == 0 && !(call && in_prolog) {
                out.rax = None;
            }
        }
    }
    if ins.mnemonic() == Mnemonic::Mov
        && matches!(ins.op0_register(), Register::EAX | Register::RAX)
    {
        out.rax = imm(1).map(|v| v as u64);
    }
    if let Some((r, v)) = new_reg {
        out.frame[r] = v;
    }
    if let Some(d) = new_rsp {
        out.depth = d;
    }
    out
}

fn merge(a: &Stack, b: &Stack) -> Stack {
    let mut out = *a;
    // Two known depths that differ: the code is inconsistent there.
    out.conflict |= b.conflict || a.depth.is_some() && b.depth.is_some() && a.depth != b.depth;
    if a.depth != b.depth {
        out.depth = None;
    }
    for (o, v) in out.frame.iter_mut().zip(&b.frame) {
        if *o != *v {
            *o = None;
        }
    }
    if out.rax != b.rax {
        out.rax = None;
    }
    out
}

/// A place where the unwinder would look for the return address
/// somewhere else than where it is.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// The function (its start).
    pub function: u32,
    /// The instruction.
    pub at: u32,
    /// What went wrong.
    pub why: String,
}

/// How an epilog the unwinder recognised at an instruction undoes the
/// frame.
struct Epilog {
    /// `add rsp, n`: n.
    add: Option<i64>,
    /// `lea rsp, [frame register + n]`: n.
    lea: Option<i64>,
    /// Registers popped.
    pops: i64,
}

/// Is the code at `pc` the rest of an epilog, by the unwinder's rules?
fn epilog_at(
    image: &Image<'_>,
    pc: u32,
    rf: RuntimeFunction,
    chain: &UnwindChain,
) -> Option<Epilog> {
    // A direct jump ends an epilog if it leaves the function: a target
    // outside this range and not in another part of the same function, or
    // the function's own start.
    let outside = |target: u32| {
        if rf.contains(target) {
            return target == rf.begin && chain.infos.len() == 1;
        }
        match image
            .runtime_function_at(target)
            .and_then(|t| image.unwind(t).ok())
        {
            Some(c) if c.primary == chain.primary => target == chain.primary.begin,
            _ => true,
        }
    };
    epilog_shape(
        image.bytes_at(pc)?,
        pc,
        chain.infos.first()?.frame_register,
        outside,
    )
}

/// Matches the bytes `b` (at RVA `pc`) against the epilog forms: an
/// optional `add rsp, imm8/imm32` or `lea rsp, [frame register + disp]`,
/// any number of pops, then `ret`, `rep ret`, a direct jump for which
/// `outside` holds, `jmp [rip + disp]` or a REX.W `jmp` through a register
/// or memory.
fn epilog_shape(
    b: &[u8],
    pc: u32,
    frame_register: u8,
    outside: impl Fn(u32) -> bool,
) -> Option<Epilog> {
    let byte = |i: usize| b.get(i).copied();
    let i32_at = |i: usize| -> Option<i64> {
        let x = b.get(i..i + 4)?;
        Some(i64::from(i32::from_le_bytes([x[0], x[1], x[2], x[3]])))
    };
    let mut e = Epilog {
        add: None,
        lea: None,
        pops: 0,
    };
    let mut i = 0;
    if byte(0)? & 0xF8 == 0x48 {
        match (byte(1), byte(2)) {
            (Some(0x83), Some(0xC4)) => {
                e.add = Some(i64::from(byte(3)? as i8));
                i = 4;
            }
            (Some(0x81), Some(0xC4)) => {
                e.add = Some(i32_at(3)?);
                i = 7;
            }
            (Some(0x8D), Some(modrm)) => {
                let reg = ((byte(0)? & 7) << 3) | (modrm & 7);
                if reg != 0 && reg == frame_register {
                    if modrm & 0xF8 == 0x60 {
                        e.lea = Some(i64::from(byte(3)? as i8));
                        i = 4;
                    } else if modrm & 0xF8 == 0xA0 {
                        e.lea = Some(i32_at(3)?);
                        i = 7;
                    }
                }
            }
            _ => {}
        }
    }
    loop {
        if byte(i)? & 0xF8 == 0x58 {
            i += 1;
        } else if byte(i)? & 0xF0 == 0x40 && byte(i + 1)? & 0xF8 == 0x58 {
            i += 2;
        } else {
            break;
        }
        e.pops += 1;
    }
    let here = i64::from(pc) + i as i64;
    let target = |t: i64| u32::try_from(t).is_ok_and(&outside);
    let is_epilog = match (byte(i)?, byte(i + 1), byte(i + 2)) {
        (0xC3 | 0xC2, _, _) | (0xF3, Some(0xC3), _) => true,
        (0xEB, Some(d), _) => target(here + 2 + i64::from(d as i8)),
        (0xE9, _, _) => target(here + 5 + i32_at(i + 1)?),
        (0xFF, Some(0x25), _) => true,
        (rex, Some(0xFF), Some(modrm)) => rex & 0xF8 == 0x48 && modrm & 0x38 == 0x20,
        _ => false,
    };
    is_epilog.then_some(e)
}

/// Where the unwinder reads the return address at `pc`, as the distance
/// from where it is (0: right).
fn unwinder_error(image: &Image<'_>, pc: u32, s: &Stack, depth: i64) -> Result<i64, String> {
    let Some(rf) = image.runtime_function_at(pc) else {
        // A leaf: the return address at [rsp].
        return Ok(depth);
    };
    let chain = image.unwind(rf).map_err(|e| e.to_string())?;
    let first = chain.infos.first().ok_or("no unwind info")?;
    let offset = pc - rf.begin;
    let in_prolog = offset < u32::from(first.prolog_size);
    if !in_prolog && let Some(e) = epilog_at(image, pc, rf, &chain) {
        let mut at = depth;
        if let Some(n) = e.add {
            at -= n;
        }
        if let Some(n) = e.lea {
            at = s.frame[usize::from(first.frame_register)]
                .ok_or("lea rsp from a frame register the walk lost")?
                - n;
        }
        return Ok(at - 8 * e.pops);
    }
    let mut at = depth;
    for (k, info) in chain.infos.iter().enumerate() {
        for code in &info.codes {
            if k == 0 && in_prolog && u32::from(code.prolog_offset) > offset {
                continue;
            }
            match code.op {
                UnwindOp::SetFpreg => {
                    at = s.frame[usize::from(info.frame_register)]
                        .ok_or("the frame register's value is lost")?
                        + i64::from(info.frame_offset);
                }
                UnwindOp::PushMachframe { .. } => {
                    return Err("a machine frame (interrupt routine): not modelled".into());
                }
                op => at -= i64::from(op.stack_bytes()),
            }
        }
    }
    Ok(at)
}

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct Report {
    /// Instructions checked (reached from their function's start with a
    /// known stack depth).
    pub checked: usize,
    /// Where the unwinder would be wrong.
    pub mismatches: Vec<Mismatch>,
}

/// Walks every function of `code` and checks the unwinder's view at each
/// instruction reached.
pub fn check(image: &Image<'_>, code: &Code) -> Report {
    let mut report = Report::default();
    for f in code.functions.values() {
        check_function(image, f, &mut report);
    }
    report
}

fn check_function(image: &Image<'_>, f: &Function, report_to: &mut Report) {
    let prolog_end = f.runtime_function.and_then(|rf| {
        let chain = image.unwind(rf).ok()?;
        Some(rf.begin + u32::from(chain.infos.first()?.prolog_size))
    });
    let info = std::cell::RefCell::new(InstructionInfoFactory::new());
    let start = Stack {
        depth: Some(0),
        frame: [None; 16],
        rax: None,
        conflict: false,
    };
    let states = flow(
        f,
        start,
        |ins, s| {
            let in_prolog = prolog_end.is_some_and(|end| (ins.ip() as u32) < end)
                && f.runtime_function
                    .is_some_and(|rf| rf.contains(ins.ip() as u32));
            step(ins, s, in_prolog, &mut info.borrow_mut())
        },
        merge,
    );
    for (ins, s) in f.instructions.iter().zip(&states) {
        let Some(s) = s else { continue };
        let at = ins.ip() as u32;
        let mut report = |why: String| {
            report_to.mismatches.push(Mismatch {
                function: f.start,
                at,
                why,
            })
        };
        if s.conflict {
            report("paths reach it with different stack depths".into());
            continue;
        }
        let Some(depth) = s.depth else { continue };
        report_to.checked += 1;
        match unwinder_error(image, at, s, depth) {
            Ok(0) => {}
            Ok(d) => report(format!(
                "the stack holds {depth} byte(s) above the return address; the unwinder's \
                 view is {d} byte(s) off"
            )),
            Err(e) => report(e),
        }
        // Control leaving for another function must leave the return
        // address on top, as the callee's unwind data assumes.
        let leaves = match ins.flow_control() {
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch => {
                !f.contains(ins.near_branch_target() as u32)
            }
            FlowControl::IndirectBranch => {
                super::calls::rex_w(image, ins) || ins.is_ip_rel_memory_operand()
            }
            FlowControl::Return => true,
            _ => false,
        };
        let after = step(ins, s, false, &mut info.borrow_mut());
        let left = if ins.flow_control() == FlowControl::Return {
            Some(depth)
        } else {
            after.depth
        };
        if leaves && left != Some(0) {
            report(format!(
                "leaves the function with {} byte(s) above the return address",
                left.map_or("an unknown number of".into(), |d| d.to_string())
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The epilog read at the start of `code` (at RVA 0x100; jumps to
    /// 0x1000 and beyond leave the function), as (add, lea, pops).
    fn epilog(code: &[u8], frame_register: u8) -> Option<(Option<i64>, Option<i64>, i64)> {
        epilog_shape(code, 0x100, frame_register, |t| t >= 0x1000).map(|e| (e.add, e.lea, e.pops))
    }

    #[test]
    fn the_epilog_forms_the_unwinder_recognises() {
        // add rsp, 0x28; pop rbx; pop r12; ret
        assert_eq!(
            epilog(&[0x48, 0x83, 0xC4, 0x28, 0x5B, 0x41, 0x5C, 0xC3], 0),
            Some((Some(40), None, 2))
        );
        // add rsp, 0x1000; ret
        assert_eq!(
            epilog(&[0x48, 0x81, 0xC4, 0x00, 0x10, 0, 0, 0xC3], 0),
            Some((Some(4096), None, 0))
        );
        // lea rsp, [rbp + 0x10]; pop rbp; ret, with rbp the frame register.
        assert_eq!(
            epilog(&[0x48, 0x8D, 0x65, 0x10, 0x5D, 0xC3], 5),
            Some((None, Some(16), 1))
        );
        // add rsp, 0x28; rex.w jmp rax: a tail jump through a register.
        assert_eq!(
            epilog(&[0x48, 0x83, 0xC4, 0x28, 0x48, 0xFF, 0xE0], 0),
            Some((Some(40), None, 0))
        );
        // jmp [rip + x]: a tail jump through the IAT.
        assert_eq!(epilog(&[0xFF, 0x25, 0, 0, 0, 0], 0), Some((None, None, 0)));
        // jmp rel32 out of the function (0x105 + 0x1000).
        assert_eq!(epilog(&[0xE9, 0x00, 0x10, 0, 0], 0), Some((None, None, 0)));
        // rep ret
        assert_eq!(epilog(&[0xF3, 0xC3], 0), Some((None, None, 0)));
    }

    #[test]
    fn code_that_merely_looks_like_an_epilog_is_not_one() {
        // add rsp, 0x28; jmp rax without REX.W: a jump inside the function.
        assert_eq!(epilog(&[0x48, 0x83, 0xC4, 0x28, 0xFF, 0xE0], 0), None);
        // add rsp, 0x28; mov rcx, [rsp + 8]; ...: something between.
        assert_eq!(
            epilog(
                &[0x48, 0x83, 0xC4, 0x28, 0x48, 0x8B, 0x4C, 0x24, 0x08, 0xC3],
                0
            ),
            None
        );
        // jmp rel8 to a block of the same function.
        assert_eq!(epilog(&[0xEB, 0x10], 0), None);
        // lea rsp, [rbp + 0x10] when rbp is not the frame register.
        assert_eq!(epilog(&[0x48, 0x8D, 0x65, 0x10, 0xC3], 0), None);
        // A call is no epilog.
        assert_eq!(epilog(&[0xE8, 0, 0, 0, 0], 0), None);
    }
}
