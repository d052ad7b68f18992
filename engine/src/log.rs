//! What violations leave behind: per-target counters (DV's seven), a table of
//! unique violation sites with hit counts, and a ring of recent events — all
//! lock-free, bounded, and safe to write from many CPUs at any IRQL up to
//! DISPATCH_LEVEL. Nothing is lost silently: what does not fit is counted
//! exactly.
//!
//! Writers never wait: a site table that is full, or an event slot another
//! writer still holds, adds to a dropped count instead. Readers take a
//! consistent view of each entry or skip it.

use crate::code::Counter;
use crate::sync::{AtomicU32, AtomicU64, Ordering, array, ctor, fence};

/// Bytes of a target's name kept (UTF-8, NUL-padded).
pub const NAME_LEN: usize = 64;

/// `api` value of an image finding (no hooked call).
pub const API_NONE: u8 = 0xFF;
/// `target` value of a call from outside every registered target.
pub const TARGET_UNKNOWN: u8 = 0xFF;

/// Target flag: hooked after it had already loaded (enumerated at civ's start).
pub const TARGET_LATE: u32 = 1;
/// Target flag: the image checks ran.
pub const TARGET_IMAGE_CHECKED: u32 = 2;
/// Target flag: the image has been unloaded.
pub const TARGET_UNLOADED: u32 = 4;
/// Target flag: the image has import-control-transfer dynamic relocations
/// (import call optimization): the kernel may bind its `call [IAT]` sites
/// directly, past the IAT civ hooks.
pub const TARGET_IMPORT_OPTIMIZED: u32 = 8;
/// Target flag: a target name matched it exactly (not only a pattern).
pub const TARGET_NAMED: u32 = 16;

/// Return addresses kept per violation site: the call stack at its first
/// hit, from the call site outwards.
pub const STACK_DEPTH: usize = 8;

const FREE: u32 = 0;
const CLAIMED: u32 = 1;
const READY: u32 = 2;

/// One violation to record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Which DV counter.
    pub counter: Counter,
    /// Index of the target (from [`Log::target_of`]), or [`TARGET_UNKNOWN`].
    pub target: u8,
    /// Hook catalog index, or [`API_NONE`].
    pub api: u8,
    /// Offset of the call's return address (or the finding's RVA) from the
    /// target's base; the absolute address when the target is unknown.
    pub offset: u64,
    /// Arg3 of the bug check.
    pub arg3: u64,
    /// Arg4 of the bug check.
    pub arg4: u64,
    /// Which load of the target (1 for its first since boot, 2 after a
    /// reload, ...); 0 when the target is unknown.
    pub load: u16,
}

struct TargetSlot {
    state: AtomicU32,
    flags: AtomicU32,
    base: AtomicU64,
    size: AtomicU64,
    name: [AtomicU64; NAME_LEN / 8],
    counters: [AtomicU64; 7],
    hooked_slots: AtomicU32,
    conflicts: AtomicU32,
    /// Which load of this name the slot describes now (1, 2, ...).
    load: AtomicU32,
    /// The image's signature level + 1; 0 when unknown.
    signature: AtomicU32,
}

impl TargetSlot {
    ctor! {
        fn new() -> Self {
            TargetSlot {
                state: AtomicU32::new(FREE),
                flags: AtomicU32::new(0),
                base: AtomicU64::new(0),
                size: AtomicU64::new(0),
                name: array![AtomicU64::new(0); NAME_LEN / 8],
                counters: array![AtomicU64::new(0); 7],
                hooked_slots: AtomicU32::new(0),
                conflicts: AtomicU32::new(0),
                load: AtomicU32::new(0),
                signature: AtomicU32::new(0),
            }
        }
    }

    /// Registered, and its image not known to be gone: calls from its
    /// range are its own.
    fn loaded(&self) -> bool {
        self.state.load(Ordering::Acquire) == READY
            && self.flags.load(Ordering::Relaxed) & TARGET_UNLOADED == 0
    }

    /// Registered, and its image gone: a record kept for what it counted.
    fn unloaded(&self) -> bool {
        self.state.load(Ordering::Acquire) == READY
            && self.flags.load(Ordering::Relaxed) & TARGET_UNLOADED != 0
    }
}

struct SiteSlot {
    /// 0 = free; else the packed (target, counter, api, offset) key.
    key: AtomicU64,
    /// Set once arg3/arg4/first are written.
    ready: AtomicU32,
    hits: AtomicU64,
    arg3: AtomicU64,
    arg4: AtomicU64,
    first: AtomicU64,
    last: AtomicU64,
    /// The call stack at the first hit, 0-terminated.
    stack: [AtomicU64; STACK_DEPTH],
}

