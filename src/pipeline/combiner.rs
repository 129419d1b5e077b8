//! The keyed combiner of the fused terminals: a small open-addressing hash table built for the
//! one job of folding a stream of `(key, value)` pairs (a word count's hot loop).
//!
//! # Layout and invariants
//!
//! * One array of slots, a power of two long; a slot is empty (`None`) or holds
//!   `(hash, key, value)` **inline**. A probe for a key that is present touches the one slot
//!   (one cache line, mostly) instead of a control byte array and then a separate bucket array
//!   as `HashMap` does: for a word count with [`Text`](super::Text) keys a slot is 40 bytes and
//!   10,000 distinct words fit in L2.
//! * Linear probing from `hash & mask`; the stored hash is compared before the key, so a miss
//!   on a different key costs one `u64` compare. Keys are never removed, so a probe stops at the
//!   first empty slot.
//! * The load factor stays at or below 0.7 (the table doubles before an insert would pass it).
//!   [`Combiner::with_capacity`] sizes the table for an expected key count (the terminals pass
//!   the previous batch's), so a steady stream of batches does not rehash.
//! * The hash is [`key_hash`]: for [`Text`] keys one branch-free folded multiply over the
//!   inline bytes ([`Text::combiner_hash`]), for other keys [`fast_hash`]. It is kept with the
//!   entry, so merging partials by partition never hashes a key twice.
//!
//! Panic safety: [`Combiner::fold`] clones the old value and writes the combined one only when
//! the user function returns, so a panicking function leaves the table consistent (the fused
//! terminals then re-run the chunk one event at a time).

use std::any::Any;
use std::hash::Hash;

use super::text::{fast_hash, Text};

/// The hash the combiner files `k` under: [`Text::combiner_hash`] for text keys (decided at
/// compile time: the type test folds away), [`fast_hash`] otherwise.
#[inline]
pub(crate) fn key_hash<K: Hash + 'static>(k: &K) -> u64 {
    match (k as &dyn Any).downcast_ref::<Text>() {
        Some(t) => t.combiner_hash(),
        None => fast_hash(k),
    }
}

/// Most keys per slot before the table doubles: 7 in 10.
const LOAD_NUM: usize = 7;
const LOAD_DEN: usize = 10;

/// See the module docs.
pub(crate) struct Combiner<K, V> {
    slots: Vec<Option<(u64, K, V)>>,
    mask: usize,
    len: usize,
}

impl<K: Hash + Eq + 'static, V: Clone> Default for Combiner<K, V> {
    fn default() -> Self {
        Combiner::with_capacity(0)
    }
}

impl<K: Hash + Eq + 'static, V: Clone> Combiner<K, V> {
    /// A table that holds `keys` keys without growing.
    pub(crate) fn with_capacity(keys: usize) -> Self {
        let want = (keys * LOAD_DEN / LOAD_NUM + 1).max(16).next_power_of_two();
        let mut slots = Vec::with_capacity(want);
        slots.resize_with(want, || None);
        Combiner {
            slots,
            mask: want - 1,
            len: 0,
        }
    }

    /// Distinct keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Folds `v` into the entry of `k` with `f` (or inserts it).
    #[inline]
    pub(crate) fn fold<F: Fn(V, V) -> V>(&mut self, k: K, v: V, f: &F) {
        let h = key_hash(&k);
        self.fold_hashed(h, k, v, f)
    }

    /// [`fold`](Self::fold) with the key's [`key_hash`] already computed.
    #[inline]
    pub(crate) fn fold_hashed<F: Fn(V, V) -> V>(&mut self, h: u64, k: K, v: V, f: &F) {
        let mut i = h as usize & self.mask;
        // SAFETY: `i <= mask` and `slots.len() == mask + 1`.
        while let Some((sh, sk, sv)) = unsafe { self.slots.get_unchecked_mut(i) } {
            if *sh == h && *sk == k {
                *sv = f(sv.clone(), v);
                return;
            }
            i = (i + 1) & self.mask;
        }
        if (self.len + 1) * LOAD_DEN > self.slots.len() * LOAD_NUM {
            self.grow();
            i = self.free_slot(h);
        }
        self.slots[i] = Some((h, k, v));
        self.len += 1;
    }

    /// The first empty slot on `h`'s probe sequence.
    #[inline]
    fn free_slot(&self, h: u64) -> usize {
        let mut i = h as usize & self.mask;
        while self.slots[i].is_some() {
            i = (i + 1) & self.mask;
        }
        i
    }

    fn grow(&mut self) {
        let n = self.slots.len() * 2;
        let mut slots = Vec::with_capacity(n);
        slots.resize_with(n, || None);
        let old = std::mem::replace(&mut self.slots, slots);
        self.mask = n - 1;
        for e in old.into_iter().flatten() {
            let i = self.free_slot(e.0);
            self.slots[i] = Some(e);
        }
    }

    /// The entries with their hashes, in table order.
    pub(crate) fn into_hashed(self) -> impl Iterator<Item = (u64, K, V)> {
        self.slots.into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Text;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        #[test]
        fn folds_like_a_btreemap(
            pairs in proptest::collection::vec(("[a-e]{0,3}|[a-z]{20,30}", 0u64..100), 0..400),
            cap in 0usize..50,
        ) {
            let mut c: Combiner<Text, u64> = Combiner::with_capacity(cap);
            let mut want: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            for (k, v) in &pairs {
                // Not commutative: checks that values are folded in arrival order.
                c.fold(Text::new(k), *v, &|a, b| a.wrapping_mul(31).wrapping_add(b));
                want.entry(k.clone()).or_default().push(*v);
            }
            prop_assert_eq!(c.len(), want.len());
            let mut got: Vec<(String, u64)> =
                c.into_hashed().map(|(h, k, v)| {
                    assert_eq!(h, key_hash(&k));
                    (k.to_string(), v)
                }).collect();
            got.sort();
            let want: Vec<(String, u64)> = want
                .into_iter()
                .map(|(k, vs)| {
                    let mut it = vs.into_iter();
                    let first = it.next().unwrap_or(0);
                    (k, it.fold(first, |a, b| a.wrapping_mul(31).wrapping_add(b)))
                })
                .collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_panicking_fold_leaves_the_table_intact() {
        let mut c: Combiner<u32, u64> = Combiner::default();
        c.fold(1, 5, &|a, b| a + b);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.fold(1, 1, &|_: u64, _: u64| -> u64 { panic!("boom") })
        }));
        assert!(r.is_err());
        let all: Vec<_> = c.into_hashed().map(|(_, k, v)| (k, v)).collect();
        assert_eq!(all, vec![(1, 5)]);
    }
}
