//! Reads every image in tests/malformed/ (written by make.py) in both layouts
//! with every public reading function. Nothing may panic, and the file-layout
//! outcome must be exactly the one expected.txt states. Images that parse are
//! also mapped as the loader would and read again, to check both layouts
//! agree. All mismatches are collected and reported together.

use civ_engine::code::Counter;
use civ_engine::image::{Detail, Finding, check_image, for_each_hooked_import, iat_location};
use civ_engine::pe::{Import, ImportModule, ImportName, Layout, PeError, PeImage};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The variant's name, as expected.txt spells it. No wildcard arm, so a new
/// variant cannot go untested.
fn variant(e: &PeError) -> &'static str {
    match e {
        PeError::Truncated(_) => "Truncated",
        PeError::NotMz => "NotMz",
        PeError::BadHeaderOffset(_) => "BadHeaderOffset",
        PeError::NotPe => "NotPe",
        PeError::BadOptionalMagic(_) => "BadOptionalMagic",
        PeError::Headers(_) => "Headers",
        PeError::SectionTable { .. } => "SectionTable",
        PeError::RvaOverflow { .. } => "RvaOverflow",
        PeError::OverlappingSections { .. } => "OverlappingSections",
        PeError::SectionData { .. } => "SectionData",
        PeError::ImageTooSmall { .. } => "ImageTooSmall",
        PeError::BadRva { .. } => "BadRva",
        PeError::Relocations(_) => "Relocations",
        PeError::TooManyImports { .. } => "TooManyImports",
    }
}

/// A word the error's message must contain: it has to say what is wrong.
fn keyword(e: &PeError) -> &'static str {
    match e {
        PeError::Truncated(_) => "truncated",
        PeError::NotMz => "MZ",
        PeError::BadHeaderOffset(_) => "e_lfanew",
        PeError::NotPe => "PE signature",
        PeError::BadOptionalMagic(_) => "magic",
        PeError::Headers(_) => "headers",
        PeError::SectionTable { .. } => "section table",
        PeError::RvaOverflow { .. } => "overflows",
        PeError::OverlappingSections { .. } => "overlaps",
        PeError::SectionData { .. } => "raw data",
        PeError::ImageTooSmall { .. } => "SizeOfImage",
        PeError::BadRva { .. } => "RVA",
        PeError::Relocations(_) => "relocations",
        PeError::TooManyImports { .. } => "imports",
    }
}

fn check_message(e: &PeError, problems: &mut Vec<String>, file: &str) {
    let text = e.to_string();
    if !text.contains(keyword(e)) {
        problems.push(format!(
            "{file}: message {text:?} of {e:?} does not mention {:?}",
            keyword(e)
        ));
    }
}

/// What every reading function returned for one parsed image.
struct Readings<'a> {
    modules: Result<Vec<ImportModule<'a>>, PeError>,
    imports: Result<Vec<Import<'a>>, PeError>,
    relocs: Result<Vec<(u32, u16)>, PeError>,
    findings: Result<Vec<Finding<'a>>, PeError>,
    hooked: Result<Vec<(&'static str, Import<'a>)>, PeError>,
    iat: Result<Option<(u32, Option<usize>)>, PeError>,
}