impl SiteSlot {
    ctor! {
        fn new() -> Self {
            SiteSlot {
                key: AtomicU64::new(0),
                ready: AtomicU32::new(0),
                hits: AtomicU64::new(0),
                arg3: AtomicU64::new(0),
                arg4: AtomicU64::new(0),
                first: AtomicU64::new(0),
                last: AtomicU64::new(0),
                stack: array![AtomicU64::new(0); STACK_DEPTH],
            }
        }
    }
}

struct EventSlot {
    /// 2·seq + 1 while event `seq` is written, 2·seq + 2 once complete.
    state: AtomicU64,
    time: AtomicU64,
    meta: AtomicU64,
    offset: AtomicU64,
    arg3: AtomicU64,
    arg4: AtomicU64,
}

impl EventSlot {
    ctor! {
        fn new() -> Self {
            EventSlot {
                state: AtomicU64::new(0),
                time: AtomicU64::new(0),
                meta: AtomicU64::new(0),
                offset: AtomicU64::new(0),
                arg3: AtomicU64::new(0),
                arg4: AtomicU64::new(0),
            }
        }
    }
}

/// A registered target, as read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetView {
    /// Its index.
    pub index: u8,
    /// Image name, UTF-8, NUL-padded.
    pub name: [u8; NAME_LEN],
    /// Image base.
    pub base: u64,
    /// SizeOfImage.
    pub size: u64,
    /// DV's seven counters, indexed by `Counter as usize`.
    pub counters: [u64; 7],
    /// IAT slots rewritten.
    pub hooked_slots: u32,
    /// IAT slots of hooked APIs left alone because they held something
    /// other than the kernel's routine (another hooker, a verifier thunk).
    pub conflicts: u32,
    /// TARGET_* flags.
    pub flags: u32,
    /// Which load of this name (1, 2, ...).
    pub load: u16,
    /// Its signature level, if a load notification said.
    pub signature_level: Option<u8>,
}

impl TargetView {
    /// The name without its padding.
    pub fn name_bytes(&self) -> &[u8] {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        self.name.get(..end).unwrap_or(&self.name)
    }
}

/// A unique violation site, as read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteView {
    /// What was recorded first at this site (counter, target, api, offset
    /// are the key; arg3/arg4 those of the first hit).
    pub event: Event,
    /// First and last time seen.
    pub first_time: u64,
    /// Last time seen.
    pub last_time: u64,
    /// How many times.
    pub hits: u64,
    /// The call stack at the first hit (return addresses, from the call
    /// site outwards); empty where none was captured.
    pub stack: [u64; STACK_DEPTH],
}

impl SiteView {
    /// The captured return addresses.
    pub fn stack(&self) -> &[u64] {
        frames(&self.stack)
    }
}

/// The return addresses of a 0-padded call stack.
pub fn frames(stack: &[u64]) -> &[u64] {
    let n = stack.iter().position(|&a| a == 0).unwrap_or(stack.len());
    stack.get(..n).unwrap_or(&[])
}

/// A recent event, as read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventView {
    /// Its sequence number (0, 1, 2, ... over the log's life).
    pub seq: u64,
    /// When.
    pub time: u64,
    /// What.
    pub event: Event,
}

/// Why a target could not be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// Every target slot is taken by a loaded target or by the record of
    /// an unloaded one with violations.
    Full,
    /// The same image (name and base) is registered and loaded: it was
    /// seen twice (load notification and module list).
    AlreadyRegistered(u8),
}

/// A registered target: its index and which load of its name it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registered {
    /// Its index.
    pub index: u8,
    /// 1 for the name's first load since boot, 2 after a reload, ...
    pub load: u16,
}

/// Bits of a site key: 1 (used) | target 8 | counter 3 | api 8 | then, for
/// a known target, load 12 | offset 32 (images are under 4 GiB); for an
/// unknown caller, 44 bits of the absolute address, enough to tell sites
/// apart.
const KEY_LOAD_MASK: u64 = 0xFFF;
const KEY_UNKNOWN_OFFSET_MASK: u64 = 0xFFF_FFFF_FFFF;

fn pack_key(e: &Event) -> u64 {
    let low = if e.target == TARGET_UNKNOWN {
        e.offset & KEY_UNKNOWN_OFFSET_MASK
    } else {
        ((u64::from(e.load) & KEY_LOAD_MASK) << 32) | (e.offset & 0xFFFF_FFFF)
    };
    (1 << 63)
        | (u64::from(e.target) << 55)
        | ((u64::from(e.counter as u8) & 7) << 52)
        | (u64::from(e.api) << 44)
        | low
}

