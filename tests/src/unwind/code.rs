//! The functions of an x64 image and their instructions, found from the
//! image alone: every RUNTIME_FUNCTION's range (chained parts joined to
//! their primary), plus leaf code without unwind data that something
//! enters (the entry point, an export, a relocated pointer, a `lea`, a
//! direct call or a branch from other code). Each function's
//! instructions are decoded with iced-x86, and [`flow`] runs a forward
//! data-flow analysis over its control-flow graph.

use super::RuntimeFunction;
use super::image::Image;
use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess,
    OpKind, Register,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

/// One function of the image.
#[derive(Debug)]
pub struct Function {
    /// Its first instruction's RVA.
    pub start: u32,
    /// Its primary RUNTIME_FUNCTION; `None` for leaf code without unwind
    /// data.
    pub runtime_function: Option<RuntimeFunction>,
    /// Its code ranges, in address order (several for a function split
    /// into chained parts).
    pub parts: Vec<Range<u32>>,
    /// Its instructions, in address order (IPs are RVAs).
    pub instructions: Vec<Instruction>,
    /// The targets of each jump through a table (by the jump's RVA).
    pub jump_tables: HashMap<u64, Vec<u64>>,
}

impl Function {
    /// Does one of the function's ranges hold `rva`?
    pub fn contains(&self, rva: u32) -> bool {
        self.parts.iter().any(|p| p.contains(&rva))
    }

    /// The instruction's index, by RVA.
    fn index(&self) -> HashMap<u64, usize> {
        self.instructions
            .iter()
            .enumerate()
            .map(|(i, ins)| (ins.ip(), i))
            .collect()
    }

    /// Where control goes after instruction `i`: the next instruction
    /// and branch targets inside the function. Transfers out of the
    /// function (returns, tail jumps, jump tables through a register)
    /// have no successor here.
    fn successors(&self, i: usize, index: &HashMap<u64, usize>) -> Vec<usize> {
        let ins = &self.instructions[i];
        let next = index.get(&ins.next_ip()).copied();
        let target = || index.get(&ins.near_branch_target()).copied();
        match ins.flow_control() {
            FlowControl::Next
            | FlowControl::Call
            | FlowControl::IndirectCall
            | FlowControl::XbeginXabortXend => next.into_iter().collect(),
            FlowControl::ConditionalBranch => next.into_iter().chain(target()).collect(),
            FlowControl::UnconditionalBranch => target().into_iter().collect(),
            FlowControl::IndirectBranch => self
                .jump_tables
                .get(&ins.ip())
                .into_iter()
                .flatten()
                .filter_map(|t| index.get(t).copied())
                .collect(),
            FlowControl::Return | FlowControl::Interrupt => Vec::new(),
            FlowControl::Exception => Vec::new(),
        }
    }

    /// Can the function's last instruction run on past its end?
    pub fn falls_through(&self) -> bool {
        self.instructions.last().is_some_and(|i| {
            matches!(
                i.flow_control(),
                FlowControl::Next | FlowControl::Call | FlowControl::ConditionalBranch
            ) && i.code() != iced_x86::Code::INVALID
        })
    }
}

/// Registers a call may change (the Windows x64 convention's volatile
/// ones): rax, rcx, rdx, r8 to r11, by number.
pub(super) const VOLATILE: [usize; 7] = [0, 1, 2, 8, 9, 10, 11];

/// The number (0 = rax .. 15 = r15) of the 64-bit register `r` is part of,
/// if it is a general-purpose one.
pub(super) fn gpr(r: Register) -> Option<usize> {
    let full = r.full_register();
    full.is_gpr64().then(|| full.number())
}

/// Does the access change the operand?
pub(super) fn writes(access: OpAccess) -> bool {
    matches!(
        access,
        OpAccess::Write | OpAccess::ReadWrite | OpAccess::CondWrite | OpAccess::ReadCondWrite
    )
}

/// The general-purpose registers `ins` changes (numbers, as [`gpr`]),
/// a call's volatile registers included.
pub(super) fn written_registers(
    info: &mut InstructionInfoFactory,
    ins: &Instruction,
) -> Vec<usize> {
    let mut out: Vec<usize> = info
        .info(ins)
        .used_registers()
        .iter()
        .filter(|u| writes(u.access()))
        .filter_map(|u| gpr(u.register()))
        .collect();
    if matches!(
        ins.flow_control(),
        FlowControl::Call | FlowControl::IndirectCall
    ) {
        out.extend(VOLATILE);
    }
    out
}

/// Entries read from one jump table at most.
const MAX_TABLE: u32 = 4096;

