//! Who calls whom in an image: every call and tail jump of every
//! function, with its targets where they are known statically.
//!
//! A direct `call rel32` or `jmp rel32` names its target. An indirect one
//! is followed through what a register or memory operand holds, by a
//! data-flow analysis of each function that knows three kinds of value:
//! an address in the image (`lea reg, [rip + x]`), the contents of a
//! global (`mov reg, [rip + x]`), and a field of a table a global points
//! to (`mov reg, [global]; call [reg + 8]`). A global's possible contents
//! are its relocated initial value (a function-pointer table in .rdata)
//! and every value the code stores into it. An import address table slot
//! is a kernel routine. Whatever else an indirect transfer reaches (a
//! value passed in as an argument, as `dyn Trait` vtables are) is
//! [`Callee::Unknown`]; a global the code fills with a value it computes
//! (a routine looked up by name) is [`Callee::RunTime`].

use super::code::{Code, Function, flow, gpr, writes, written_registers};
use super::image::Image;
use iced_x86::{FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpKind, Register};
use std::collections::{BTreeMap, BTreeSet};

/// A value a register holds, as far as the analysis knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    /// Not known.
    Unknown,
    /// The address of this RVA.
    Address(u32),
    /// The 8 bytes stored at this RVA.
    Contents(u32),
    /// The 8 bytes at (what the global at `.0` holds) + `.1`.
    Field(u32, i64),
}

type Registers = [Value; 16];

/// What an instruction's memory operand addresses, in [`Value`] terms:
/// `Contents(rva)` for a global, `Field` for a table entry.
fn memory_slot(ins: &Instruction, regs: &Registers) -> Value {
    if ins.is_ip_rel_memory_operand() {
        return u32::try_from(ins.ip_rel_memory_address()).map_or(Value::Unknown, Value::Contents);
    }
    if ins.memory_index() != Register::None {
        return Value::Unknown;
    }
    let disp = ins.memory_displacement64() as i64;
    match gpr(ins.memory_base()).map(|b| regs[b]) {
        Some(Value::Address(a)) => {
            u32::try_from(i64::from(a) + disp).map_or(Value::Unknown, Value::Contents)
        }
        Some(Value::Contents(g)) => Value::Field(g, disp),
        _ => Value::Unknown,
    }
}

fn has_memory_operand(ins: &Instruction) -> bool {
    (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory)
}

/// A store into the image's data the analysis saw: the global, and the
/// value (`Unknown` for anything but a tracked register).
type Store = (u32, Value);

struct Tracker {
    info: std::cell::RefCell<InstructionInfoFactory>,
}

impl Tracker {
    /// The registers after `ins`.
    fn transfer(&self, ins: &Instruction, before: &Registers) -> Registers {
        let mut after = *before;
        let dst = (ins.op_count() == 2 && ins.op0_kind() == OpKind::Register)
            .then(|| ins.op0_register())
            .filter(|r| r.is_gpr64())
            .and_then(gpr);
        // The value a `lea` or `mov` puts into a 64-bit register.
        let assign = match (ins.mnemonic(), dst) {
            (Mnemonic::Lea, Some(d)) if ins.is_ip_rel_memory_operand() => Some((
                d,
                u32::try_from(ins.ip_rel_memory_address()).map_or(Value::Unknown, Value::Address),
            )),
            (Mnemonic::Mov, Some(d)) if ins.op_kind(1) == OpKind::Memory => {
                Some((d, memory_slot(ins, before)))
            }
            (Mnemonic::Mov, Some(d)) if ins.op_kind(1) == OpKind::Register => Some((
                d,
                gpr(ins.op1_register()).map_or(Value::Unknown, |s| before[s]),
            )),
            _ => None,
        };
        for r in written_registers(&mut self.info.borrow_mut(), ins) {
            after[r] = Value::Unknown;
        }
        if let Some((d, value)) = assign {
            after[d] = value;
        }
        after
    }

    /// The global `ins` writes and what it writes there, if it writes one.
    fn store(&self, ins: &Instruction, regs: &Registers) -> Option<Store> {
        if !has_memory_operand(ins) {
            return None;
        }
        let mut info = self.info.borrow_mut();
        let writes = info
            .info(ins)
            .used_memory()
            .iter()
            .any(|m| writes(m.access()));
        let Value::Contents(slot) = memory_slot(ins, regs) else {
            return None;
        };
        if !writes {
            return None;
        }
        // The register a mov, xchg or cmpxchg puts into memory.
        let source = (0..ins.op_count())
            .find(|&i| ins.op_kind(i) == OpKind::Register)
            .map(|i| ins.op_register(i))
            .filter(|r| r.is_gpr64());
        let value = match ins.mnemonic() {
            Mnemonic::Mov | Mnemonic::Xchg | Mnemonic::Cmpxchg => {
                source.and_then(gpr).map_or(Value::Unknown, |s| regs[s])
            }
            _ => Value::Unknown,
        };
        Some((slot, value))
    }
}

