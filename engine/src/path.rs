//! Image paths (`\` or `/` separated): their file name part, of a byte
//! path, or of a UTF-16 one as the kernel hands it over (of any length)
//! as UTF-8 into a fixed buffer. Only the file name is matched against civ's targets and shown, so it is
//! taken from the end of the path: a path longer than any buffer still
//! gives its whole file name.

/// The file name part of a path.
pub fn file_name(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'\\' || b == b'/')
        .next()
        .unwrap_or(path)
}

/// The file name part of a path as text (civctl's reports, INF entries,
/// a PDB's build path), whichever separator it uses on whatever host.
pub fn file_name_str(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// UTF-16 to UTF-8 into `out` (unpaired surrogates become U+FFFD); returns
/// the bytes written, cut at a character boundary when `out` is full.
pub fn utf16_to_utf8(units: &[u16], out: &mut [u8]) -> usize {
    let mut n = 0;
    for c in char::decode_utf16(units.iter().copied()) {
        let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
        let mut buf = [0u8; 4];
        let enc = c.encode_utf8(&mut buf).as_bytes();
        match out.get_mut(n..n + enc.len()) {
            Some(dst) => dst.copy_from_slice(enc),
            None => break,
        }
        n += enc.len();
    }
    n
}

/// The file name of a UTF-16 path, as UTF-8 into `out`; returns its length.
pub fn file_name_utf8(path: &[u16], out: &mut [u8]) -> usize {
    let start = path
        .iter()
        .rposition(|&u| u == u16::from(b'\\') || u == u16::from(b'/'))
        .map_or(0, |i| i + 1);
    utf16_to_utf8(path.get(start..).unwrap_or(&[]), out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn utf16(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    fn name(path: &[u16], room: usize) -> String {
        let mut out = std::vec![0u8; room];
        let n = file_name_utf8(path, &mut out);
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    #[test]
    fn either_separator_ends_the_directory_part() {
        assert_eq!(file_name(br"C:\dir/sub\x.sys"), b"x.sys");
        assert_eq!(file_name(b"x.sys"), b"x.sys");
        assert_eq!(file_name(br"dir\"), b"");
        assert_eq!(
            file_name_str(r"\SystemRoot\System32\drivers/驱动.sys"),
            "驱动.sys"
        );
        assert_eq!(file_name_str("/build/out/x.pdb"), "x.pdb");
        assert_eq!(file_name_str("bare"), "bare");
        assert_eq!(file_name_str(r"C:\dir\"), "");
    }

    #[test]
    fn the_file_name_survives_any_path_length() {
        let deep = std::format!(r"\??\C:\{}\WinDivert64.sys", ["folder"; 300].join("\\"));
        assert!(deep.len() > 2000);
        assert_eq!(name(&utf16(&deep), 512), "WinDivert64.sys");
        assert_eq!(name(&utf16("/mnt/x/Foo.sys"), 512), "Foo.sys");
        assert_eq!(name(&utf16("bare.sys"), 512), "bare.sys");
        assert_eq!(name(&utf16(r"C:\dir\"), 512), "");
        assert_eq!(name(&[], 512), "");
    }

    #[test]
    fn text_is_converted_whole_or_cut_at_a_character() {
        assert_eq!(name(&utf16(r"\x\驱动程序.sys"), 512), "驱动程序.sys");
        // 3 bytes a character: 7 bytes of room hold two.
        assert_eq!(name(&utf16("驱动程序.sys"), 7), "驱动");
        // An unpaired surrogate reads as U+FFFD.
        let mut odd = utf16(r"\d\a");
        odd.push(0xD800);
        odd.extend(utf16(".sys"));
        assert_eq!(name(&odd, 512), "a\u{FFFD}.sys");
    }
}
