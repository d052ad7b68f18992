//! The data-flow analysis of one region (a function, or the leaf code
//! between functions): its instructions are decoded once, cut into basic
//! blocks, and the [`State`] at each block's start is the meet of the
//! states its predecessors end with, iterated to a fixed point. So a value
//! set before a branch is known after it when every path sets it alike,
//! and a value that differs between paths is not.
//!
//! Control can also arrive from outside the region's own branches: at its
//! entry (the function's parameters, [`State::entry`]), at the targets of
//! jump tables and exception handlers, at blocks nothing in the region
//! reaches, and, when the region's bounds are not exact (no `.pdata`), at
//! every block after an unconditional transfer that no conditional branch
//! targets (it may be another function). Those blocks start with nothing
//! known. In a region whose analysis does not settle, every block does.

use super::functions::Region;
use super::sweep::{self, Code, is_near};
use super::track::{Env, State, anchor};
use super::worklist::Pending;
use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpKind,
    Register,
};

/// Steps of each block, on average, at most: a region still changing then
/// gives no states (each step only loses knowledge, so this is never
/// reached on sane code).
const MAX_ROUNDS: usize = 64;
/// Regions larger than this many bytes are not analyzed whole.
pub const MAX_REGION_BYTES: usize = 1 << 20;

/// One basic block.
#[derive(Clone, Debug)]
struct Block {
    /// Index of its first instruction.
    first: usize,
    /// One past its last.
    end: usize,
    /// Successor blocks.
    succs: Vec<usize>,
    /// Control arrives from outside what the region shows: the state at
    /// its start is fixed, nothing known (or the parameters, at the entry).
    fixed: bool,
    /// The block ends with `test r, r` (or `cmp r, 0`) and `je`/`jne`:
    /// the successor reached when r is zero, r, and the test's RVA.
    zero: Option<(usize, Register, u32)>,
}

impl Block {
    /// The register the test ending this block found zero on the way to
    /// block `t`, and the test's RVA.
    fn zero_towards(&self, t: usize) -> Option<(Register, u32)> {
        self.zero
            .filter(|&(z, _, _)| z == t)
            .map(|(_, reg, at)| (reg, at))
    }
}

/// The analysis of a region.
pub struct Flow {
    wide: bool,
    /// The region's entry.
    entry: u32,
    insns: Vec<Instruction>,
    /// Control cannot fall into instruction n (it follows a `ret`, an
    /// unconditional jump, `int3`, or padding after one).
    after_stop: Vec<bool>,
    blocks: Vec<Block>,
    /// The state at each block's start, once the analysis settled.
    /// (Boxed: a state is about a kilobyte, most blocks never get one
    /// stored twice.)
    ins: Vec<Option<Box<State>>>,
    /// Targets of the region's conditional branches, sorted.
    jcc_targets: Vec<u32>,
    /// Bytes decoded.
    pub bytes: usize,
}

