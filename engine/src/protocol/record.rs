//! The fixed-size records the status, sites and events replies end in
//! ([`TargetRecord`], [`SiteRecord`], [`EventRecord`]), and [`Records`], a
//! checked view of such an array in a reply.

use super::*;

// Records.

/// A fixed-size record at the end of a reply.
pub trait Record: Copy {
    /// Bytes of one record on the wire.
    const SIZE: usize;

    /// Writes the record at the start of `out`; returns [`Self::SIZE`].
    fn encode(&self, out: &mut [u8]) -> Result<usize, ProtoError>;

    /// Reads and validates a record from the first [`Self::SIZE`] bytes.
    fn decode(bytes: &[u8]) -> Result<Self, ProtoError>;
}

/// A target the driver watches: one entry of the status reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetRecord {
    /// The image name, UTF-8, NUL-padded (no NUL when it fills all 64 bytes).
    /// Use [`TargetRecord::name`] and [`TargetRecord::set_name`].
    pub name: [u8; TARGET_NAME_LEN],
    /// Where the image is loaded (0 when not loaded).
    pub base: u64,
    /// SizeOfImage.
    pub size: u64,
    /// The seven DV counters, indexed by `Counter as usize`.
    pub counters: [u64; 7],
    /// How many IAT slots civ rewrote.
    pub hooked_slots: u32,
    /// [`TargetRecord::LATE`], [`TargetRecord::IMAGE_CHECKED`],
    /// [`TargetRecord::UNLOADED`], [`TargetRecord::IMPORT_OPTIMIZED`],
    /// [`TargetRecord::NAMED`].
    pub flags: u32,
    /// IAT slots of hooked APIs civ left alone because they held something
    /// other than the kernel's routine (another hooker, a verifier thunk).
    pub conflicts: u32,
    /// Which load of this name since boot (1, 2, ...).
    pub load: u16,
    /// The image's SE_SIGNING_LEVEL, or [`UNKNOWN_SIGNATURE_LEVEL`].
    pub signature_level: u8,
}

impl TargetRecord {
    /// The image was already loaded when civ hooked it, so calls made before
    /// that (often DriverEntry's) were not seen.
    pub const LATE: u32 = 1 << 0;
    /// The image checks 0x2003–0x2005 ran on it.
    pub const IMAGE_CHECKED: u32 = 1 << 1;
    /// The image has been unloaded since.
    pub const UNLOADED: u32 = 1 << 2;
    /// The image has import-control-transfer dynamic relocations: the kernel
    /// may bind its calls of hooked APIs directly, unseen by civ.
    pub const IMPORT_OPTIMIZED: u32 = 1 << 3;
    /// A target name matched it exactly (not only a pattern such as `*`).
    pub const NAMED: u32 = 1 << 4;
    /// Every defined flag; others must be zero.
    pub const ALL_FLAGS: u32 =
        Self::LATE | Self::IMAGE_CHECKED | Self::UNLOADED | Self::IMPORT_OPTIMIZED | Self::NAMED;

    /// A record with this name and everything else zero.
    pub fn new(name: &str) -> TargetRecord {
        let mut t = TargetRecord {
            name: [0; TARGET_NAME_LEN],
            base: 0,
            size: 0,
            counters: [0; 7],
            hooked_slots: 0,
            flags: 0,
            conflicts: 0,
            load: 0,
            signature_level: UNKNOWN_SIGNATURE_LEVEL,
        };
        t.set_name(name);
        t
    }

    /// The name: the bytes before the first NUL, cut to their valid UTF-8.
    pub fn name(&self) -> &str {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(TARGET_NAME_LEN);
        let bytes = self.name.get(..end).unwrap_or_default();
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(bytes.get(..e.valid_up_to()).unwrap_or_default())
                .unwrap_or_default(),
        }
    }

    /// Sets the name, cut to 64 bytes on a character boundary (and at a NUL,
    /// which would end it on the wire anyway).
    pub fn set_name(&mut self, name: &str) {
        let mut end = name
            .bytes()
            .position(|b| b == 0)
            .unwrap_or(name.len())
            .min(TARGET_NAME_LEN);
        // 0 is always a boundary, so this stops.
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        self.name = [0; TARGET_NAME_LEN];
        let src = name.as_bytes().get(..end).unwrap_or_default();
        if let Some(dst) = self.name.get_mut(..src.len()) {
            dst.copy_from_slice(src);
        }
    }

    /// One counter.
    pub fn counter(&self, counter: Counter) -> u64 {
        self.counters
            .get(counter as usize)
            .copied()
            .unwrap_or_default()
    }
}

