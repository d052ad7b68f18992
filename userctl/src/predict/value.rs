//! What the tracker knows of a value: which of its bits are constants
//! ([`Known`]), and, for a value the image does not fix, the symbolic term
//! it came from ([`Sym`]): a parameter of the function, or the contents of
//! the driver's own globals. A value is `(term & !known.mask) | known.bits`:
//! the known bits override the term's, which is exact for `mov`, `and`/`or`
//! with a constant, `bts`/`btr` and zero extension, the only operations
//! that keep a term.

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

    /// The bits of `self` a term fills in (`mask` clear), applied to a
    /// term's value.
    pub fn over(self, term: u64) -> u64 {
        (term & !self.mask) | self.bits
    }

    /// What two paths agree on: the bits known and equal on both.
    pub fn meet(self, o: Known) -> Known {
        let mask = self.mask & o.mask & !(self.bits ^ o.bits);
        Known {
            bits: self.bits & mask,
            mask,
        }
    }

    /// Bitwise and.
    pub fn and(self, o: Known) -> Known {
        // A bit is known when both are, or when either is a known zero.
        let mask = (self.mask & o.mask) | (self.mask & !self.bits) | (o.mask & !o.bits);
        Known {
            bits: self.bits & o.bits & mask,
            mask,
        }
    }

    /// Bitwise or.
    pub fn or(self, o: Known) -> Known {
        // A bit is known when both are, or when either is a known one.
        let mask = (self.mask & o.mask) | (self.mask & self.bits) | (o.mask & o.bits);
        Known {
            bits: (self.bits | o.bits) & mask,
            mask,
        }
    }

    /// Bitwise exclusive or.
    pub fn xor(self, o: Known) -> Known {
        let mask = self.mask & o.mask;
        Known {
            bits: (self.bits ^ o.bits) & mask,
            mask,
        }
    }

    /// Shift left by a constant within `width` bytes: the bits shifted in
    /// are known zeros.
    pub fn shl(self, n: u32, width: usize) -> Known {
        let m = width_mask(width);
        let n = shift_count(n, width);
        if n as usize >= width * 8 {
            return Known { bits: 0, mask: m };
        }
        Known {
            bits: (self.bits << n) & m,
            mask: ((self.mask << n) | ((1u64 << n) - 1)) & m,
        }
    }

    /// Logical shift right by a constant within `width` bytes: the bits
    /// shifted in are known zeros.
    pub fn shr(self, n: u32, width: usize) -> Known {
        let m = width_mask(width);
        let n = shift_count(n, width);
        if n as usize >= width * 8 {
            return Known { bits: 0, mask: m };
        }
        let high = !(m >> n) & m;
        Known {
            bits: (self.bits & m) >> n,
            mask: (((self.mask & m) >> n) | high) & m,
        }
    }

    /// Sets (`Some(true)`), clears (`Some(false)`) or flips (`None`) bit
    /// `n`: `bts`, `btr`, `btc`.
    pub fn bit(self, n: u32, set: Option<bool>) -> Known {
        let b = 1u64 << (n % 64);
        match set {
            Some(true) => Known {
                bits: self.bits | b,
                mask: self.mask | b,
            },
            Some(false) => Known {
                bits: self.bits & !b,
                mask: self.mask | b,
            },
            None => Known {
                bits: (self.bits ^ b) & self.mask,
                mask: self.mask,
            },
        }
    }

    /// Applies `f` when both operands are known over `width` bytes (carries
    /// make a partly known sum unknown).
    pub fn arith(self, o: Known, width: usize, f: impl Fn(u64, u64) -> u64) -> Known {
        let m = width_mask(width);
        match (self.value(m), o.value(m)) {
            (Some(a), Some(b)) => Known::constant(f(a, b)),
            _ => Known::UNKNOWN,
        }
    }
}

/// The shift count the processor uses: 6 bits for 64-bit operands, 5
/// otherwise.
fn shift_count(n: u32, width: usize) -> u32 {
    n & if width == 8 { 63 } else { 31 }
}