impl Flow {
    /// Decodes and analyzes a region. `entries` are further places control
    /// arrives from outside (exception handlers); `read_u32` reads image
    /// data (jump tables).
    pub fn analyze(
        sections: &[Code<'_>],
        region: &Region,
        wide: bool,
        entries: &[u32],
        env: &dyn Env,
        read_u32: &dyn Fn(u32) -> Option<u32>,
    ) -> Flow {
        let bitness = if wide { 64 } else { 32 };
        // About one instruction per 4 bytes of x86 code.
        let mut insns = Vec::with_capacity(region.len() / 4);
        let mut bytes = 0;
        for &(begin, end) in &region.ranges {
            let Some(section) = sections.iter().find(|s| s.contains(begin)) else {
                continue;
            };
            let code = section.from(begin);
            let code = code.get(..(end - begin) as usize).unwrap_or(code);
            bytes += code.len();
            let mut d = Decoder::with_ip(bitness, code, u64::from(begin), DecoderOptions::NONE);
            while d.can_decode() {
                insns.push(d.decode());
            }
        }
        insns.sort_by_key(|i| i.ip32());
        insns.dedup_by_key(|i| i.ip32());
        let mut flow = Flow {
            wide,
            entry: region.entry,
            after_stop: Vec::with_capacity(insns.len()),
            insns,
            blocks: Vec::new(),
            ins: Vec::new(),
            jcc_targets: Vec::new(),
            bytes,
        };
        flow.cut(sections, region, entries, env, read_u32);
        flow.settle(region, env);
        flow
    }

    /// Cuts the instructions into blocks and links them.
    fn cut(
        &mut self,
        sections: &[Code<'_>],
        region: &Region,
        entries: &[u32],
        env: &dyn Env,
        read_u32: &dyn Fn(u32) -> Option<u32>,
    ) {
        let n = self.insns.len();
        let mut leader = vec![false; n];
        let mut fresh_at: Vec<u32> = entries
            .iter()
            .copied()
            .filter(|&e| region.contains(e))
            .collect();
        let mut targets = Vec::new();
        let mut tables = Vec::new();
        let mut lea_rip = [u32::MAX; 16];
        let mut pointer_loaded = false;
        let mut stopped = true;
        let mut prev_end = None;
        for (k, i) in self.insns.iter().enumerate() {
            // A gap between ranges: control cannot fall across it.
            if prev_end != Some(i.ip32()) {
                stopped = true;
                if let Some(l) = leader.get_mut(k) {
                    *l = true;
                }
            }
            prev_end = Some(i.next_ip32());
            let after = stopped;
            self.after_stop.push(after);
            stopped = false;
            match i.flow_control() {
                FlowControl::Next => {
                    sweep::note_memory(
                        i,
                        env.image_base(),
                        &[],
                        &mut lea_rip,
                        &mut pointer_loaded,
                        &mut tables,
                    );
                    stopped = after && matches!(i.mnemonic(), Mnemonic::Nop | Mnemonic::Int3);
                }
                FlowControl::ConditionalBranch => {
                    if is_near(i) {
                        targets.push(i.near_branch_target() as u32);
                        self.jcc_targets.push(i.near_branch_target() as u32);
                    }
                }
                FlowControl::UnconditionalBranch => {
                    if is_near(i) {
                        targets.push(i.near_branch_target() as u32);
                    }
                    stopped = true;
                }
                FlowControl::IndirectBranch
                | FlowControl::Return
                | FlowControl::Interrupt
                | FlowControl::Exception => stopped = true,
                FlowControl::Call | FlowControl::IndirectCall | FlowControl::XbeginXabortXend => {}
            }
            let ends_block = stopped
                || matches!(
                    i.flow_control(),
                    FlowControl::ConditionalBranch | FlowControl::XbeginXabortXend
                );
            if ends_block && let Some(l) = leader.get_mut(k + 1) {
                *l = true;
            }
        }
        fresh_at.extend(sweep::table_targets(tables, sections, read_u32));
        self.jcc_targets.sort_unstable();
        self.jcc_targets.dedup();
        let index_of =
            |insns: &[Instruction], rva: u32| insns.binary_search_by_key(&rva, |i| i.ip32()).ok();
        if let Some(l) = leader.first_mut() {
            *l = true;
        }
        for &t in targets.iter().chain(&fresh_at).chain([&region.entry]) {
            if let Some(k) = index_of(&self.insns, t) {
                leader[k] = true;
            }
        }
        // The blocks.
        let mut block_of = vec![0usize; n];
        for k in 0..n {
            if leader[k] {
                self.blocks.push(Block {
                    first: k,
                    end: k + 1,
                    succs: Vec::new(),
                    fixed: false,
                    zero: None,
                });
            } else if let Some(b) = self.blocks.last_mut() {
                b.end = k + 1;
            }
            block_of[k] = self.blocks.len().saturating_sub(1);
        }
        let mut preds = vec![0usize; self.blocks.len()];
        for b in 0..self.blocks.len() {
            let last = &self.insns[self.blocks[b].end - 1];
            let mut succs = Vec::new();
            let falls = matches!(
                last.flow_control(),
                FlowControl::Next
                    | FlowControl::Call
                    | FlowControl::IndirectCall
                    | FlowControl::ConditionalBranch
                    | FlowControl::XbeginXabortXend
            );
            let end = self.blocks[b].end;
            let fall =
                (falls && end < n && !leader_is_gap(&self.insns, end)).then(|| block_of[end]);
            succs.extend(fall);
            let taken = if matches!(
                last.flow_control(),
                FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
            ) && is_near(last)
                && let Some(k) = index_of(&self.insns, last.near_branch_target() as u32)
            {
                succs.push(block_of[k]);
                Some(block_of[k])
            } else {
                None
            };
            let first = self.blocks[b].first;
            self.blocks[b].zero = end
                .checked_sub(2)
                .filter(|&p| p >= first)
                .and_then(|p| zero_test(&self.insns[p], last, taken, fall));
            succs.sort_unstable();
            succs.dedup();
            for &s in &succs {
                preds[s] += 1;
            }
            self.blocks[b].succs = succs;
        }
        fresh_at.sort_unstable();
        for (block, &n_preds) in self.blocks.iter_mut().zip(&preds) {
            let first = block.first;
            let rva = self.insns[first].ip32();
            let unknown_entry = n_preds == 0
                || fresh_at.binary_search(&rva).is_ok()
                || (!region.exact
                    && self.after_stop[first]
                    && self.jcc_targets.binary_search(&rva).is_err());
            // The entry is seeded with the parameters; it takes its
            // predecessors' states too when the region loops back to it.
            block.fixed = if rva == region.entry {
                n_preds == 0
            } else {
                unknown_entry
            };
        }
    }

    /// Iterates the block states to a fixed point.
    fn settle(&mut self, region: &Region, env: &dyn Env) {
        let nb = self.blocks.len();
        self.ins = vec![None; nb];
        for (b, block) in self.blocks.iter().enumerate() {
            let rva = self.insns[block.first].ip32();
            if block.fixed || rva == region.entry {
                // The entry of a function gets its parameters. So does a
                // block of leaf code nothing in the region falls or
                // branches into: it is a function of its own, or reached
                // by jumps from elsewhere, which the callers' analysis
                // finds by the same scan as calls.
                let function = rva == region.entry || (!region.exact && block.fixed);
                self.ins[b] = Some(Box::new(if function {
                    State::entry(self.wide, rva)
                } else {
                    State::fresh(self.wide, anchor(rva))
                }));
            }
        }
        let mut info = InstructionInfoFactory::new();
        // A worklist in address order: a block is stepped again only when
        // the state at its start changed.
        let mut pending = Pending::new(nb);
        for b in (0..nb).filter(|&b| self.ins[b].is_some()) {
            pending.insert(b);
        }
        let mut budget = MAX_ROUNDS.saturating_mul(nb.max(1));
        let mut s = State::new(self.wide);
        let mut settled = true;
        while let Some(b) = pending.pop_first() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                settled = false;
                break;
            }
            let Some(start) = self.ins[b].as_deref() else {
                continue;
            };
            s.clone_from(start);
            let block = &self.blocks[b];
            for i in &self.insns[block.first..block.end] {
                s.step(i, env, &mut info);
            }
            for &t in &block.succs {
                if self.blocks[t].fixed {
                    continue;
                }
                let rva = self.insns[self.blocks[t].first].ip32();
                // On the path where the tested register is zero, it is.
                let zeroed = block.zero_towards(t).map(|(reg, at)| {
                    let mut r = s.clone();
                    r.know_zero(reg, at);
                    r
                });
                let out = zeroed.as_ref().unwrap_or(&s);
                let changed = match &mut self.ins[t] {
                    Some(x) => x.meet(out, rva),
                    slot @ None => {
                        *slot = Some(Box::new(out.clone()));
                        true
                    }
                };
                if changed {
                    pending.insert(t);
                }
            }
        }
        if settled {
            return;
        }
        // Did not settle: no states at all.
        self.ins = vec![None; nb];
    }

