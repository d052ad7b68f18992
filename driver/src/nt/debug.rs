//! Debug output: `civ: ...` lines through DbgPrintEx, formatted with
//! `core::fmt` into a stack buffer (no allocation). Seen in WinDbg, in
//! DebugView, and under Wine with WINEDEBUG=warn+debugstr.

use super::ffi::dbg_print_line;
use core::fmt::{self, Write};

/// Longest line printed; longer ones are cut.
const LINE: usize = 320;

struct Line {
    buf: [u8; LINE],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep one byte for the NUL; cut silently past it.
        let room = LINE - 1 - self.len;
        let n = s.len().min(room);
        if let (Some(dst), Some(src)) = (
            self.buf.get_mut(self.len..self.len + n),
            s.as_bytes().get(..n),
        ) {
            dst.copy_from_slice(src);
            self.len += n;
        }
        Ok(())
    }
}

/// Prints one line, prefixed `civ: `. Callable at IRQL <= DISPATCH_LEVEL.
pub fn print(args: fmt::Arguments<'_>) {
    let mut line = Line {
        buf: [0; LINE],
        len: 0,
    };
    let _ = line.write_str("civ: ");
    let _ = line.write_fmt(args);
    let _ = line.write_str("\n");
    if let Some(end) = line.buf.get_mut(line.len.min(LINE - 1)) {
        *end = 0;
    }
    // SAFETY: the buffer is NUL-terminated and lives across the call.
    unsafe { dbg_print_line(line.buf.as_ptr()) };
}

/// `log!("...", args)`: a formatted debug line.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::nt::debug::print(format_args!($($arg)*))
    };
}
