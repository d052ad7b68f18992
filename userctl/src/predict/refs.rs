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
    let span = hi.wrapping_sub(lo);
    let max_tail = tails.iter().copied().max().unwrap_or(0);
    // Every field's value v becomes `v + add + step * offset`, which must
    // fall in 0..=window for the field to be worth an exact look.
    let (add, step, window, tails) = match how {
        // t = field + 4 + tail + disp: the window is the widest tail's.
        Addressing::RipRelative => (
            code.rva
                .wrapping_add(4)
                .wrapping_sub(lo.wrapping_sub(max_tail)),
            1,
            span.wrapping_add(max_tail),
            tails,
        ),
        Addressing::Absolute(image_base) => (
            image_base.wrapping_neg().wrapping_sub(lo),
            0,
            span,
            &[0][..],
        ),
    };
    for_each_in_window(code.bytes, add, step, window, |off, value| {
        let field = code.rva.wrapping_add(off as u32);
        let base = match how {
            Addressing::RipRelative => field.wrapping_add(4).wrapping_add(value),
            Addressing::Absolute(image_base) => value.wrapping_sub(image_base),
        };
        for &k in tails {
            let t = base.wrapping_add(k);
            if t.wrapping_sub(lo) <= span && targets.binary_search(&t).is_ok() {
                out.push(Ref { field, target: t });
            }
        }
    });
    out
}

/// Offsets tested together by [`for_each_in_window`].
const LANES: usize = 16;

/// Calls `hit(offset, value)` for every 4-byte little-endian field of
/// `bytes` whose `value + add + step * offset` (wrapping) is at most
/// `window`. This is the scan over every byte of the code, so it tests 16
/// offsets at once without branches (the compiler makes vector code of
/// it), and looks at them one by one only when one of them is in.
fn for_each_in_window(
    bytes: &[u8],
    add: u32,
    step: u32,
    window: u32,
    mut hit: impl FnMut(usize, u32),
) {
    let fields = bytes.len().saturating_sub(3);
    let mut test = |off: usize| {
        if let Some(&[a, b, c, d]) = bytes.get(off..off + 4) {
            let v = u32::from_le_bytes([a, b, c, d]);
            let shifted = v
                .wrapping_add(add)
                .wrapping_add(step.wrapping_mul(off as u32));
            if shifted <= window {
                hit(off, v);
            }
        }
    };
    let mut start = 0;
    while start + LANES <= fields {
        let Some(chunk) = bytes.get(start..start + LANES + 3) else {
            break;
        };
        let base = add.wrapping_add(step.wrapping_mul(start as u32));
        // Offset r + 4k is the k-th u32 of the 16 bytes at r: four
        // unaligned 16-byte loads hold the 16 fields.
        let mut any = false;
        for r in 0..4 {
            for k in 0..4 {
                let j = r + 4 * k;
                let v = u32::from_le_bytes([chunk[j], chunk[j + 1], chunk[j + 2], chunk[j + 3]]);
                any |= v
                    .wrapping_add(base)
                    .wrapping_add(step.wrapping_mul(j as u32))
                    <= window;
            }
        }
        if any {
            for off in start..start + LANES {
                test(off);
            }
        }
        start += LANES;
    }
    for off in start..fields {
        test(off);
    }
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

    /// The definition, one field at a time.
    fn naive(code: &Code<'_>, targets: &[u32], tails: &[u32], how: Addressing) -> Vec<Ref> {
        let mut out = Vec::new();
        for (off, w) in code.bytes.windows(4).enumerate() {
            let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            let field = code.rva.wrapping_add(off as u32);
            let bases: Vec<u32> = match how {
                Addressing::RipRelative => tails
                    .iter()
                    .map(|&k| field.wrapping_add(4).wrapping_add(v).wrapping_add(k))
                    .collect(),
                Addressing::Absolute(base) => vec![v.wrapping_sub(base)],
            };
            for t in bases {
                if targets.contains(&t) {
                    out.push(Ref { field, target: t });
                }
            }
        }
        out
    }

    #[test]
    fn the_vector_scan_finds_exactly_what_the_definition_finds() {
        // Random code of every length around the 64-offset masks, with
        // fields planted to hit, near-miss and wrap around the targets.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..400u32 {
            let len = (next() % 300) as usize;
            let rva = 0x1000 + (next() % 0x4000) as u32;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let lo = if round % 7 == 0 {
                2
            } else {
                0x8000 + (next() % 0x1000) as u32
            };
            let mut targets: Vec<u32> = (0..1 + next() % 5)
                .map(|_| lo + (next() % 40) as u32)
                .collect();
            targets.sort_unstable();
            targets.dedup();
            let image_base = 0x40_0000u32;
            for _ in 0..len / 16 {
                if len < 4 {
                    break;
                }
                let off = (next() as usize) % (len - 3);
                let t = targets[(next() as usize) % targets.len()];
                let field = rva.wrapping_add(off as u32);
                let near = (next() % 9) as u32;
                let v = if next() % 2 == 0 {
                    t.wrapping_sub(field).wrapping_sub(4).wrapping_sub(near)
                } else {
                    t.wrapping_add(image_base)
                        .wrapping_add(near)
                        .wrapping_sub(4)
                };
                bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
            }
            let c = Code { rva, bytes: &bytes };
            for (tails, how) in [
                (&[0u32][..], Addressing::RipRelative),
                (&[0, 1, 2, 4][..], Addressing::RipRelative),
                (&[0][..], Addressing::Absolute(image_base)),
            ] {
                assert_eq!(
                    find(&c, &targets, tails, how),
                    naive(&c, &targets, tails, how),
                    "round {round}, {how:?}, tails {tails:?}"
                );
            }
        }
    }
}
