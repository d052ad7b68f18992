//! civ's settings, read from the registry the way Driver Verifier reads its
//! own: VerifyDriverLevel (flags), VerifyDrivers (target names), and civ's
//! ViolationAction. Parsing never fails: a bad value is noted and replaced by
//! a safe default, so that a typo never keeps a machine from booting.
//!
//! Values arrive raw (registry type and bytes, UTF-16LE strings), and are
//! parsed into fixed-size storage: no allocation.

use crate::code::VERIFIER_FLAG_CODE_INTEGRITY;
use crate::path::file_name;

/// REG_SZ.
pub const REG_SZ: u32 = 1;
/// REG_EXPAND_SZ.
pub const REG_EXPAND_SZ: u32 = 2;
/// REG_DWORD.
pub const REG_DWORD: u32 = 4;
/// REG_MULTI_SZ.
pub const REG_MULTI_SZ: u32 = 7;

/// At most this many target names are kept.
pub const MAX_TARGETS: usize = 64;
/// Longest target name kept, in UTF-8 bytes.
pub const MAX_NAME: usize = 64;

/// What to do on a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    /// Bug check 0xC4 with DV's arguments (DV's behaviour; the default).
    BugCheck = 0,
    /// Record the violation and let the call go on.
    Log = 1,
}

impl Action {
    /// The action for a ViolationAction value.
    pub fn from_value(v: u32) -> Option<Action> {
        match v {
            0 => Some(Action::BugCheck),
            1 => Some(Action::Log),
            _ => None,
        }
    }
}

/// What the settings reader ignored, as bits (several may be set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notes(pub u32);

impl Notes {
    /// VerifyDriverLevel was not a REG_DWORD: taken as 0 (civ off).
    pub const LEVEL_WRONG_TYPE: u32 = 1 << 0;
    /// VerifyDriverLevel has flags other than 0x02000000: ignored.
    pub const LEVEL_OTHER_FLAGS: u32 = 1 << 1;
    /// VerifyDriverLevel lacks 0x02000000: civ checks nothing.
    pub const LEVEL_NO_CODE_INTEGRITY: u32 = 1 << 2;
    /// VerifyDrivers was not a string: no targets.
    pub const DRIVERS_WRONG_TYPE: u32 = 1 << 3;
    /// More names than MAX_TARGETS: the rest ignored.
    pub const DRIVERS_TOO_MANY: u32 = 1 << 4;
    /// A name longer than MAX_NAME, or not valid UTF-16: ignored.
    pub const DRIVERS_BAD_NAME: u32 = 1 << 5;
    /// ViolationAction was not a REG_DWORD: bug check.
    pub const ACTION_WRONG_TYPE: u32 = 1 << 6;
    /// ViolationAction was not 0 or 1: bug check.
    pub const ACTION_UNKNOWN: u32 = 1 << 7;

    /// Every note with its explanation.
    pub const ALL: [(u32, &'static str); 8] = [
        (
            Self::LEVEL_WRONG_TYPE,
            "VerifyDriverLevel is not a REG_DWORD; civ is off",
        ),
        (
            Self::LEVEL_OTHER_FLAGS,
            "VerifyDriverLevel has flags other than 0x02000000; civ ignores them",
        ),
        (
            Self::LEVEL_NO_CODE_INTEGRITY,
            "VerifyDriverLevel lacks 0x02000000 (code integrity); civ checks nothing",
        ),
        (
            Self::DRIVERS_WRONG_TYPE,
            "VerifyDrivers is not REG_SZ or REG_MULTI_SZ; no targets",
        ),
        (
            Self::DRIVERS_TOO_MANY,
            "VerifyDrivers names more than 64 drivers; the rest are ignored",
        ),
        (
            Self::DRIVERS_BAD_NAME,
            "VerifyDrivers has a name over 64 bytes or not valid UTF-16; it is ignored",
        ),
        (
            Self::ACTION_WRONG_TYPE,
            "ViolationAction is not a REG_DWORD; civ bug-checks",
        ),
        (
            Self::ACTION_UNKNOWN,
            "ViolationAction is not 0 (bug check) or 1 (log); civ bug-checks",
        ),
    ];

    /// Is this note set?
    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    /// The explanations of the notes that are set.
    pub fn messages(self) -> impl Iterator<Item = &'static str> {
        Self::ALL
            .into_iter()
            .filter(move |(b, _)| self.has(*b))
            .map(|(_, m)| m)
    }
}

