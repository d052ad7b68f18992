//! The two kinds of values a person types into `civctl enable`: verifier
//! flags (`--flags 0x02000000`) and target driver names (`--driver a.sys`).
//! Both are checked here, before anything is written, so that a typo is an
//! error message and never a registry value civ.sys would ignore.

use civ_engine::code::VERIFIER_FLAG_CODE_INTEGRITY;
use civ_engine::path::file_name_str;
use civ_engine::protocol;
use civ_engine::settings;

/// The flags `enable` writes when none are given: code integrity only.
pub const DEFAULT_FLAGS: u32 = VERIFIER_FLAG_CODE_INTEGRITY;

/// Parses a verifier flags value as verifier.exe reads it: decimal,
/// `0x` hex, `0o` octal or `0b` binary (prefix in either case). A number
/// without a prefix is decimal.
pub fn parse_flags(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let (digits, radix, base_name) = match t.get(..2).map(str::to_ascii_lowercase).as_deref() {
        Some("0x") => (&t[2..], 16, "hex"),
        Some("0o") => (&t[2..], 8, "octal"),
        Some("0b") => (&t[2..], 2, "binary"),
        _ => (t, 10, "decimal"),
    };
    let usage = "flags are decimal, 0x hex, 0o octal or 0b binary, e.g. 0x02000000";
    if digits.is_empty() {
        return Err(format!("'{text}' is not a number: {usage}"));
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(format!(
            "'{text}' is not a {base_name} number: {usage} (a number without a prefix is decimal)"
        ));
    }
    u32::from_str_radix(digits, radix)
        .map_err(|_| format!("'{text}' does not fit in 32 bits: {usage}"))
}

/// A warning for flags that turn civ off, with a hint when the digits were
/// probably meant as hex (`2000000` is decimal, not 0x2000000).
pub fn flags_warning(text: &str, flags: u32) -> Option<String> {
    if flags & VERIFIER_FLAG_CODE_INTEGRITY != 0 {
        return None;
    }
    let mut w = format!(
        "flags {flags:#010x} lack {VERIFIER_FLAG_CODE_INTEGRITY:#010x} (code integrity checks): civ.sys will check nothing"
    );
    let t = text.trim();
    if t.chars().all(|c| c.is_ascii_digit())
        && u32::from_str_radix(t, 16).is_ok_and(|h| h & VERIFIER_FLAG_CODE_INTEGRITY != 0)
    {
        w.push_str(&format!("; '{t}' is read as decimal, did you mean 0x{t}?"));
    }
    Some(w)
}

/// One bit of a flags value, as `query` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FlagBit {
    /// `0x02000000`.
    pub bit: String,
    /// What civ does with it.
    pub meaning: &'static str,
    /// Does civ act on it?
    pub used: bool,
}

/// The bits of `flags`, lowest first: 0x02000000 is named, the others are
/// Driver Verifier's options that civ does not implement.
pub fn flag_bits(flags: u32) -> Vec<FlagBit> {
    (0..32)
        .map(|i| 1u32 << i)
        .filter(|b| flags & b != 0)
        .map(|b| {
            let used = b == VERIFIER_FLAG_CODE_INTEGRITY;
            FlagBit {
                bit: format!("{b:#010x}"),
                meaning: if used {
                    "code integrity checks"
                } else {
                    "ignored (civ acts on 0x02000000 only)"
                },
                used,
            }
        })
        .collect()
}

/// Checks a target driver name the way civ.sys will match it: a file name
/// (not a path), at most [`settings::MAX_NAME`] bytes (civ.sys ignores
/// longer names), no spaces (VerifyDrivers is space separated) or control
/// characters. `*` and `?` are wildcards; `*` alone is every non-Microsoft
/// driver.
pub fn parse_driver_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("a driver name is empty: give a file name such as mydriver.sys".into());
    }
    if text.contains(['\\', '/']) {
        let file = file_name_str(text);
        return Err(format!(
            "'{text}' is a path: give the driver's file name only{}",
            if file.is_empty() {
                String::new()
            } else {
                format!(" ({file})")
            }
        ));
    }
    if text.len() > settings::MAX_NAME {
        return Err(format!(
            "'{text}' is {} bytes long: civ.sys matches names of at most {} bytes",
            text.len(),
            settings::MAX_NAME
        ));
    }
    if protocol::check_target_name(text.as_bytes()).is_none() {
        return Err(format!(
            "'{text}' has a space or a control character: VerifyDrivers is a space-separated list of file names"
        ));
    }
    Ok(text.to_string())
}