fn unpack_key(key: u64, arg3: u64, arg4: u64) -> Option<Event> {
    let target = (key >> 55) as u8;
    let (load, offset) = if target == TARGET_UNKNOWN {
        (0, key & KEY_UNKNOWN_OFFSET_MASK)
    } else {
        (((key >> 32) & KEY_LOAD_MASK) as u16, key & 0xFFFF_FFFF)
    };
    Some(Event {
        counter: *Counter::ALL.get(((key >> 52) & 7) as usize)?,
        target,
        api: (key >> 44) as u8,
        offset,
        arg3,
        arg4,
        load,
    })
}

fn pack_meta(e: &Event) -> u64 {
    u64::from(e.counter as u8)
        | (u64::from(e.target) << 8)
        | (u64::from(e.api) << 16)
        | (u64::from(e.load) << 24)
}

fn unpack_meta(meta: u64, offset: u64, arg3: u64, arg4: u64) -> Option<Event> {
    let counter = *Counter::ALL.get((meta & 0xFF) as usize)?;
    Some(Event {
        counter,
        target: (meta >> 8) as u8,
        api: (meta >> 16) as u8,
        offset,
        arg3,
        arg4,
        load: (meta >> 24) as u16,
    })
}

/// A target slot's name as stored: `NAME_LEN` bytes, NUL-padded, in words.
fn name_words(name: &[u8]) -> [u64; NAME_LEN / 8] {
    let mut words = [0u64; NAME_LEN / 8];
    for (w, word) in words.iter_mut().enumerate() {
        let mut bytes = [0u8; 8];
        for (b, byte) in bytes.iter_mut().enumerate() {
            *byte = name.get(w * 8 + b).copied().unwrap_or(0);
        }
        *word = u64::from_le_bytes(bytes);
    }
    words
}

/// The violation log: `T` targets, `S` unique sites, `E` recent events.
pub struct Log<const T: usize, const S: usize, const E: usize> {
    targets: [TargetSlot; T],
    sites: [SiteSlot; S],
    events: [EventSlot; E],
    next_seq: AtomicU64,
    recorded: AtomicU64,
    dropped_sites: AtomicU64,
    dropped_events: AtomicU64,
}

impl<const T: usize, const S: usize, const E: usize> Default for Log<T, S, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const T: usize, const S: usize, const E: usize> Log<T, S, E> {
    ctor! {
        /// An empty log.
        pub fn new() -> Self {
            Log {
                targets: array![TargetSlot::new(); T],
                sites: array![SiteSlot::new(); S],
                events: array![EventSlot::new(); E],
                next_seq: AtomicU64::new(0),
                recorded: AtomicU64::new(0),
                dropped_sites: AtomicU64::new(0),
                dropped_events: AtomicU64::new(0),
            }
        }
    }

