//! The word count's own table: `events.words().count_by_value()` (and `split_body` / `text`
//! followed by `count_by_value`) counted without building a [`Text`] per word.
//!
//! The generic keyed terminal turns every word into a `Text` (24 bytes), hashes it and folds it
//! into a [`Combiner`]. For the one chain that is by far the most common — text keys straight
//! off the event body, counted — [`WordCounts`] does the same work in one pass over the body:
//!
//! * A word of at most 8 bytes (nearly every word of natural or Zipf text) is **packed into a
//!   `u64`** (its bytes little-endian, zero-padded) while the body is scanned, hashed with one
//!   folded multiply of that word and its length, and counted in a **16-byte slot**
//!   `[packed bytes, length << 56 | count]`. Linear probing; a slot whose second word is 0 is
//!   empty (a counted word has a length of 0..=8 and a count of at least 1; length 0 is the
//!   empty word that SQL's `split` yields between two delimiters); the length is part of the
//!   key, so `"a"` and `"a\0"` (NUL is not whitespace) stay distinct. The load
//!   stays at or below 0.7; 10,000 distinct words take 256 KiB, so the table stays in L2.
//! * A longer word goes to a [`Combiner<Text, u64>`] (it is then a `Text` once, as before).
//!
//! [`TextTable`] is the same idea for `reduce_by_key` over [`Text`] keys with any value (the
//! `words → (w, 1) → reduce_by_key` form of the word count): the key arrives as a `Text` from
//! the user's `map`, and a short one is read from its inline bytes as one `u64`.
//!
//! Each worker counts its contiguous chunk of events into its own `WordCounts`; the partials
//! are added into the first one (counts are sums, so the order does not matter) and the result
//! is turned into `(Text, count)` pairs **sorted by key**, exactly what the generic
//! `count_by_value` returns. [`WordCounts::add_split`] is the SQL front end's word count
//! (`CROSS JOIN UNNEST(split(body, ' '))`, empty pieces included). Nothing here runs user code, so there is no panic to recover from;
//! a body that is not UTF-8 is skipped and reported as `non_utf8`, as the generic path does.

use super::text::{for_each_split_span, for_each_token, for_each_word_span, Combiner, Text};

/// Most keys per slot before the table doubles: 7 in 10.
const LOAD_NUM: usize = 7;
const LOAD_DEN: usize = 10;

const SEED: u64 = 0xf135_7aea_2e62_a9c5;
const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// Per-worker word counts (see the module docs).
pub(crate) struct WordCounts {
    /// `[packed bytes, len << 56 | count]`; `[_, 0]` is empty.
    slots: Vec<[u64; 2]>,
    mask: usize,
    /// Occupied short slots.
    short: usize,
    /// Words longer than 8 bytes.
    long: Combiner<Text, u64>,
}

/// The bytes of a word of 1..=8 bytes as a little-endian `u64`, zero-padded.
#[inline(always)]
fn pack(w: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..w.len()].copy_from_slice(w);
    u64::from_le_bytes(b)
}