/// Calls every public reader (a panic fails the test) and checks that the
/// walkers built on others fail as those do.
fn read_all<'a>(image: &PeImage<'a>, problems: &mut Vec<String>, file: &str) -> Readings<'a> {
    // Accessors: their values are checked only for the valid images, but
    // each must run on whatever the section table holds.
    let mut rvas = vec![0, 1, image.size_of_image(), u32::MAX];
    for s in image.sections() {
        let _ = (
            s.name(),
            s.raw_name(),
            s.virtual_size(),
            s.raw_size(),
            s.raw_offset(),
        );
        let _ = (
            s.characteristics(),
            s.is_executable(),
            s.is_writable(),
            s.contains(s.rva()),
        );
        rvas.extend([s.rva(), s.rva().wrapping_add(s.extent()).wrapping_sub(1)]);
    }
    rvas.extend(
        (0..16)
            .filter_map(|i| image.data_directory(i))
            .map(|(rva, _)| rva),
    );
    for rva in rvas {
        let _ = (image.section_containing(rva), image.bytes_from(rva, "test"));
        let _ = (
            image.bytes_at(rva, 1, "test"),
            image.bytes_at(rva, 0x1000, "test"),
        );
    }

    let mut modules = Vec::new();
    let modules = image
        .for_each_import_module(|m| modules.push(m))
        .map(|()| modules);
    let mut imports = Vec::new();
    let imports = image.for_each_import(|i| imports.push(i)).map(|()| imports);
    let mut relocs = Vec::new();
    let relocs = image
        .for_each_base_relocation(|rva, t| relocs.push((rva, t)))
        .map(|()| relocs);
    let mut findings = Vec::new();
    let findings = check_image(image, |f| findings.push(f)).map(|()| findings);
    let mut hooked = Vec::new();
    let hooked = for_each_hooked_import(image, |h, i| hooked.push((h.name, i))).map(|()| hooked);
    let _ = civ_engine::iat::plan(image); // the driver's reader: must not panic
    let iat = iat_location(image).map(|o| o.map(|(rva, s)| (rva, s.map(|s| s.index))));

    let r = Readings {
        modules,
        imports,
        relocs,
        findings,
        hooked,
        iat,
    };
    // check_image walks the descriptors (not the thunks), then the relocations.
    let image_err = r.modules.as_ref().err().or(r.relocs.as_ref().err());
    let consistent = r.findings.as_ref().err() == image_err
        && r.hooked.as_ref().err() == r.imports.as_ref().err()
        && (r.modules.is_ok() || r.imports.as_ref().err() == r.modules.as_ref().err())
        && r.iat
            .as_ref()
            .err()
            .is_none_or(|e| Some(e) == r.modules.as_ref().err());
    if !consistent {
        problems.push(format!(
            "{file} ({:?}): walkers disagree on the error",
            image.layout()
        ));
    }
    let errors = [
        r.modules.as_ref().err(),
        r.imports.as_ref().err(),
        r.relocs.as_ref().err(),
    ];
    for e in errors.into_iter().flatten() {
        check_message(e, problems, file);
    }
    r
}

/// The outcome in expected.txt's words.
fn outcome(parsed: &Result<PeImage<'_>, PeError>, r: Option<&Readings<'_>>) -> String {
    let (Ok(_), Some(r)) = (parsed, r) else {
        return parsed.as_ref().err().map_or("?", variant).to_string();
    };
    let mut s = String::from("ok");
    if let Err(e) = &r.modules {
        s += &format!(" modules:{}", variant(e));
    } else if let Err(e) = &r.imports {
        s += &format!(" imports:{}", variant(e));
    }
    if let Err(e) = &r.relocs {
        s += &format!(" relocs:{}", variant(e));
    }
    s
}

/// The image as the loader lays it out: the headers at 0 and each section's
/// raw data at its RVA, in SizeOfImage bytes.
fn map(image: &PeImage<'_>) -> Vec<u8> {
    let data = image.data();
    let mut mapped = vec![0u8; image.size_of_image().min(1 << 24) as usize];
    let n = (image.size_of_headers() as usize)
        .min(data.len())
        .min(mapped.len());
    mapped[..n].copy_from_slice(&data[..n]);
    for s in image.sections() {
        let len = s.raw_size().min(s.extent()) as usize;
        let (src, dst) = (s.raw_offset() as usize, s.rva() as usize);
        let len = len.min(mapped.len().saturating_sub(dst));
        if len > 0 {
            mapped[dst..dst + len].copy_from_slice(&data[src..src + len]);
        }
    }
    mapped
}

