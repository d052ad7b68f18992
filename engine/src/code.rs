//! Driver Verifier's code-integrity vocabulary: the bug-check codes (Arg1 of
//! bug check 0xC4) and the seven per-driver counters that
//! `verifier /log.code_integrity` keeps.

use core::fmt;

/// DRIVER_VERIFIER_DETECTED_VIOLATION: the bug check DV raises.
pub const BUGCHECK_DRIVER_VERIFIER_DETECTED_VIOLATION: u32 = 0xC4;

/// The verifier flag that turns the code integrity checks on.
pub const VERIFIER_FLAG_CODE_INTEGRITY: u32 = 0x0200_0000;

/// Arg1 of bug check 0xC4 for a code-integrity violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum Code {
    /// The driver asked for executable pool.
    ExecutePoolType = 0x2000,
    /// The driver asked for an executable page protection.
    ExecutePageProtection = 0x2001,
    /// The driver mapped an MDL as executable.
    ExecutePageMapping = 0x2002,
    /// The image has a section that is both writable and executable.
    ExecuteWriteSection = 0x2003,
    /// A section of the image does not start on a page.
    SectionAlignment = 0x2004,
    /// The import address table lies in an executable section.
    IatInExecutableSection = 0x2005,
}

impl Code {
    /// Every code, in numeric order.
    pub const ALL: [Code; 6] = [
        Code::ExecutePoolType,
        Code::ExecutePageProtection,
        Code::ExecutePageMapping,
        Code::ExecuteWriteSection,
        Code::SectionAlignment,
        Code::IatInExecutableSection,
    ];

    /// The numeric value, as Arg1 of the bug check.
    pub const fn value(self) -> u32 {
        self as u32
    }

    /// The code for a numeric Arg1, if it is a code-integrity code.
    pub fn from_value(value: u64) -> Option<Code> {
        Code::ALL
            .into_iter()
            .find(|c| u64::from(c.value()) == value)
    }

    /// What the code means, in a few words.
    pub const fn title(self) -> &'static str {
        match self {
            Code::ExecutePoolType => "executable pool type",
            Code::ExecutePageProtection => "executable page protection",
            Code::ExecutePageMapping => "executable MDL mapping",
            Code::ExecuteWriteSection => "section both writable and executable",
            Code::SectionAlignment => "section not page aligned",
            Code::IatInExecutableSection => "IAT in an executable section",
        }
    }

    /// The counter DV increments for this code in log mode.
    pub const fn counter(self) -> Counter {
        match self {
            Code::ExecutePoolType => Counter::ExecutePoolType,
            Code::ExecutePageProtection => Counter::ExecutePageProtection,
            Code::ExecutePageMapping => Counter::ExecutePageMapping,
            Code::ExecuteWriteSection => Counter::ExecuteWriteSection,
            Code::SectionAlignment => Counter::SectionAlignmentFailures,
            Code::IatInExecutableSection => Counter::IatInExecutableSection,
        }
    }
}

impl fmt::Display for Code {
    /// `0x2003`-style, the way civctl's JSON and the bug check show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.value())
    }
}

/// The seven counters of `verifier /query` for code integrity, in DV's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Counter {
    /// "Execute Pool Type"
    ExecutePoolType = 0,
    /// "Execute Page Protection"
    ExecutePageProtection = 1,
    /// "Execute Page Mapping"
    ExecutePageMapping = 2,
    /// "Execute-Write Section"
    ExecuteWriteSection = 3,
    /// "Section Alignment Failures"
    SectionAlignmentFailures = 4,
    /// "Unsupported Relocs"
    UnsupportedRelocs = 5,
    /// "IAT in Executable Section"
    IatInExecutableSection = 6,
}

impl Counter {
    /// Every counter, in DV's order (also the index of each).
    pub const ALL: [Counter; 7] = [
        Counter::ExecutePoolType,
        Counter::ExecutePageProtection,
        Counter::ExecutePageMapping,
        Counter::ExecuteWriteSection,
        Counter::SectionAlignmentFailures,
        Counter::UnsupportedRelocs,
        Counter::IatInExecutableSection,
    ];

    /// DV's label for the counter.
    pub const fn label(self) -> &'static str {
        match self {
            Counter::ExecutePoolType => "Execute Pool Type",
            Counter::ExecutePageProtection => "Execute Page Protection",
            Counter::ExecutePageMapping => "Execute Page Mapping",
            Counter::ExecuteWriteSection => "Execute-Write Section",
            Counter::SectionAlignmentFailures => "Section Alignment Failures",
            Counter::UnsupportedRelocs => "Unsupported Relocs",
            Counter::IatInExecutableSection => "IAT in Executable Section",
        }
    }

    /// The bug-check code DV raises for this counter; unsupported relocations
    /// are only counted, never a bug check.
    pub const fn code(self) -> Option<Code> {
        match self {
            Counter::ExecutePoolType => Some(Code::ExecutePoolType),
            Counter::ExecutePageProtection => Some(Code::ExecutePageProtection),
            Counter::ExecutePageMapping => Some(Code::ExecutePageMapping),
            Counter::ExecuteWriteSection => Some(Code::ExecuteWriteSection),
            Counter::SectionAlignmentFailures => Some(Code::SectionAlignment),
            Counter::UnsupportedRelocs => None,
            Counter::IatInExecutableSection => Some(Code::IatInExecutableSection),
        }
    }

    /// The short tag civctl prints and writes in JSON: the code (`0x2003`)
    /// or `relocs` for unsupported relocations.
    pub const fn tag(self) -> &'static str {
        match self {
            Counter::ExecutePoolType => "0x2000",
            Counter::ExecutePageProtection => "0x2001",
            Counter::ExecutePageMapping => "0x2002",
            Counter::ExecuteWriteSection => "0x2003",
            Counter::SectionAlignmentFailures => "0x2004",
            Counter::UnsupportedRelocs => "relocs",
            Counter::IatInExecutableSection => "0x2005",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_counters_agree() {
        for code in Code::ALL {
            assert_eq!(code.counter().code(), Some(code));
            assert_eq!(code.counter().tag(), std::format!("{code}"));
            assert_eq!(Code::from_value(u64::from(code.value())), Some(code));
        }
        for (i, counter) in Counter::ALL.into_iter().enumerate() {
            assert_eq!(counter as usize, i);
        }
        assert_eq!(Counter::UnsupportedRelocs.code(), None);
        assert_eq!(Code::from_value(0x2006), None);
        assert_eq!(Code::from_value(0x1_0000_2000), None);
    }
}