fn merge(a: &Registers, b: &Registers) -> Registers {
    let mut out = *a;
    for (o, v) in out.iter_mut().zip(b) {
        if *o != *v {
            *o = Value::Unknown;
        }
    }
    out
}

/// What a call or tail jump reaches.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Callee {
    /// One of the image's functions (its start).
    Own(u32),
    /// An imported routine, `module!name`.
    Import(String),
    /// The routine a global holds that the code fills at run time (the
    /// global's RVA).
    RunTime(u32),
    /// Not known statically.
    Unknown,
}

/// How control leaves for the callee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfer {
    /// A call: the caller's frame stays below the callee's.
    Call,
    /// A jump out of the function (a tail call): the callee's frame
    /// replaces the caller's.
    TailJump,
    /// The function's last instruction runs on into the next function.
    FallThrough,
}

/// One call or tail jump.
#[derive(Clone, Debug)]
pub struct Site {
    /// The instruction's RVA.
    pub at: u32,
    /// The function it is in (its start).
    pub function: u32,
    /// Call, tail jump or fall-through.
    pub transfer: Transfer,
    /// Through a register or memory?
    pub indirect: bool,
    /// What it reaches (several for a table whose entries differ).
    pub callees: Vec<Callee>,
}

/// How a function's address is taken (which makes it an entry: the
/// kernel or a table calls it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// A relocated pointer at this RVA holds it.
    Pointer(u32),
    /// A `lea` at this RVA computes it.
    Lea(u32),
}

/// The image's calls, tail jumps and address-taken functions.
pub struct Calls {
    /// Every site, by function.
    pub sites: Vec<Site>,
    /// Functions whose address is taken, and where.
    pub taken: BTreeMap<u32, Vec<Taken>>,
}

impl Calls {
    /// Finds every call and tail jump in `code` and resolves its targets.
    pub fn read(image: &Image<'_>, code: &Code) -> Calls {
        let tracker = Tracker {
            info: std::cell::RefCell::new(InstructionInfoFactory::new()),
        };
        let mut stores: BTreeMap<u32, BTreeSet<Value>> = BTreeMap::new();
        let mut pending = Vec::new();
        let mut taken: BTreeMap<u32, Vec<Taken>> = BTreeMap::new();
        for &field in &image.relocations {
            if let Some(f) = image.pointer_at(field).and_then(|t| code.functions.get(&t)) {
                taken
                    .entry(f.start)
                    .or_default()
                    .push(Taken::Pointer(field));
            }
        }
        for f in code.functions.values() {
            let states = flow(
                f,
                [Value::Unknown; 16],
                |ins, s| tracker.transfer(ins, s),
                merge,
            );
            for (ins, state) in f.instructions.iter().zip(&states) {
                let regs = state.unwrap_or([Value::Unknown; 16]);
                if let Some((slot, value)) = tracker.store(ins, &regs) {
                    stores.entry(slot).or_default().insert(value);
                }
                if ins.mnemonic() == Mnemonic::Lea
                    && ins.is_ip_rel_memory_operand()
                    && let Some(t) = code.functions.get(&(ins.ip_rel_memory_address() as u32))
                {
                    taken
                        .entry(t.start)
                        .or_default()
                        .push(Taken::Lea(ins.ip() as u32));
                }
                if let Some(site) = site(image, f, ins, &regs) {
                    pending.push(site);
                }
            }
            if f.falls_through()
                && let Some(end) = f.parts.last().map(|p| p.end)
                && code.functions.contains_key(&end)
            {
                pending.push(Pending {
                    at: f.instructions.last().map_or(f.start, |i| i.ip() as u32),
                    function: f.start,
                    transfer: Transfer::FallThrough,
                    indirect: false,
                    target: Value::Address(end),
                });
            }
        }
        let resolver = Resolver {
            image,
            code,
            stores: &stores,
        };
        let sites = pending
            .into_iter()
            .map(|p| {
                let mut callees = BTreeSet::new();
                resolver.resolve(p.target, &mut callees, 0);
                Site {
                    at: p.at,
                    function: p.function,
                    transfer: p.transfer,
                    indirect: p.indirect,
                    callees: callees.into_iter().collect(),
                }
            })
            .collect();
        Calls { sites, taken }
    }

