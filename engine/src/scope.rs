//! Which kernel images civ verifies: the targets the settings name, minus
//! what Windows owns.
//!
//! Rewriting the IAT of an image PatchGuard watches is a bug check 0x109,
//! and running image checks on a boot driver Windows ships can bug-check
//! the boot; so civ never touches the kernel, the HAL, the kernel debugger
//! transports, CI.dll or itself, even when named. A pattern with a
//! wildcard (`*` above all) also leaves out every image that Windows signs
//! as its own (signature levels Windows and Windows TCB), and every image
//! whose signer civ cannot know (found already loaded, with no
//! notification to say): those must be named to be verified. A named
//! target is verified whoever signed it, as Driver Verifier verifies a
//! Microsoft driver it is told to.
//!
//! Which level Code Integrity gives WHQL- or attestation-signed third-party
//! drivers is not established, so the Microsoft level (8) is *not*
//! exempted: such a driver is verified under `*`, and its level is logged.

use crate::path::file_name;
use crate::settings::{Match, Settings, glob_match};

/// SE_SIGNING_LEVEL_MICROSOFT.
pub const SIGNING_LEVEL_MICROSOFT: u8 = 8;
/// SE_SIGNING_LEVEL_WINDOWS: images Windows ships.
pub const SIGNING_LEVEL_WINDOWS: u8 = 12;
/// SE_SIGNING_LEVEL_WINDOWS_TCB.
pub const SIGNING_LEVEL_WINDOWS_TCB: u8 = 14;

/// Images civ never verifies, whatever the settings say: the kernel
/// (every build's file name), the HAL, the kernel debugger transports, Code
/// Integrity and PSHED, which PatchGuard watches; and the crash-dump and
/// hibernation copies of storage drivers, which run with the other CPUs
/// frozen while a dump is written (a violation there would lose the dump).
const WINDOWS_CORE: [&[u8]; 7] = [
    b"nt*.exe",
    b"hal*.dll",
    b"kd*.dll",
    b"ci.dll",
    b"pshed.dll",
    b"dump_*",
    b"hiber_*",
];

/// Why an image is left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The settings do not name it.
    NotTarget,
    /// It is civ.sys itself.
    Civ,
    /// The kernel, HAL, a debugger transport, CI.dll, PSHED, or a dump or
    /// hibernation driver (never verified).
    WindowsCore,
    /// Matched only by a pattern, and Windows signs it as its own (the
    /// level).
    SignedByWindows(u8),
    /// Matched only by a pattern, and its signer is unknown (it loaded
    /// before civ).
    SignerUnknown,
}

impl Skip {
    /// Why, in words, for the debug output.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::NotTarget => "not a target",
            Skip::Civ => "civ itself",
            Skip::WindowsCore => {
                "the kernel, HAL, a debugger transport, CI or PSHED (PatchGuard watches it), or a crash-dump or hibernation driver: civ never rewrites it"
            }
            Skip::SignedByWindows(_) => {
                "signed by Windows and matched only by a pattern: name it to verify it"
            }
            Skip::SignerUnknown => {
                "loaded before civ, signer unknown, matched only by a pattern: name it to verify it"
            }
        }
    }
}

/// What civ does with an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Check and hook it; how it matched.
    Verify(Match),
    /// Leave it alone.
    Skip(Skip),
}

/// An image as the kernel reports it.
#[derive(Clone, Copy, Debug)]
pub struct Image<'a> {
    /// Its path or file name.
    pub path: &'a [u8],
    /// Its base.
    pub base: u64,
    /// IMAGE_INFO.ImageSignatureLevel, or `None` when no load notification
    /// said (an image found already loaded).
    pub signature_level: Option<u8>,
}

/// Is this file name the kernel, the HAL, a debugger transport or CI?
pub fn is_windows_core(name: &[u8]) -> bool {
    WINDOWS_CORE
        .iter()
        .any(|pattern| glob_match(pattern, file_name(name)))
}

/// Decides whether civ verifies `image`; `civ_base` is civ's own base.
pub fn decide(settings: &Settings, image: &Image<'_>, civ_base: u64) -> Decision {
    let Some(how) = settings.match_kind(image.path) else {
        return Decision::Skip(Skip::NotTarget);
    };
    if image.base != 0 && image.base == civ_base {
        return Decision::Skip(Skip::Civ);
    }
    if is_windows_core(image.path) {
        return Decision::Skip(Skip::WindowsCore);
    }
    if how == Match::Pattern {
        match image.signature_level {
            None => return Decision::Skip(Skip::SignerUnknown),
            Some(level @ (SIGNING_LEVEL_WINDOWS | SIGNING_LEVEL_WINDOWS_TCB)) => {
                return Decision::Skip(Skip::SignedByWindows(level));
            }
            Some(_) => {}
        }
    }
    Decision::Verify(how)
}