    /// The decoded instructions, in address order.
    pub fn insns(&self) -> &[Instruction] {
        &self.insns
    }

    /// Can control not fall into instruction n?
    pub fn after_stop(&self, n: usize) -> bool {
        self.after_stop.get(n).copied().unwrap_or(true)
    }

    /// Is this RVA the target of a conditional branch of the region?
    pub fn is_jcc_target(&self, rva: u32) -> bool {
        self.jcc_targets.binary_search(&rva).is_ok()
    }

    /// The index of the instruction at an RVA.
    pub fn index_of(&self, rva: u32) -> Option<usize> {
        self.insns.binary_search_by_key(&rva, |i| i.ip32()).ok()
    }

    /// The index of the instruction at an RVA, and of its block.
    fn locate(&self, rva: u32) -> Option<(usize, usize)> {
        let k = self.index_of(rva)?;
        let b = self
            .blocks
            .partition_point(|b| b.first <= k)
            .checked_sub(1)?;
        Some((k, b))
    }

    /// The state just before the instruction at `rva`, and the start of
    /// its block; `None` if the RVA is not an instruction of the region.
    pub fn state_before(&self, rva: u32, env: &dyn Env) -> Option<(State, u32)> {
        let (k, b) = self.locate(rva)?;
        let block = self.blocks.get(b)?;
        let start = self.insns.get(block.first)?.ip32();
        // A block the analysis gives no state (it did not settle, or
        // nothing reaches the block) starts with nothing known.
        let mut s = match self.ins.get(b)?.as_deref() {
            Some(s) => s.clone(),
            None => State::fresh(self.wide, anchor(start)),
        };
        let mut info = InstructionInfoFactory::new();
        for i in self.insns.get(block.first..k)? {
            s.step(i, env, &mut info);
        }
        Some((s, start))
    }