impl Record for TargetRecord {
    const SIZE: usize = 152;

    /// Writes the canonical form: the name as [`TargetRecord::name`] reads
    /// it and only the defined flags, so that whatever the driver put in the
    /// fields, the reader accepts the record.
    fn encode(&self, out: &mut [u8]) -> Result<usize, ProtoError> {
        let mut p = Put::need(out, Self::SIZE)?;
        let name = self.name();
        p.bytes(name.as_bytes());
        p.zeros(TARGET_NAME_LEN.saturating_sub(name.len()));
        p.u64(self.base);
        p.u64(self.size);
        for c in self.counters {
            p.u64(c);
        }
        p.u32(self.hooked_slots);
        p.u32(self.flags & Self::ALL_FLAGS);
        p.u32(self.conflicts);
        p.u16(self.load);
        p.u8(self.signature_level);
        p.zeros(1);
        Ok(p.pos)
    }

    fn decode(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut g = Get::need(bytes, Self::SIZE)?;
        let name: [u8; TARGET_NAME_LEN] = g.array();
        let end = name.iter().position(|&b| b == 0).unwrap_or(TARGET_NAME_LEN);
        let (text, pad) = name.split_at_checked(end).unwrap_or_default();
        if core::str::from_utf8(text).is_err() || pad.iter().any(|&b| b != 0) {
            return Err(ProtoError::BadField("target name"));
        }
        let base = g.u64();
        let size = g.u64();
        let mut counters = [0; 7];
        for c in &mut counters {
            *c = g.u64();
        }
        let hooked_slots = g.u32();
        let flags = g.u32();
        if flags & !Self::ALL_FLAGS != 0 {
            return Err(ProtoError::BadField("target flags"));
        }
        let conflicts = g.u32();
        let load = g.u16();
        let signature_level = g.u8();
        g.reserved::<1>("target reserved")?;
        Ok(TargetRecord {
            name,
            base,
            size,
            counters,
            hooked_slots,
            flags,
            conflicts,
            load,
            signature_level,
        })
    }
}

/// A unique violation site: one entry of the sites reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteRecord {
    /// Which DV counter the violation counts in.
    pub counter: Counter,
    /// Index into the status reply's targets, or [`UNKNOWN_TARGET`].
    pub target: u8,
    /// Index into the hook catalog, or [`NO_API`] for an image finding.
    pub api: u8,
    /// The caller's offset from the target's base (the finding's RVA for an
    /// image finding), so civctl can symbolize it.
    pub offset: u64,
    /// Arg3 of the bug check DV would raise.
    pub arg3: u64,
    /// Arg4 of the bug check DV would raise.
    pub arg4: u64,
    /// When the site was first hit (100-ns units).
    pub first_time: u64,
    /// When the site was last hit (100-ns units).
    pub last_time: u64,
    /// How many times it was hit.
    pub hits: u64,
    /// Which load of the target (1, 2, ...; 0 for an unknown target).
    pub load: u16,
    /// The call stack at the first hit: return addresses from the call
    /// site outwards, 0-padded (absolute kernel addresses).
    pub stack: [u64; STACK_FRAMES],
}

impl SiteRecord {
    /// The captured return addresses (without the padding).
    pub fn stack(&self) -> &[u64] {
        crate::log::frames(&self.stack)
    }
}

impl Record for SiteRecord {
    const SIZE: usize = 56 + STACK_FRAMES * 8;

