//! The order in which a Flume agent's `java.util.HashMap` of headers iterates, for serializers
//! that print headers (`header_and_text`, `avro_event`).
//!
//! Java's `HashMap` (no tree bins at these sizes) iterates bucket by bucket, and inside one
//! bucket in insertion order; resizing keeps that relative order. So the iteration order of a map
//! built by inserting keys `k0..kn` is: sort by `(spread(hash(k)) & (capacity - 1), insertion
//! index)`, where `spread(h) = h ^ (h >>> 16)` and `capacity` is the table size after all
//! inserts (doubling from the initial size while `size > 0.75 * capacity`).
//!
//! A Flume agent receiving an event over Avro RPC rebuilds its headers three times
//! (`../shared/compat/hdfs/header-and-text/notes.md`): Avro's `GenericData.newMap` =
//! `new HashMap(n)` keyed by `Utf8` (hash over *signed* UTF-8 bytes), `AvroSource.toStringMap` =
//! `new HashMap()` (16), then `EventBuilder.withBody` = `new HashMap(map)` (capacity from
//! `n / 0.75 + 1`). [`flume_agent_order`] applies those three steps to headers in wire order —
//! the order sluicegate keeps — so the sink prints them as the Flume agent it replaces would.

/// `String.hashCode()` (over UTF-16 code units).
pub fn java_string_hash(s: &str) -> u32 {
    s.encode_utf16()
        .fold(0u32, |h, u| h.wrapping_mul(31).wrapping_add(u as u32))
}

/// `org.apache.avro.util.Utf8.hashCode()` (over UTF-8 bytes taken as signed).
pub fn avro_utf8_hash(s: &str) -> u32 {
    s.bytes().fold(0u32, |h, b| {
        h.wrapping_mul(31).wrapping_add(b as i8 as i32 as u32)
    })
}

/// `HashMap.tableSizeFor`: the next power of two `>= n` (at least 1).
pub fn table_size_for(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// The iteration order of a `HashMap` with initial table `capacity` after inserting `keys` in
/// order (duplicates keep their first position), each hashed by `hash`.
pub fn hash_map_order<T: AsRef<str> + Clone>(
    keys: &[T],
    hash: fn(&str) -> u32,
    capacity: usize,
) -> Vec<T> {
    let mut cap = capacity.max(1);
    while keys.len() as f64 > cap as f64 * 0.75 {
        cap *= 2;
    }
    let mut idx: Vec<(usize, usize)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let h = hash(k.as_ref());
            (((h ^ (h >> 16)) as usize) & (cap - 1), i)
        })
        .collect();
    idx.sort_unstable();
    idx.into_iter().map(|(_, i)| keys[i].clone()).collect()
}

/// `new HashMap<>(m)`'s initial table size for a map of `n` entries.
pub fn copy_capacity(n: usize) -> usize {
    table_size_for((n as f64 / 0.75 + 1.0) as usize)
}

/// Headers in wire order -> the order a Flume agent's Avro source hands them to its sink.
pub fn flume_agent_order<T: AsRef<str> + Clone>(wire: &[T]) -> Vec<T> {
    let n = wire.len();
    let a = hash_map_order(wire, avro_utf8_hash, table_size_for(n));
    let b = hash_map_order(&a, java_string_hash, 16);
    hash_map_order(&b, java_string_hash, copy_capacity(n))
}

/// Headers as a Flume SDK client puts them on the wire, given the order the application built
/// them in (`EventBuilder.withBody` copy, then `NettyAvroRpcClient.toCharSeqMap`). For tests that
/// replay events captured from a Flume client.
pub fn flume_client_wire_order<T: AsRef<str> + Clone>(built: &[T]) -> Vec<T> {
    let a = hash_map_order(built, java_string_hash, copy_capacity(built.len()));
    hash_map_order(&a, java_string_hash, 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_java() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        // "timestamp".hashCode() == 55126294
        assert_eq!(java_string_hash("timestamp"), 55_126_294);
        assert_eq!(avro_utf8_hash("timestamp"), 55_126_294);
        // Non-ASCII: UTF-16 and signed UTF-8 hashes differ.
        assert_ne!(java_string_hash("é"), avro_utf8_hash("é"));
        assert_eq!(
            avro_utf8_hash("é"),
            (0xC3u8 as i8 as i32 * 31 + 0xA9u8 as i8 as i32) as u32
        );
    }

    #[test]
    fn the_fixture_orders_come_back() {
        let client = ["timestamp", "host", "topic"];
        let wire = flume_client_wire_order(&client);
        assert_eq!(flume_agent_order(&wire), ["host", "topic", "timestamp"]);
        let client = ["timestamp", "host", "topic", "note"];
        let wire = flume_client_wire_order(&client);
        assert_eq!(
            flume_agent_order(&wire),
            ["host", "note", "topic", "timestamp"]
        );
        let client = [
            "timestamp",
            "host",
            "topic",
            "a",
            "zz",
            "Content-Type",
            "region",
            "k=v",
        ];
        let wire = flume_client_wire_order(&client);
        assert_eq!(
            flume_agent_order(&wire),
            [
                "zz",
                "a",
                "k=v",
                "host",
                "topic",
                "region",
                "timestamp",
                "Content-Type"
            ]
        );
        let empty: [&str; 0] = [];
        assert!(flume_agent_order(&empty).is_empty());
    }
}