/// A registry value as read: its type and raw bytes; `None` when absent.
pub type RawValue<'a> = Option<(u32, &'a [u8])>;

/// The parsed settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// VerifyDriverLevel as found (0 when absent or of the wrong type).
    pub level: u32,
    /// What to do on a violation.
    pub action: Action,
    names: [[u8; MAX_NAME]; MAX_TARGETS],
    lens: [u8; MAX_TARGETS],
    count: usize,
    /// What was ignored.
    pub notes: Notes,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::EMPTY
    }
}

fn dword(bytes: &[u8]) -> Option<u32> {
    let b = bytes.get(..4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl Settings {
    /// No flag, no target, bug-check action: civ checks nothing.
    pub const EMPTY: Settings = Settings {
        level: 0,
        action: Action::BugCheck,
        names: [[0; MAX_NAME]; MAX_TARGETS],
        lens: [0; MAX_TARGETS],
        count: 0,
        notes: Notes(0),
    };

    /// Parses the three values.
    pub fn parse(level: RawValue<'_>, drivers: RawValue<'_>, action: RawValue<'_>) -> Settings {
        let mut s = Settings::EMPTY;
        s.parse_into(level, drivers, action);
        s
    }

    /// Parses the three values into `self` (the driver parses straight into
    /// the settings in force: a `Settings` is too big to copy around a
    /// kernel stack).
    pub fn parse_into(&mut self, level: RawValue<'_>, drivers: RawValue<'_>, action: RawValue<'_>) {
        *self = Settings::EMPTY;
        let s = self;
        match level {
            None => {}
            Some((REG_DWORD, b)) if b.len() == 4 => s.level = dword(b).unwrap_or(0),
            Some(_) => s.notes.0 |= Notes::LEVEL_WRONG_TYPE,
        }
        if s.level & !VERIFIER_FLAG_CODE_INTEGRITY != 0 {
            s.notes.0 |= Notes::LEVEL_OTHER_FLAGS;
        }
        if s.level & VERIFIER_FLAG_CODE_INTEGRITY == 0 {
            s.notes.0 |= Notes::LEVEL_NO_CODE_INTEGRITY;
        }
        match drivers {
            None => {}
            Some((REG_SZ | REG_EXPAND_SZ | REG_MULTI_SZ, b)) => s.parse_names(b),
            Some(_) => s.notes.0 |= Notes::DRIVERS_WRONG_TYPE,
        }
        match action {
            None => {}
            Some((REG_DWORD, b)) if b.len() == 4 => match dword(b).and_then(Action::from_value) {
                Some(a) => s.action = a,
                None => s.notes.0 |= Notes::ACTION_UNKNOWN,
            },
            Some(_) => s.notes.0 |= Notes::ACTION_WRONG_TYPE,
        }
    }

    /// Settings from already-parsed parts (civctl's SetSettings request):
    /// names past MAX_TARGETS or longer than MAX_NAME are noted and left out.
    pub fn from_parts<'a>(
        level: u32,
        action: Action,
        names: impl IntoIterator<Item = &'a [u8]>,
    ) -> Settings {
        let mut s = Settings::EMPTY;
        s.assign_parts(level, action, names);
        s
    }

    /// [`Settings::from_parts`] into `self`, without a copy on the stack.
    pub fn assign_parts<'a>(
        &mut self,
        level: u32,
        action: Action,
        names: impl IntoIterator<Item = &'a [u8]>,
    ) {
        *self = Settings::EMPTY;
        self.level = level;
        self.action = action;
        for name in names {
            if name.is_empty() || name.len() > MAX_NAME {
                self.notes.0 |= Notes::DRIVERS_BAD_NAME;
            } else {
                self.push(name);
            }
        }
    }

    /// Splits UTF-16LE text on spaces, tabs and NULs (REG_SZ is space
    /// separated, REG_MULTI_SZ NUL separated) into names.
    fn parse_names(&mut self, bytes: &[u8]) {
        let units = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]));
        let mut name = [0u8; MAX_NAME];
        let mut len = 0usize;
        let mut bad = false;
        for ch in char::decode_utf16(units.chain(core::iter::once(0))) {
            let c = ch.unwrap_or(char::REPLACEMENT_CHARACTER);
            if c == '\0' || c == ' ' || c == '\t' {
                if len > 0 || bad {
                    if bad {
                        self.notes.0 |= Notes::DRIVERS_BAD_NAME;
                    } else {
                        self.push(&name[..len]);
                    }
                }
                len = 0;
                bad = false;
                continue;
            }
            if c == char::REPLACEMENT_CHARACTER {
                bad = true;
            }
            let mut buf = [0u8; 4];
            let enc = c.encode_utf8(&mut buf).as_bytes();
            match name.get_mut(len..len + enc.len()) {
                Some(dst) if !bad => {
                    dst.copy_from_slice(enc);
                    len += enc.len();
                }
                _ => bad = true,
            }
        }
    }

    fn push(&mut self, name: &[u8]) {
        if self.count >= MAX_TARGETS {
            self.notes.0 |= Notes::DRIVERS_TOO_MANY;
            return;
        }
        if let (Some(dst), Some(l)) = (
            self.names.get_mut(self.count),
            self.lens.get_mut(self.count),
        ) {
            if let Some(d) = dst.get_mut(..name.len()) {
                d.copy_from_slice(name);
            }
            *l = name.len() as u8;
            self.count += 1;
        }
    }

    /// Is the code-integrity flag on?
    pub fn enabled(&self) -> bool {
        self.level & VERIFIER_FLAG_CODE_INTEGRITY != 0
    }

    /// The target names (patterns), in order.
    pub fn targets(&self) -> impl Iterator<Item = &[u8]> {
        self.names
            .iter()
            .zip(self.lens.iter())
            .take(self.count)
            .map(|(n, &l)| n.get(..usize::from(l)).unwrap_or(n))
    }

    /// Does an image (full path or bare name, `\` or `/` separated) match a
    /// target? Only the file name is compared, case-insensitively; `*` and
    /// `?` are wildcards, and `*` alone matches every image (what civ then
    /// leaves out is [`crate::scope`]'s to decide).
    pub fn matches(&self, image_path: &[u8]) -> bool {
        self.match_kind(image_path).is_some()
    }

    /// How an image matches the targets: by its own name, or only through
    /// a pattern with a wildcard (`*`, `vendor*.sys`); `None` if it does
    /// not, or civ is off.
    pub fn match_kind(&self, image_path: &[u8]) -> Option<Match> {
        if !self.enabled() {
            return None;
        }
        let name = file_name(image_path);
        let mut found = None;
        for pattern in self.targets() {
            if !glob_match(pattern, name) {
                continue;
            }
            if pattern.iter().any(|&c| c == b'*' || c == b'?') {
                found = Some(Match::Pattern);
            } else {
                return Some(Match::Named);
            }
        }
        found
    }
}

