//! x64 unwind data, as a Windows stack walker reads it: the UNWIND_INFO a
//! RUNTIME_FUNCTION points to, its unwind codes, and the stack a function's
//! frame takes, which is what the tests on civ.sys measure.
//!
//! The submodules read a built image ([`image`]), find its functions
//! ([`code`]) and who calls whom ([`calls`]), model the unwinder's view of
//! each instruction ([`walk`]), add frames up along calls ([`stack`]) and
//! name functions from a PDB ([`names`]); [`Analysis`] holds them for one
//! image file.

pub mod calls;
pub mod code;
pub mod image;
pub mod names;
pub mod stack;
pub mod walk;

use std::path::{Path, PathBuf};

/// The fixture driver with frames and calls of known shape
/// (tests/fixtures/rust/unwind_probe.rs), built with its PDB.
pub fn probe_fixture() -> PathBuf {
    crate::build_rust("unwind_probe.sys", "unwind_probe.rs", &[], &[], |_| Ok(()))
        .unwrap_or_else(|e| panic!("cannot build fixture unwind_probe.sys: {e}"))
}

/// A built image, read for the analyses: its functions, its calls, and
/// its PDB's names when the PDB beside it is the one it was linked with.
pub struct Analysis {
    /// The image.
    pub image: image::Image<'static>,
    /// Its functions.
    pub code: code::Code,
    /// Its calls and tail jumps.
    pub calls: calls::Calls,
    /// Names from its PDB (empty without one).
    pub names: names::Names,
    /// Why names are missing or partial, if they are.
    pub names_note: Option<String>,
}

impl Analysis {
    /// Reads the image at `path`, and `path` with extension `.pdb` for
    /// names.
    pub fn of(path: &Path) -> Result<Analysis, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // The analyses borrow the bytes for the rest of the (test) process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let image = image::Image::parse(bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let code = code::Code::read(&image);
        let calls = calls::Calls::read(&image, &code);
        let pdb = path.with_extension("pdb");
        let (names, names_note) = match image.pdb_guid() {
            None => (
                names::Names::default(),
                Some("the image names no PDB".into()),
            ),
            Some(guid) => match names::Names::read(&pdb, guid) {
                Err(e) => (names::Names::default(), Some(e)),
                // Without debug info for the image's own code (the
                // precompiled core library brings some of its own), the
                // entry point has only a public symbol.
                Ok(n) if !n.symbol_before(image.entry).is_some_and(|s| s.2) => (
                    n,
                    Some(format!(
                        "{} has no debug info for the image's own code: functions not \
                         exported are named by RVA; build with \
                         `--config 'profile.release.debug=\"line-tables-only\"'` for all \
                         names (the code is the same)",
                        pdb.display()
                    )),
                ),
                Ok(n) => (n, None),
            },
        };
        Ok(Analysis {
            image,
            code,
            calls,
            names,
            names_note,
        })
    }

    /// civ.sys as the WDM build makes it ([`crate::wine::civ_sys`]).
    pub fn of_civ_sys() -> Analysis {
        let path = crate::wine::civ_sys();
        Analysis::of(&path).unwrap_or_else(|e| panic!("cannot analyse civ.sys: {e}"))
    }

    /// A function's or an instruction's name: its procedure (`name` or
    /// `name+0x12`); else the public symbol before it, if no other
    /// function starts in between that something calls or whose address
    /// is taken (code reached only by jumps, such as a stub's slow path,
    /// is part of the symbol before it); else `fn_<rva>`.
    pub fn name(&self, rva: u32) -> String {
        match self.names.symbol_before(rva) {
            Some((start, name, _)) if start == rva => name.to_string(),
            Some((start, name, true)) => format!("{name}+{:#x}", rva - start),
            Some((start, name, false))
                if !self
                    .code
                    .functions
                    .range(start + 1..=rva)
                    .any(|(f, _)| self.calls.is_entered_directly(*f)) =>
            {
                format!("{name}+{:#x}", rva - start)
            }
            _ => format!("fn_{rva:x}"),
        }
    }
}

/// UNW_FLAG_CHAININFO: the codes continue in the RUNTIME_FUNCTION that
/// follows them.
pub const UNW_FLAG_CHAININFO: u8 = 0x4;
/// UNW_FLAG_EHANDLER | UNW_FLAG_UHANDLER: an exception handler RVA follows.
const UNW_FLAG_HANDLER: u8 = 0x3;

