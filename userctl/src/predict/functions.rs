//! Function bounds from the x64 exception directory (`.pdata`): each
//! RUNTIME_FUNCTION gives a range of code; a range whose unwind info is
//! chained (UNW_FLAG_CHAININFO) is a fragment of the function its chain
//! ends at (MSVC puts cold code and shrink-wrapped parts there), so a
//! function is its root range plus its fragments. Code outside every range
//! is leaf code (no stack frame, no calls of its own: tail jumps and
//! import thunks), bounded by the ranges around it.

use civ_engine::pe::PeImage;

/// IMAGE_DIRECTORY_ENTRY_EXCEPTION.
pub const DIR_EXCEPTION: usize = 3;
/// .pdata entries past this many are taken as garbage.
pub const MAX_FUNCTIONS: usize = 1 << 20;
/// UNW_FLAG_CHAININFO.
const UNW_FLAG_CHAININFO: u8 = 0x4;
/// Chains followed at most this far.
const MAX_CHAIN: usize = 8;

/// One RUNTIME_FUNCTION.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub begin: u32,
    /// One past the last.
    pub end: u32,
    /// The begin of the function it belongs to (itself unless chained).
    pub root: u32,
}

/// The image's function ranges, sorted by begin.
#[derive(Clone, Debug, Default)]
pub struct Functions {
    ranges: Vec<Range>,
}

/// A piece of code analyzed as one: where control enters it from a call,
/// and the ranges it spans.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region {
    /// Where the function starts.
    pub entry: u32,
    /// The ranges, sorted; the first holds `entry`.
    pub ranges: Vec<(u32, u32)>,
    /// The bounds come from the exception directory: every block of it is
    /// the function's own. When false (leaf code between functions, or an
    /// image without the directory) blocks only reached by jumps may be
    /// other functions' starts, and are analyzed as unknown entries.
    pub exact: bool,
}

impl Region {
    /// Does the region hold this RVA?
    pub fn contains(&self, rva: u32) -> bool {
        self.ranges.iter().any(|&(b, e)| (b..e).contains(&rva))
    }

    /// Bytes in the region.
    pub fn len(&self) -> usize {
        self.ranges.iter().map(|&(b, e)| (e - b) as usize).sum()
    }

    /// No bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl Functions {
    /// Reads the exception directory; empty when there is none (x86, or
    /// an image built without unwind info).
    pub fn read(pe: &PeImage<'_>) -> Functions {
        let Some((rva, size)) = pe.data_directory(DIR_EXCEPTION) else {
            return Functions::default();
        };
        let Ok(bytes) = pe.bytes_from(rva, "exception directory") else {
            return Functions::default();
        };
        let bytes = bytes.get(..size as usize).unwrap_or(bytes);
        let mut ranges: Vec<Range> = bytes
            .chunks_exact(12)
            .take(MAX_FUNCTIONS)
            .filter_map(|e| {
                let begin = u32_at(e, 0)?;
                let end = u32_at(e, 4)?;
                (begin != 0 && end > begin).then_some(Range {
                    begin,
                    end,
                    root: begin,
                })
            })
            .collect();
        // The chain of each entry: its unwind info's chained
        // RUNTIME_FUNCTION follows the unwind codes.
        let parent = |unwind: u32| -> Option<u32> {
            if unwind & 1 != 0 {
                // An indirect entry: the unwind field points at another
                // RUNTIME_FUNCTION.
                let e = pe.bytes_at(unwind & !1, 12, "unwind info").ok()?;
                return u32_at(e, 0);
            }
            let head = pe.bytes_at(unwind, 4, "unwind info").ok()?;
            if (head[0] >> 3) & UNW_FLAG_CHAININFO == 0 {
                return None;
            }
            let codes = u32::from(head[2]).next_multiple_of(2);
            let at = unwind.checked_add(4 + 2 * codes)?;
            let e = pe.bytes_at(at, 12, "unwind info").ok()?;
            u32_at(e, 0)
        };
        let unwind_of: Vec<u32> = bytes
            .chunks_exact(12)
            .take(MAX_FUNCTIONS)
            .filter(|e| {
                let (b, en) = (u32_at(e, 0).unwrap_or(0), u32_at(e, 4).unwrap_or(0));
                b != 0 && en > b
            })
            .map(|e| u32_at(e, 8).unwrap_or(0))
            .collect();
        let mut by_begin: Vec<(u32, u32)> = ranges
            .iter()
            .zip(&unwind_of)
            .map(|(r, &u)| (r.begin, u))
            .collect();
        by_begin.sort_unstable();
        let unwind_at = |begin: u32| {
            by_begin
                .binary_search_by_key(&begin, |p| p.0)
                .ok()
                .map(|i| by_begin[i].1)
        };
        for (r, &u) in ranges.iter_mut().zip(&unwind_of) {
            let mut unwind = u;
            for _ in 0..MAX_CHAIN {
                let Some(p) = parent(unwind) else { break };
                r.root = p;
                match unwind_at(p) {
                    Some(next) => unwind = next,
                    None => break,
                }
            }
        }
        ranges.sort_unstable_by_key(|r| r.begin);
        ranges.dedup_by_key(|r| r.begin);
        Functions { ranges }
    }

    /// No ranges at all.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges.
    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    /// The range holding an RVA.
    pub fn range_of(&self, rva: u32) -> Option<&Range> {
        let i = self.ranges.partition_point(|r| r.begin <= rva);
        self.ranges.get(i.checked_sub(1)?).filter(|r| rva < r.end)
    }

    /// The region of the code at an RVA: its function (root and chained
    /// fragments), or, outside every range, the gap between the ranges
    /// around it within `[lo, hi)` (the section).
    pub fn region_of(&self, rva: u32, lo: u32, hi: u32) -> Region {
        if let Some(r) = self.range_of(rva) {
            let root = r.root;
            let mut ranges: Vec<(u32, u32)> = self
                .ranges
                .iter()
                .filter(|f| f.root == root)
                .map(|f| (f.begin, f.end))
                .collect();
            // The root first.
            ranges.sort_unstable_by_key(|&(b, _)| (b != root, b));
            if ranges.first().map(|r| r.0) != Some(root) {
                // A chain to a begin that is not an entry: the range alone.
                ranges = vec![(r.begin, r.end)];
            }
            return Region {
                entry: ranges[0].0,
                ranges,
                exact: true,
            };
        }
        let i = self.ranges.partition_point(|r| r.begin <= rva);
        let start = i
            .checked_sub(1)
            .and_then(|i| self.ranges.get(i))
            .map_or(lo, |r| r.end)
            .max(lo);
        let end = self.ranges.get(i).map_or(hi, |r| r.begin).min(hi);
        Region {
            entry: start,
            ranges: vec![(start, end.max(start))],
            exact: false,
        }
    }
}