    /// The state just before the instruction at `rva` along each way into
    /// its block, kept apart: one per predecessor block with a state (and
    /// the parameters, at the region's entry). `None` when fewer than two.
    pub fn states_before_by_path(&self, rva: u32, env: &dyn Env) -> Option<Vec<State>> {
        let (k, b) = self.locate(rva)?;
        let block = self.blocks.get(b)?;
        if block.fixed {
            return None;
        }
        let start = self.insns.get(block.first)?.ip32();
        let mut info = InstructionInfoFactory::new();
        let mut paths = Vec::new();
        if start == self.entry {
            paths.push(State::entry(self.wide, start));
        }
        for (p, pred) in self.blocks.iter().enumerate() {
            if !pred.succs.contains(&b) {
                continue;
            }
            let Some(mut s) = self.ins.get(p).and_then(|s| s.as_deref()).cloned() else {
                continue;
            };
            for i in self.insns.get(pred.first..pred.end)? {
                s.step(i, env, &mut info);
            }
            if let Some((reg, at)) = pred.zero_towards(b) {
                s.know_zero(reg, at);
            }
            paths.push(s);
        }
        for s in &mut paths {
            for i in self.insns.get(block.first..k)? {
                s.step(i, env, &mut info);
            }
        }
        (paths.len() >= 2).then_some(paths)
    }

    /// The start of the block of instruction `rva`.
    pub fn block_start(&self, rva: u32) -> Option<u32> {
        let (_, b) = self.locate(rva)?;
        Some(self.insns.get(self.blocks.get(b)?.first)?.ip32())
    }
}

/// `test r, r` or `cmp r, 0` (`prev`) then `je`/`jne` (`last`): the
/// successor block reached when r is zero (`je` taken, `jne` not), r, and
/// the test's RVA. `None` when both ways lead to the same block.
fn zero_test(
    prev: &Instruction,
    last: &Instruction,
    taken: Option<usize>,
    fall: Option<usize>,
) -> Option<(usize, Register, u32)> {
    let reg = prev.op0_register();
    let tests_zero = match prev.mnemonic() {
        Mnemonic::Test => {
            prev.op_count() == 2
                && prev.op0_kind() == OpKind::Register
                && prev.op1_kind() == OpKind::Register
                && prev.op1_register() == reg
        }
        Mnemonic::Cmp => {
            prev.op_count() == 2
                && prev.op0_kind() == OpKind::Register
                && prev.try_immediate(1).ok() == Some(0)
        }
        _ => false,
    };
    if !tests_zero || super::track::gpr(reg).is_none() || taken == fall {
        return None;
    }
    let zero = match last.mnemonic() {
        Mnemonic::Je => taken?,
        Mnemonic::Jne => fall?,
        _ => return None,
    };
    Some((zero, reg, prev.ip32()))
}

/// Does instruction n start after a gap (not right after n-1)?
fn leader_is_gap(insns: &[Instruction], n: usize) -> bool {
    match (n.checked_sub(1).and_then(|p| insns.get(p)), insns.get(n)) {
        (Some(p), Some(i)) => p.next_ip32() != i.ip32(),
        _ => true,
    }
}
