//! Small text keys and the fast hasher used by every keyed operator.
//!
//! * [`Text`]: an immutable string of at most 22 bytes stored inline (24 bytes in all, no
//!   allocation), longer ones boxed. Words are keys in nearly every pipeline; with `Text` a word
//!   count allocates nothing per word. `Text` hashes, compares and orders exactly like `str` and
//!   implements `Borrow<str>`, so a map keyed by `Text` is probed with a `&str` slice of the event
//!   body and a key is materialised only when it is new.
//! * [`FastHasher`]: a folded-multiply hasher over 8-byte words (one 64×64→128-bit multiply
//!   per word, as foldhash and ahash do; not DoS-resistant, which is fine for combiners whose
//!   lifetime is one batch and whose keys come from the pipeline's own input). [`FastMap`] is `HashMap` with it.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::ops::Deref;

/// Longest string kept inline.
pub const INLINE_CAP: usize = 22;

#[derive(Clone)]
enum Repr {
    Inline(u8, [u8; INLINE_CAP]),
    Heap(Box<str>),
}

/// An immutable string, inline up to 22 bytes. See the module docs.
#[derive(Clone)]
pub struct Text(Repr);

impl Text {
    /// Copies `s` (inline when it fits).
    #[inline]
    pub fn new(s: &str) -> Text {
        let b = s.as_bytes();
        if b.len() <= INLINE_CAP {
            Text(Repr::Inline(b.len() as u8, inline_copy(b)))
        } else {
            Text(Repr::Heap(s.into()))
        }
    }

    /// Validates `b` as UTF-8 and copies it.
    #[inline]
    pub fn from_utf8(b: &[u8]) -> Result<Text, std::str::Utf8Error> {
        std::str::from_utf8(b).map(Text::new)
    }

    /// The string.
    #[inline(always)]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // SAFETY: the inline bytes were copied from a `&str` of exactly `len` bytes.
            Repr::Inline(len, buf) => unsafe {
                std::str::from_utf8_unchecked(&buf[..*len as usize])
            },
            Repr::Heap(s) => s,
        }
    }

    /// A cheap hash of the string for the keyed combiner: for an inline string one folded
    /// multiply over its zero-padded bytes and length (no branch on the length); a boxed one
    /// falls back to [`fast_hash`]. Not the same value as `fast_hash(self)`; only the combiner
    /// (which keeps the hash with the entry) uses it.
    #[inline]
    pub(crate) fn combiner_hash(&self) -> u64 {
        match &self.0 {
            Repr::Inline(len, buf) => {
                let w = |i: usize| {
                    let mut b = [0u8; 8];
                    let n = (INLINE_CAP - i).min(8);
                    b[..n].copy_from_slice(&buf[i..i + n]);
                    u64::from_le_bytes(b)
                };
                let (a, b, c) = (w(0), w(8), w(16));
                let p = ((a ^ K) as u128)
                    .wrapping_mul((b ^ c.rotate_left(29) ^ ((*len as u64) << 56) ^ K2) as u128);
                (p as u64) ^ ((p >> 64) as u64)
            }
            Repr::Heap(s) => fast_hash(&**s),
        }
    }

    /// A string of at most 8 bytes as its bytes in a little-endian `u64` (zero-padded: inline
    /// bytes past the length are always zero) and its length; `None` for longer strings.
    #[inline(always)]
    pub(crate) fn packed8(&self) -> Option<(u64, u8)> {
        match &self.0 {
            Repr::Inline(len, buf) if *len <= 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[..8]);
                Some((u64::from_le_bytes(b), *len))
            }
            _ => None,
        }
    }

    /// True when the string is stored inline (no allocation).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline(..))
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::new("")
    }
}

impl Deref for Text {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    #[inline]
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Text {
    #[inline(always)]
    fn eq(&self, other: &Text) -> bool {
        match (&self.0, &other.0) {
            // Inline bytes past `len` are always zero, so whole arrays compare like strings.
            (Repr::Inline(la, a), Repr::Inline(lb, b)) => la == lb && a == b,
            _ => self.as_str() == other.as_str(),
        }
    }
}
impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}
impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Text) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Text {
    fn cmp(&self, other: &Text) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Text {
    #[inline(always)]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::new(s)
    }
}
impl From<String> for Text {
    fn from(s: String) -> Text {
        if s.len() <= INLINE_CAP {
            Text::new(&s)
        } else {
            Text(Repr::Heap(s.into_boxed_str()))
        }
    }
}
impl From<Text> for String {
    fn from(t: Text) -> String {
        t.as_str().to_string()
    }
}