/// One RUNTIME_FUNCTION: a code range and its unwind information.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeFunction {
    /// First byte of the range (RVA).
    pub begin: u32,
    /// One past the last byte (RVA).
    pub end: u32,
    /// The UNWIND_INFO's RVA.
    pub unwind: u32,
}

impl RuntimeFunction {
    /// Reads the 12-byte record.
    pub fn parse(bytes: &[u8]) -> Option<RuntimeFunction> {
        Some(RuntimeFunction {
            begin: u32_at(bytes, 0)?,
            end: u32_at(bytes, 4)?,
            unwind: u32_at(bytes, 8)?,
        })
    }

    /// Does the range hold `rva`?
    pub fn contains(&self, rva: u32) -> bool {
        (self.begin..self.end).contains(&rva)
    }
}

/// What one unwind code records of the prolog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnwindOp {
    /// `push reg` (UWOP_PUSH_NONVOL).
    PushNonvol { reg: u8 },
    /// `sub rsp, size`, 136 bytes and up (UWOP_ALLOC_LARGE).
    AllocLarge { size: u32 },
    /// `sub rsp, size`, 8 to 128 bytes (UWOP_ALLOC_SMALL).
    AllocSmall { size: u32 },
    /// `lea frame_reg, [rsp + frame_offset]` (UWOP_SET_FPREG).
    SetFpreg,
    /// `mov [rsp + offset], reg` (UWOP_SAVE_NONVOL, _FAR).
    SaveNonvol { reg: u8, offset: u32 },
    /// `movaps [rsp + offset], xmm` (UWOP_SAVE_XMM128, _FAR).
    SaveXmm128 { reg: u8, offset: u32 },
    /// The processor's interrupt frame (UWOP_PUSH_MACHFRAME), with or
    /// without an error code.
    PushMachframe { error_code: bool },
    /// An epilog's place (UWOP_EPILOG, version 2 only): no stack effect.
    Epilog,
}

impl UnwindOp {
    /// The bytes this operation puts on the stack.
    pub fn stack_bytes(self) -> u32 {
        match self {
            UnwindOp::PushNonvol { .. } => 8,
            UnwindOp::AllocLarge { size } | UnwindOp::AllocSmall { size } => size,
            UnwindOp::PushMachframe { error_code } => 40 + if error_code { 8 } else { 0 },
            UnwindOp::SetFpreg
            | UnwindOp::SaveNonvol { .. }
            | UnwindOp::SaveXmm128 { .. }
            | UnwindOp::Epilog => 0,
        }
    }
}

/// An unwind code: the operation, and the prolog offset just past the
/// instruction it describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnwindCode {
    /// Offset from the function's start to the end of the instruction.
    pub prolog_offset: u8,
    /// What the instruction did.
    pub op: UnwindOp,
}

/// A parsed UNWIND_INFO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnwindInfo {
    /// 1 or 2.
    pub version: u8,
    /// UNW_FLAG_* bits.
    pub flags: u8,
    /// Bytes of prolog from the range's start.
    pub prolog_size: u8,
    /// The frame register (0 if none).
    pub frame_register: u8,
    /// Its offset from RSP, in bytes (a multiple of 16).
    pub frame_offset: u32,
    /// The codes, in the order stored (the prolog's last instruction first).
    pub codes: Vec<UnwindCode>,
    /// The RUNTIME_FUNCTION the codes continue in (UNW_FLAG_CHAININFO).
    pub chained: Option<RuntimeFunction>,
}

/// Why unwind information could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnwindError {
    /// The bytes end before the structure does.
    Truncated,
    /// A version other than 1 and 2.
    Version(u8),
    /// An operation code the version does not define.
    BadOp { index: usize, op: u8 },
    /// A chain of UNW_FLAG_CHAININFO that does not end.
    ChainTooLong,
    /// The RVA lies outside the image.
    Unmapped(u32),
}