/// The name of an SE_SIGNING_LEVEL value, for the debug output.
pub fn signing_level_name(level: u8) -> &'static str {
    match level {
        0 => "unchecked",
        1 => "unsigned",
        2 => "enterprise",
        3 => "developer",
        4 => "authenticode",
        5 => "custom 2",
        6 => "store",
        7 => "antimalware",
        SIGNING_LEVEL_MICROSOFT => "Microsoft",
        9 => "custom 4",
        10 => "custom 5",
        11 => "dynamic codegen",
        SIGNING_LEVEL_WINDOWS => "Windows",
        13 => "custom 7",
        SIGNING_LEVEL_WINDOWS_TCB => "Windows TCB",
        _ => "custom 6",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::VERIFIER_FLAG_CODE_INTEGRITY;
    use crate::settings::Action;

    fn settings(names: &[&str]) -> Settings {
        Settings::from_parts(
            VERIFIER_FLAG_CODE_INTEGRITY,
            Action::Log,
            names.iter().map(|n| n.as_bytes()),
        )
    }

    fn image(path: &str, level: Option<u8>) -> Image<'_> {
        Image {
            path: path.as_bytes(),
            base: 0xFFFF_F800_1000_0000,
            signature_level: level,
        }
    }

    #[test]
    fn star_leaves_out_what_windows_owns_and_says_why() {
        let s = settings(&["*"]);
        let civ = 0xFFFF_F800_2000_0000;
        for core in [
            r"\SystemRoot\system32\ntoskrnl.exe",
            "ntkrnlmp.exe",
            "ntkrla57.exe",
            "hal.dll",
            "HALMACPI.DLL",
            "kdcom.dll",
            "kdnet.dll",
            "kd_02_10ec.dll",
            r"\SystemRoot\System32\CI.dll",
            "PSHED.dll",
            "dump_storport.sys",
            "dump_stornvme.sys",
            "hiber_storport.sys",
        ] {
            assert_eq!(
                decide(&s, &image(core, Some(4)), civ),
                Decision::Skip(Skip::WindowsCore),
                "{core}"
            );
        }
        for level in [SIGNING_LEVEL_WINDOWS, SIGNING_LEVEL_WINDOWS_TCB] {
            assert_eq!(
                decide(&s, &image("ndis.sys", Some(level)), civ),
                Decision::Skip(Skip::SignedByWindows(level))
            );
        }
        assert_eq!(
            decide(&s, &image("boot.sys", None), civ),
            Decision::Skip(Skip::SignerUnknown)
        );
        let mut me = image("civ.sys", Some(4));
        me.base = civ;
        assert_eq!(decide(&s, &me, civ), Decision::Skip(Skip::Civ));
        // Third-party levels, Microsoft's (8, which WHQL drivers may get)
        // and unchecked (0) are verified under `*`.
        for level in [0, 1, 4, 6, SIGNING_LEVEL_MICROSOFT] {
            assert_eq!(
                decide(&s, &image("vendor.sys", Some(level)), civ),
                Decision::Verify(Match::Pattern),
                "level {level}"
            );
        }
        for skip in [
            Skip::NotTarget,
            Skip::Civ,
            Skip::WindowsCore,
            Skip::SignedByWindows(12),
            Skip::SignerUnknown,
        ] {
            assert!(!skip.reason().is_empty());
        }
    }

    #[test]
    fn a_named_target_is_verified_whoever_signed_it_but_never_the_core() {
        let s = settings(&["ndis.sys", "late.sys", "hal.dll", "*.sys"]);
        let civ = 1;
        for level in [
            None,
            Some(SIGNING_LEVEL_WINDOWS),
            Some(SIGNING_LEVEL_WINDOWS_TCB),
        ] {
            assert_eq!(
                decide(
                    &s,
                    &image(r"\SystemRoot\System32\drivers\NDIS.SYS", level),
                    civ
                ),
                Decision::Verify(Match::Named)
            );
        }
        assert_eq!(
            decide(&s, &image("late.sys", None), civ),
            Decision::Verify(Match::Named)
        );
        assert_eq!(
            decide(&s, &image("hal.dll", Some(4)), civ),
            Decision::Skip(Skip::WindowsCore),
            "PatchGuard: never, even named"
        );
        assert_eq!(
            decide(&s, &image("other.sys", Some(SIGNING_LEVEL_WINDOWS)), civ),
            Decision::Skip(Skip::SignedByWindows(SIGNING_LEVEL_WINDOWS)),
            "`*.sys` is a pattern too"
        );
        assert_eq!(
            decide(&s, &image("other.dll", Some(4)), civ),
            Decision::Skip(Skip::NotTarget)
        );
    }

    #[test]
    fn nothing_is_verified_while_civ_is_off() {
        let mut s = settings(&["*"]);
        s.level = 0;
        assert_eq!(
            decide(&s, &image("vendor.sys", Some(4)), 1),
            Decision::Skip(Skip::NotTarget)
        );
    }

    #[test]
    fn signing_levels_have_names() {
        assert_eq!(signing_level_name(12), "Windows");
        assert_eq!(signing_level_name(8), "Microsoft");
        assert_eq!(signing_level_name(0), "unchecked");
        assert_eq!(signing_level_name(14), "Windows TCB");
    }
}
