//! The symbol table of an archive (`.lib`, `.rlib`, `.a`): the names a
//! linker looks up when it resolves a symbol from a library, whatever the
//! members are (objects, short import members, rustc metadata).

/// The names listed by the archive's first linker member (`/`): a
/// big-endian count, as many member offsets, then the names, each ended by
/// a NUL. COFF archives (link.exe, llvm-lib, llvm-dlltool, rustc's rlibs for
/// MSVC targets) and GNU ones (mingw-w64) both begin with it.
pub fn symbols(data: &[u8]) -> Result<Vec<String>, String> {
    const MAGIC: &[u8] = b"!<arch>\n";
    const HEADER: usize = 60;
    if !data.starts_with(MAGIC) {
        return Err("not an archive (no !<arch> magic)".into());
    }
    let header = data
        .get(MAGIC.len()..MAGIC.len() + HEADER)
        .ok_or("archive ends inside its first member header")?;
    let name = header.get(..16).unwrap_or_default();
    if name.iter().skip(1).any(|&b| b != b' ') || name.first() != Some(&b'/') {
        return Err("archive has no symbol table (its first member is not `/`)".into());
    }
    let size: usize = std::str::from_utf8(header.get(48..58).unwrap_or_default())
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or("bad size in the symbol table's header")?;
    let body = data
        .get(MAGIC.len() + HEADER..MAGIC.len() + HEADER + size)
        .ok_or("symbol table runs past the end of the archive")?;
    let count = body
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("symbol table too short for its count")?;
    let names = body
        .get(4 + count.saturating_mul(4)..)
        .ok_or("symbol table too short for its offsets")?;
    let list: Vec<String> = names
        .split(|&b| b == 0)
        .take(count)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    if list.len() < count {
        return Err(format!(
            "symbol table lists {count} symbols but holds {} names",
            list.len()
        ));
    }
    Ok(list)
}