impl std::fmt::Display for UnwindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnwindError::Truncated => write!(f, "unwind info truncated"),
            UnwindError::Version(v) => write!(f, "unwind info version {v} (1 or 2 expected)"),
            UnwindError::BadOp { index, op } => write!(f, "unwind code {index}: unknown op {op}"),
            UnwindError::ChainTooLong => write!(f, "chained unwind info does not end"),
            UnwindError::Unmapped(rva) => write!(f, "unwind info at rva {rva:#x} is not mapped"),
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|x| u16::from_le_bytes([x[0], x[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
}

/// Parses an UNWIND_INFO from `bytes` (which may run on past its end).
pub fn parse_unwind_info(bytes: &[u8]) -> Result<UnwindInfo, UnwindError> {
    let header = bytes.get(..4).ok_or(UnwindError::Truncated)?;
    let version = header[0] & 7;
    let flags = header[0] >> 3;
    if version != 1 && version != 2 {
        return Err(UnwindError::Version(version));
    }
    let count = usize::from(header[2]);
    let slots = bytes.get(4..4 + 2 * count).ok_or(UnwindError::Truncated)?;
    // A code's extra slots hold its operand: slot `i` is bytes 2i..2i+2.
    let slot16 = |i: usize| u16_at(slots, 2 * i).ok_or(UnwindError::Truncated);
    let slot32 = |i: usize| u32_at(slots, 2 * i).ok_or(UnwindError::Truncated);
    let mut codes = Vec::new();
    let mut i = 0;
    while i < count {
        let prolog_offset = slots[2 * i];
        let op = slots[2 * i + 1] & 0xF;
        let info = slots[2 * i + 1] >> 4;
        let (op, used) = match op {
            0 => (UnwindOp::PushNonvol { reg: info }, 1),
            1 if info == 0 => (
                UnwindOp::AllocLarge {
                    size: u32::from(slot16(i + 1)?) * 8,
                },
                2,
            ),
            1 if info == 1 => (
                UnwindOp::AllocLarge {
                    size: slot32(i + 1)?,
                },
                3,
            ),
            2 => (
                UnwindOp::AllocSmall {
                    size: u32::from(info) * 8 + 8,
                },
                1,
            ),
            3 => (UnwindOp::SetFpreg, 1),
            4 => (
                UnwindOp::SaveNonvol {
                    reg: info,
                    offset: u32::from(slot16(i + 1)?) * 8,
                },
                2,
            ),
            5 => (
                UnwindOp::SaveNonvol {
                    reg: info,
                    offset: slot32(i + 1)?,
                },
                3,
            ),
            6 if version == 2 => (UnwindOp::Epilog, 1),
            8 => (
                UnwindOp::SaveXmm128 {
                    reg: info,
                    offset: u32::from(slot16(i + 1)?) * 16,
                },
                2,
            ),
            9 => (
                UnwindOp::SaveXmm128 {
                    reg: info,
                    offset: slot32(i + 1)?,
                },
                3,
            ),
            10 if info <= 1 => (
                UnwindOp::PushMachframe {
                    error_code: info == 1,
                },
                1,
            ),
            _ => return Err(UnwindError::BadOp { index: i, op }),
        };
        codes.push(UnwindCode { prolog_offset, op });
        i += used;
    }
    // What follows the codes starts on a 4-byte boundary (an even count).
    let tail = 4 + 2 * (count + (count & 1));
    let chained = if flags & UNW_FLAG_CHAININFO != 0 {
        Some(
            bytes
                .get(tail..)
                .and_then(RuntimeFunction::parse)
                .ok_or(UnwindError::Truncated)?,
        )
    } else {
        if flags & UNW_FLAG_HANDLER != 0 {
            u32_at(bytes, tail).ok_or(UnwindError::Truncated)?;
        }
        None
    };
    Ok(UnwindInfo {
        version,
        flags,
        prolog_size: header[1],
        frame_register: header[3] & 0xF,
        frame_offset: u32::from(header[3] >> 4) * 16,
        codes,
        chained,
    })
}

impl UnwindInfo {
    /// The bytes this info's codes put on the stack (the chained infos'
    /// not included).
    pub fn stack_bytes(&self) -> u32 {
        // Saturating: sizes come from the image, which may be corrupt.
        self.codes
            .iter()
            .fold(0, |n, c| n.saturating_add(c.op.stack_bytes()))
    }

    /// Does the function run on an interrupt's machine frame (instead of
    /// being called)?
    pub fn has_machine_frame(&self) -> bool {
        self.codes
            .iter()
            .any(|c| matches!(c.op, UnwindOp::PushMachframe { .. }))
    }
}

/// A function's unwind information with its chain followed: the infos
/// from the function's own entry to the primary one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnwindChain {
    /// The infos, the entry's own first.
    pub infos: Vec<UnwindInfo>,
    /// The primary RUNTIME_FUNCTION (the last of the chain), or the entry
    /// itself when it has no chain.
    pub primary: RuntimeFunction,
}

/// Chains deeper than this are taken as a loop.
const MAX_CHAIN: usize = 32;

/// Reads the unwind information of `entry` and of every RUNTIME_FUNCTION
/// it is chained to. `read` gives the image's bytes from an RVA on.
pub fn read_chain<'a>(
    entry: RuntimeFunction,
    read: impl Fn(u32) -> Option<&'a [u8]>,
) -> Result<UnwindChain, UnwindError> {
    let mut infos = Vec::new();
    let mut current = entry;
    loop {
        if infos.len() == MAX_CHAIN {
            return Err(UnwindError::ChainTooLong);
        }
        // Bit 0 set: the field points at another RUNTIME_FUNCTION (an
        // older form of chaining).
        if current.unwind & 1 != 0 {
            let at = current.unwind & !1;
            current = read(at)
                .and_then(RuntimeFunction::parse)
                .ok_or(UnwindError::Unmapped(at))?;
            infos.push(UnwindInfo {
                version: 1,
                flags: UNW_FLAG_CHAININFO,
                prolog_size: 0,
                frame_register: 0,
                frame_offset: 0,
                codes: Vec::new(),
                chained: Some(current),
            });
            continue;
        }
        let bytes = read(current.unwind).ok_or(UnwindError::Unmapped(current.unwind))?;
        let info = parse_unwind_info(bytes)?;
        let next = info.chained;
        infos.push(info);
        match next {
            Some(n) => current = n,
            None => {
                return Ok(UnwindChain {
                    infos,
                    primary: current,
                });
            }
        }
    }
}