/// Copies `b` (at most 22 bytes) into a zeroed array with a few fixed-size moves (no call to
/// `memcpy` for these short, variable lengths).
#[inline(always)]
fn inline_copy(b: &[u8]) -> [u8; INLINE_CAP] {
    let mut buf = [0u8; INLINE_CAP];
    let n = b.len();
    debug_assert!(n <= INLINE_CAP);
    if n >= 8 {
        // First 8, an optional middle 8, last 8 (overlapping as needed).
        buf[..8].copy_from_slice(&b[..8]);
        if n > 16 {
            buf[8..16].copy_from_slice(&b[8..16]);
        }
        buf[n - 8..n].copy_from_slice(&b[n - 8..]);
    } else if n >= 4 {
        buf[..4].copy_from_slice(&b[..4]);
        buf[n - 4..n].copy_from_slice(&b[n - 4..]);
    } else {
        // Up to 3 bytes: a byte loop (the compiler keeps it a loop, not a `memcpy` call).
        for (d, s) in buf.iter_mut().zip(b) {
            *d = *s;
        }
    }
    buf
}

/// The bytes of `b` (at most 8) as a little-endian word, zero-extended.
#[inline(always)]
fn load_le(b: &[u8]) -> u64 {
    let n = b.len();
    debug_assert!(n <= 8);
    if n >= 4 {
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
        let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]) as u64;
        lo | (hi << ((n - 4) * 8))
    } else {
        let mut w = 0u64;
        for (i, &x) in b.iter().enumerate() {
            w |= (x as u64) << (i * 8);
        }
        w
    }
}

const K: u64 = 0xf135_7aea_2e62_a9c5;
const K2: u64 = 0x9e37_79b9_7f4a_7c15;

/// The fast folded-multiply hasher (see the module docs).
#[derive(Default, Clone, Copy)]
pub struct FastHasher {
    h: u64,
}

impl FastHasher {
    /// Folded multiply: the full 128-bit product's halves xor-ed, so every input bit reaches
    /// every output bit (hashbrown uses both the low bits, for the bucket, and the top 7, for
    /// the tag).
    #[inline(always)]
    fn add(&mut self, w: u64) {
        let p = ((self.h ^ w) as u128).wrapping_mul(K as u128);
        self.h = (p as u64) ^ ((p >> 64) as u64);
    }
}

impl Hasher for FastHasher {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            self.add(load_le(rest) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline(always)]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline(always)]
    fn finish(&self) -> u64 {
        self.h
    }
}

/// `BuildHasher` for [`FastHasher`].
pub type FastBuildHasher = BuildHasherDefault<FastHasher>;

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, FastBuildHasher>;

/// Hash of `k` with the fast hasher (used to pick a key's shard).
#[inline(always)]
pub(crate) fn fast_hash<K: Hash + ?Sized>(k: &K) -> u64 {
    let mut h = FastHasher::default();
    k.hash(&mut h);
    h.finish()
}

/// The keyed combiner: an insert-or-update hash table tuned for per-batch aggregation
/// (`count_by_value`, `reduce_by_key`). Entries live densely in insertion order; an
/// open-addressing index of `u64` slots (upper 32 bits of the hash, entry number + 1) is probed
/// linearly, so a lookup touches one index word and, on a tag match, one entry, with the key
/// comparison and the hash inlined (no per-probe indirect call). Grows at half load.
#[derive(Debug, Clone)]
pub struct Combiner<K, V> {
    entries: Vec<(K, V)>,
    hashes: Vec<u64>,
    index: Vec<u64>,
    mask: usize,
}

/// The hash a [`Combiner`] files `k` under: [`Text::combiner_hash`] for text keys (a
/// compile-time type test that folds away), [`fast_hash`] otherwise.
#[inline(always)]
fn key_hash<K: Hash + 'static>(k: &K) -> u64 {
    match (k as &dyn std::any::Any).downcast_ref::<Text>() {
        Some(t) => t.combiner_hash(),
        None => fast_hash(k),
    }
}

impl<K: Hash + Eq + 'static, V> Default for Combiner<K, V> {
    fn default() -> Self {
        Combiner::with_capacity(64)
    }
}