    fn encode(&self, out: &mut [u8]) -> Result<usize, ProtoError> {
        let mut p = Put::need(out, Self::SIZE)?;
        p.u8(self.counter as u8);
        p.u8(self.target);
        p.u8(self.api);
        p.zeros(1);
        p.u16(self.load);
        p.zeros(2);
        p.u64(self.offset);
        p.u64(self.arg3);
        p.u64(self.arg4);
        p.u64(self.first_time);
        p.u64(self.last_time);
        p.u64(self.hits);
        // Canonical: nothing after the first 0.
        let frames = self.stack();
        for &a in frames {
            p.u64(a);
        }
        p.zeros((STACK_FRAMES - frames.len()) * 8);
        Ok(p.pos)
    }

    fn decode(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut g = Get::need(bytes, Self::SIZE)?;
        let counter = counter_from_u8(g.u8())?;
        let target = g.u8();
        let api = g.u8();
        g.reserved::<1>("site reserved")?;
        let load = g.u16();
        g.reserved::<2>("site reserved")?;
        let mut site = SiteRecord {
            counter,
            target,
            api,
            offset: g.u64(),
            arg3: g.u64(),
            arg4: g.u64(),
            first_time: g.u64(),
            last_time: g.u64(),
            hits: g.u64(),
            load,
            stack: [0; STACK_FRAMES],
        };
        for a in &mut site.stack {
            *a = g.u64();
        }
        if site.stack().len() < STACK_FRAMES
            && site
                .stack
                .get(site.stack().len()..)
                .is_some_and(|rest| rest.iter().any(|&a| a != 0))
        {
            return Err(ProtoError::BadField("site stack"));
        }
        Ok(site)
    }
}

/// One violation as it happened: one entry of the events reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// Sequence number, increasing by one per event.
    pub seq: u64,
    /// When it happened (100-ns units).
    pub time: u64,
    /// Which DV counter it counts in.
    pub counter: Counter,
    /// Index into the status reply's targets, or [`UNKNOWN_TARGET`].
    pub target: u8,
    /// Index into the hook catalog, or [`NO_API`] for an image finding.
    pub api: u8,
    /// The caller's offset from the target's base.
    pub offset: u64,
    /// Arg3 of the bug check DV would raise.
    pub arg3: u64,
    /// Arg4 of the bug check DV would raise.
    pub arg4: u64,
    /// Which load of the target (1, 2, ...; 0 for an unknown target).
    pub load: u16,
}

impl Record for EventRecord {
    const SIZE: usize = 48;

    fn encode(&self, out: &mut [u8]) -> Result<usize, ProtoError> {
        let mut p = Put::need(out, Self::SIZE)?;
        p.u64(self.seq);
        p.u64(self.time);
        p.u8(self.counter as u8);
        p.u8(self.target);
        p.u8(self.api);
        p.zeros(1);
        p.u16(self.load);
        p.zeros(2);
        p.u64(self.offset);
        p.u64(self.arg3);
        p.u64(self.arg4);
        Ok(p.pos)
    }

    fn decode(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut g = Get::need(bytes, Self::SIZE)?;
        let seq = g.u64();
        let time = g.u64();
        let counter = counter_from_u8(g.u8())?;
        let target = g.u8();
        let api = g.u8();
        g.reserved::<1>("event reserved")?;
        let load = g.u16();
        g.reserved::<2>("event reserved")?;
        Ok(EventRecord {
            seq,
            time,
            counter,
            target,
            api,
            offset: g.u64(),
            arg3: g.u64(),
            arg4: g.u64(),
            load,
        })
    }
}

/// The validated records of a decoded reply.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Records<'a, T> {
    bytes: &'a [u8],
    record: PhantomData<T>,
}

impl<'a, T: Record> Records<'a, T> {
    /// How many records.
    pub fn len(&self) -> usize {
        self.bytes.len() / T::SIZE
    }

    /// No records.
    pub fn is_empty(&self) -> bool {
        self.bytes.len() < T::SIZE
    }

    /// The record at `index`.
    pub fn get(&self, index: usize) -> Option<T> {
        let start = index.checked_mul(T::SIZE)?;
        let end = start.checked_add(T::SIZE)?;
        T::decode(self.bytes.get(start..end)?).ok()
    }