/// What the valid images must read as: x64 and x86 differ only in thunk
/// width and relocation type.
fn check_valid(file: &str, image: &PeImage<'_>, r: &Readings<'_>, problems: &mut Vec<String>) {
    let (w, typ) = if image.is_64() { (8, 10) } else { (4, 3) };
    let imports = [
        (
            &b"ntoskrnl.exe"[..],
            ImportName::Name(b"ExAllocatePoolWithTag"),
            0x2000,
        ),
        (
            b"ntoskrnl.exe",
            ImportName::Name(b"ExFreePoolWithTag"),
            0x2000 + w,
        ),
        (
            b"HAL.dll",
            ImportName::Name(b"KeStallExecutionProcessor"),
            0x2000 + 3 * w,
        ),
        (b"HAL.dll", ImportName::Ordinal(7), 0x2000 + 4 * w),
    ]
    .map(|(module, name, iat_rva)| Import {
        module,
        name,
        iat_rva,
    });
    let names: Vec<&[u8]> = image.sections().map(|s| s.name()).collect();
    let findings: Vec<_> = r
        .findings
        .iter()
        .flatten()
        .map(|f| (f.counter, f.section.map(|s| s.index), f.rva, f.detail))
        .collect();
    let ok = names == [&b".text"[..], b".rdata", b".data", b".reloc"]
        && image.machine() == if image.is_64() { 0x8664 } else { 0x14C }
        && r.imports.as_deref() == Ok(&imports[..])
        && r.modules.as_ref().map(|m| {
            m.iter()
                .map(|m| (m.module, m.first_thunk))
                .collect::<Vec<_>>()
        }) == Ok(vec![
            (&b"ntoskrnl.exe"[..], 0x2000),
            (b"HAL.dll", 0x2000 + 3 * w),
        ])
        && r.hooked.as_deref() == Ok(&[("ExAllocatePoolWithTag", imports[0])][..])
        && r.relocs.as_deref() == Ok(&[(0x1010, typ), (0x1FFE, typ)][..])
        && r.iat == Ok(Some((0x2000, Some(1))))
        && findings
            == [(
                Counter::UnsupportedRelocs,
                Some(0),
                0x1FFE,
                Detail::StraddlingRelocations {
                    count: 1,
                    first_type: typ,
                },
            )];
    if !ok {
        problems.push(format!(
            "{file} ({:?}): does not read as make.py built it",
            image.layout()
        ));
    }
}

#[test]
fn malformed_images() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/malformed");
    let expected: BTreeMap<String, String> = std::fs::read_to_string(dir.join("expected.txt"))
        .expect("expected.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (file, outcome) = l.split_once('\t').expect("<file>\\t<outcome>");
            (file.to_string(), outcome.trim().to_string())
        })
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        expected.keys().cloned().collect::<Vec<_>>(),
        "files and expected.txt lines differ"
    );

    let mut problems = Vec::new();
    for file in &files {
        let data = std::fs::read(dir.join(file)).unwrap();
        assert!(data.len() < 8192, "{file} should stay small");
        // Mapped layout on the file's bytes: only that it does not panic.
        if let Ok(image) = PeImage::parse(&data, Layout::Mapped) {
            read_all(&image, &mut problems, file);
        }

        let parsed = PeImage::parse(&data, Layout::File);
        if let Err(e) = &parsed {
            check_message(e, &mut problems, file);
        }
        let readings = parsed
            .as_ref()
            .ok()
            .map(|image| read_all(image, &mut problems, file));
        let got = outcome(&parsed, readings.as_ref());
        if got != expected[file] {
            problems.push(format!(
                "{file}: expected `{}`, got `{got}` ({:?})",
                expected[file],
                parsed.as_ref().err()
            ));
        }
        let (Ok(image), Some(r)) = (&parsed, &readings) else {
            continue;
        };
        if file.starts_with("valid_") {
            check_valid(file, image, r, &mut problems);
        }

        // The loader's view of the same image must parse, and where the file
        // reads cleanly both layouts must find the same imports and findings.
        let mapped = map(image);
        match PeImage::parse(&mapped, Layout::Mapped) {
            Err(e) => problems.push(format!("{file}: mapped copy does not parse: {e}")),
            Ok(m) => {
                let mr = read_all(&m, &mut problems, file);
                if file.starts_with("valid_") {
                    check_valid(file, &m, &mr, &mut problems);
                }
                if expected[file] == "ok"
                    && (mr.imports != r.imports
                        || mr.relocs != r.relocs
                        || mr.findings != r.findings)
                {
                    problems.push(format!("{file}: file and mapped layouts read differently"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}
