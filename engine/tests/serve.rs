//! civ.sys's pipeline without a kernel: a fixture image, mapped as the
//! loader maps it, is inspected (image findings recorded, bug check decided)
//! and hooked, which pins civ; civctl's IOCTLs are served from what was
//! recorded.
#![cfg(all(target_arch = "x86_64", not(miri), not(loom)))]

use civ_engine::attach::{self, InspectError, Origin};
use civ_engine::code::{Code, Counter};
use civ_engine::iat::Plan;
use civ_engine::protocol::{self, GetEvents, GetSites, Kind, Request, SetSettings, Targets};
use civ_engine::runtime::{self, LOG};
use civ_engine::serve::{self, STATUS_INVALID_DEVICE_REQUEST};
use civ_engine::settings::{Action, Settings};
mod common;
use civ_fixtures::{Fixture, map_image};
use common::VecWriter;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

/// The made-up kernel routine of a catalog row.
fn kernel(row: u8) -> u64 {
    0xFFFF_F800_2000_0000u64 + u64::from(row) * 0x10
}

/// A fixture mapped, with its IAT "bound" to the made-up kernel routines,
/// which civ has resolved as its originals.
fn bound(f: Fixture) -> Vec<u8> {
    let mut mapped = map_image(&f.bytes());
    let plan = {
        let pe = civ_engine::pe::PeImage::parse(&mapped, civ_engine::pe::Layout::Mapped).unwrap();
        civ_engine::iat::plan(&pe).unwrap()
    };
    for s in plan.slots() {
        mapped[s.rva as usize..s.rva as usize + 8].copy_from_slice(&kernel(s.hook).to_le_bytes());
        runtime::set_original(usize::from(s.hook), kernel(s.hook));
    }
    mapped
}

const LATE_NAMED: Origin = Origin {
    late: true,
    named: true,
};
const NEW: Origin = Origin {
    late: false,
    named: false,
};

fn request(r: &Request<'_>) -> (u32, Vec<u8>) {
    let mut buf = vec![0u8; r.encoded_len().unwrap()];
    r.encode(&mut buf).unwrap();
    (r.kind().ioctl(), buf)
}

fn call(r: &Request<'_>, out_len: usize) -> (serve::Answer, Vec<u8>) {
    let (code, input) = request(r);
    let mut out = vec![0u8; out_len];
    let a = serve::handle(code, &input, &mut out);
    out.truncate(a.bytes);
    (a, out)
}

