//! The set of sequence numbers whose takes are committed: a low-water mark plus sorted ranges.

use std::collections::BTreeMap;

/// Committed takes: every seq `< lo`, plus disjoint `[start, end)` ranges above `lo`.
///
/// Out-of-order commits (competing consumers) leave ranges above `lo`; their number is bounded by
/// the number of take transactions open at once plus rolled-back fragments awaiting re-take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckSet {
    lo: u64,
    ranges: BTreeMap<u64, u64>,
    above: u64,
}

impl AckSet {
    /// A set where everything below `lo` is acknowledged, plus `ranges`.
    pub fn new(lo: u64, ranges: &[(u64, u64)]) -> AckSet {
        let mut s = AckSet {
            lo,
            ranges: BTreeMap::new(),
            above: 0,
        };
        for &(a, b) in ranges {
            s.insert(a, b);
        }
        s
    }

    /// The low-water mark.
    #[inline]
    pub fn lo(&self) -> u64 {
        self.lo
    }

    /// Acknowledged seqs at or above `lo`.
    #[inline]
    pub fn above(&self) -> u64 {
        self.above
    }

    /// The ranges above `lo`, ascending.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        self.ranges.iter().map(|(a, b)| (*a, *b)).collect()
    }

    /// True if `seq` is acknowledged.
    pub fn contains(&self, seq: u64) -> bool {
        if seq < self.lo {
            return true;
        }
        match self.ranges.range(..=seq).next_back() {
            Some((_, &end)) => seq < end,
            None => false,
        }
    }

    /// Acknowledges `[a, b)`; returns how many seqs were newly acknowledged.
    pub fn insert(&mut self, a: u64, b: u64) -> u64 {
        let a = a.max(self.lo);
        if a >= b {
            return 0;
        }
        // Merge with every overlapping or adjacent range.
        let mut start = a;
        let mut end = b;
        let mut removed = 0;
        let mut gone = Vec::new();
        if let Some((&s, &e)) = self.ranges.range(..=a).next_back() {
            if e >= a {
                start = s;
                end = end.max(e);
                gone.push(s);
                removed += e - s;
            }
        }
        for (&s, &e) in self.ranges.range(a..) {
            if s > end {
                break;
            }
            if !gone.contains(&s) {
                end = end.max(e);
                gone.push(s);
                removed += e - s;
            }
        }
        for s in gone {
            self.ranges.remove(&s);
        }
        let added = (end - start) - removed;
        if start == self.lo {
            // The merged range now lies below the low-water mark.
            self.lo = end;
            self.above -= removed;
        } else {
            self.ranges.insert(start, end);
            self.above += added;
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matches_a_plain_set(lo in 0u64..20, ops in proptest::collection::vec((0u64..60, 1u64..8), 0..40)) {
            let mut s = AckSet::new(lo, &[]);
            let mut model: std::collections::BTreeSet<u64> = (0..lo).collect();
            for (a, len) in ops {
                let added = s.insert(a, a + len);
                let before = model.len();
                model.extend(a..a + len);
                prop_assert_eq!(added as usize, model.len() - before);
                let mut lo = 0;
                while model.contains(&lo) { lo += 1; }
                prop_assert_eq!(s.lo(), lo);
                prop_assert_eq!(s.above() as usize, model.iter().filter(|x| **x >= lo).count());
                for x in 0..80 {
                    prop_assert_eq!(s.contains(x), model.contains(&x));
                }
            }
        }
    }
}