    /// The records, in order.
    pub fn iter(&self) -> RecordIter<'a, T> {
        // `chunks_exact` panics on 0; no record is empty.
        const { assert!(T::SIZE > 0) };
        RecordIter {
            chunks: self.bytes.chunks_exact(T::SIZE),
            record: PhantomData,
        }
    }
}

impl<'a, T: Record> IntoIterator for Records<'a, T> {
    type Item = T;
    type IntoIter = RecordIter<'a, T>;

    fn into_iter(self) -> RecordIter<'a, T> {
        self.iter()
    }
}

impl<T: Record + fmt::Debug> fmt::Debug for Records<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over [`Records`].
#[derive(Clone, Debug)]
pub struct RecordIter<'a, T> {
    chunks: ChunksExact<'a, u8>,
    record: PhantomData<T>,
}

impl<T: Record> Iterator for RecordIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        // Every record was validated when the reply was decoded.
        T::decode(self.chunks.next()?).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl<T: Record> ExactSizeIterator for RecordIter<'_, T> {}

/// Validates `count` records of `T` after the `fixed` bytes of `body`, which
/// must be exactly what the body holds.
pub(super) fn records<T: Record>(
    body: &[u8],
    fixed: usize,
    count: u32,
) -> Result<Records<'_, T>, ProtoError> {
    let bytes = body.get(fixed..).unwrap_or_default();
    let need = (count as usize)
        .checked_mul(T::SIZE)
        .and_then(|n| n.checked_add(HEADER_SIZE + fixed))
        .unwrap_or(usize::MAX);
    let have = HEADER_SIZE + body.len();
    if have < need {
        return Err(ProtoError::TooShort { need, got: have });
    }
    if have > need {
        return Err(ProtoError::SizeMismatch {
            header: to_u32(have),
            actual: need,
        });
    }
    for chunk in bytes.chunks_exact(T::SIZE) {
        T::decode(chunk)?;
    }
    Ok(Records {
        bytes,
        record: PhantomData,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testutil::*;

    #[test]
    fn record_layouts() {
        let mut t = target(3);
        t.base = 0x1122_3344_5566_7788;
        t.hooked_slots = 0xAABB_CCDD;
        t.flags = TargetRecord::LATE | TargetRecord::UNLOADED;
        let mut b = [0u8; TargetRecord::SIZE];
        assert_eq!(t.encode(&mut b), Ok(TargetRecord::SIZE));
        assert_eq!(&b[..11], b"target3.sys");
        assert!(b[11..64].iter().all(|&x| x == 0));
        assert_eq!(b[64..72], 0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(b[72..80], t.size.to_le_bytes());
        for i in 0..7 {
            assert_eq!(b[80 + 8 * i..88 + 8 * i], t.counters[i].to_le_bytes());
        }
        assert_eq!(b[136..140], 0xAABB_CCDDu32.to_le_bytes());
        assert_eq!(b[140..144], 5u32.to_le_bytes());
        assert_eq!(b[144..148], 21u32.to_le_bytes(), "conflicts");
        assert_eq!(b[148..150], 4u16.to_le_bytes(), "load");
        assert_eq!(b[150..152], [3, 0], "signature level, reserved");
        assert_eq!(TargetRecord::decode(&b), Ok(t));
        b[151] = 1;
        assert_eq!(
            TargetRecord::decode(&b),
            Err(ProtoError::BadField("target reserved"))
        );

        let s = site(12);
        let mut b = [0xEEu8; SiteRecord::SIZE];
        assert_eq!(s.encode(&mut b), Ok(SiteRecord::SIZE));
        assert_eq!(b[..8], [5, 0, 12, 0, 0, 0, 0, 0]);
        assert_eq!(b[8..16], s.offset.to_le_bytes());
        assert_eq!(b[48..56], s.hits.to_le_bytes());
        assert_eq!(s.stack().len(), 3);
        for (f, &a) in s.stack().iter().enumerate() {
            assert_eq!(b[56 + 8 * f..64 + 8 * f], a.to_le_bytes());
        }
        assert!(b[56 + 3 * 8..].iter().all(|&x| x == 0), "0-padded stack");
        assert_eq!(SiteRecord::decode(&b), Ok(s));
        let mut loaded = site(13);
        loaded.load = 0x0102;
        loaded.encode(&mut b).unwrap();
        assert_eq!(b[4..8], [2, 1, 0, 0]);
        assert_eq!(SiteRecord::decode(&b), Ok(loaded));
        // A frame after the padding is not canonical.
        let at = 56 + 8 * loaded.stack().len() + 8;
        b[at] = 1;
        assert_eq!(
            SiteRecord::decode(&b),
            Err(ProtoError::BadField("site stack"))
        );
        // Garbage after a 0 frame put in by hand is dropped on encoding.
        let mut odd = site(8);
        odd.stack = [1, 0, 3, 0, 0, 0, 0, 0];
        odd.encode(&mut b).unwrap();
        assert_eq!(SiteRecord::decode(&b).unwrap().stack(), [1]);

        let e = event(9);
        let mut b = [0xEEu8; EventRecord::SIZE];
        assert_eq!(e.encode(&mut b), Ok(EventRecord::SIZE));
        assert_eq!(b[..8], 9u64.to_le_bytes());
        assert_eq!(b[16..24], [2, 0xFF, 9, 0, 0, 0, 0, 0]);
        assert_eq!(b[24..32], e.offset.to_le_bytes());
        assert_eq!(b[40..48], e.arg4.to_le_bytes());
        assert_eq!(EventRecord::decode(&b), Ok(e));

        // Records that do not fit the buffer.
        assert_eq!(
            t.encode(&mut [0; 151]),
            Err(ProtoError::TooShort {
                need: 152,
                got: 151
            })
        );
        assert_eq!(
            SiteRecord::decode(&[0; 119]),
            Err(ProtoError::TooShort {
                need: 120,
                got: 119
            })
        );
    }

    #[test]
    fn target_record_names() {
        let mut t = TargetRecord::new("a.sys");
        assert_eq!(t.name(), "a.sys");
        // 63 ASCII bytes then a 2-byte character: cut before it.
        let name = std::format!("{}é", "n".repeat(63));
        t.set_name(&name);
        assert_eq!(t.name(), "n".repeat(63));
        assert_eq!(t.name[63], 0);
        t.set_name(&"m".repeat(100));
        assert_eq!(t.name(), "m".repeat(64));
        t.set_name("cut\0here");
        assert_eq!(t.name(), "cut");
        t.set_name("");
        assert_eq!(t.name(), "");
        // Garbage put in the fields directly: read as its valid prefix,
        // encoded in canonical form.
        t.name = [0; 64];
        t.name[..4].copy_from_slice(b"ab\xFFc");
        t.name[10] = b'z';
        t.flags = 0xFFFF_FFFF;
        assert_eq!(t.name(), "ab");
        let mut b = [0u8; TargetRecord::SIZE];
        t.encode(&mut b).unwrap();
        let back = TargetRecord::decode(&b).unwrap();
        assert_eq!(back.name(), "ab");
        assert_eq!(back.name[2..], [0; 62]);
        assert_eq!(back.flags, TargetRecord::ALL_FLAGS);
    }

    #[test]
    fn debug_output_lists_records_and_names() {
        let names = ["a.sys", "b.sys"];
        let bytes = enc(&Request::SetSettings(SetSettings {
            verify_level: 0,
            action: Action::Log,
            targets: Targets::new(&names),
        }));
        let text = std::format!("{:?}", Request::decode(&bytes).unwrap());
        assert!(text.contains("[\"a.sys\", \"b.sys\"]"), "{text}");
        let mut buf = [0u8; 256];
        let w = write_sites(&GetSites { start: 0, max: 1 }, 0, [site(2)], &mut buf).unwrap();
        let text = std::format!("{:?}", decode_reply_sites(&buf[..w.bytes]).unwrap());
        assert!(text.contains("hits: 3"), "{text}");
    }
}