/// The folded-multiply hash of a packed word and its length.
#[inline(always)]
fn hash(key: u64, len: u64) -> u64 {
    let p = ((key ^ SEED) as u128).wrapping_mul((MUL ^ len) as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

impl WordCounts {
    /// A table that holds `keys` distinct short words without growing.
    pub(crate) fn with_capacity(keys: usize) -> WordCounts {
        let n = (keys * LOAD_DEN / LOAD_NUM + 1).max(64).next_power_of_two();
        WordCounts {
            slots: vec![[0, 0]; n],
            mask: n - 1,
            short: 0,
            long: Combiner::with_capacity(16),
        }
    }

    /// Distinct words.
    pub(crate) fn len(&self) -> usize {
        self.short + self.long.len()
    }

    /// Adds `n` occurrences of the packed word `key` of `len` (1..=8) bytes.
    #[inline(always)]
    fn add_packed(&mut self, key: u64, len: u64, n: u64) {
        let mut i = hash(key, len) as usize & self.mask;
        loop {
            let s = &mut self.slots[i];
            if s[1] == 0 {
                *s = [key, (len << 56) | n];
                self.short += 1;
                if self.short * LOAD_DEN > self.slots.len() * LOAD_NUM {
                    self.grow();
                }
                return;
            }
            if s[0] == key && s[1] >> 56 == len {
                s[1] += n;
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    #[cold]
    fn grow(&mut self) {
        let n = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, vec![[0, 0]; n]);
        self.mask = n - 1;
        for s in old.into_iter().filter(|s| s[1] != 0) {
            let mut i = hash(s[0], s[1] >> 56) as usize & self.mask;
            while self.slots[i][1] != 0 {
                i = (i + 1) & self.mask;
            }
            self.slots[i] = s;
        }
    }

    /// Counts one occurrence of the (non-empty) word `w`.
    #[inline(always)]
    pub(crate) fn add(&mut self, w: &str) {
        let b = w.as_bytes();
        if b.len() <= 8 {
            self.add_packed(pack(b), b.len() as u64, 1);
        } else {
            self.add_long(w, 1);
        }
    }

    #[inline(never)]
    fn add_long(&mut self, w: &str, n: u64) {
        *self.long.entry_or_insert_with(Text::new(w), || 0) += n;
    }

    /// Counts the words (runs of non-ASCII-whitespace) of `s`, packing each short word
    /// straight from the body (one pass: scan, pack, hash, count).
    #[inline]
    pub(crate) fn add_words(&mut self, s: &str) {
        for_each_word_span(s.as_bytes(), |start, end| self.add_span(s, start, end));
    }

    /// Counts every piece of `s` between `delim` bytes (ASCII), **empty pieces included** —
    /// SQL's `split(s, delim)` unnested (`"a  b"`: `a`, ``, `b`; `""`: one ``). Same one-pass
    /// packing as [`add_words`](Self::add_words); the empty word is the packed key 0 of length 0.
    #[inline]
    pub(crate) fn add_split(&mut self, s: &str, delim: u8) {
        debug_assert!(delim.is_ascii());
        for_each_split_span(s.as_bytes(), delim, |start, end| {
            self.add_span(s, start, end)
        });
    }

    /// Counts `s[start..end]`, cut at ASCII bytes (so on character boundaries).
    #[inline(always)]
    fn add_span(&mut self, s: &str, start: usize, end: usize) {
        let b = s.as_bytes();
        let len = end - start;
        if len == 0 {
            self.add_packed(0, 0, 1);
        } else if len <= 8 {
            // Load 8 bytes at once when the body has them, and keep the word's `len`.
            let key = match b.get(start..start + 8) {
                Some(w8) => {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(w8);
                    u64::from_le_bytes(w) & (u64::MAX >> (64 - 8 * len))
                }
                None => pack(&b[start..end]),
            };
            self.add_packed(key, len as u64, 1);
        } else if let Some(w) = s.get(start..end) {
            // `get` never fails here: the span is cut at ASCII bytes.
            self.add_long(w, 1);
        }
    }

    /// Counts the non-empty tokens of `s` between `delim` bytes (ASCII).
    pub(crate) fn add_tokens(&mut self, s: &str, delim: u8) {
        for_each_token(s, delim, |w| self.add(w));
    }

    /// Adds every count of `other`.
    pub(crate) fn merge(&mut self, other: WordCounts) {
        for s in other.slots.into_iter().filter(|s| s[1] != 0) {
            self.add_packed(s[0], s[1] >> 56, s[1] & ((1 << 56) - 1));
        }
        for (w, n) in other.long.into_entries() {
            self.add_long(&w, n);
        }
    }

    /// `(word, count)` for every word, sorted by word.
    pub(crate) fn into_sorted(self) -> Vec<(Text, u64)> {
        let mut out: Vec<(Text, u64)> = Vec::with_capacity(self.len());
        for s in self.slots.into_iter().filter(|s| s[1] != 0) {
            let len = (s[1] >> 56) as usize;
            let bytes = s[0].to_le_bytes();
            // Always UTF-8: the bytes were a word cut from a `&str` at ASCII bytes.
            if let Ok(w) = std::str::from_utf8(&bytes[..len]) {
                out.push((Text::new(w), s[1] & ((1 << 56) - 1)));
            }
        }
        out.extend(self.long.into_entries());
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// The keyed combiner of `reduce_by_key` for [`Text`] keys: a key of at most 8 bytes is read
/// from the `Text`'s inline bytes as one `u64` and filed in a 16-byte slot
/// `[packed bytes, (len + 1) << 56 | entry]` that points at its `(key, len, value)` entry
/// (dense, in insertion order); longer keys go to a [`Combiner`]. Values are folded in arrival
/// order, and a panicking `f` leaves the table as it was (the old value is cloned, the result
/// written only when `f` returns), as [`Combiner`] does.
pub(crate) struct TextTable<V> {
    slots: Vec<[u64; 2]>,
    mask: usize,
    entries: Vec<(u64, u8, V)>,
    long: Combiner<Text, V>,
}

impl<V: Clone> TextTable<V> {
    /// A table that holds `keys` distinct short keys without growing.
    pub(crate) fn with_capacity(keys: usize) -> TextTable<V> {
        let n = (keys * LOAD_DEN / LOAD_NUM + 1).max(64).next_power_of_two();
        TextTable {
            slots: vec![[0, 0]; n],
            mask: n - 1,
            entries: Vec::with_capacity(keys),
            long: Combiner::with_capacity(16),
        }
    }

    /// Distinct keys.
    pub(crate) fn len(&self) -> usize {
        self.entries.len() + self.long.len()
    }

    /// Folds `v` into the value of `k` with `f` (inserting it if absent).
    #[inline(always)]
    pub(crate) fn fold<F: Fn(V, V) -> V>(&mut self, k: &Text, v: V, f: &F) {
        match k.packed8() {
            Some((key, len)) => self.fold_packed(key, len, v, f),
            None => self
                .long
                .upsert(k.clone(), v, |slot, v| *slot = f(slot.clone(), v)),
        }
    }

    #[inline(always)]
    fn fold_packed<F: Fn(V, V) -> V>(&mut self, key: u64, len: u8, v: V, f: &F) {
        let tag = (len as u64 + 1) << 56;
        let mut i = hash(key, len as u64) as usize & self.mask;
        loop {
            let s = self.slots[i];
            if s[1] == 0 {
                self.insert_at(i, key, len, v);
                return;
            }
            if s[0] == key && s[1] & (0xff << 56) == tag {
                let e = &mut self.entries[(s[1] & ((1 << 56) - 1)) as usize].2;
                *e = f(e.clone(), v);
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn insert_at(&mut self, i: usize, key: u64, len: u8, v: V) {
        let tag = (len as u64 + 1) << 56;
        self.slots[i] = [key, tag | self.entries.len() as u64];
        self.entries.push((key, len, v));
        if self.entries.len() * LOAD_DEN > self.slots.len() * LOAD_NUM {
            let n = self.slots.len() * 2;
            self.slots = vec![[0, 0]; n];
            self.mask = n - 1;
            for (e, (key, len, _)) in self.entries.iter().enumerate() {
                let mut i = hash(*key, *len as u64) as usize & self.mask;
                while self.slots[i][1] != 0 {
                    i = (i + 1) & self.mask;
                }
                self.slots[i] = [*key, ((*len as u64 + 1) << 56) | e as u64];
            }
        }
    }

    /// Folds every entry of `other` (a later chunk) into this one, in `other`'s insertion order.
    pub(crate) fn merge<F: Fn(V, V) -> V>(&mut self, other: TextTable<V>, f: &F) {
        for (key, len, v) in other.entries {
            self.fold_packed(key, len, v, f);
        }
        for (k, v) in other.long.into_entries() {
            self.long.upsert(k, v, |slot, v| *slot = f(slot.clone(), v));
        }
    }

    /// `(key, value)` for every key, sorted by key.
    pub(crate) fn into_sorted(self) -> Vec<(Text, V)> {
        let mut out: Vec<(Text, V)> = Vec::with_capacity(self.len());
        for (key, len, v) in self.entries {
            let bytes = key.to_le_bytes();
            // Always UTF-8: the bytes are the whole of a `Text`'s string.
            if let Ok(w) = std::str::from_utf8(&bytes[..len as usize]) {
                out.push((Text::new(w), v));
            }
        }
        out.extend(self.long.into_entries());
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn reference(bodies: &[String]) -> Vec<(Text, u64)> {
        let mut m: BTreeMap<&str, u64> = BTreeMap::new();
        for b in bodies {
            for w in b.split(|c: char| c.is_ascii_whitespace()) {
                if !w.is_empty() {
                    *m.entry(w).or_default() += 1;
                }
            }
        }
        m.into_iter().map(|(w, n)| (Text::new(w), n)).collect()
    }

    proptest! {
        #[test]
        fn counts_words_like_a_btreemap_whatever_the_split_into_partials(
            bodies in proptest::collection::vec(
                "([a-c]{1,3}|[a-z]{7,10}|\u{e9}\u{e9}\u{e9}\u{e9}|a\u{0}|[ \t\n\r\x0b\x0c\x01]){0,30}",
                0..40),
            cut in 0usize..40,
            cap in 0usize..100,
        ) {
            let cut = cut.min(bodies.len());
            let mut a = WordCounts::with_capacity(cap);
            let mut b = WordCounts::with_capacity(0);
            for s in &bodies[..cut] {
                a.add_words(s);
            }
            for s in &bodies[cut..] {
                b.add_words(s);
            }
            a.merge(b);
            prop_assert_eq!(a.into_sorted(), reference(&bodies));
        }

        #[test]
        fn split_pieces_count_like_std_split_with_empty_ones(
            bodies in proptest::collection::vec("([a-c]{1,3}|[a-z]{7,10}|\u{e9}\u{e9}|a\u{0}| |\t){0,20}", 0..30),
            cut in 0usize..30,
        ) {
            let cut = cut.min(bodies.len());
            let mut a = WordCounts::with_capacity(0);
            let mut b = WordCounts::with_capacity(0);
            for s in &bodies[..cut] {
                a.add_split(s, b' ');
            }
            for s in &bodies[cut..] {
                b.add_split(s, b' ');
            }
            a.merge(b);
            let mut m: BTreeMap<&str, u64> = BTreeMap::new();
            for s in &bodies {
                for w in s.split(' ') {
                    *m.entry(w).or_default() += 1;
                }
            }
            let want: Vec<(Text, u64)> = m.into_iter().map(|(w, n)| (Text::new(w), n)).collect();
            prop_assert_eq!(a.into_sorted(), want);
        }

        #[test]
        fn tokens_and_single_words_count_like_the_generic_split(
            s in "[ab ,\u{e9}]{0,60}",
        ) {
            let mut c = WordCounts::with_capacity(0);
            c.add_tokens(&s, b',');
            let mut m: BTreeMap<&str, u64> = BTreeMap::new();
            for w in s.split(',').filter(|w| !w.is_empty()) {
                *m.entry(w).or_default() += 1;
            }
            let want: Vec<(Text, u64)> = m.into_iter().map(|(w, n)| (Text::new(w), n)).collect();
            prop_assert_eq!(c.into_sorted(), want);
        }
    }

    proptest! {
        #[test]
        fn text_table_folds_in_arrival_order_like_a_btreemap(
            pairs in proptest::collection::vec(("|a\u{0}|[a-c]{1,3}|[a-z]{8,12}|\u{e9}{3,5}", 0u64..100), 0..300),
            cut in 0usize..300,
            cap in 0usize..50,
        ) {
            // Associative but not commutative (a rolling hash of the concatenation, as
            // `(hash, 31^len)`): checks that values are folded in arrival, then chunk, order.
            type P = (u64, u64);
            let f = |a: P, b: P| (a.0.wrapping_mul(b.1).wrapping_add(b.0), a.1.wrapping_mul(b.1));
            let cut = cut.min(pairs.len());
            let mut a: TextTable<P> = TextTable::with_capacity(cap);
            let mut b: TextTable<P> = TextTable::with_capacity(0);
            for (k, v) in &pairs[..cut] {
                a.fold(&Text::new(k), (*v, 31), &f);
            }
            for (k, v) in &pairs[cut..] {
                b.fold(&Text::new(k), (*v, 31), &f);
            }
            a.merge(b, &f);
            let mut want: BTreeMap<&str, P> = BTreeMap::new();
            for (k, v) in &pairs {
                let n = match want.get(k.as_str()) {
                    Some(old) => f(*old, (*v, 31)),
                    None => (*v, 31),
                };
                want.insert(k.as_str(), n);
            }
            let want: Vec<(Text, P)> = want.into_iter().map(|(k, v)| (Text::new(k), v)).collect();
            prop_assert_eq!(a.into_sorted(), want);
        }
    }

    #[test]
    fn a_panicking_reduce_leaves_the_text_table_intact() {
        let mut t: TextTable<u64> = TextTable::with_capacity(0);
        t.fold(&Text::new("word"), 5, &|a, b| a + b);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            t.fold(&Text::new("word"), 1, &|_: u64, _: u64| -> u64 {
                panic!("boom")
            })
        }));
        assert!(r.is_err());
        assert_eq!(t.into_sorted(), vec![(Text::new("word"), 5)]);
    }

    #[test]
    fn grows_past_its_capacity_and_keeps_every_count() {
        let mut c = WordCounts::with_capacity(0);
        let words: Vec<String> = (0..5000).map(|i| format!("w{i}")).collect();
        for _ in 0..3 {
            for w in &words {
                c.add(w);
            }
        }
        c.add("a-rather-long-word");
        let out = c.into_sorted();
        assert_eq!(out.len(), 5001);
        assert!(out.windows(2).all(|p| p[0].0 < p[1].0));
        assert!(out
            .iter()
            .all(|(w, n)| *n == if w.len() > 8 { 1 } else { 3 }));
    }
}
