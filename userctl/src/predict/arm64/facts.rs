//! What the ARM64 analysis tells of the driver's globals (their stores,
//! and the Windows 8 test they are made under) and of its wrappers' callers.

use super::super::globals::{Facts, Store, VersionTest};
use super::super::image::Image;
use super::{Analysis, text};

impl Analysis {
    /// What a global can hold, from the stores the analysis saw.
    pub fn facts(&self, img: &Image<'_>, rva: u32, size: usize) -> Facts {
        let mut f = Facts {
            rva,
            size,
            initial: super::super::globals::initial_value(img, rva, size),
            stores: Vec::new(),
            blocker: None,
        };
        if img.section_of(rva).is_some() {
            f.blocker = Some((rva, "it is in code".into()));
            return f;
        }
        let end = rva + size as u32;
        for st in &self.stores {
            if st.rva >= end || st.rva + st.size as u32 <= rva {
                continue;
            }
            match st.value {
                Some(v) if st.rva == rva && st.size == size => f.stores.push(Store {
                    at: st.at,
                    value: v,
                    version: self.version_test(st.function, st.at),
                }),
                _ => {
                    f.blocker = Some((
                        st.at,
                        format!(
                            "`{}` at {:#x} writes it with a value not known",
                            text(img, st.at).unwrap_or_default(),
                            st.at
                        ),
                    ))
                }
            }
        }
        // An address formed without a load or store through it right away
        // may be passed on: the global may be written through it.
        if let Some(&(at, _)) = self.taken.iter().find(|t| t.1 >= rva && t.1 < end) {
            f.blocker = Some((
                at,
                format!(
                    "its address is taken by `{}` at {at:#x}",
                    text(img, at).unwrap_or_default()
                ),
            ));
        }
        f.stores.sort_by_key(|s| s.at);
        f
    }

    /// The Windows 8 test a store is made under (see globals.rs): a call
    /// to RtlGetVersion in the same function before it, then a comparison
    /// with 6 and a conditional branch between the two.
    fn version_test(&self, function: u32, at: u32) -> Option<VersionTest> {
        let (call, _) = self
            .import_calls
            .iter()
            .rev()
            .find(|(r, n)| *r >= function && *r < at && n == "RtlGetVersion")?;
        if !self.branches.iter().any(|&b| b > *call && b < at) {
            return None;
        }
        let (test, _, text) = self
            .compares
            .iter()
            .find(|(r, v, _)| *r > *call && *r < at && *v == 6)?;
        Some(VersionTest {
            api: "RtlGetVersion",
            call: *call,
            test: *test,
            text: text.clone(),
        })
    }

    /// What the direct callers of `entry` pass as parameter `param`.
    pub fn passed(
        &self,
        img: &Image<'_>,
        entry: u32,
        param: usize,
    ) -> super::super::callers::Passed {
        if let Some(&(at, _)) = self.taken.iter().find(|t| t.1 == entry) {
            return Err((
                format!(
                    "it is parameter {} of the function at {entry:#x}, whose address is taken at {at:#x}: its callers cannot all be seen",
                    param + 1
                ),
                at,
            ));
        }
        let va = img
            .imports
            .image_base
            .wrapping_add(u64::from(entry))
            .to_le_bytes();
        let in_data = img.pe.sections().filter(|s| !s.is_executable()).any(|s| {
            img.pe.bytes_from(s.rva(), "data").ok().is_some_and(|b| {
                let b = b.get(..s.raw_size() as usize).unwrap_or(b);
                memchr::memmem::find(b, &va).is_some()
            })
        });
        if in_data {
            return Err((
                format!(
                    "it is parameter {} of the function at {entry:#x}, whose address is stored in the image's data: its callers cannot all be seen",
                    param + 1
                ),
                entry,
            ));
        }
        let values: Vec<_> = self
            .calls
            .iter()
            .filter(|c| c.target == entry)
            .filter_map(|c| Some((c.at, *c.args.get(param)?, None)))
            .collect();
        if values.is_empty() {
            return Err((
                format!(
                    "it is parameter {} of the function at {entry:#x}, which no direct call reaches",
                    param + 1
                ),
                entry,
            ));
        }
        Ok(values)
    }
}