/// The targets of the jump through a register at instruction `i`, if it
/// is the switch dispatch LLVM emits for x64: `lea base, [rip + table]`,
/// `movsxd r, dword ptr [base + 4*index]`, `add r, base`, `jmp r`, each
/// entry an offset from the table. Entries are read while they land on
/// an instruction of the function (the table's length is not recorded).
fn jump_table(image: &Image<'_>, f: &Function, i: usize, index: &HashMap<u64, usize>) -> Vec<u64> {
    let window = &f.instructions[i.saturating_sub(3)..=i];
    let [lea, load, add, jmp] = window else {
        return Vec::new();
    };
    let base = lea.op0_register();
    let shape = lea.mnemonic() == Mnemonic::Lea
        && lea.is_ip_rel_memory_operand()
        && load.mnemonic() == Mnemonic::Movsxd
        && load.memory_base() == base
        && load.memory_index_scale() == 4
        && add.mnemonic() == Mnemonic::Add
        && add.op0_register() == load.op0_register()
        && add.op_kind(1) == OpKind::Register
        && add.op1_register() == base
        && jmp.op0_kind() == OpKind::Register
        && jmp.op0_register() == load.op0_register();
    if !shape {
        return Vec::new();
    }
    let table = lea.ip_rel_memory_address();
    let Some(bytes) = u32::try_from(table).ok().and_then(|t| image.bytes_at(t)) else {
        return Vec::new();
    };
    bytes
        .chunks_exact(4)
        .take(MAX_TABLE as usize)
        .map(|e| table.wrapping_add_signed(i64::from(i32::from_le_bytes([e[0], e[1], e[2], e[3]]))))
        .take_while(|t| index.contains_key(t))
        .collect()
}

/// Runs a forward data-flow analysis over `f`'s instructions from its
/// start: `transfer` gives the state after an instruction from the state
/// before it, `merge` joins two states reaching one instruction (it must
/// reach a fixed point: return `a` when `b` adds nothing). Returns the
/// state before each instruction; `None` where control from the start
/// never arrives (code after a jump through a table, padding).
pub fn flow<S: Clone + PartialEq>(
    f: &Function,
    start: S,
    transfer: impl Fn(&Instruction, &S) -> S,
    merge: impl Fn(&S, &S) -> S,
) -> Vec<Option<S>> {
    let index = f.index();
    let mut states: Vec<Option<S>> = vec![None; f.instructions.len()];
    let Some(&first) = index.get(&u64::from(f.start)) else {
        return states;
    };
    states[first] = Some(start);
    let mut work = vec![first];
    while let Some(i) = work.pop() {
        let Some(before) = states[i].clone() else {
            continue;
        };
        let after = transfer(&f.instructions[i], &before);
        for s in f.successors(i, &index) {
            let merged = match &states[s] {
                None => after.clone(),
                Some(old) => merge(old, &after),
            };
            if states[s].as_ref() != Some(&merged) {
                states[s] = Some(merged);
                work.push(s);
            }
        }
    }
    states
}

/// The image's code, split into functions.
pub struct Code {
    /// The functions, by start.
    pub functions: BTreeMap<u32, Function>,
    /// Every call instruction decoded in an executable section (RVA),
    /// in functions or not.
    pub call_instructions: Vec<u32>,
}

fn decode(image: &Image<'_>, range: &Range<u32>) -> Vec<Instruction> {
    let Some(bytes) = image.bytes_at(range.start) else {
        return Vec::new();
    };
    // Past the file's data a section is zeros: nothing to decode.
    let len = (range.end - range.start) as usize;
    let bytes = bytes.get(..len.min(bytes.len())).unwrap_or(bytes);
    Decoder::with_ip(64, bytes, u64::from(range.start), DecoderOptions::NONE)
        .into_iter()
        .collect()
}

/// Direct branch and call targets, and `lea` addresses, of `ins`.
fn code_references(ins: &Instruction) -> Option<u64> {
    match ins.flow_control() {
        FlowControl::Call | FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
            if matches!(
                ins.op0_kind(),
                OpKind::NearBranch64 | OpKind::NearBranch32 | OpKind::NearBranch16
            ) =>
        {
            Some(ins.near_branch_target())
        }
        _ if ins.mnemonic() == Mnemonic::Lea && ins.is_ip_rel_memory_operand() => {
            Some(ins.ip_rel_memory_address())
        }
        _ => None,
    }
}

impl Code {
    /// Finds the image's functions and decodes them.
    pub fn read(image: &Image<'_>) -> Code {
        // Every RUNTIME_FUNCTION belongs to the function its chain ends
        // in; a broken chain leaves the entry as its own function (the
        // coverage check reports the chain).
        let mut owner: BTreeMap<u32, (RuntimeFunction, RuntimeFunction)> = BTreeMap::new();
        for &rf in &image.runtime_functions {
            let primary = image.unwind(rf).map(|c| c.primary).unwrap_or(rf);
            owner.insert(rf.begin, (rf, primary));
        }
        let covering = |rva: u32| {
            image
                .runtime_function_at(rva)
                .and_then(|rf| owner.get(&rf.begin).copied())
        };
        let mut starts: BTreeSet<u32> = owner.values().map(|(_, p)| p.begin).collect();
        starts.insert(image.entry);
        starts.extend(image.exports.iter().map(|(_, rva)| *rva));
        starts.extend(
            image
                .relocations
                .iter()
                .filter_map(|&r| image.pointer_at(r)),
        );
        starts.retain(|&s| image.is_code(s) && covering(s).is_none_or(|(rf, _)| rf.begin == s));
        // Leaf code entered from elsewhere becomes a function; each round
        // of decoding can find more, until none is new.
        loop {
            let pieces = pieces(image, &owner, &starts);
            let mut found = BTreeSet::new();
            for piece in &pieces {
                for ins in decode(image, piece) {
                    let Some(target) = code_references(&ins).and_then(|t| u32::try_from(t).ok())
                    else {
                        continue;
                    };
                    let branch = matches!(
                        ins.flow_control(),
                        FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
                    );
                    // A branch inside its own piece is the piece's own flow.
                    if image.is_code(target)
                        && covering(target).is_none()
                        && !(branch && piece.contains(&target))
                    {
                        found.insert(target);
                    }
                }
            }
            if found.is_subset(&starts) {
                return Code::assemble(image, &owner, &starts, &pieces);
            }
            starts.extend(found);
        }
    }

