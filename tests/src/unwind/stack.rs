//! The stack an image's own code takes: each function's frame, read from
//! its unwind codes, and from each entry point the deepest chain of the
//! image's frames along direct calls, tail jumps and the indirect calls
//! [`super::calls`] resolves. A call into an import (a kernel routine)
//! ends a chain: the kernel's frames are not the image's. What the
//! analysis cannot follow is listed in [`Budget::unseen`].

use super::calls::{Callee, Calls, Taken, Transfer};
use super::code::Code;
use super::image::Image;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Why a function is an entry point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Root {
    /// The image's entry point (DriverEntry).
    EntryPoint,
    /// An export.
    Export(String),
    /// Its address is taken (a callback or a table entry).
    AddressTaken(Taken),
    /// Nothing in the image calls or jumps to it directly.
    NotCalled,
}

/// One function in a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// The function's start.
    pub function: u32,
    /// Its frame, bytes.
    pub frame: u32,
    /// How control got here from the previous link.
    pub via: Transfer,
}

/// The deepest chain from a function.
#[derive(Clone, Debug, Default)]
pub struct Chain {
    /// Bytes of stack the chain's frames take together.
    pub bytes: u32,
    /// The functions, the first being the one it starts from.
    pub links: Vec<Link>,
}

/// The image's frames and chains.
pub struct Budget {
    /// Every function's frame (bytes, return address included).
    pub frames: BTreeMap<u32, u32>,
    /// The entry points, with why each is one.
    pub roots: BTreeMap<u32, Vec<Root>>,
    /// The deepest chain from each function.
    pub chains: BTreeMap<u32, Chain>,
    /// Cycles of direct calls (recursion): their depth is not bounded here.
    pub recursion: Vec<Vec<u32>>,
    /// What the analysis does not see, one line each.
    pub unseen: Vec<String>,
}

impl Budget {
    /// Measures `code`'s frames and chains.
    pub fn measure(image: &Image<'_>, code: &Code, calls: &Calls) -> Budget {
        let mut frames = BTreeMap::new();
        let mut unseen = Vec::new();
        for f in code.functions.values() {
            let frame = match f.runtime_function {
                // The deepest of its parts' chains (a chained part adds
                // its own codes to the primary's).
                Some(primary) => image
                    .runtime_functions
                    .iter()
                    .filter(|rf| f.contains(rf.begin))
                    .chain(std::iter::once(&primary))
                    .filter_map(|&rf| image.unwind(rf).ok())
                    .map(|c| c.frame_bytes())
                    .max()
                    .unwrap_or(8),
                // A leaf without unwind data: only its return address.
                None => 8,
            };
            frames.insert(f.start, frame);
        }
        let mut edges: BTreeMap<u32, Vec<(u32, Transfer)>> = BTreeMap::new();
        let mut called: BTreeMap<u32, usize> = BTreeMap::new();
        let mut unknown: BTreeMap<u32, usize> = BTreeMap::new();
        let mut run_time: BTreeMap<u32, usize> = BTreeMap::new();
        for site in &calls.sites {
            for callee in &site.callees {
                match callee {
                    Callee::Own(g) => {
                        edges
                            .entry(site.function)
                            .or_default()
                            .push((*g, site.transfer));
                        *called.entry(*g).or_default() += 1;
                    }
                    Callee::Import(_) => {}
                    Callee::RunTime(_) => *run_time.entry(site.function).or_default() += 1,
                    Callee::Unknown => *unknown.entry(site.function).or_default() += 1,
                }
            }
        }
        let count: usize = unknown.values().sum();
        if count > 0 {
            unseen.push(format!(
                "{count} indirect call(s) or tail jump(s) in {} function(s) through a value the \
                 analysis cannot follow (a `dyn` vtable passed in, a routine's result): their \
                 targets' frames are not added",
                unknown.len()
            ));
        }
        let count: usize = run_time.values().sum();
        if count > 0 {
            unseen.push(format!(
                "{count} call(s) through {} global(s) the code fills at run time (routines \
                 looked up by name): counted as kernel routines",
                run_time.len()
            ));
        }
        unseen.push(
            "kernel routines' own frames (imports end a chain), and stack taken by \
             dynamic allocation (none in Rust code)"
                .into(),
        );
        let mut roots: BTreeMap<u32, Vec<Root>> = BTreeMap::new();
        roots.entry(image.entry).or_default().push(Root::EntryPoint);
        for (name, rva) in &image.exports {
            roots
                .entry(*rva)
                .or_default()
                .push(Root::Export(name.clone()));
        }
        for (f, how) in &calls.taken {
            for t in how {
                roots.entry(*f).or_default().push(Root::AddressTaken(*t));
            }
        }
        for f in code.functions.keys() {
            if !called.contains_key(f) {
                roots.entry(*f).or_default().push(Root::NotCalled);
            }
        }
        roots.retain(|f, _| frames.contains_key(f));
        let mut search = Search {
            frames: &frames,
            edges: &edges,
            memo: BTreeMap::new(),
            on_path: Vec::new(),
            recursion: Vec::new(),
        };
        for f in code.functions.keys() {
            search.deepest(*f);
        }
        let chains = code
            .functions
            .keys()
            .map(|&f| (f, search.chain_from(f)))
            .collect();
        let recursion = search.recursion;
        if !recursion.is_empty() {
            unseen.push(format!(
                "{} cycle(s) of direct calls (recursion): each counted once",
                recursion.len()
            ));
        }
        Budget {
            frames,
            roots,
            chains,
            recursion,
            unseen,
        }
    }

