//! A small map from stack offsets to what is known there, as a sorted
//! vector: a function's tracked stack holds a few dozen entries, which a
//! vector searches, copies and compares faster than a tree (the analysis
//! clones and compares states at every join).

/// Entries sorted by offset, each offset once.
#[derive(Debug, PartialEq, Eq)]
pub struct StackMap<V> {
    entries: Vec<(i64, V)>,
}

impl<V: Clone> Clone for StackMap<V> {
    fn clone(&self) -> Self {
        StackMap {
            entries: self.entries.clone(),
        }
    }

    // The analysis copies a state into one scratch state per block it
    // steps: this keeps the scratch's buffer.
    fn clone_from(&mut self, source: &Self) {
        self.entries.clone_from(&source.entries);
    }
}

impl<V> Default for StackMap<V> {
    fn default() -> Self {
        StackMap {
            entries: Vec::new(),
        }
    }
}

impl<V> StackMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        StackMap::default()
    }

    fn find(&self, k: i64) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&k, |e| e.0)
    }

    /// The entry at an offset.
    pub fn get(&self, k: i64) -> Option<&V> {
        self.find(k).ok().map(|i| &self.entries[i].1)
    }

    /// The entry at an offset, to change.
    pub fn get_mut(&mut self, k: i64) -> Option<&mut V> {
        match self.find(k) {
            Ok(i) => Some(&mut self.entries[i].1),
            Err(_) => None,
        }
    }

    /// Makes room for `n` more entries.
    pub fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
    }

    /// Sets the entry at an offset.
    pub fn insert(&mut self, k: i64, v: V) {
        match self.find(k) {
            Ok(i) => self.entries[i].1 = v,
            Err(i) => self.entries.insert(i, (k, v)),
        }
    }

    /// Removes the entries at offsets `lo..hi`.
    pub fn remove_range(&mut self, lo: i64, hi: i64) {
        let a = self.entries.partition_point(|e| e.0 < lo);
        let b = self.entries.partition_point(|e| e.0 < hi);
        if a < b {
            self.entries.drain(a..b);
        }
    }

    /// Removes the entries below an offset.
    pub fn drop_below(&mut self, k: i64) {
        self.remove_range(i64::MIN, k);
    }

    /// Keeps the entries `f` accepts.
    pub fn retain(&mut self, mut f: impl FnMut(i64, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| f(*k, v));
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The entries with offsets in `lo..hi`, in order.
    pub fn range(&self, lo: i64, hi: i64) -> impl Iterator<Item = &(i64, V)> {
        let a = self.entries.partition_point(|e| e.0 < lo);
        let b = self.entries.partition_point(|e| e.0 < hi);
        self.entries.get(a..b.max(a)).unwrap_or(&[]).iter()
    }

    /// Every entry, in order.
    pub fn iter(&self) -> impl Iterator<Item = &(i64, V)> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_an_ordered_map() {
        let mut m = StackMap::new();
        for k in [5, -3, 9, 0, 5] {
            m.insert(k, k * 10);
        }
        assert_eq!(m.iter().map(|e| e.0).collect::<Vec<_>>(), [-3, 0, 5, 9]);
        assert_eq!(m.get(5), Some(&50));
        *m.get_mut(0).unwrap() = 7;
        assert_eq!(m.get(0), Some(&7));
        assert_eq!(m.range(0, 9).map(|e| e.0).collect::<Vec<_>>(), [0, 5]);
        m.remove_range(0, 6);
        assert_eq!(m.iter().map(|e| e.0).collect::<Vec<_>>(), [-3, 9]);
        m.drop_below(9);
        assert_eq!(m.iter().map(|e| e.0).collect::<Vec<_>>(), [9]);
        m.retain(|_, v| *v != 90);
        assert_eq!(m.get(9), None);
    }
}
