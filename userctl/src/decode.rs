//! `civctl decode`: what a bug check 0xC4 code-integrity violation says, in
//! words, with the fix. Arguments are hex as WinDbg prints them (`0x`
//! optional).

use civ_engine::check;
use civ_engine::code::{BUGCHECK_DRIVER_VERIFIER_DETECTED_VIOLATION, Code};
use civ_engine::names::{PoolFlagsName, PoolTypeName, PriorityName, ProtectionName, TagName};
use serde::Serialize;

/// A decoded bug check.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Decoded {
    /// Arg1, e.g. `0x2000`.
    pub code: String,
    /// What it means.
    pub title: &'static str,
    /// The four arguments, each with what it is.
    pub arguments: Vec<Argument>,
    /// How to fix the driver.
    pub fix: &'static str,
}

/// One argument of the bug check.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Argument {
    /// Its value.
    pub value: u64,
    /// What it is, in words.
    pub meaning: String,
}

/// Why decoding failed.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// An argument is not a hex number.
    NotHex(String),
    /// The bug check is not 0xC4.
    NotC4(u64),
    /// Arg1 is not a code-integrity code.
    NotCodeIntegrity(u64),
    /// Wrong number of values.
    Count(usize),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::NotHex(s) => write!(f, "'{s}' is not a hexadecimal number"),
            DecodeError::NotC4(c) => write!(
                f,
                "bug check {c:#x} is not 0xC4 DRIVER_VERIFIER_DETECTED_VIOLATION; civ decodes only 0xC4"
            ),
            DecodeError::NotCodeIntegrity(a) => write!(
                f,
                "Arg1 {a:#x} is not a code integrity violation (0x2000-0x2005); see `!analyze -v` in WinDbg"
            ),
            DecodeError::Count(n) => write!(
                f,
                "expected [C4] ARG1 ARG2 ARG3 ARG4 (4 or 5 values), got {n}"
            ),
        }
    }
}

/// Parses hex as WinDbg prints it: `fffff801'23456789`, `0x2000`, `2000`.
pub fn parse_hex(s: &str) -> Result<u64, DecodeError> {
    let t: String = s
        .trim()
        .chars()
        .filter(|&c| c != '`' && c != '\'')
        .collect();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(&t);
    u64::from_str_radix(t, 16).map_err(|_| DecodeError::NotHex(s.to_string()))
}

fn fix(code: Code) -> &'static str {
    match code {
        Code::ExecutePoolType => {
            "Allocate NonPagedPoolNx (or ExAllocatePool2 with POOL_FLAG_NON_PAGED); for old code define \
             POOL_NX_OPTIN=1 and call ExInitializeDriverRuntime(DrvRtPoolNxOptIn); give lookaside lists \
             POOL_NX_ALLOCATION in Flags."
        }
        Code::ExecutePageProtection => {
            "Ask for PAGE_READWRITE or PAGE_READONLY (with PAGE_NOCACHE/PAGE_WRITECOMBINE as needed), never PAGE_EXECUTE*."
        }
        Code::ExecutePageMapping => {
            "OR MdlMappingNoExecute into the priority of MmGetSystemAddressForMdlSafe / \
             MmMapLockedPagesSpecifyCache; replace MmMapLockedPages, which cannot ask for NX."
        }
        Code::ExecuteWriteSection => {
            "Keep code and data in separate sections: no /SECTION:name,ERW, no /MERGE of data into code; \
             relink INIT with a current toolset."
        }
        Code::SectionAlignment => {
            "Link with the default /ALIGN:0x1000; do not lower the section alignment."
        }
        Code::IatInExecutableSection => {
            "Do not /MERGE .rdata or .idata into .text; current linkers keep the IAT in .rdata."
        }
    }
}

/// The readings of a 0x2000 Arg3 that make it executable: a POOL_TYPE, the
/// POOL_FLAGS of ExAllocatePool2/3, or the Flags of a nonpaged lookaside list.
fn pool_meaning(arg3: u64) -> String {
    let mut readings = Vec::new();
    if let Ok(pt) = u32::try_from(arg3) {
        if check::pool_type_is_executable(pt) {
            readings.push(format!("POOL_TYPE {} (executable)", PoolTypeName(pt)));
        }
        if check::check_npaged_lookaside_flags(pt, 0, 0).is_some() && pt != 0 {
            readings.push(format!(
                "lookaside Flags {:#x} without POOL_NX_ALLOCATION (ExInitializeNPagedLookasideList)",
                pt
            ));
        }
    }
    if check::check_pool_flags(arg3, 0, 0).is_some() {
        readings.push(format!(
            "POOL_FLAGS {} (ExAllocatePool2/3)",
            PoolFlagsName(arg3)
        ));
    }
    if readings.is_empty() {
        readings.push(format!(
            "{arg3:#x}, which no hooked API would treat as executable"
        ));
    }
    readings.join("; or ")
}