/// Checks a whole list: at most [`settings::MAX_TARGETS`] names, and the
/// same name (any case) only once.
pub fn check_driver_list(names: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(n)) {
            out.push(n.clone());
        }
    }
    if out.len() > settings::MAX_TARGETS {
        return Err(format!(
            "{} driver names: civ.sys keeps at most {}",
            out.len(),
            settings::MAX_TARGETS
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_in_every_base() {
        assert_eq!(parse_flags("0x02000000"), Ok(0x0200_0000));
        assert_eq!(parse_flags("0X2000000"), Ok(0x0200_0000));
        assert_eq!(parse_flags("33554432"), Ok(0x0200_0000));
        assert_eq!(parse_flags("0o200000000"), Ok(0x0200_0000));
        assert_eq!(parse_flags("0O200000000"), Ok(0x0200_0000));
        assert_eq!(parse_flags("0b10000000000000000000000000"), Ok(0x0200_0000));
        assert_eq!(parse_flags(" 0 "), Ok(0));
        assert_eq!(parse_flags("0xFFFFFFFF"), Ok(u32::MAX));
        assert_eq!(parse_flags("4294967295"), Ok(u32::MAX));
        // A bare number is decimal, as verifier reads it.
        assert_eq!(parse_flags("2000000"), Ok(2_000_000));
        assert_eq!(parse_flags("010"), Ok(10));
    }

    #[test]
    fn bad_flags_say_why() {
        for bad in [
            "", "0x", "0b", "0xZZ", "12a", "-1", "+1", "0b102", "0o9", "1.5", "0x 1",
        ] {
            let e = parse_flags(bad).unwrap_err();
            assert!(
                e.contains("decimal, 0x hex, 0o octal or 0b binary"),
                "{bad}: {e}"
            );
        }
        assert!(
            parse_flags("0xZZ")
                .unwrap_err()
                .contains("not a hex number")
        );
        assert!(parse_flags("0x100000000").unwrap_err().contains("32 bits"));
        assert!(parse_flags("4294967296").unwrap_err().contains("32 bits"));
    }

    #[test]
    fn flags_without_code_integrity_warn_with_a_hex_hint() {
        assert_eq!(flags_warning("0x02000000", 0x0200_0000), None);
        assert_eq!(flags_warning("0x02000001", 0x0200_0001), None);
        let w = flags_warning("2000000", 2_000_000).unwrap();
        assert!(
            w.contains("check nothing") && w.contains("did you mean 0x2000000?"),
            "{w}"
        );
        let w = flags_warning("0x1", 1).unwrap();
        assert!(!w.contains("did you mean"), "{w}");
    }

    #[test]
    fn bits_are_named_or_ignored() {
        let bits = flag_bits(0x0200_0009);
        assert_eq!(
            bits.iter().map(|b| b.bit.as_str()).collect::<Vec<_>>(),
            ["0x00000001", "0x00000008", "0x02000000"]
        );
        assert!(bits[2].used && bits[2].meaning == "code integrity checks");
        assert!(!bits[0].used && bits[0].meaning.starts_with("ignored"));
        assert!(flag_bits(0).is_empty());
    }

    #[test]
    fn driver_names() {
        assert_eq!(parse_driver_name("a.sys"), Ok("a.sys".into()));
        assert_eq!(parse_driver_name("*"), Ok("*".into()));
        assert_eq!(parse_driver_name("vig?m*.sys"), Ok("vig?m*.sys".into()));
        assert!(parse_driver_name("").unwrap_err().contains("empty"));
        let e = parse_driver_name("C:\\drivers\\a.sys").unwrap_err();
        assert!(e.contains("is a path") && e.contains("(a.sys)"), "{e}");
        assert!(parse_driver_name("dir/").unwrap_err().contains("is a path"));
        assert!(parse_driver_name("a b.sys").unwrap_err().contains("space"));
        assert!(
            parse_driver_name("a\tb.sys")
                .unwrap_err()
                .contains("control")
        );
        let long = format!("{}.sys", "x".repeat(61));
        assert!(
            parse_driver_name(&long)
                .unwrap_err()
                .contains("at most 64 bytes")
        );
        let fits = format!("{}.sys", "x".repeat(60));
        assert_eq!(parse_driver_name(&fits), Ok(fits.clone()));
    }

    #[test]
    fn driver_lists_drop_repeats_and_stop_at_64() {
        let names = ["a.sys", "A.SYS", "b.sys"].map(String::from);
        assert_eq!(check_driver_list(&names).unwrap(), ["a.sys", "b.sys"]);
        let many: Vec<String> = (0..65).map(|i| format!("d{i}.sys")).collect();
        assert!(check_driver_list(&many).unwrap_err().contains("at most 64"));
        assert_eq!(check_driver_list(&many[..64]).unwrap().len(), 64);
    }
}
