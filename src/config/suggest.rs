//! "Did you mean …?": the nearest known key to a mistyped one.
//!
//! Keys are compared after [`normalize`]: lower case, with `-` and `_` removed, so the usual
//! Flume slips (`batchSize` for `batch-size`, `keepAlive` for `keep-alive`) are distance 0. The
//! distance is the optimal-string-alignment edit distance (insert, delete, substitute, swap two
//! neighbours: `prot` → `port` is 1). Dotted keys are compared after dropping the leading
//! segments they share (`interceptors.i1.hederName` against `interceptors.i1.headerName`
//! compares `hedername` with `headername`), and how far apart they may be grows with the length
//! of what remains: 0 edits up to 2 characters, 1 up to 5, 2 up to 10, 3 beyond. A key that is
//! the last segments of the other (`batchSize` for file_roll's `sink.batchSize`) counts as 1.
//! Ties go to the alphabetically first candidate, so the answer is stable.

/// Lower case with `-` and `_` removed: the form keys are compared in.
pub fn normalize(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Optimal-string-alignment distance between `a` and `b` (by `char`).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    // d[i][j]: distance between a[..i] and b[..j]; three rows suffice for the swap rule.
    let mut prev2 = vec![0usize; m + 1];
    let mut prev: Vec<usize> = (0..=m).collect();
    let mut cur = vec![0usize; m + 1];
    for i in 1..=n {
        cur[0] = i;
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m]
}

/// How many edits a remainder of `len` characters may be away and still count as a typo.
fn limit(len: usize) -> usize {
    match len {
        0..=2 => 0,
        3..=5 => 1,
        6..=10 => 2,
        _ => 3,
    }
}

/// The distance between `typed` and `known` as a typo, or `None` when they are too far apart
/// (or identical: a key is not a typo of itself).
pub fn typo_distance(typed: &str, known: &str) -> Option<usize> {
    if typed == known {
        return None;
    }
    let (t, k) = (normalize(typed), normalize(known));
    if k.ends_with(&format!(".{t}")) || t.ends_with(&format!(".{k}")) {
        return Some(1);
    }
    // Drop the leading dotted segments both share.
    let (mut ts, mut ks) = (t.as_str(), k.as_str());
    while let (Some((a, ra)), Some((b, rb))) = (ts.split_once('.'), ks.split_once('.')) {
        if a != b {
            break;
        }
        ts = ra;
        ks = rb;
    }
    let d = edit_distance(ts, ks);
    let len = ts.chars().count().max(ks.chars().count());
    (d <= limit(len)).then_some(d)
}

/// The known key nearest to `typed`, when one is close enough to be what was meant.
pub fn suggest<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .filter_map(|k| typo_distance(typed, k).map(|d| (d, k)))
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_count_swaps_as_one_edit() {
        assert_eq!(edit_distance("prot", "port"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            edit_distance("transactionCapacty", "transactionCapacity"),
            1
        );
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggests_the_nearest_close_key() {
        let sink = [
            "batch-size",
            "hostname",
            "port",
            "compression-type",
            "compression-level",
        ];
        assert_eq!(suggest("batchSize", sink), Some("batch-size"));
        assert_eq!(suggest("prot", sink), Some("port"));
        assert_eq!(suggest("hostnme", sink), Some("hostname"));
        assert_eq!(suggest("compression-typ", sink), Some("compression-type"));
        let channel = ["capacity", "transactionCapacity", "keep-alive"];
        assert_eq!(
            suggest("transactionCapacty", channel),
            Some("transactionCapacity")
        );
        assert_eq!(suggest("keepAlive", channel), Some("keep-alive"));
        assert_eq!(suggest("capcity", channel), Some("capacity"));
    }

    #[test]
    fn suggests_nothing_when_nothing_is_close() {
        let keys = ["bind", "port", "threads"];
        assert_eq!(suggest("hostname", keys), None);
        assert_eq!(suggest("compression-type", keys), None);
        assert_eq!(suggest("x", keys), None);
        // A key is not a typo of itself, and short keys need to be exact but for one edit.
        assert_eq!(suggest("port", ["port"]), None);
        assert_eq!(suggest("ab", ["ac"]), None);
        assert_eq!(suggest("bnd", ["bind"]), Some("bind"));
        assert_eq!(suggest("anything", std::iter::empty()), None);
    }

    #[test]
    fn dotted_keys_compare_what_differs() {
        let keys = ["sink.directory", "sink.batchSize", "sink.rollInterval"];
        assert_eq!(suggest("batchSize", keys), Some("sink.batchSize"));
        assert_eq!(suggest("sink.rolInterval", keys), Some("sink.rollInterval"));
        assert_eq!(suggest("sink.directry", keys), Some("sink.directory"));
        // The shared prefix does not buy a long key more edits in its last segment.
        assert_eq!(
            suggest("interceptors.i1.key", ["interceptors.i1.value"]),
            None
        );
        assert_eq!(
            suggest("interceptors.i1.hederName", ["interceptors.i1.headerName"]),
            Some("interceptors.i1.headerName")
        );
    }

    #[test]
    fn ties_resolve_alphabetically() {
        assert_eq!(suggest("bat", ["cat", "bad"]), Some("bad"));
        assert_eq!(suggest("bat", ["bad", "cat"]), Some("bad"));
    }
}