#[test]
fn inspect_hook_serve() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    runtime::clear_originals();
    let mut image = bound(Fixture::WriteExecuteData);
    let before = image.clone();
    let base = 0xFFFF_F801_4000_0000u64;
    let seq = LOG.next_seq();
    let mut plan = Plan::EMPTY;
    let ins = attach::inspect(
        &image,
        base,
        b"wx_data.sys",
        LATE_NAMED,
        Action::Log,
        7,
        &mut plan,
    )
    .unwrap();
    assert_eq!((ins.findings, ins.load), (1, 1));
    assert_eq!(ins.bug_check, None, "log mode never asks for a bug check");
    assert!(ins.plan_error.is_none());
    assert!(!ins.import_optimized);
    assert!(!runtime::pinned());
    let report = attach::hook(ins.target, &plan, &mut VecWriter(&mut image));
    assert_eq!(
        report.hooked, 3,
        "ExAllocatePoolWithTag, MmMapLockedPagesSpecifyCache, MmGetSystemRoutineAddress"
    );
    assert_ne!(image, before);
    assert!(runtime::pinned(), "the first hook pins civ for good");
    // The same image seen again (module list after notification).
    assert_eq!(
        attach::inspect(&image, base, b"wx_data.sys", NEW, Action::Log, 8, &mut plan).unwrap_err(),
        InspectError::AlreadyAttached(ins.target)
    );

    // GetStatus: the target, late, image-checked, its W+X count and slots.
    let (a, out) = call(&Request::GetStatus, 4096);
    assert_eq!(a.status, 0);
    let status = protocol::decode_reply_status(&out).unwrap();
    let t = status
        .targets
        .iter()
        .find(|t| t.name() == "wx_data.sys")
        .expect("target listed");
    assert_eq!(t.base, base);
    assert_eq!(t.counter(Counter::ExecuteWriteSection), 1);
    assert_eq!((t.hooked_slots, t.conflicts, t.load), (3, 0, 1));
    assert_eq!(
        t.flags,
        protocol::TargetRecord::LATE
            | protocol::TargetRecord::IMAGE_CHECKED
            | protocol::TargetRecord::NAMED
    );
    assert_eq!(t.signature_level, protocol::UNKNOWN_SIGNATURE_LEVEL);
    assert_eq!(status.head.flags, protocol::StatusHead::PINNED);

    // GetEvents: the image finding, with its section header's address.
    let (a, out) = call(
        &Request::GetEvents(GetEvents {
            since_seq: seq,
            max: 16,
        }),
        4096,
    );
    assert_eq!(a.status, 0);
    let events = protocol::decode_reply_events(&out).unwrap();
    let e = events.events.iter().next().expect("one event");
    assert_eq!(e.counter, Counter::ExecuteWriteSection);
    assert_eq!(e.api, protocol::NO_API);
    assert_eq!(e.time, 7);
    let pe = civ_engine::pe::PeImage::parse(&before, civ_engine::pe::Layout::Mapped).unwrap();
    let data = pe.sections().find(|s| s.name() == b".data").unwrap();
    assert_eq!(
        (e.offset, e.arg3),
        (u64::from(data.rva()), base + data.header_offset as u64)
    );
    // Where a bug check points at the section's name, the log keeps it.
    assert_eq!(e.arg4.to_le_bytes(), *b".data\0\0\0");
    assert_eq!(e.load, 1);

    // GetSites pages through everything recorded.
    let (a, out) = call(
        &Request::GetSites(GetSites {
            start: 0,
            max: 1000,
        }),
        1 << 16,
    );
    assert_eq!(a.status, 0);
    let sites = protocol::decode_reply_sites(&out).unwrap();
    assert!(
        sites
            .sites
            .iter()
            .any(|s| s.counter == Counter::ExecuteWriteSection
                && s.offset == u64::from(data.rva())
                && s.load == 1
                && s.stack().is_empty())
    );
}

#[test]
fn bugcheck_mode_asks_for_dvs_arguments() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (fixture, code, section) in [
        (
            Fixture::WriteExecuteData,
            Code::ExecuteWriteSection,
            ".data",
        ),
        (Fixture::LowAlignment, Code::SectionAlignment, ".text"),
        (Fixture::IatInText, Code::IatInExecutableSection, ".text"),
    ] {
        let image = bound(fixture);
        let base = 0xFFFF_F802_0000_0000u64;
        // Its own name: the log is shared with the other tests.
        let name = format!("bugcheck-{}", fixture.file_name());
        let ins = attach::inspect(
            &image,
            base,
            name.as_bytes(),
            NEW,
            Action::BugCheck,
            0,
            &mut Plan::default(),
        )
        .unwrap();
        let bc = ins
            .bug_check
            .unwrap_or_else(|| panic!("{fixture:?}: no bug check"));
        assert_eq!(bc.code, code);
        let name_len = bc.section_name.iter().position(|&b| b == 0).unwrap();
        assert_eq!(
            &bc.section_name[..name_len],
            section.as_bytes(),
            "{fixture:?}"
        );
        let pe = civ_engine::pe::PeImage::parse(&image, civ_engine::pe::Layout::Mapped).unwrap();
        let expected = if code == Code::IatInExecutableSection {
            base + u64::from(pe.data_directory(civ_engine::pe::DIR_IAT).unwrap().0)
        } else {
            base + pe
                .sections()
                .find(|s| s.name() == section.as_bytes())
                .unwrap()
                .header_offset as u64
        };
        assert_eq!(bc.arg3, expected, "{fixture:?}");
    }
    // A clean image asks for nothing; an unsupported reloc alone never
    // bug-checks, nor does a W+X INIT (recorded only: DV's view unknown).
    for f in [
        Fixture::Clean,
        Fixture::StraddlingReloc,
        Fixture::WriteExecuteInit,
    ] {
        let ins = attach::inspect(
            &bound(f),
            0x1000_0000,
            f.file_name().as_bytes(),
            NEW,
            Action::BugCheck,
            0,
            &mut Plan::default(),
        )
        .unwrap();
        assert_eq!(ins.bug_check, None, "{f:?}");
    }
    assert_eq!(
        attach::inspect(
            b"MZ",
            0,
            b"x.sys",
            NEW,
            Action::Log,
            0,
            &mut Plan::default()
        )
        .unwrap_err(),
        InspectError::Pe(civ_engine::pe::PeError::Truncated("DOS header"))
    );
}