/// The mask of a value `bytes` wide.
pub fn width_mask(bytes: usize) -> u64 {
    match bytes {
        0 => 0,
        1..=7 => (1u64 << (bytes * 8)) - 1,
        _ => !0,
    }
}

/// Globals a term can be the or of, at most.
pub const MAX_GLOBALS: usize = 3;

/// The symbolic term of a value the code does not fix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Sym {
    /// None: the unknown bits are just unknown.
    #[default]
    None,
    /// Parameter `n` (zero-based) of the function starting at `entry`, as
    /// its caller passed it.
    Param {
        /// Which parameter.
        n: u8,
        /// Where the function starts.
        entry: u32,
    },
    /// The value a conditional move or select (`cmovne`, `csel` at RVA
    /// `at`, `width` bytes wide) chose, whole: kept only where the value
    /// is kept whole, so that judging both of its values judges this one.
    Choice {
        /// Where the choice is made.
        at: u32,
        /// Its destination's width in bytes.
        width: u8,
    },
    /// The bitwise or of the contents of up to [`MAX_GLOBALS`] of the
    /// driver's own globals (RVAs), each read `size` bytes wide.
    Globals {
        /// The globals' RVAs; the first `n` are used.
        rvas: [u32; MAX_GLOBALS],
        /// How many.
        n: u8,
        /// The width of each read, in bytes.
        size: u8,
    },
}

impl Sym {
    /// The contents of one global.
    pub fn global(rva: u32, size: usize) -> Sym {
        Sym::Globals {
            rvas: [rva, 0, 0],
            n: 1,
            size: size as u8,
        }
    }

    /// The globals of a term.
    pub fn globals(&self) -> &[u32] {
        match self {
            Sym::Globals { rvas, n, .. } => rvas.get(..usize::from(*n)).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The term of the low `bytes` of its value: a choice wider than that
    /// is no longer the value it chose.
    pub fn narrowed_to(self, bytes: usize) -> Sym {
        match self {
            Sym::Choice { width, .. } if usize::from(width) > bytes => Sym::None,
            s => s,
        }
    }

    /// The or of two terms, when it is one: two sets of globals of the
    /// same width.
    pub fn or(self, o: Sym) -> Sym {
        match (self, o) {
            (
                Sym::Globals { rvas, n, size },
                Sym::Globals {
                    rvas: r2,
                    n: n2,
                    size: s2,
                },
            ) if size == s2 && usize::from(n + n2) <= MAX_GLOBALS => {
                let mut all = rvas;
                for (k, r) in r2.iter().take(usize::from(n2)).enumerate() {
                    all[usize::from(n) + k] = *r;
                }
                Sym::Globals {
                    rvas: all,
                    n: n + n2,
                    size,
                }
            }
            _ => Sym::None,
        }
    }
}

/// Does a value equal the contents of the one global `sym` reads, because
/// it is the constant that `stores` (RVA, width, value: the constants this
/// path stored to globals, still there) says the global holds?
pub fn holds_global(stores: &[(u32, usize, u64)], value: Known, sym: Sym) -> bool {
    let Sym::Globals {
        rvas, n: 1, size, ..
    } = sym
    else {
        return false;
    };
    let size = usize::from(size);
    value.value(width_mask(size)).is_some_and(|v| {
        stores
            .iter()
            .any(|&(g, s, x)| g == rvas[0] && s == size && x == v)
    })
}

/// A value: its known bits and its term.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Val {
    /// The known bits.
    pub known: Known,
    /// The term the other bits come from.
    pub sym: Sym,
}

impl Val {
    /// Nothing known.
    pub const UNKNOWN: Val = Val {
        known: Known::UNKNOWN,
        sym: Sym::None,
    };

    /// A value with no term.
    pub fn known(known: Known) -> Val {
        Val {
            known,
            sym: Sym::None,
        }
    }