    fn assemble(
        image: &Image<'_>,
        owner: &BTreeMap<u32, (RuntimeFunction, RuntimeFunction)>,
        starts: &BTreeSet<u32>,
        pieces: &[Range<u32>],
    ) -> Code {
        let mut functions: BTreeMap<u32, Function> = BTreeMap::new();
        let mut call_instructions = Vec::new();
        // The leaf function the previous piece belongs to, if it can run
        // on into the next piece (a gap between starts with no function).
        let mut open_leaf: Option<u32> = None;
        for piece in pieces {
            let instructions = decode(image, piece);
            call_instructions.extend(
                instructions
                    .iter()
                    .filter(|i| {
                        matches!(
                            i.flow_control(),
                            FlowControl::Call | FlowControl::IndirectCall
                        )
                    })
                    .map(|i| i.ip() as u32),
            );
            let key = match image.runtime_function_at(piece.start) {
                Some(rf) => {
                    open_leaf = None;
                    let (rf, primary) = owner.get(&rf.begin).copied().unwrap_or((rf, rf));
                    let f = functions.entry(primary.begin).or_insert_with(|| Function {
                        start: primary.begin,
                        runtime_function: Some(primary),
                        parts: Vec::new(),
                        instructions: Vec::new(),
                        jump_tables: HashMap::new(),
                    });
                    if !f.parts.contains(&(rf.begin..rf.end)) {
                        f.parts.push(rf.begin..rf.end);
                    }
                    primary.begin
                }
                None if starts.contains(&piece.start) => {
                    functions.insert(
                        piece.start,
                        Function {
                            start: piece.start,
                            runtime_function: None,
                            parts: vec![piece.clone()],
                            instructions: Vec::new(),
                            jump_tables: HashMap::new(),
                        },
                    );
                    piece.start
                }
                None => match open_leaf.and_then(|k| functions.get_mut(&k)) {
                    Some(f) => {
                        if let Some(last) = f.parts.last_mut() {
                            last.end = piece.end;
                        }
                        f.start
                    }
                    // Padding after a function with unwind data.
                    None => continue,
                },
            };
            let Some(f) = functions.get_mut(&key) else {
                continue;
            };
            f.instructions.extend(instructions);
            open_leaf = (f.runtime_function.is_none() && f.falls_through()).then_some(key);
        }
        for f in functions.values_mut() {
            f.parts.sort_by_key(|p| p.start);
            f.instructions.sort_by_key(|i| i.ip());
            let index = f.index();
            f.jump_tables = (0..f.instructions.len())
                .filter(|&i| f.instructions[i].flow_control() == FlowControl::IndirectBranch)
                .map(|i| (f.instructions[i].ip(), jump_table(image, f, i, &index)))
                .filter(|(_, t)| !t.is_empty())
                .collect();
        }
        Code {
            functions,
            call_instructions,
        }
    }

    /// The function holding `rva`.
    pub fn function_at(&self, rva: u32) -> Option<&Function> {
        if let Some(f) = self.functions.get(&rva) {
            return Some(f);
        }
        // A function's parts can be anywhere: look for the one whose
        // ranges hold it, nearest starts first.
        self.functions
            .range(..=rva)
            .rev()
            .map(|(_, f)| f)
            .chain(self.functions.range(rva..).map(|(_, f)| f))
            .find(|f| f.contains(rva))
    }
}

/// The code sections cut at every RUNTIME_FUNCTION boundary and every
/// function start.
fn pieces(
    image: &Image<'_>,
    owner: &BTreeMap<u32, (RuntimeFunction, RuntimeFunction)>,
    starts: &BTreeSet<u32>,
) -> Vec<Range<u32>> {
    let mut cuts: BTreeSet<u32> = starts.clone();
    for (rf, _) in owner.values() {
        cuts.insert(rf.begin);
        cuts.insert(rf.end);
    }
    let mut out = Vec::new();
    for (_, section) in &image.code_sections {
        let mut at = section.start;
        for &c in cuts.range(section.start + 1..section.end) {
            out.push(at..c);
            at = c;
        }
        out.push(at..section.end);
    }
    out.retain(|p| p.start < p.end);
    out
}