/// Decodes the four arguments of a 0xC4 bug check.
pub fn decode(args: [u64; 4]) -> Result<Decoded, DecodeError> {
    let [a1, a2, a3, a4] = args;
    let code = Code::from_value(a1).ok_or(DecodeError::NotCodeIntegrity(a1))?;
    let arg = |value: u64, meaning: String| Argument { value, meaning };
    let arg1 = arg(a1, format!("{code}: {}", code.title()));
    let caller = |a2: u64| {
        arg(
            a2,
            format!(
                "the return address of the call in the driver: `ln {a2:x}` or `u {a2:x}-0x10` in WinDbg"
            ),
        )
    };
    let arguments = match code {
        Code::ExecutePoolType => vec![
            arg1,
            caller(a2),
            arg(a3, pool_meaning(a3)),
            arg(
                a4,
                if a4 == 0 {
                    "no pool tag".into()
                } else {
                    format!("pool tag '{}'", TagName(a4 as u32))
                },
            ),
        ],
        Code::ExecutePageProtection => vec![
            arg1,
            caller(a2),
            arg(a3, format!("page protection {}", ProtectionName(a3 as u32))),
            arg(a4, "reserved (0)".into()),
        ],
        Code::ExecutePageMapping => vec![
            arg1,
            caller(a2),
            arg(
                a3,
                format!(
                    "page priority {}, without MdlMappingNoExecute",
                    PriorityName(a3 as u32)
                ),
            ),
            arg(a4, "reserved (0)".into()),
        ],
        Code::ExecuteWriteSection | Code::SectionAlignment | Code::IatInExecutableSection => {
            let third = if code == Code::IatInExecutableSection {
                format!("the IAT directory: `dps {a3:x}` lists the imports")
            } else {
                format!("the section header: `dt nt!_IMAGE_SECTION_HEADER {a3:x}`")
            };
            vec![
                arg1,
                arg(a2, format!("the image name, a UNICODE_STRING: `dS {a2:x}`")),
                arg(a3, third),
                arg(a4, format!("the section name (UTF-8): `da {a4:x}`")),
            ]
        }
    };
    Ok(Decoded {
        code: code.to_string(),
        title: code.title(),
        arguments,
        fix: fix(code),
    })
}

/// Decodes the command line's values: `[C4] ARG1 ARG2 ARG3 ARG4`.
pub fn decode_values(values: &[String]) -> Result<Decoded, DecodeError> {
    let nums = values
        .iter()
        .map(|v| parse_hex(v))
        .collect::<Result<Vec<_>, _>>()?;
    let args = match nums.as_slice() {
        [bc, a1, a2, a3, a4] => {
            if *bc != u64::from(BUGCHECK_DRIVER_VERIFIER_DETECTED_VIOLATION) {
                return Err(DecodeError::NotC4(*bc));
            }
            [*a1, *a2, *a3, *a4]
        }
        [a1, a2, a3, a4] => [*a1, *a2, *a3, *a4],
        other => return Err(DecodeError::Count(other.len())),
    };
    decode(args)
}

/// The decoded bug check, for a person.
pub fn to_text(d: &Decoded) -> String {
    let mut s = format!(
        "Bug check 0xC4 DRIVER_VERIFIER_DETECTED_VIOLATION, code integrity {}: {}\n",
        d.code, d.title
    );
    for (i, a) in d.arguments.iter().enumerate() {
        s.push_str(&format!(
            "  Arg{} {:#018x}  {}\n",
            i + 1,
            a.value,
            a.meaning
        ));
    }
    s.push_str(&format!("Fix: {}\n", d.fix));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn pool_type_violation_is_named() {
        let d = decode_values(&v(&["C4", "2000", "fffff801`23456789", "0", "74766943"])).unwrap();
        assert_eq!(d.code, "0x2000");
        assert_eq!(d.arguments[1].value, 0xfffff80123456789);
        assert!(
            d.arguments[2]
                .meaning
                .contains("POOL_TYPE NonPagedPool (executable)"),
            "{:?}",
            d.arguments[2]
        );
        assert!(!d.arguments[2].meaning.contains("POOL_FLAGS"));
        assert!(d.arguments[3].meaning.contains("'Civt'"));
        assert!(d.fix.contains("NonPagedPoolNx"));
    }

    #[test]
    fn pool_flags_reading_when_execute_bit_set() {
        let d = decode_values(&v(&["0x2000", "1", "0x80", "0"])).unwrap();
        assert!(
            d.arguments[2]
                .meaning
                .contains("POOL_FLAG_NON_PAGED_EXECUTE")
        );
    }

    #[test]
    fn protection_priority_and_image_codes() {
        let d = decode_values(&v(&["c4", "2001", "1", "40", "0"])).unwrap();
        assert!(d.arguments[2].meaning.contains("PAGE_EXECUTE_READWRITE"));
        let d = decode_values(&v(&["c4", "2002", "1", "10", "0"])).unwrap();
        assert!(d.arguments[2].meaning.contains("NormalPagePriority"));
        for code in ["2003", "2004", "2005"] {
            let d = decode_values(&v(&["c4", code, "ffff1000", "ffff2000", "ffff3000"])).unwrap();
            assert!(d.arguments[1].meaning.contains("dS ffff1000"));
            assert!(d.arguments[3].meaning.contains("da ffff3000"));
        }
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        assert_eq!(
            decode_values(&v(&["c5", "2000", "0", "0", "0"])),
            Err(DecodeError::NotC4(0xc5))
        );
        assert_eq!(
            decode_values(&v(&["c4", "1000", "0", "0", "0"])),
            Err(DecodeError::NotCodeIntegrity(0x1000))
        );
        assert_eq!(
            decode_values(&v(&["2000", "zz", "0", "0"])),
            Err(DecodeError::NotHex("zz".into()))
        );
        assert_eq!(decode_values(&v(&["2000"])), Err(DecodeError::Count(1)));
        assert!(DecodeError::NotC4(0xc5).to_string().contains("only 0xC4"));
    }
}
