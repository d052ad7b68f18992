//! civctl's Windows commands as a user meets them off Windows: parsed and
//! checked the same way (usage errors exit 1, as verifier's), then a clear
//! "needs Windows" (exit 1). Under Windows they are run end to end by
//! tests/tests/wine_civctl.rs.

mod common;
use common::civctl;

#[cfg(not(windows))]
#[test]
fn windows_commands_say_they_need_windows() {
    for args in [
        &["status"][..],
        &["query", "--format", "json"],
        &["enable", "--driver", "a.sys"],
        &["/flags", "0x02000000", "/driver", "a.sys"],
        &["/querysettings"],
        &["log", "--follow", "--count", "1"],
        &["disable"],
        &["install", "--sys", "civ.sys"],
        &["uninstall"],
    ] {
        let (code, out, err) = civctl(args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.contains("needs Windows"), "{args:?}: {err}");
    }
}

#[test]
fn bad_input_is_exit_1_before_anything_is_done() {
    let (code, _, err) = civctl(["enable", "--driver", "a.sys", "--flags", "0xZZ"]);
    assert_eq!(code, 1);
    assert!(err.contains("'0xZZ' is not a hex number"), "{err}");
    let (code, _, err) = civctl(["/flags", "0xZZ", "/driver", "a.sys"]);
    assert_eq!(code, 1);
    assert!(err.contains("'0xZZ' is not a hex number"), "{err}");
    let (code, _, err) = civctl(["enable", "--driver", "dir\\a.sys"]);
    assert_eq!(code, 1);
    assert!(err.contains("is a path"), "{err}");
    let (code, _, err) = civctl(["/volatile", "/flags", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot be volatile"), "{err}");
}

#[test]
fn help_lists_the_windows_commands() {
    let (code, out, _) = civctl(["--help"]);
    assert_eq!(code, 0);
    for c in [
        "enable",
        "disable",
        "reset",
        "query",
        "status",
        "log",
        "install",
        "uninstall",
        "scan",
        "decode",
    ] {
        assert!(out.contains(c), "no {c} in:\n{out}");
    }
    let (code, out, _) = civctl(["/?"]);
    assert_eq!((code, out.contains("civ")), (0, true));
}
