//! Cheap byte scans that find the code worth decoding: every 4-byte field
//! of the code that, read as an x64 `rip`-relative displacement (or, in
//! x86 code, as an absolute address), points at one of a few addresses:
//! the hooked IAT slots, an import thunk, a function, a global. An
//! instruction that calls, loads or stores through such an address has
//! one; most fields found are not instructions at all, which only costs
//! the decoding of a function that turns out not to matter.

use super::sweep::Code;

/// How a field's value becomes the address it points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// x64: the field's end, plus this many bytes of immediate that may
    /// follow it, plus the field (a signed displacement).
    RipRelative,
    /// x86: the field, less the image base (its low 32 bits).
    Absolute(u32),
}

/// A field found: its RVA and the target it points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ref {
    /// RVA of the 4-byte field.
    pub field: u32,
    /// The target.
    pub target: u32,
}

/// Fields in `code` pointing at any of `targets` (sorted). For
/// `rip`-relative fields, an instruction may carry an immediate after its
/// displacement: `tails` are the immediate sizes tried (`[0]` for calls,
/// jumps and loads; `[0, 1, 2, 4]` for any store).
pub fn find(code: &Code<'_>, targets: &[u32], tails: &[u32], how: Addressing) -> Vec<Ref> {
    let mut out = Vec::new();
    let (Some(&lo), Some(&hi)) = (targets.first(), targets.last()) else {
        return out;
    };
    let bytes = code.bytes;
    if bytes.len() < 4 {
        return out;
    }
    let span = hi.wrapping_sub(lo);
    let max_tail = tails.iter().copied().max().unwrap_or(0);
    let mut check = |field: u32, t: u32| {
        if t.wrapping_sub(lo) <= span && targets.binary_search(&t).is_ok() {
            out.push(Ref { field, target: t });
        }
    };
    match how {
        Addressing::RipRelative => {
            // t = field + 4 + tail + disp; the quick test below is on the
            // widest window, the exact one per tail.
            let wide_lo = lo.wrapping_sub(max_tail);
            let wide_span = span.wrapping_add(max_tail);
            for (off, w) in bytes.windows(4).enumerate() {
                let disp = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                let field = code.rva.wrapping_add(off as u32);
                let base = field.wrapping_add(4).wrapping_add(disp);
                if base.wrapping_sub(wide_lo) > wide_span {
                    continue;
                }
                for &k in tails {
                    check(field, base.wrapping_add(k));
                }
            }
        }
        Addressing::Absolute(image_base) => {
            for (off, w) in bytes.windows(4).enumerate() {
                let va = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                check(
                    code.rva.wrapping_add(off as u32),
                    va.wrapping_sub(image_base),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rip_relative_and_absolute_references() {
        // 1000: call [rip+0FFAh] -> 2000 ; 1006: mov dword ptr [rip+0FF0h], 200h
        //   (the field at 1008, the immediate after it: 1008+4+4+0FF0h = 2000)
        let mut code = vec![0xFF, 0x15, 0xFA, 0x0F, 0x00, 0x00];
        code.extend_from_slice(&[0xC7, 0x05, 0xF0, 0x0F, 0, 0, 0, 2, 0, 0]);
        let c = Code {
            rva: 0x1000,
            bytes: &code,
        };
        let calls = find(&c, &[0x2000], &[0], Addressing::RipRelative);
        assert_eq!(
            calls,
            [Ref {
                field: 0x1002,
                target: 0x2000
            }]
        );
        let stores = find(&c, &[0x2000], &[0, 1, 2, 4], Addressing::RipRelative);
        assert!(stores.contains(&Ref {
            field: 0x1008,
            target: 0x2000
        }));
        // x86: call dword ptr [402000h], image base 400000h.
        let x86 = [0xFF, 0x15, 0x00, 0x20, 0x40, 0x00];
        let c = Code {
            rva: 0x1000,
            bytes: &x86,
        };
        let refs = find(&c, &[0x2000], &[0], Addressing::Absolute(0x40_0000));
        assert_eq!(
            refs,
            [Ref {
                field: 0x1002,
                target: 0x2000
            }]
        );
        assert!(find(&c, &[], &[0], Addressing::RipRelative).is_empty());
        assert!(
            find(
                &Code {
                    rva: 0,
                    bytes: &[1, 2]
                },
                &[5],
                &[0],
                Addressing::RipRelative
            )
            .is_empty()
        );
    }
}