    /// Frames over `limit` bytes, largest first.
    pub fn frames_over(&self, limit: u32) -> Vec<(u32, u32)> {
        let mut v: Vec<(u32, u32)> = self
            .frames
            .iter()
            .filter(|(_, b)| **b > limit)
            .map(|(f, b)| (*f, *b))
            .collect();
        v.sort_by_key(|(f, b)| (std::cmp::Reverse(*b), *f));
        v
    }

    /// Entry points whose deepest chain is over `limit` bytes, deepest
    /// first.
    pub fn chains_over(&self, limit: u32) -> Vec<(u32, &Chain)> {
        let mut v: Vec<(u32, &Chain)> = self
            .roots
            .keys()
            .filter_map(|f| Some((*f, self.chains.get(f)?)))
            .filter(|(_, c)| c.bytes > limit)
            .collect();
        v.sort_by_key(|(f, c)| (std::cmp::Reverse(c.bytes), *f));
        v
    }

    /// A chain as text: `total  root [why]: f 123 -> g 456 ...`.
    pub fn describe(&self, root: u32, name: impl Fn(u32) -> String) -> String {
        let mut out = String::new();
        let Some(chain) = self.chains.get(&root) else {
            return out;
        };
        let why: Vec<String> = self
            .roots
            .get(&root)
            .into_iter()
            .flatten()
            .map(|r| match r {
                Root::EntryPoint => "entry point".into(),
                Root::Export(n) => format!("export {n}"),
                Root::AddressTaken(Taken::Pointer(at)) => format!("pointer at rva {at:#x}"),
                Root::AddressTaken(Taken::Lea(at)) => format!("address taken in {}", name(*at)),
                Root::NotCalled => "not called directly".into(),
            })
            .collect();
        let _ = write!(
            out,
            "{:>6} bytes from {} [{}]:",
            chain.bytes,
            name(root),
            why.join("; ")
        );
        for link in &chain.links {
            let arrow = match link.via {
                Transfer::Call => " ->",
                Transfer::TailJump => " =>(tail)",
                Transfer::FallThrough => " =>(falls into)",
            };
            let _ = write!(out, "{arrow} {} {}", name(link.function), link.frame);
        }
        out
    }
}

/// The longest-path search over the call graph.
struct Search<'a> {
    frames: &'a BTreeMap<u32, u32>,
    edges: &'a BTreeMap<u32, Vec<(u32, Transfer)>>,
    /// Deepest chain bytes from each function, and the edge it takes.
    memo: BTreeMap<u32, (u32, Option<(u32, Transfer)>)>,
    on_path: Vec<u32>,
    recursion: Vec<Vec<u32>>,
}

