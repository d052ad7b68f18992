//! civ.sys passes its own checks: an HVCI driver checker that could not
//! load under HVCI would be of no use. The WDM build has no W+X section, no
//! section off a page, no IAT in code, no straddling relocation, and
//! imports only ntoskrnl.exe.

use civ_engine::image::check_image;
use civ_engine::pe::{Layout, PeImage};

#[test]
fn civ_sys_is_hvci_clean_and_imports_only_ntoskrnl() {
    let bytes = std::fs::read(civ_fixtures::wine::civ_sys()).expect("civ.sys");
    let pe = PeImage::parse(&bytes, Layout::File).expect("civ.sys parses");
    assert!(pe.is_64());
    let mut findings = Vec::new();
    check_image(&pe, |f| findings.push(format!("{f:?}"))).expect("checks run");
    assert!(
        findings.is_empty(),
        "civ.sys has image findings: {findings:#?}"
    );
    let mut modules = Vec::new();
    pe.for_each_import_module(|m| {
        modules.push(String::from_utf8_lossy(m.module).to_ascii_lowercase())
    })
    .expect("imports");
    assert_eq!(modules, ["ntoskrnl.exe"]);
}