    /// Is function `f` called, or its address taken (rather than only
    /// jumped to)?
    pub fn is_entered_directly(&self, f: u32) -> bool {
        self.taken.contains_key(&f)
            || self
                .sites
                .iter()
                .any(|s| s.transfer == Transfer::Call && s.callees.contains(&Callee::Own(f)))
    }
}

/// A site whose target is a [`Value`] not yet resolved.
struct Pending {
    at: u32,
    function: u32,
    transfer: Transfer,
    indirect: bool,
    target: Value,
}

fn site(image: &Image<'_>, f: &Function, ins: &Instruction, regs: &Registers) -> Option<Pending> {
    let (transfer, indirect) = match ins.flow_control() {
        FlowControl::Call => (Transfer::Call, false),
        FlowControl::IndirectCall => (Transfer::Call, true),
        FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
            if !f.contains(ins.near_branch_target() as u32) =>
        {
            (Transfer::TailJump, false)
        }
        // Windows code marks a tail jump with REX.W or jumps through a
        // global; anything else is a jump table inside the function.
        FlowControl::IndirectBranch if ins.is_ip_rel_memory_operand() || rex_w(image, ins) => {
            (Transfer::TailJump, true)
        }
        _ => return None,
    };
    let target = if !indirect {
        u32::try_from(ins.near_branch_target()).map_or(Value::Unknown, Value::Address)
    } else if has_memory_operand(ins) {
        memory_slot(ins, regs)
    } else {
        gpr(ins.op0_register()).map_or(Value::Unknown, |r| regs[r])
    };
    Some(Pending {
        at: ins.ip() as u32,
        function: f.start,
        transfer,
        indirect,
        target,
    })
}

/// Does the instruction start with a REX.W prefix? An indirect jump does
/// not need one, so Windows code uses it to mark a jump out of the
/// function (iced keeps no prefix flags: the byte is read back).
pub fn rex_w(image: &Image<'_>, ins: &Instruction) -> bool {
    u32::try_from(ins.ip())
        .ok()
        .and_then(|at| image.bytes_at(at))
        .and_then(|b| b.first())
        .is_some_and(|&b| b & 0xF8 == 0x48)
}

struct Resolver<'a> {
    image: &'a Image<'a>,
    code: &'a Code,
    stores: &'a BTreeMap<u32, BTreeSet<Value>>,
}

/// Globals copied into globals deeper than this are not followed.
const MAX_DEPTH: usize = 8;

impl Resolver<'_> {
    /// What a global may hold: its relocated initial value, and what the
    /// code stores into it.
    fn contents(&self, global: u32) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .image
            .pointer_at(global)
            .map(Value::Address)
            .into_iter()
            .collect();
        if let Some(s) = self.stores.get(&global) {
            out.extend(s.iter().copied());
        }
        out
    }

    fn resolve(&self, v: Value, out: &mut BTreeSet<Callee>, depth: usize) {
        if depth > MAX_DEPTH {
            out.insert(Callee::Unknown);
            return;
        }
        match v {
            Value::Unknown => {
                out.insert(Callee::Unknown);
            }
            Value::Address(a) => {
                out.insert(
                    self.code
                        .function_at(a)
                        .filter(|_| self.image.is_code(a))
                        .map_or(Callee::Unknown, |f| Callee::Own(f.start)),
                );
            }
            Value::Contents(g) => {
                if let Some(name) = self.image.imports.get(&g) {
                    out.insert(Callee::Import(name.clone()));
                    return;
                }
                let contents = self.contents(g);
                if contents.is_empty() {
                    out.insert(Callee::Unknown);
                }
                for c in contents {
                    match c {
                        // A value the code computed: filled at run time.
                        Value::Unknown => {
                            out.insert(Callee::RunTime(g));
                        }
                        other => self.resolve(other, out, depth + 1),
                    }
                }
            }
            Value::Field(g, disp) => {
                let contents = self.contents(g);
                if contents.is_empty() {
                    out.insert(Callee::Unknown);
                }
                for c in contents {
                    match c {
                        Value::Address(t) => match u32::try_from(i64::from(t) + disp) {
                            Ok(slot) => self.resolve(Value::Contents(slot), out, depth + 1),
                            Err(_) => {
                                out.insert(Callee::Unknown);
                            }
                        },
                        _ => {
                            out.insert(Callee::Unknown);
                        }
                    }
                }
            }
        }
    }
}
