//! The tracked stack of the x86 analysis: what is known of each byte, by
//! offset from the analysis' stack base, the symbolic terms stored there
//! (a parameter, a global's contents), and who wrote each byte, for the
//! reasons. [`super::track::State`] owns one and says where rsp is.

use super::stackmap::StackMap;
use super::track::Origin;
use super::value::{Known, Sym, Val};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StackByte {
    bits: u8,
    mask: u8,
    origin: Origin,
}

/// The stack as far as known.
#[derive(Debug, PartialEq, Eq)]
pub struct Stack {
    /// Known bytes, by offset from the base.
    bytes: StackMap<StackByte>,
    /// Terms stored: offset -> (width, term).
    syms: StackMap<(u8, Sym)>,
    /// Where the stack was last forgotten wholesale.
    origin: Origin,
}

impl Clone for Stack {
    fn clone(&self) -> Self {
        Stack {
            bytes: self.bytes.clone(),
            syms: self.syms.clone(),
            origin: self.origin,
        }
    }

    fn clone_from(&mut self, source: &Self) {
        self.bytes.clone_from(&source.bytes);
        self.syms.clone_from(&source.syms);
        self.origin = source.origin;
    }
}

impl Default for Stack {
    fn default() -> Self {
        Stack {
            bytes: StackMap::new(),
            syms: StackMap::new(),
            origin: Origin::BeforeBlock,
        }
    }
}

impl Stack {
    /// Where the stack was last forgotten wholesale.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Forgets everything: `origin` wrote it all.
    pub fn forget(&mut self, origin: Origin) {
        self.bytes.clear();
        self.syms.clear();
        self.origin = origin;
    }

    /// Is anything known?
    pub fn is_empty(&self) -> bool {
        self.bytes.iter().next().is_none() && self.syms.iter().next().is_none()
    }

    /// Drops the terms stored over any of the bytes `off..off+len`.
    fn drop_syms(&mut self, off: i64, len: usize) {
        let end = off.saturating_add(len as i64);
        self.syms
            .retain(|k, (w, _)| k >= end || k.saturating_add(i64::from(*w)) <= off);
    }

    /// The bytes `off..off+len` are unknown, written at `at`.
    pub fn forget_range(&mut self, off: i64, len: usize, at: u32) {
        let end = off.saturating_add(len as i64);
        self.bytes.remove_range(off, end);
        self.drop_syms(off, len);
        // Bytes not in the map read as unknown, written here.
        for k in off..end.min(off + 64) {
            self.bytes.insert(
                k,
                StackByte {
                    bits: 0,
                    mask: 0,
                    origin: Origin::At(at),
                },
            );
        }
    }

    /// Drops what is below an offset (below rsp: free to be overwritten).
    pub fn drop_below(&mut self, off: i64) {
        self.bytes.drop_below(off);
        self.syms.drop_below(off);
    }

    /// Makes room for `n` terms (a function's stack parameters).
    pub fn reserve_terms(&mut self, n: usize) {
        self.syms.reserve(n);
    }

    /// Puts a term at an offset, `len` bytes wide (a parameter at a
    /// function's entry).
    pub fn put_term(&mut self, off: i64, len: usize, sym: Sym) {
        self.syms.insert(off, (len as u8, sym));
    }

    /// The `len` bytes at `off`, and who wrote them: the first byte not
    /// fully known, or for a known value its first byte's writer.
    pub fn load(&self, off: i64, len: usize) -> (Val, Origin) {
        let mut k = Known::UNKNOWN;
        let mut origin = None;
        let mut writer = None;
        for i in 0..len.min(8) {
            let Some(b) = self.bytes.get(off.wrapping_add(i as i64)) else {
                origin.get_or_insert(self.origin);
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
        let sym = match self.syms.get(off) {
            Some(&(w, s)) if usize::from(w) >= len && len >= 4 => s,
            _ => Sym::None,
        };
        (Val { known: k, sym }, origin.unwrap_or(Origin::BeforeBlock))
    }

    /// Stores `len` bytes of a value at `off`, written at `at`.
    pub fn store(&mut self, off: i64, len: usize, v: Val, at: u32) {
        self.drop_syms(off, len);
        for i in 0..len.min(8) {
            self.bytes.insert(
                off.wrapping_add(i as i64),
                StackByte {
                    bits: (v.known.bits >> (i * 8)) as u8,
                    mask: (v.known.mask >> (i * 8)) as u8,
                    origin: Origin::At(at),
                },
            );
        }
        if len > 8 {
            self.forget_range(off.wrapping_add(8), len - 8, at);
        } else if v.sym.narrowed_to(len) != Sym::None && len >= 4 {
            self.syms.insert(off, (len as u8, v.sym));
        }
    }

    /// Says who wrote the bytes `off..off+len` (a register's value stored
    /// there comes from where the register got it).
    pub fn set_origin(&mut self, off: i64, len: usize, origin: Origin) {
        for k in 0..len.min(8) {
            if let Some(b) = self.bytes.get_mut(off.wrapping_add(k as i64)) {
                b.origin = origin;
            }
        }
    }

    /// Keeps what this path and another agree on, at the block at
    /// `block`; true if anything changed.
    pub fn meet(&mut self, o: &Stack, block: u32) -> bool {
        let mut changed = false;
        self.bytes.retain(|k, a| {
            let Some(b) = o.bytes.get(k) else {
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
        self.syms.retain(|k, v| {
            let keep = o.syms.get(k) == Some(v);
            changed |= !keep;
            keep
        });
        if self.origin != o.origin {
            let merged = Origin::Merge(block);
            changed |= self.origin != merged;
            self.origin = merged;
        }
        changed
    }
}