impl<K: Hash + Eq + 'static, V> Combiner<K, V> {
    /// A combiner sized for about `n` keys.
    pub fn with_capacity(n: usize) -> Self {
        let slots = (n.max(16) * 2).next_power_of_two();
        Combiner {
            entries: Vec::with_capacity(n),
            hashes: Vec::with_capacity(n),
            index: vec![0; slots],
            mask: slots - 1,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[inline(always)]
    fn find(&self, h: u64, k: &K) -> Result<usize, usize> {
        let tag = h & 0xffff_ffff_0000_0000;
        let mut i = (h as usize) & self.mask;
        loop {
            let slot = self.index[i];
            if slot == 0 {
                return Err(i);
            }
            if slot & 0xffff_ffff_0000_0000 == tag {
                let e = (slot & 0xffff_ffff) as usize - 1;
                if self.entries[e].0 == *k {
                    return Ok(e);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    fn grow(&mut self) {
        let slots = self.index.len() * 2;
        self.index = vec![0; slots];
        self.mask = slots - 1;
        for (e, &h) in self.hashes.iter().enumerate() {
            let mut i = (h as usize) & self.mask;
            while self.index[i] != 0 {
                i = (i + 1) & self.mask;
            }
            self.index[i] = (h & 0xffff_ffff_0000_0000) | (e as u64 + 1);
        }
    }

    /// The value of `k`, inserted as `init()` if absent.
    #[inline(always)]
    pub fn entry_or_insert_with(&mut self, k: K, init: impl FnOnce() -> V) -> &mut V {
        let h = key_hash(&k);
        match self.find(h, &k) {
            Ok(e) => &mut self.entries[e].1,
            Err(slot) => self.insert_at(slot, h, k, init()),
        }
    }

    /// Folds `v` into the value of `k` with `f` (inserting `v` if absent).
    #[inline(always)]
    pub fn upsert(&mut self, k: K, v: V, f: impl FnOnce(&mut V, V)) {
        let h = key_hash(&k);
        match self.find(h, &k) {
            Ok(e) => f(&mut self.entries[e].1, v),
            Err(slot) => {
                self.insert_at(slot, h, k, v);
            }
        }
    }

    /// The value of `k`, if present.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.find(key_hash(k), k).ok().map(|e| &self.entries[e].1)
    }

    #[inline(never)]
    fn insert_at(&mut self, slot: usize, h: u64, k: K, v: V) -> &mut V {
        let e = self.entries.len();
        self.entries.push((k, v));
        self.hashes.push(h);
        self.index[slot] = (h & 0xffff_ffff_0000_0000) | (e as u64 + 1);
        if self.entries.len() * 2 > self.index.len() {
            self.grow();
        }
        &mut self.entries[e].1
    }

    /// The entries, in insertion order.
    pub fn into_entries(self) -> Vec<(K, V)> {
        self.entries
    }

    /// The entries with their hashes, in insertion order.
    pub(crate) fn into_hashed(self) -> impl Iterator<Item = (u64, (K, V))> {
        self.hashes.into_iter().zip(self.entries)
    }
}

/// Calls `f` with every non-empty token of `s` separated by `delim` (no allocation).
#[inline]
pub(crate) fn for_each_token(s: &str, delim: u8, mut f: impl FnMut(&str)) {
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == delim {
            if i > start {
                // SAFETY: `delim` is ASCII (checked by the callers), so `start..i` lies on
                // character boundaries of the valid UTF-8 string `s`.
                f(unsafe { s.get_unchecked(start..i) });
            }
            start = i + 1;
        }
    }
    if b.len() > start {
        // SAFETY: `start` is 0 or one past an ASCII `delim`, so a character boundary of `s`.
        f(unsafe { s.get_unchecked(start..) });
    }
}

/// Calls `f` with every maximal run of non-ASCII-whitespace in `s` (no allocation).
#[inline]
pub(crate) fn for_each_word(s: &str, mut f: impl FnMut(&str)) {
    for_each_word_span(s.as_bytes(), |start, end| {
        // SAFETY: `for_each_word_span` cuts only at ASCII whitespace bytes, which are
        // character boundaries of the valid UTF-8 `s`, and `start < end <= s.len()`.
        f(unsafe { s.get_unchecked(start..end) })
    });
}

/// Calls `f(start, end)` for every maximal run `b[start..end]` of bytes that are not ASCII
/// whitespace, in order (`start < end`; no allocation).
///
/// Scans eight bytes at a time: a branch-free per-byte test flags the bytes below `0x21`
/// (every ASCII whitespace byte is; UTF-8 continuation and lead bytes never are), and only the
/// flagged bytes are looked at one by one. A run of letters thus costs one test per eight bytes.
#[inline(always)]
pub(crate) fn for_each_word_span(b: &[u8], mut f: impl FnMut(usize, usize)) {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HI: u64 = 0x8080_8080_8080_8080;
    // Added to a byte's low 7 bits, sets its high bit exactly when those bits are >= 0x21.
    const ADD: u64 = 0x5f5f_5f5f_5f5f_5f5f;
    let mut start = 0;
    let mut at = 0;
    let mut emit = |i: usize, start: &mut usize| {
        if i > *start {
            f(*start, i);
        }
        *start = i + 1;
    };
    while let Some(w8) = b.get(at..at + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(w8);
        let x = u64::from_le_bytes(w);
        // High bit of each byte set when the byte is < 0x21 (and < 0x80).
        let mut low = !(((x & LO7) + ADD) | x) & HI;
        while low != 0 {
            let i = (low.trailing_zeros() / 8) as usize;
            if w[i].is_ascii_whitespace() {
                emit(at + i, &mut start);
            }
            low &= low - 1;
        }
        at += 8;
    }
    while at < b.len() {
        if b[at].is_ascii_whitespace() {
            emit(at, &mut start);
        }
        at += 1;
    }
    if b.len() > start {
        f(start, b.len());
    }
}

/// Calls `f(start, end)` for every piece `b[start..end]` between occurrences of the byte
/// `delim`, **empty pieces included**, in order — SQL's `split(s, d)` (and `str::split`): `"a  b"`
/// gives `a`, ``, `b`; an empty `b` gives one empty piece. No allocation.
///
/// Scans eight bytes at a time: the word xor-ed with `delim` in every byte has a zero byte
/// exactly where `delim` is, found with an exact (no false positives) branch-free zero-byte
/// test, so a run without the delimiter costs one test per eight bytes.
#[inline(always)]
pub(crate) fn for_each_split_span(b: &[u8], delim: u8, mut f: impl FnMut(usize, usize)) {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pat = u64::from_ne_bytes([delim; 8]);
    let mut start = 0;
    let mut at = 0;
    while let Some(w8) = b.get(at..at + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(w8);
        let v = u64::from_le_bytes(w) ^ pat;
        // High bit of each byte set exactly when the byte of `v` is zero: `(x & 0x7f) + 0x7f`
        // sets it for a non-zero low part (no carry out of the byte), `| v` for a set high bit.
        let mut hit = !(((v & LO7) + LO7) | v) & HI;
        while hit != 0 {
            let i = at + (hit.trailing_zeros() / 8) as usize;
            f(start, i);
            start = i + 1;
            hit &= hit - 1;
        }
        at += 8;
    }
    while at < b.len() {
        if b[at] == delim {
            f(start, at);
            start = at + 1;
        }
        at += 1;
    }
    f(start, b.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_strings_are_inline_and_long_ones_boxed() {
        assert_eq!(std::mem::size_of::<Text>(), 24);
        let t = Text::new("hello");
        assert!(t.is_inline());
        assert_eq!(t.as_str(), "hello");
        let long = "x".repeat(23);
        let t = Text::new(&long);
        assert!(!t.is_inline());
        assert_eq!(t.as_str(), long);
        assert!(Text::new(&"y".repeat(22)).is_inline());
    }

    proptest! {
        #[test]
        fn combiner_matches_a_btreemap(keys in proptest::collection::vec(0u16..300, 0..2000)) {
            let mut c: Combiner<Text, u64> = Combiner::default();
            let mut m = std::collections::BTreeMap::new();
            for k in &keys {
                let t = Text::new(&format!("k{k}"));
                c.upsert(t.clone(), 1, |a, b| *a += b);
                *m.entry(t).or_insert(0u64) += 1;
            }
            prop_assert_eq!(c.len(), m.len());
            for (k, v) in &m {
                prop_assert_eq!(c.get(k), Some(v));
            }
            let mut e = c.into_entries();
            e.sort();
            prop_assert_eq!(e, m.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_map_keyed_by_text_is_probed_with_str() {
        let mut m: FastMap<Text, u32> = FastMap::default();
        m.insert(Text::new("word"), 1);
        *m.get_mut("word").unwrap() += 1;
        assert_eq!(m.get("word"), Some(&2));
        assert_eq!(m.get("other"), None);
    }

    proptest! {
        #[test]
        fn text_behaves_like_str(a in ".{0,40}", b in ".{0,40}") {
            let (ta, tb) = (Text::new(&a), Text::new(&b));
            prop_assert_eq!(ta.as_str(), a.as_str());
            prop_assert_eq!(ta.cmp(&tb), a.cmp(&b));
            prop_assert_eq!(ta == tb, a == b);
            prop_assert_eq!(fast_hash(&ta), fast_hash(a.as_str()));
        }

        #[test]
        fn tokens_match_std_split(s in "[ ab\u{e9}\t\n\r\x0b\x0c\x01\x1f!\u{3000}]{0,40}") {
            let mut got = Vec::new();
            for_each_token(&s, b' ', |w| got.push(w.to_string()));
            let want: Vec<String> = s.split(' ').filter(|w| !w.is_empty()).map(String::from).collect();
            prop_assert_eq!(got, want);
            let mut got = Vec::new();
            for_each_word(&s, |w| got.push(w.to_string()));
            let want: Vec<String> = s.split_ascii_whitespace().map(String::from).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn split_spans_match_std_split_with_empty_pieces(
            s in "[ ab\u{e9}\t\x00\u{3000},]{0,40}",
            d in prop_oneof![Just(b' '), Just(b','), Just(0u8), Just(b'a')],
        ) {
            let mut got = Vec::new();
            for_each_split_span(s.as_bytes(), d, |a, b| got.push(&s[a..b]));
            let want: Vec<&str> = s.split(d as char).collect();
            prop_assert_eq!(got, want);
        }
    }
}