    /// A constant.
    pub fn constant(v: u64) -> Val {
        Val::known(Known::constant(v))
    }

    /// What two paths agree on.
    pub fn meet(self, o: Val) -> Val {
        Val {
            known: self.known.meet(o.known),
            sym: if self.sym == o.sym {
                self.sym
            } else {
                Sym::None
            },
        }
    }

    /// Bitwise and or or of two values `width` bytes wide: a term survives
    /// when the other operand is a constant over the width (and, for or,
    /// two sets of globals combine).
    pub fn logic(self, o: Val, or: bool, width: usize) -> Val {
        let m = width_mask(width);
        let known = if or {
            self.known.or(o.known)
        } else {
            self.known.and(o.known)
        };
        let sym = match (self.sym, o.sym) {
            (s, Sym::None) if o.known.value(m).is_some() => s,
            (Sym::None, s) if self.known.value(m).is_some() => s,
            (a, b) if or => a.or(b),
            _ => Sym::None,
        };
        // A term whose every bit is overridden says nothing more.
        let sym = if known.value(m).is_some() {
            Sym::None
        } else {
            sym
        };
        Val { known, sym }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn meet_keeps_what_both_paths_agree_on() {
        let a = Known::constant(0x4000_0010);
        let b = Known::constant(0x4000_0000);
        let m = a.meet(b);
        assert_eq!(m.value(0x4000_0000), Some(0x4000_0000));
        assert_eq!(m.value(0x10), None);
        assert_eq!(a.meet(a), a);
        assert_eq!(a.meet(Known::UNKNOWN), Known::UNKNOWN);
    }

    #[test]
    fn shifts_and_bit_operations_keep_known_bits() {
        // shl of an unknown value: the low bits become known zeros.
        let s = Known::UNKNOWN.shl(4, 4);
        assert_eq!(s.value(0xF), Some(0));
        assert_eq!(s.value(0x10), None);
        assert_eq!(
            Known::constant(0x10).shl(26, 4).value(0xFFFF_FFFF),
            Some(0x4000_0000)
        );
        assert_eq!(
            Known::constant(0x80).shr(3, 4).value(0xFFFF_FFFF),
            Some(0x10)
        );
        // shr of an unknown 32-bit value by 31: only bit 0 unknown.
        assert_eq!(Known::UNKNOWN.shr(31, 4).value(0xFFFF_FFFE), Some(0));
        // bts ecx, 0Ah on an unknown value: bit 10 known set.
        let b = Known::UNKNOWN.bit(10, Some(true));
        assert_eq!(b.value(0x400), Some(0x400));
        assert_eq!(
            Known::constant(0x400).bit(10, Some(false)).value(!0),
            Some(0)
        );
        assert_eq!(Known::constant(0x400).bit(10, None).value(!0), Some(0));
    }

    #[test]
    fn terms_survive_constant_logic_and_combine_globals() {
        let g = Val {
            known: Known {
                bits: 0,
                mask: 0xFFFF_FFFF_0000_0000,
            },
            sym: Sym::global(0x12138, 4),
        };
        let with_bits = g.logic(Val::constant(0x10), true, 4);
        assert_eq!(with_bits.sym, Sym::global(0x12138, 4));
        assert_eq!(with_bits.known.over(0x4000_0000), 0x4000_0010);
        let both = g.logic(
            Val {
                known: Known::UNKNOWN,
                sym: Sym::global(0x12134, 4),
            },
            true,
            4,
        );
        assert_eq!(both.sym.globals(), [0x12138, 0x12134]);
        // And with an unknown non-term: the term is lost.
        assert_eq!(g.logic(Val::UNKNOWN, false, 4).sym, Sym::None);
        // Or with all ones: the term no longer matters.
        assert_eq!(g.logic(Val::constant(!0), true, 8).sym, Sym::None);
        assert_eq!(Val::constant(1).meet(Val::constant(1)), Val::constant(1));
        assert_eq!(g.meet(Val::constant(0)).sym, Sym::None);
    }
}