    /// Registers a target image. The name is cut to [`NAME_LEN`] bytes. A
    /// loaded target whose range overlaps is taken as unloaded (an image now
    /// lives where it was); the same image seen twice is refused. A reload
    /// of a name takes that name's old slot (its counters go on adding up,
    /// its load number goes up); otherwise a free slot, or else the slot of
    /// an unloaded target that recorded nothing.
    pub fn register_target(
        &self,
        name: &[u8],
        base: u64,
        size: u64,
        flags: u32,
    ) -> Result<Registered, RegisterError> {
        let words = name_words(name);
        let count = T.min(usize::from(TARGET_UNKNOWN));
        let same_name = |slot: &TargetSlot| {
            slot.name
                .iter()
                .zip(words.iter())
                .all(|(a, &b)| a.load(Ordering::Relaxed) == b)
        };
        for (i, slot) in self.targets.iter().enumerate().take(count) {
            if !slot.loaded() {
                continue;
            }
            let (b, s) = (
                slot.base.load(Ordering::Relaxed),
                slot.size.load(Ordering::Relaxed),
            );
            if b == base && same_name(slot) {
                return Err(RegisterError::AlreadyRegistered(
                    u8::try_from(i).map_err(|_| RegisterError::Full)?,
                ));
            }
            if base < b.saturating_add(s) && b < base.saturating_add(size) {
                slot.flags.fetch_or(TARGET_UNLOADED, Ordering::Relaxed);
            }
        }
        let recorded_nothing =
            |slot: &TargetSlot| slot.counters.iter().all(|c| c.load(Ordering::Relaxed) == 0);
        // In order of preference: the name's own old slot, a free one, one
        // whose unloaded target left no record.
        for pass in 0..3 {
            for (i, slot) in self.targets.iter().enumerate().take(count) {
                let (from, fits) = match pass {
                    0 => (READY, slot.unloaded() && same_name(slot)),
                    1 => (FREE, true),
                    _ => (READY, slot.unloaded() && recorded_nothing(slot)),
                };
                if !fits
                    || slot
                        .state
                        .compare_exchange(from, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                        .is_err()
                {
                    continue;
                }
                let index = u8::try_from(i).map_err(|_| RegisterError::Full)?;
                let load = if pass == 0 {
                    slot.load.load(Ordering::Relaxed).saturating_add(1)
                } else {
                    for c in &slot.counters {
                        c.store(0, Ordering::Relaxed);
                    }
                    1
                };
                for (word, &w) in slot.name.iter().zip(words.iter()) {
                    word.store(w, Ordering::Relaxed);
                }
                slot.base.store(base, Ordering::Relaxed);
                slot.size.store(size, Ordering::Relaxed);
                slot.flags.store(flags, Ordering::Relaxed);
                slot.hooked_slots.store(0, Ordering::Relaxed);
                slot.conflicts.store(0, Ordering::Relaxed);
                slot.signature.store(0, Ordering::Relaxed);
                slot.load.store(load, Ordering::Relaxed);
                // Publishes everything above to readers that see READY.
                slot.state.store(READY, Ordering::Release);
                return Ok(Registered {
                    index,
                    load: u16::try_from(load).unwrap_or(u16::MAX),
                });
            }
        }
        Err(RegisterError::Full)
    }

    /// Notes a target's signature level (from its load notification).
    pub fn set_signature_level(&self, target: u8, level: u8) {
        if let Some(slot) = self.targets.get(usize::from(target)) {
            slot.signature
                .store(u32::from(level) + 1, Ordering::Relaxed);
        }
    }

    /// Marks unloaded every loaded target for which `gone(base, size)`
    /// says so (the driver asks the kernel's module list).
    pub fn mark_unloaded(&self, mut gone: impl FnMut(u64, u64) -> bool) {
        for slot in &self.targets {
            if slot.loaded()
                && gone(
                    slot.base.load(Ordering::Relaxed),
                    slot.size.load(Ordering::Relaxed),
                )
            {
                slot.flags.fetch_or(TARGET_UNLOADED, Ordering::Relaxed);
            }
        }
    }

    /// Sets flags on a target (e.g. TARGET_UNLOADED, TARGET_IMAGE_CHECKED).
    pub fn set_target_flags(&self, target: u8, flags: u32) {
        if let Some(slot) = self.targets.get(usize::from(target)) {
            slot.flags.fetch_or(flags, Ordering::Relaxed);
        }
    }

    /// Adds to the counts of IAT slots rewritten in a target and of slots
    /// left alone for holding something else.
    pub fn add_hooked_slots(&self, target: u8, hooked: u32, conflicts: u32) {
        if let Some(slot) = self.targets.get(usize::from(target)) {
            slot.hooked_slots.fetch_add(hooked, Ordering::Relaxed);
            slot.conflicts.fetch_add(conflicts, Ordering::Relaxed);
        }
    }

    /// The loaded target whose image contains `address`: its index, the
    /// offset, and which load it is.
    pub fn target_of(&self, address: u64) -> Option<(u8, u64, u16)> {
        self.targets.iter().enumerate().find_map(|(i, slot)| {
            if !slot.loaded() {
                return None;
            }
            let base = slot.base.load(Ordering::Relaxed);
            let offset = address.checked_sub(base)?;
            let load = u16::try_from(slot.load.load(Ordering::Relaxed)).unwrap_or(u16::MAX);
            (offset < slot.size.load(Ordering::Relaxed)).then_some((
                u8::try_from(i).ok()?,
                offset,
                load,
            ))
        })
    }

    /// Records one violation: the target's counter, the site, the event.
    /// Returns whether the site is new (its first hit), so that a first
    /// hit can be reported at once and repeats stay quiet.
    pub fn record(&self, e: Event, now: u64) -> bool {
        self.record_capturing(e, now, |_| 0)
    }

    /// [`Log::record`], and at a site's first hit `capture` fills in the
    /// call stack (return addresses, call site first) and says how many.
    pub fn record_capturing(
        &self,
        e: Event,
        now: u64,
        capture: impl FnOnce(&mut [u64; STACK_DEPTH]) -> usize,
    ) -> bool {
        self.recorded.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = self.targets.get(usize::from(e.target))
            && let Some(c) = slot.counters.get(e.counter as usize)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let new_site = self.record_site(&e, now, capture);
        self.record_event(&e, now);
        new_site
    }

    fn record_site(
        &self,
        e: &Event,
        now: u64,
        capture: impl FnOnce(&mut [u64; STACK_DEPTH]) -> usize,
    ) -> bool {
        let key = pack_key(e);
        if S == 0 {
            self.dropped_sites.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        // Fibonacci hashing spreads nearby offsets over the table.
        let start = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % S;
        for probe in 0..S {
            let Some(slot) = self.sites.get((start + probe) % S) else {
                break;
            };
            let mut current = slot.key.load(Ordering::Acquire);
            if current == 0 {
                match slot
                    .key
                    .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => {
                        let mut stack = [0u64; STACK_DEPTH];
                        let n = capture(&mut stack).min(STACK_DEPTH);
                        for (i, (dst, &src)) in slot.stack.iter().zip(stack.iter()).enumerate() {
                            dst.store(if i < n { src } else { 0 }, Ordering::Relaxed);
                        }
                        slot.arg3.store(e.arg3, Ordering::Relaxed);
                        slot.arg4.store(e.arg4, Ordering::Relaxed);
                        slot.first.store(now, Ordering::Relaxed);
                        slot.last.fetch_max(now, Ordering::Relaxed);
                        slot.hits.fetch_add(1, Ordering::Relaxed);
                        // Publishes arg3/arg4/first to readers that see it.
                        slot.ready.store(1, Ordering::Release);
                        return true;
                    }
                    Err(actual) => current = actual,
                }
            }
            if current == key {
                slot.hits.fetch_add(1, Ordering::Relaxed);
                slot.last.fetch_max(now, Ordering::Relaxed);
                return false;
            }
        }
        self.dropped_sites.fetch_add(1, Ordering::Relaxed);
        false
    }

    fn record_event(&self, e: &Event, now: u64) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        if E == 0 {
            self.dropped_events.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(slot) = self.events.get((seq % E as u64) as usize) else {
            return;
        };
        let writing = 2 * seq + 1;
        let mut state = slot.state.load(Ordering::Relaxed);
        loop {
            // Odd: another writer holds the slot. Newer: we were lapped.
            // Either way this event cannot be stored without waiting.
            if state & 1 == 1 || state >= writing {
                self.dropped_events.fetch_add(1, Ordering::Relaxed);
                return;
            }
            match slot.state.compare_exchange_weak(
                state,
                writing,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(s) => state = s,
            }
        }
        // Orders the odd state before the field stores (seqlock writer): a
        // reader that sees any new field also sees the state change.
        fence(Ordering::Release);
        slot.time.store(now, Ordering::Relaxed);
        slot.meta.store(pack_meta(e), Ordering::Relaxed);
        slot.offset.store(e.offset, Ordering::Relaxed);
        slot.arg3.store(e.arg3, Ordering::Relaxed);
        slot.arg4.store(e.arg4, Ordering::Relaxed);
        slot.state.store(writing + 1, Ordering::Release);
    }

    /// How many violations were recorded.
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Violations that found no room in the site table.
    pub fn dropped_sites(&self) -> u64 {
        self.dropped_sites.load(Ordering::Relaxed)
    }

    /// Events that could not be stored because a writer held their slot.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Acquire)
    }

