//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use civ_engine::iat::SlotWriter;

/// Writes IAT slots into a mapped image held in a Vec, as civ.sys writes
/// them into a loaded one.
pub struct VecWriter<'a>(pub &'a mut Vec<u8>);

impl SlotWriter for VecWriter<'_> {
    type Error = ();
    fn write(&mut self, rva: u32, value: u64) -> Result<(), ()> {
        let at = rva as usize;
        self.0
            .get_mut(at..at + 8)
            .ok_or(())?
            .copy_from_slice(&value.to_le_bytes());
        Ok(())
    }
    fn read(&mut self, rva: u32) -> Option<u64> {
        let at = rva as usize;
        Some(u64::from_le_bytes(self.0.get(at..at + 8)?.try_into().ok()?))
    }
}
