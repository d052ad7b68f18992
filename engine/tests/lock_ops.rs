//! With the kernel's spin lock routines installed (civ.sys installs
//! KeAcquireSpinLockRaiseToDpc / KeReleaseSpinLock first thing), every
//! engine lock goes through them: taken on the lock's own word before the
//! section runs, dropped after it with the IRQL `acquire` returned. Its own
//! process: the routines are installed for good.
#![cfg(not(loom))]

use civ_engine::runtime;
use civ_engine::settings::{Action, Settings};
use civ_engine::sync::{LockOps, SpinLock};
use std::sync::Mutex;

/// What the fake routines saw: (acquired word, released word, irql).
static SEEN: Mutex<Vec<(&'static str, usize, u8)>> = Mutex::new(Vec::new());

/// The IRQL the fake acquire says it came from.
const PASSIVE: u8 = 0;

unsafe extern "system" fn acquire(word: *mut usize) -> u8 {
    // SAFETY: the engine passes its lock's word.
    let w = unsafe { &mut *word };
    assert_eq!(*w, 0, "the word was free");
    *w = 1;
    SEEN.lock()
        .unwrap()
        .push(("acquire", word as usize, PASSIVE));
    PASSIVE
}

unsafe extern "system" fn release(word: *mut usize, irql: u8) {
    // SAFETY: as above.
    let w = unsafe { &mut *word };
    assert_eq!(*w, 1, "released while held");
    *w = 0;
    SEEN.lock().unwrap().push(("release", word as usize, irql));
}

static OPS: LockOps = LockOps { acquire, release };

#[test]
fn engine_locks_are_taken_with_the_kernels_routines() {
    civ_engine::sync::set_lock_ops(&OPS);
    let lock = SpinLock::new(41);
    let got = lock.with(|v| {
        let seen = SEEN.lock().unwrap();
        assert_eq!(seen.last().map(|s| s.0), Some("acquire"), "held inside");
        *v += 1;
        *v
    });
    assert_eq!(got, 42);
    let seen: Vec<_> = SEEN.lock().unwrap().drain(..).collect();
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[0].0, seen[1].0), ("acquire", "release"));
    assert_eq!(seen[0].1, seen[1].1, "one word, the lock's own");
    assert_eq!(seen[1].2, PASSIVE, "back to the IRQL acquire returned");
    // The settings in force are behind such a lock too.
    let mut s = Settings::EMPTY;
    s.action = Action::Log;
    runtime::set_settings(&s);
    assert_eq!(runtime::with_settings(|s| s.action), Action::Log);
    let kinds: Vec<&str> = SEEN.lock().unwrap().iter().map(|s| s.0).collect();
    assert_eq!(kinds, ["acquire", "release", "acquire", "release"]);
}