impl UnwindChain {
    /// The bytes of stack the function's frame takes: every push and
    /// allocation of the chain, plus the return address its caller's
    /// `call` pushed (or the machine frame, for an interrupt routine).
    pub fn frame_bytes(&self) -> u32 {
        let own = self
            .infos
            .iter()
            .fold(0u32, |n, i| n.saturating_add(i.stack_bytes()));
        let entry = if self.infos.iter().any(UnwindInfo::has_machine_frame) {
            0
        } else {
            8
        };
        own.saturating_add(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An UNWIND_INFO: version 1, `flags`, prolog size, frame register
    /// and offset (in 16s), then the code slots, padded to an even count.
    fn info(flags: u8, prolog: u8, frame: u8, slots: &[[u8; 2]], tail: &[u8]) -> Vec<u8> {
        let mut b = vec![1 | (flags << 3), prolog, slots.len() as u8, frame];
        for s in slots {
            b.extend_from_slice(s);
        }
        if slots.len() % 2 == 1 {
            b.extend_from_slice(&[0, 0]);
        }
        b.extend_from_slice(tail);
        b
    }

    fn code(offset: u8, op: u8, info: u8) -> [u8; 2] {
        [offset, op | (info << 4)]
    }

    /// The frame of a function whose unwind info is at the start of `b`.
    fn frame_of(b: &[u8]) -> u32 {
        let f = RuntimeFunction {
            begin: 0,
            end: 16,
            unwind: 0,
        };
        read_chain(f, |rva| b.get(rva as usize..))
            .unwrap()
            .frame_bytes()
    }

    #[test]
    fn pushes_and_a_small_alloc() {
        // push rbx (1 byte); push rsi (1); sub rsp, 0x28 (4).
        let b = info(0, 6, 0, &[code(6, 2, 4), code(2, 0, 6), code(1, 0, 3)], &[]);
        let i = parse_unwind_info(&b).unwrap();
        assert_eq!(
            i.codes,
            [
                UnwindCode {
                    prolog_offset: 6,
                    op: UnwindOp::AllocSmall { size: 40 }
                },
                UnwindCode {
                    prolog_offset: 2,
                    op: UnwindOp::PushNonvol { reg: 6 }
                },
                UnwindCode {
                    prolog_offset: 1,
                    op: UnwindOp::PushNonvol { reg: 3 }
                },
            ]
        );
        assert_eq!(i.prolog_size, 6);
        assert_eq!(i.stack_bytes(), 56);
        assert_eq!(frame_of(&b), 64);
    }

    #[test]
    fn large_allocs_in_both_encodings() {
        // info 0: size / 8 in one slot; info 1: the size in two slots.
        let b = info(
            0,
            20,
            0,
            &[
                code(20, 1, 0),
                [0x22, 0x06], // 0x622 * 8 = 12,560
                code(9, 1, 1),
                [0x08, 0x00],
                [0x01, 0x00], // 0x10008 = 65,544
            ],
            &[],
        );
        let i = parse_unwind_info(&b).unwrap();
        assert_eq!(
            i.codes.iter().map(|c| c.op).collect::<Vec<_>>(),
            [
                UnwindOp::AllocLarge { size: 12_560 },
                UnwindOp::AllocLarge { size: 65_544 }
            ]
        );
        assert_eq!(i.stack_bytes(), 12_560 + 65_544);
    }

    #[test]
    fn a_frame_register_and_saves_take_no_stack() {
        // push rbp; sub rsp, 0x40; lea rbp, [rsp + 0x20]; mov [rsp+0x48],
        // rdi; movaps [rsp + 0x30], xmm6.
        let b = info(
            0,
            22,
            5 | (2 << 4),
            &[
                code(22, 8, 6),
                [3, 0], // 3 * 16
                code(17, 4, 7),
                [9, 0], // 9 * 8
                code(12, 3, 0),
                code(7, 2, 7),
                code(1, 0, 5),
            ],
            &[],
        );
        let i = parse_unwind_info(&b).unwrap();
        assert_eq!(i.frame_register, 5);
        assert_eq!(i.frame_offset, 32);
        assert_eq!(
            i.codes.iter().map(|c| c.op).collect::<Vec<_>>(),
            [
                UnwindOp::SaveXmm128 { reg: 6, offset: 48 },
                UnwindOp::SaveNonvol { reg: 7, offset: 72 },
                UnwindOp::SetFpreg,
                UnwindOp::AllocSmall { size: 64 },
                UnwindOp::PushNonvol { reg: 5 },
            ]
        );
        assert_eq!(i.stack_bytes(), 72);
    }

    #[test]
    fn chained_info_is_followed_and_summed() {
        // At 0x00: the primary function's info (push rbx; sub rsp, 0x20).
        // At 0x20: a part's info (push rdi), chained to the primary range
        // 0x1000..0x1040 whose info is at 0x00.
        let mut image = info(0, 5, 0, &[code(5, 2, 3), code(1, 0, 3)], &[]);
        image.resize(0x20, 0xCC);
        let mut chain_tail = Vec::new();
        for v in [0x1000u32, 0x1040, 0x00] {
            chain_tail.extend_from_slice(&v.to_le_bytes());
        }
        image.extend(info(
            UNW_FLAG_CHAININFO,
            1,
            0,
            &[code(1, 0, 7)],
            &chain_tail,
        ));
        let part = RuntimeFunction {
            begin: 0x1100,
            end: 0x1120,
            unwind: 0x20,
        };
        let chain = read_chain(part, |rva| image.get(rva as usize..)).unwrap();
        assert_eq!(chain.infos.len(), 2);
        assert_eq!(
            chain.primary,
            RuntimeFunction {
                begin: 0x1000,
                end: 0x1040,
                unwind: 0
            }
        );
        assert_eq!(chain.infos[0].chained, Some(chain.primary));
        // 8 (push rdi) + 8 (push rbx) + 32 + the return address.
        assert_eq!(chain.frame_bytes(), 56);
    }

    #[test]
    fn a_machine_frame_replaces_the_return_address() {
        let b = info(0, 0, 0, &[code(0, 10, 1)], &[]);
        assert_eq!(frame_of(&b), 48);
    }

    #[test]
    fn bad_info_is_an_error_not_a_panic() {
        assert_eq!(parse_unwind_info(&[1, 0]), Err(UnwindError::Truncated));
        assert_eq!(
            parse_unwind_info(&[3, 0, 0, 0]),
            Err(UnwindError::Version(3))
        );
        // ALLOC_LARGE whose operand slot is missing.
        assert_eq!(
            parse_unwind_info(&[1, 4, 1, 0, 4, 0x01]),
            Err(UnwindError::Truncated)
        );
        // Op 7 is undefined; op 6 only exists in version 2.
        assert_eq!(
            parse_unwind_info(&[1, 4, 1, 0, 4, 0x07, 0, 0]),
            Err(UnwindError::BadOp { index: 0, op: 7 })
        );
        assert_eq!(
            parse_unwind_info(&[1, 4, 1, 0, 4, 0x06, 0, 0]),
            Err(UnwindError::BadOp { index: 0, op: 6 })
        );
        assert!(parse_unwind_info(&[2, 4, 1, 0, 4, 0x16, 0, 0]).is_ok());
        // Chain info promised but absent.
        assert_eq!(
            parse_unwind_info(&[1 | (UNW_FLAG_CHAININFO << 3), 0, 0, 0]),
            Err(UnwindError::Truncated)
        );
        // A chain that loops back on itself.
        let mut looped = info(UNW_FLAG_CHAININFO, 0, 0, &[], &[]);
        for v in [0u32, 4, 0] {
            looped.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(
            read_chain(
                RuntimeFunction {
                    begin: 0,
                    end: 4,
                    unwind: 0
                },
                |rva| looped.get(rva as usize..)
            ),
            Err(UnwindError::ChainTooLong)
        );
    }
}