    /// The registered targets, in index order.
    pub fn targets(&self) -> impl Iterator<Item = TargetView> + '_ {
        self.targets.iter().enumerate().filter_map(|(i, slot)| {
            if slot.state.load(Ordering::Acquire) != READY {
                return None;
            }
            let mut name = [0u8; NAME_LEN];
            for (chunk, word) in name.chunks_exact_mut(8).zip(slot.name.iter()) {
                chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
            }
            let mut counters = [0u64; 7];
            for (c, a) in counters.iter_mut().zip(slot.counters.iter()) {
                *c = a.load(Ordering::Relaxed);
            }
            Some(TargetView {
                index: u8::try_from(i).ok()?,
                name,
                base: slot.base.load(Ordering::Relaxed),
                size: slot.size.load(Ordering::Relaxed),
                counters,
                hooked_slots: slot.hooked_slots.load(Ordering::Relaxed),
                conflicts: slot.conflicts.load(Ordering::Relaxed),
                flags: slot.flags.load(Ordering::Relaxed),
                load: u16::try_from(slot.load.load(Ordering::Relaxed)).unwrap_or(u16::MAX),
                signature_level: slot
                    .signature
                    .load(Ordering::Relaxed)
                    .checked_sub(1)
                    .and_then(|l| u8::try_from(l).ok()),
            })
        })
    }

    /// The sites recorded so far, in table order (which is not time order).
    pub fn sites(&self) -> impl Iterator<Item = SiteView> + '_ {
        self.sites.iter().filter_map(|slot| {
            if slot.ready.load(Ordering::Acquire) == 0 {
                return None;
            }
            let key = slot.key.load(Ordering::Relaxed);
            let event = unpack_key(
                key,
                slot.arg3.load(Ordering::Relaxed),
                slot.arg4.load(Ordering::Relaxed),
            )?;
            let mut stack = [0u64; STACK_DEPTH];
            for (dst, src) in stack.iter_mut().zip(slot.stack.iter()) {
                *dst = src.load(Ordering::Relaxed);
            }
            Some(SiteView {
                event,
                first_time: slot.first.load(Ordering::Relaxed),
                last_time: slot.last.load(Ordering::Relaxed),
                hits: slot.hits.load(Ordering::Relaxed),
                stack,
            })
        })
    }

    /// The event with sequence number `seq`, if it is still in the ring and
    /// was stored whole.
    pub fn event(&self, seq: u64) -> Option<EventView> {
        let slot = self.events.get((seq % E.max(1) as u64) as usize)?;
        let done = 2 * seq + 2;
        if slot.state.load(Ordering::Acquire) != done {
            return None;
        }
        let time = slot.time.load(Ordering::Relaxed);
        let meta = slot.meta.load(Ordering::Relaxed);
        let offset = slot.offset.load(Ordering::Relaxed);
        let arg3 = slot.arg3.load(Ordering::Relaxed);
        let arg4 = slot.arg4.load(Ordering::Relaxed);
        // A writer of a later lap may have overwritten the fields meanwhile;
        // it changed the state first, so re-check it after an Acquire fence
        // (seqlock reader).
        fence(Ordering::Acquire);
        if slot.state.load(Ordering::Relaxed) != done {
            return None;
        }
        Some(EventView {
            seq,
            time,
            event: unpack_meta(meta, offset, arg3, arg4)?,
        })
    }

    /// The events from sequence `since` on that are still in the ring and
    /// whole, oldest first (gaps are events lost).
    pub fn events_from(&self, since: u64) -> impl Iterator<Item = EventView> + '_ {
        let next = self.next_seq();
        let oldest = next.saturating_sub(E as u64).max(since);
        (oldest..next).filter_map(move |seq| self.event(seq))
    }

    /// Calls `f` for each event from sequence `since` on that is still in
    /// the ring and whole, oldest first, at most `max` of them. Returns the
    /// sequence to ask from next time and how many events in between were
    /// lost (overwritten, or dropped by a writer): exact.
    pub fn events_since(&self, since: u64, max: usize, mut f: impl FnMut(EventView)) -> (u64, u64) {
        let next = self.next_seq();
        let oldest = next.saturating_sub(E as u64).max(since);
        let mut lost = oldest - since.min(oldest);
        let mut seq = oldest;
        let mut given = 0;
        while seq < next && given < max {
            match self.event(seq) {
                Some(ev) => {
                    f(ev);
                    given += 1;
                }
                None => lost += 1,
            }
            seq += 1;
        }
        (seq, lost)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn ev(target: u8, counter: Counter, offset: u64, arg3: u64) -> Event {
        Event {
            counter,
            target,
            api: 1,
            offset,
            arg3,
            arg4: 0x7476_6943,
            load: if target == TARGET_UNKNOWN { 0 } else { 1 },
        }
    }

    #[test]
    fn targets_register_attribute_and_unload() {
        let log: Log<2, 8, 8> = Log::new();
        let a = log
            .register_target(b"a.sys", 0x1000, 0x1000, 0)
            .unwrap()
            .index;
        let b = log
            .register_target(
                b"a-very-long-name-that-goes-on-and-on-past-sixty-four-bytes-of-storage.sys",
                0x8000,
                0x100,
                TARGET_LATE,
            )
            .unwrap()
            .index;
        assert_eq!(
            log.register_target(b"c.sys", 0, 1, 0),
            Err(RegisterError::Full)
        );
        assert_eq!(log.target_of(0x1000), Some((a, 0, 1)));
        assert_eq!(log.target_of(0x1FFF), Some((a, 0xFFF, 1)));
        assert_eq!(log.target_of(0x2000), None);
        assert_eq!(log.target_of(0x80FF), Some((b, 0xFF, 1)));
        log.set_target_flags(a, TARGET_UNLOADED);
        assert_eq!(log.target_of(0x1000), None);
        let views: Vec<TargetView> = log.targets().collect();
        assert_eq!(views.len(), 2);
        assert_eq!(views[0].name_bytes(), b"a.sys");
        assert_eq!(views[1].name_bytes().len(), NAME_LEN);
        assert_eq!(views[1].flags, TARGET_LATE);
        assert_eq!(views[0].flags, TARGET_UNLOADED);
    }

    #[test]
    fn a_new_image_over_an_old_ones_range_unloads_the_old() {
        let log: Log<4, 8, 8> = Log::new();
        let old = log
            .register_target(b"old.sys", 0x10000, 0x2000, 0)
            .unwrap()
            .index;
        let new = log
            .register_target(b"new.sys", 0x11000, 0x1000, 0)
            .unwrap()
            .index;
        assert_eq!(log.target_of(0x11800), Some((new, 0x800, 1)));
        assert_eq!(
            log.targets().find(|t| t.index == old).unwrap().flags & TARGET_UNLOADED,
            TARGET_UNLOADED
        );
        let far = log
            .register_target(b"far.sys", 0x20000, 0x1000, 0)
            .unwrap()
            .index;
        assert_eq!(
            log.targets().find(|t| t.index == new).unwrap().flags & TARGET_UNLOADED,
            0
        );
        assert_eq!(log.target_of(0x20000), Some((far, 0, 1)));
    }

    #[test]
    fn counters_sites_and_events() {
        let log: Log<4, 8, 4> = Log::new();
        let t = log
            .register_target(b"t.sys", 0x10000, 0x10000, 0)
            .unwrap()
            .index;
        log.add_hooked_slots(t, 3, 2);
        for i in 0..5u64 {
            let new = log.record(ev(t, Counter::ExecutePoolType, 0x1234, i), 100 + i);
            assert_eq!(new, i == 0, "only the first hit of a site is new");
        }
        log.record(ev(t, Counter::ExecutePageMapping, 0x2000, 16), 200);
        log.record(
            ev(
                TARGET_UNKNOWN,
                Counter::ExecutePoolType,
                0xFFFF_F800_0000_1234,
                0,
            ),
            300,
        );
        let target = log.targets().next().unwrap();
        assert_eq!(target.counters[Counter::ExecutePoolType as usize], 5);
        assert_eq!(target.counters[Counter::ExecutePageMapping as usize], 1);
        assert_eq!((target.hooked_slots, target.conflicts), (3, 2));
        let mut sites: Vec<SiteView> = log.sites().collect();
        sites.sort_by_key(|s| s.first_time);
        assert_eq!(sites.len(), 3);
        assert_eq!(
            (sites[0].hits, sites[0].first_time, sites[0].last_time),
            (5, 100, 104)
        );
        assert_eq!(
            sites[0].event,
            ev(t, Counter::ExecutePoolType, 0x1234, 0),
            "first hit's arguments kept"
        );
        assert_eq!(sites[1].event.counter, Counter::ExecutePageMapping);
        assert_eq!(sites[2].event.target, TARGET_UNKNOWN);
        assert_eq!(
            sites[2].event.offset,
            0xF800_0000_1234 & KEY_UNKNOWN_OFFSET_MASK
        );
        assert_eq!(log.recorded(), 7);
        // The ring holds the last 4 of 7 events; asking from 0 says 3 lost.
        let mut got = Vec::new();
        let (next, lost) = log.events_since(0, 100, |e| got.push(e));
        assert_eq!((next, lost), (7, 3));
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5, 6]);
        assert_eq!(got[3].event.target, TARGET_UNKNOWN);
        assert_eq!(got[2].time, 200);
        // Paging: at most 2 at a time, nothing lost between pages.
        let mut page = Vec::new();
        let (next, lost) = log.events_since(5, 2, |e| page.push(e.seq));
        assert_eq!((next, lost, page), (7, 0, std::vec![5, 6]));
        let (next, lost) = log.events_since(7, 2, |_| panic!("nothing new"));
        assert_eq!((next, lost), (7, 0));
    }

    #[test]
    fn the_same_image_twice_is_refused_and_reloads_reuse_their_slot() {
        let log: Log<3, 16, 16> = Log::new();
        let first = log.register_target(b"drv.sys", 0x10000, 0x1000, 0).unwrap();
        assert_eq!(first.load, 1);
        // The module list and the load notification both saw it.
        assert_eq!(
            log.register_target(b"drv.sys", 0x10000, 0x1000, TARGET_LATE),
            Err(RegisterError::AlreadyRegistered(first.index))
        );
        log.set_signature_level(first.index, 4);
        log.record(ev(first.index, Counter::ExecutePoolType, 0x10, 0), 1);
        // It unloads (the module list no longer has it) and loads again
        // elsewhere: same slot, load 2, counters adding up, its old site
        // kept apart from the new load's hit at the same offset.
        log.mark_unloaded(|base, _| base == 0x10000);
        assert_eq!(log.target_of(0x10010), None, "unloaded: no attribution");
        let again = log.register_target(b"drv.sys", 0x40000, 0x1000, 0).unwrap();
        assert_eq!((again.index, again.load), (first.index, 2));
        let mut e = ev(again.index, Counter::ExecutePoolType, 0x10, 0);
        e.load = 2;
        assert!(log.record(e, 2), "a new load's hit is a new site");
        let t = log.targets().find(|t| t.index == again.index).unwrap();
        assert_eq!(t.counters[Counter::ExecutePoolType as usize], 2);
        assert_eq!((t.load, t.flags & TARGET_UNLOADED, t.base), (2, 0, 0x40000));
        assert_eq!(t.signature_level, None, "a new load says its own level");
        let mut loads: Vec<u16> = log.sites().map(|s| s.event.load).collect();
        loads.sort();
        assert_eq!(loads, [1, 2]);
        assert_eq!(log.target_of(0x40010), Some((again.index, 0x10, 2)));
    }

    #[test]
    fn unloaded_targets_that_recorded_nothing_give_their_slot_back() {
        let log: Log<2, 8, 8> = Log::new();
        let quiet = log
            .register_target(b"quiet.sys", 0x1000, 0x1000, 0)
            .unwrap();
        let noisy = log
            .register_target(b"noisy.sys", 0x8000, 0x1000, 0)
            .unwrap();
        log.record(ev(noisy.index, Counter::ExecutePoolType, 4, 0), 1);
        assert_eq!(
            log.register_target(b"third.sys", 0x20000, 0x1000, 0),
            Err(RegisterError::Full)
        );
        log.mark_unloaded(|_, _| true);
        // Quiet's slot is reused; noisy's record is kept.
        let third = log
            .register_target(b"third.sys", 0x20000, 0x1000, 0)
            .unwrap();
        assert_eq!((third.index, third.load), (quiet.index, 1));
        assert_eq!(
            log.register_target(b"fourth.sys", 0x30000, 0x1000, 0),
            Err(RegisterError::Full)
        );
        let names: Vec<Vec<u8>> = log.targets().map(|t| t.name_bytes().to_vec()).collect();
        assert_eq!(names, [b"third.sys".to_vec(), b"noisy.sys".to_vec()]);
    }

    #[test]
    fn a_new_site_keeps_the_call_stack_of_its_first_hit() {
        let log: Log<1, 4, 4> = Log::new();
        let t = log
            .register_target(b"t.sys", 0x1000, 0x1000, 0)
            .unwrap()
            .index;
        let mut calls = 0;
        let mut capture = |frames: &mut [u64; STACK_DEPTH]| {
            calls += 1;
            frames[..3].copy_from_slice(&[0x1010, 0x1200, 0xFFFF_F800_0000_0010]);
            3
        };
        assert!(log.record_capturing(ev(t, Counter::ExecutePoolType, 0x10, 0), 1, &mut capture));
        assert!(!log.record_capturing(ev(t, Counter::ExecutePoolType, 0x10, 0), 2, &mut capture));
        assert_eq!(calls, 1, "only the first hit walks the stack");
        log.record(ev(t, Counter::ExecutePageMapping, 0x20, 0), 3);
        let mut sites: Vec<SiteView> = log.sites().collect();
        sites.sort_by_key(|s| s.first_time);
        assert_eq!(sites[0].stack(), [0x1010, 0x1200, 0xFFFF_F800_0000_0010]);
        assert!(sites[1].stack().is_empty());
        // A capture that claims more than fits is cut to STACK_DEPTH.
        log.record_capturing(ev(t, Counter::ExecutePoolType, 0x30, 0), 4, |f| {
            f.fill(7);
            99
        });
        let deep = log.sites().find(|s| s.event.offset == 0x30).unwrap();
        assert_eq!(deep.stack(), [7; STACK_DEPTH]);
    }

    #[test]
    fn site_keys_round_trip_every_field() {
        for e in [
            Event {
                counter: Counter::IatInExecutableSection,
                target: 63,
                api: API_NONE,
                offset: 0xFFFF_FFFF,
                arg3: 0,
                arg4: 0,
                load: 0xFFF,
            },
            Event {
                counter: Counter::ExecutePoolType,
                target: TARGET_UNKNOWN,
                api: 14,
                offset: 0xFFF_FFFF_FFFF,
                arg3: 0,
                arg4: 0,
                load: 0,
            },
        ] {
            assert_eq!(unpack_key(pack_key(&e), 0, 0), Some(e));
        }
    }

    #[test]
    fn a_full_site_table_counts_exactly_what_it_drops() {
        let log: Log<1, 4, 0> = Log::new();
        for i in 0..10u64 {
            log.record(ev(0, Counter::ExecutePoolType, i, 0), i);
            log.record(ev(0, Counter::ExecutePoolType, i, 0), i);
        }
        let kept: u64 = log.sites().map(|s| s.hits).sum();
        assert_eq!(log.sites().count(), 4);
        assert_eq!(kept + log.dropped_sites(), 20);
        assert_eq!(log.dropped_sites(), 12);
        assert_eq!(
            log.dropped_events(),
            20,
            "a ring of 0 stores nothing and says so"
        );
    }
}