/// How an image matched civ's targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    /// A target names it exactly (case-insensitively).
    Named,
    /// Only a pattern with a wildcard matches it.
    Pattern,
}

/// Case-insensitive (ASCII) glob match with `*` and `?`, iterative with
/// one backtrack point, so its cost is bounded by |pattern|·|name|.
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || name.get(n).is_some_and(|x| x.eq_ignore_ascii_case(&c)) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(|u| u.to_le_bytes())
            .collect()
    }
    fn dw(v: u32) -> Vec<u8> {
        v.to_le_bytes().to_vec()
    }
    fn names(s: &Settings) -> Vec<std::string::String> {
        s.targets()
            .map(|n| std::string::String::from_utf8(n.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn verifier_style_values() {
        let level = dw(0x0200_0000);
        let drivers = utf16("a.sys  B.SYS\tc.sys");
        let action = dw(1);
        let s = Settings::parse(
            Some((REG_DWORD, &level)),
            Some((REG_SZ, &drivers)),
            Some((REG_DWORD, &action)),
        );
        assert!(s.enabled());
        assert_eq!(s.action, Action::Log);
        assert_eq!(names(&s), ["a.sys", "B.SYS", "c.sys"]);
        assert_eq!(s.notes, Notes(0));
        assert!(s.matches(b"\\SystemRoot\\System32\\drivers\\b.sys"));
        assert!(s.matches(b"C:\\windows\\system32\\drivers\\A.SYS"));
        assert!(!s.matches(b"\\SystemRoot\\System32\\drivers\\ab.sys"));
    }

    #[test]
    fn multi_sz_and_wildcards() {
        let level = dw(0x0200_0000);
        let mut drivers = utf16("vendor*.sys");
        drivers.extend(utf16("x?.sys"));
        drivers.extend([0, 0]);
        let s = Settings::parse(
            Some((REG_DWORD, &level)),
            Some((REG_MULTI_SZ, &drivers)),
            None,
        );
        assert_eq!(names(&s), ["vendor*.sys", "x?.sys"]);
        assert_eq!(s.action, Action::BugCheck);
        assert!(s.matches(b"VendorNet.sys"));
        assert!(s.matches(b"x1.sys"));
        assert!(!s.matches(b"x12.sys"));
        let star = utf16("*");
        let s = Settings::parse(Some((REG_DWORD, &level)), Some((REG_SZ, &star)), None);
        assert!(s.matches(b"anything.sys"));
    }

    #[test]
    fn flag_off_matches_nothing() {
        let level = dw(0x0000_0001);
        let drivers = utf16("*");
        let s = Settings::parse(Some((REG_DWORD, &level)), Some((REG_SZ, &drivers)), None);
        assert!(!s.enabled());
        assert!(!s.matches(b"a.sys"));
        assert!(
            s.notes.has(Notes::LEVEL_OTHER_FLAGS) && s.notes.has(Notes::LEVEL_NO_CODE_INTEGRITY)
        );
    }

    #[test]
    fn wrong_types_and_values_fall_back_safely() {
        let text = utf16("0x02000000");
        let s = Settings::parse(
            Some((REG_SZ, &text)),
            Some((REG_DWORD, &dw(1))),
            Some((REG_SZ, &text)),
        );
        assert_eq!(s.level, 0);
        assert_eq!(s.action, Action::BugCheck);
        assert_eq!(s.targets().count(), 0);
        for n in [
            Notes::LEVEL_WRONG_TYPE,
            Notes::DRIVERS_WRONG_TYPE,
            Notes::ACTION_WRONG_TYPE,
        ] {
            assert!(s.notes.has(n), "{n:#x}");
        }
        // A REG_DWORD of the wrong length is the wrong type too.
        let s = Settings::parse(Some((REG_DWORD, &[1, 0])), None, Some((REG_DWORD, &dw(7))));
        assert!(s.notes.has(Notes::LEVEL_WRONG_TYPE));
        assert!(s.notes.has(Notes::ACTION_UNKNOWN));
        assert_eq!(s.action, Action::BugCheck);
        assert_eq!(s.notes.messages().count(), 3);
    }

    #[test]
    fn overlong_lists_and_names_are_cut_with_a_note() {
        let level = dw(0x0200_0000);
        let many: std::string::String = (0..100).map(|i| std::format!("d{i}.sys ")).collect();
        let s = Settings::parse(
            Some((REG_DWORD, &level)),
            Some((REG_SZ, &utf16(&many))),
            None,
        );
        assert_eq!(s.targets().count(), MAX_TARGETS);
        assert!(s.notes.has(Notes::DRIVERS_TOO_MANY));
        assert!(s.matches(b"d63.sys") && !s.matches(b"d64.sys"));
        let long = std::format!("{}.sys ok.sys", "x".repeat(100));
        let s = Settings::parse(
            Some((REG_DWORD, &level)),
            Some((REG_SZ, &utf16(&long))),
            None,
        );
        assert_eq!(names(&s), ["ok.sys"]);
        assert!(s.notes.has(Notes::DRIVERS_BAD_NAME));
        // An unpaired surrogate is a bad name, not a panic.
        let bad: Vec<u8> = [0xD800u16, b'a' as u16, b' ' as u16, b'b' as u16]
            .iter()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let s = Settings::parse(Some((REG_DWORD, &level)), Some((REG_SZ, &bad)), None);
        assert_eq!(names(&s), ["b"]);
        assert!(s.notes.has(Notes::DRIVERS_BAD_NAME));
        // Odd byte counts drop the last byte.
        let s = Settings::parse(
            Some((REG_DWORD, &level)),
            Some((REG_SZ, &[b'a', 0, b'b'])),
            None,
        );
        assert_eq!(names(&s), ["a"]);
    }

    #[test]
    fn glob() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"a*b*c", b"AxxBxxC"));
        assert!(!glob_match(b"a*b", b"ac"));
        assert!(glob_match(b"**.sys", b"x.SYS"));
        assert!(!glob_match(b"", b"x"));
        assert!(glob_match(b"", b""));
    }
}
