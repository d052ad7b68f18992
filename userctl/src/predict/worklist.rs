//! The worklist of a data-flow analysis: the blocks whose state at their
//! start changed, stepped again lowest block first (address order), so
//! that every analysis settles the same way whatever order it queued them.

/// The blocks waiting to be stepped, taken lowest first: one bit each.
pub struct Pending {
    words: Vec<u64>,
    /// No bit is set in the words before this one.
    low: usize,
}

impl Pending {
    /// Nothing waiting, room for `blocks` blocks.
    pub fn new(blocks: usize) -> Pending {
        Pending {
            words: vec![0; blocks.div_ceil(64)],
            low: 0,
        }
    }

    /// Queues block `b` (once; a block past the room is ignored).
    pub fn insert(&mut self, b: usize) {
        if let Some(w) = self.words.get_mut(b / 64) {
            *w |= 1 << (b % 64);
            self.low = self.low.min(b / 64);
        }
    }

    /// Takes the lowest block waiting.
    pub fn pop_first(&mut self) -> Option<usize> {
        while let Some(w) = self.words.get_mut(self.low) {
            if *w != 0 {
                let bit = w.trailing_zeros() as usize;
                *w &= *w - 1;
                return Some(self.low * 64 + bit);
            }
            self.low += 1;
        }
        None
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::Pending;

    #[test]
    fn pending_blocks_come_out_lowest_first_and_once() {
        let mut p = Pending::new(200);
        assert!(p.is_empty());
        for b in [150, 3, 64, 3, 199] {
            p.insert(b);
        }
        assert_eq!(p.pop_first(), Some(3));
        assert_eq!(p.pop_first(), Some(64));
        // A block queued again below the last taken comes out next.
        p.insert(10);
        assert_eq!(p.pop_first(), Some(10));
        assert_eq!(p.pop_first(), Some(150));
        assert!(!p.is_empty());
        assert_eq!(p.pop_first(), Some(199));
        assert_eq!(p.pop_first(), None);
        assert!(p.is_empty());
        // Past its words: ignored, not a panic.
        p.insert(256);
        assert_eq!(p.pop_first(), None);
    }
}