impl Search<'_> {
    fn deepest(&mut self, f: u32) -> u32 {
        if let Some((b, _)) = self.memo.get(&f) {
            return *b;
        }
        if let Some(at) = self.on_path.iter().position(|&g| g == f) {
            // A cycle: the edge back adds nothing.
            self.recursion.push(self.on_path[at..].to_vec());
            return 0;
        }
        self.on_path.push(f);
        let frame = self.frames.get(&f).copied().unwrap_or(8);
        let mut best = (frame, None);
        for &(g, via) in self.edges.get(&f).map(Vec::as_slice).unwrap_or(&[]) {
            let below = self.deepest(g);
            let total = match via {
                Transfer::Call => frame.saturating_add(below),
                // The callee's frame takes the place of the caller's.
                Transfer::TailJump | Transfer::FallThrough => below,
            };
            if total > best.0 {
                best = (total, Some((g, via)));
            }
        }
        self.on_path.pop();
        self.memo.insert(f, best);
        best.0
    }

    fn chain_from(&self, f: u32) -> Chain {
        let mut chain = Chain {
            bytes: self.memo.get(&f).map_or(0, |m| m.0),
            links: Vec::new(),
        };
        let mut at = Some((f, Transfer::Call));
        while let Some((g, via)) = at {
            if chain.links.iter().any(|l| l.function == g) {
                break;
            }
            chain.links.push(Link {
                function: g,
                frame: self.frames.get(&g).copied().unwrap_or(8),
                via,
            });
            at = self.memo.get(&g).and_then(|m| m.1);
        }
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(
        frames: &[(u32, u32)],
        edges: &[(u32, u32, Transfer)],
    ) -> (Vec<Chain>, Vec<Vec<u32>>) {
        let frames: BTreeMap<u32, u32> = frames.iter().copied().collect();
        let mut graph: BTreeMap<u32, Vec<(u32, Transfer)>> = BTreeMap::new();
        for &(from, to, via) in edges {
            graph.entry(from).or_default().push((to, via));
        }
        let mut s = Search {
            frames: &frames,
            edges: &graph,
            memo: BTreeMap::new(),
            on_path: Vec::new(),
            recursion: Vec::new(),
        };
        let chains = frames
            .keys()
            .map(|&f| {
                s.deepest(f);
                s.chain_from(f)
            })
            .collect();
        (chains, s.recursion)
    }

    fn path(c: &Chain) -> Vec<u32> {
        c.links.iter().map(|l| l.function).collect()
    }

    #[test]
    fn a_chain_adds_the_frames_of_the_deepest_calls() {
        // 1 calls 2 and 3; 2 calls 4. 1+2+4 = 100+50+30 beats 1+3 = 100+60.
        let (chains, recursion) = search(
            &[(1, 100), (2, 50), (3, 60), (4, 30)],
            &[
                (1, 2, Transfer::Call),
                (1, 3, Transfer::Call),
                (2, 4, Transfer::Call),
            ],
        );
        assert_eq!(chains[0].bytes, 180);
        assert_eq!(path(&chains[0]), [1, 2, 4]);
        assert_eq!(chains[2].bytes, 60);
        assert!(recursion.is_empty());
    }

    #[test]
    fn a_tail_jump_replaces_the_frame_instead_of_adding_to_it() {
        // 1 (frame 100) calls 2 (10) and tail-jumps to 3 (200): the
        // deepest is 3 on its own, 200, not 300.
        let (chains, _) = search(
            &[(1, 100), (2, 10), (3, 200)],
            &[(1, 2, Transfer::Call), (1, 3, Transfer::TailJump)],
        );
        assert_eq!(chains[0].bytes, 200);
        assert_eq!(path(&chains[0]), [1, 3]);
        assert_eq!(chains[0].links[1].via, Transfer::TailJump);
        // Falling into the next function counts the same way.
        let (chains, _) = search(&[(1, 8), (2, 48)], &[(1, 2, Transfer::FallThrough)]);
        assert_eq!(chains[0].bytes, 48);
    }

    #[test]
    fn recursion_is_reported_and_counted_once() {
        let (chains, recursion) = search(
            &[(1, 100), (2, 50)],
            &[(1, 2, Transfer::Call), (2, 1, Transfer::Call)],
        );
        assert_eq!(recursion, [vec![1, 2]]);
        assert_eq!(chains[0].bytes, 150);
        assert_eq!(path(&chains[0]), [1, 2]);
    }
}