#[test]
fn settings_from_civctl_and_bad_requests() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let names = ["a.sys", "vendor*.sys"];
    let set = Request::SetSettings(SetSettings {
        verify_level: 0x0200_0000,
        action: Action::Log,
        targets: Targets::new(&names),
    });
    let (a, out) = call(&set, 64);
    assert_eq!(a.status, 0);
    protocol::decode_reply_ack(Kind::SetSettings, &out).unwrap();
    assert!(runtime::with_settings(
        |s| s.matches(b"\\SystemRoot\\drivers\\VendorX.sys")
    ));
    assert_eq!(runtime::action(), Action::Log);
    let (_, out) = call(&Request::GetStatus, 4096);
    let st = protocol::decode_reply_status(&out).unwrap();
    assert_eq!(
        (st.head.verify_level, st.head.action),
        (0x0200_0000, Action::Log)
    );

    let (a, out) = call(&Request::QueryVersion, 64);
    assert_eq!(a.status, 0);
    assert_eq!(
        protocol::decode_reply_version(&out).unwrap(),
        serve::DRIVER_VERSION
    );

    // Not civ's IOCTL.
    let mut out = [0u8; 64];
    assert_eq!(
        serve::handle(0x0022_0000, &[], &mut out),
        serve::Answer {
            status: STATUS_INVALID_DEVICE_REQUEST,
            bytes: 0
        }
    );
    // Short, oversized and malformed inputs: a clear status, a header-only reply.
    let (code, input) = request(&Request::GetStatus);
    for bad in [
        &input[..0],
        &input[..7],
        &[input.as_slice(), &[0u8; 9]].concat()[..],
    ] {
        let a = serve::handle(code, bad, &mut out);
        assert_ne!(a.status, 0, "{} bytes accepted", bad.len());
        assert_eq!(a.bytes, protocol::HEADER_SIZE);
    }
    let mut garbled = input.clone();
    garbled[0] ^= 0xFF;
    assert_eq!(
        serve::handle(code, &garbled, &mut out).status,
        protocol::STATUS_INVALID_PARAMETER
    );
    // The IOCTL of one kind with the body of another.
    let (_, version) = request(&Request::QueryVersion);
    assert_eq!(
        serve::handle(code, &version, &mut out).status,
        protocol::STATUS_INVALID_PARAMETER
    );
    // An output buffer too small for even a header.
    let a = serve::handle(code, &input, &mut [0u8; 4]);
    assert_eq!((a.status, a.bytes), (protocol::STATUS_BUFFER_TOO_SMALL, 0));
    // ResetLog is not supported (yet): said so.
    let (a, _) = call(&Request::ResetLog, 64);
    assert_eq!(a.status, protocol::STATUS_NOT_SUPPORTED);
    runtime::set_settings(&Settings::EMPTY);
}
