//! Replays every real-Flume transcript that talks to an Avro source (`compat-tests/fixtures`:
//! `sdk-*`, `source-*`, `avrosink-agent-plain`) against a running sluicegate [`AvroSource`] over
//! real TCP on 127.0.0.1, call by call, and compares what comes back with what Apache Flume
//! 1.11's `AvroSource` answered, byte for byte (deflate: both streams inflated, since zlib output
//! may legitimately differ). Then checks the channel holds exactly the transcript's events and
//! the counters say what Flume's would.
//!
//! Nothing is compared loosely: sluicegate reproduces even the system-error texts of these
//! transcripts (`No such remote message: bogusMessage`, `java.io.EOFException`).

mod common;
#[path = "source_util.rs"]
mod source_util;

use std::io::Read;

use serde_json::Value;
use sluicegate::wire::{ProtocolCache, ServerAction, ServerSession};
use sluicegate::Event;
use source_util::*;

/// The transcripts this test must cover (a new fixture about a source must be added here).
const SOURCE_TRANSCRIPTS: &[&str] = &[
    "avrosink-agent-plain",
    "sdk-append-plain",
    "sdk-appendbatch-deflate",
    "sdk-appendbatch-multi",
    "sdk-appendbatch-plain",
    "source-channel-full-failed",
    "source-none-handshake",
    "source-ping-and-unknown-message",
];

fn inflate_all(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut d = flate2::read::ZlibDecoder::new(stream);
    match d.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("inflate failed: {e}"),
    }
    out
}

/// Inflates a prefix of a sync-flushed zlib stream (no trailer needed).
fn inflate_prefix(stream: &[u8]) -> Option<Vec<u8>> {
    let mut d = flate2::Decompress::new(true);
    let mut out = Vec::with_capacity(stream.len() * 8 + 1024);
    let mut input = stream;
    while !input.is_empty() {
        out.reserve(64 * 1024);
        let before = d.total_in();
        d.decompress_vec(input, &mut out, flate2::FlushDecompress::Sync)
            .ok()?;
        let used = (d.total_in() - before) as usize;
        if used == 0 && out.len() < out.capacity() {
            return None;
        }
        input = &input[used..];
    }
    Some(out)
}

/// Cuts a Java client's compressed stream after each frame: every frame ends with a sync
/// flush (`00 00 ff ff`), and a cut is right when the inflated prefix ends exactly after `k`
/// whole frames.
fn compressed_cuts(c2s: &[u8], frames: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut k = 1;
    let mut i = 0;
    while k <= frames && i + 4 <= c2s.len() {
        if c2s[i..i + 4] == [0, 0, 0xff, 0xff] {
            let end = i + 4;
            if let Some(plain) = inflate_prefix(&c2s[..end]) {
                let mut rest = &plain[..];
                let mut whole = 0;
                while let Some(n) = complete_frame_len(rest) {
                    rest = &rest[n..];
                    whole += 1;
                }
                if rest.is_empty() && whole == k {
                    cuts.push(end);
                    k += 1;
                }
            }
        }
        i += 1;
    }
    assert_eq!(
        cuts.len(),
        frames,
        "one sync flush per frame in the Java stream"
    );
    *cuts.last_mut().unwrap() = c2s.len();
    cuts
}

/// The events the transcript's client sent that were answered OK by Flume (decoded from the
/// client frames by the pure wire layer).
fn events_of(client_frames: &[Vec<u8>]) -> Vec<Vec<Event>> {
    let mut session = ServerSession::new(ProtocolCache::new());
    let mut out = Vec::new();
    for raw in client_frames {
        if let ServerAction::Deliver(d) = session.on_request(parse_frame(raw).message()) {
            out.push(d.events);
        }
    }
    out
}

fn source_options(fx: &Value) -> Vec<(String, String)> {
    let opts = fx["source_options"].as_str().unwrap_or("");
    opts.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

struct Replayed {
    harness: Harness,
    /// Per connection: the client's frames (plain).
    client_frames: Vec<Vec<Vec<u8>>>,
}

/// Replays one transcript against a fresh source and checks every reply.
fn replay(name: &str) -> Replayed {
    let fx = common::transcript(name);
    let compressed = fx["compressed"].as_bool().unwrap_or(false);
    let opts = source_options(&fx);
    if compressed {
        assert!(
            opts.iter()
                .any(|(k, v)| k == "compression-type" && v.eq_ignore_ascii_case("deflate")),
            "{name}: a compressed transcript names compression-type = deflate"
        );
    }
    let settings: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let capacity = if name == "source-channel-full-failed" {
        4
    } else {
        1000
    };
    let harness = Harness::start(&settings, channel_config(capacity));
    let mut all_client_frames = Vec::new();
    for (ci, conn) in fx["connections"].as_array().unwrap().iter().enumerate() {
        let c2s = common::unhex(conn["client_to_server_hex"].as_str().unwrap());
        let s2c = common::unhex(conn["server_to_client_hex"].as_str().unwrap());
        let (c2s_plain, s2c_plain) = if compressed {
            (inflate_all(&c2s), inflate_all(&s2c))
        } else {
            (c2s.clone(), s2c.clone())
        };
        let requests = split_frames(&c2s_plain);
        let expected = split_frames(&s2c_plain);
        assert_eq!(
            requests.len(),
            expected.len(),
            "{name}#{ci}: one reply per request"
        );
        // Where to cut the raw client stream so that exactly one request goes out at a time.
        let cuts: Vec<usize> = if compressed {
            compressed_cuts(&c2s, requests.len())
        } else {
            requests
                .iter()
                .scan(0, |end, r| {
                    *end += r.len();
                    Some(*end)
                })
                .collect()
        };
        let mut client = RawClient::connect_with(harness.addr(), compressed);
        let mut start = 0;
        for (i, cut) in cuts.iter().enumerate() {
            client.send_raw(&c2s[start..*cut]).expect("send request");
            start = *cut;
            let reply = client
                .read_frame()
                .unwrap_or_else(|e| panic!("{name}#{ci}: no reply to request {i}: {e:?}"));
            assert_eq!(
                hex::encode(&reply),
                hex::encode(&expected[i]),
                "{name}#{ci}: reply to request {i} differs from Flume's"
            );
        }
        assert!(
            client.pending().is_empty(),
            "{name}#{ci}: unexpected extra bytes {:?}",
            client.pending()
        );
        all_client_frames.push(requests);
    }
    Replayed {
        harness,
        client_frames: all_client_frames,
    }
}

fn expected_events(r: &Replayed, ok: bool) -> Vec<Event> {
    if !ok {
        return Vec::new();
    }
    r.client_frames
        .iter()
        .flat_map(|c| events_of(c))
        .flatten()
        .collect()
}

#[test]
fn every_source_transcript_is_covered() {
    let dir = common::compat_dir().join("fixtures");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sdk-") || n.starts_with("source-") || n.starts_with("avrosink-"))
        .collect();
    found.sort();
    assert_eq!(
        found, SOURCE_TRANSCRIPTS,
        "transcripts about an Avro source"
    );
}

fn check_ok_transcript(name: &str, calls: u64, appends: u64) {
    let r = replay(name);
    let want = expected_events(&r, true);
    assert!(!want.is_empty(), "{name}: the transcript delivers events");
    let got = r.harness.drain();
    assert_same_events(&got, &want, name);
    let h = &r.harness;
    assert_eq!(h.count(|c| &c.events_received), want.len() as u64, "{name}");
    assert_eq!(h.count(|c| &c.events_accepted), want.len() as u64, "{name}");
    assert_eq!(h.count(|c| &c.append_received), appends, "{name}");
    assert_eq!(h.count(|c| &c.append_accepted), appends, "{name}");
    assert_eq!(
        h.count(|c| &c.append_batch_received),
        calls - appends,
        "{name}"
    );
    assert_eq!(
        h.count(|c| &c.append_batch_accepted),
        calls - appends,
        "{name}"
    );
    assert_eq!(h.count(|c| &c.channel_write_fail), 0, "{name}");
    assert_eq!(h.count(|c| &c.event_read_fail), 0, "{name}");
}

#[test]
fn sdk_appendbatch_plain() {
    let r = replay("sdk-appendbatch-plain");
    let got = r.harness.drain();
    assert_eq!(got.len(), 5);
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.header("host").as_deref(), Some("h1"));
        assert_eq!(e.header("seq").as_deref(), Some(i.to_string().as_str()));
        assert_eq!(e.body(), format!("event {i}xxxxx").as_bytes());
    }
    drop(r);
    check_ok_transcript("sdk-appendbatch-plain", 1, 0);
}

#[test]
fn sdk_append_plain() {
    check_ok_transcript("sdk-append-plain", 3, 3);
}

#[test]
fn sdk_appendbatch_multi() {
    check_ok_transcript("sdk-appendbatch-multi", 3, 0);
    let r = replay("sdk-appendbatch-multi");
    let got = r.harness.drain();
    assert_eq!(got.len(), 7);
    assert!(got.iter().all(|e| e.body().len() == 20_000));
}

#[test]
fn sdk_appendbatch_deflate() {
    check_ok_transcript("sdk-appendbatch-deflate", 2, 0);
}

#[test]
fn avrosink_agent_plain() {
    check_ok_transcript("avrosink-agent-plain", 3, 0);
}

#[test]
fn source_none_handshake() {
    // NONE on the ping, BOTH on the re-sent ping, then appendBatch and append.
    check_ok_transcript("source-none-handshake", 2, 1);
}

#[test]
fn source_channel_full_failed() {
    let r = replay("source-channel-full-failed");
    assert!(
        r.harness.drain().is_empty(),
        "nothing stored for a FAILED batch"
    );
    let h = &r.harness;
    assert_eq!(h.count(|c| &c.append_batch_received), 1);
    assert_eq!(h.count(|c| &c.events_received), 10);
    assert_eq!(h.count(|c| &c.append_batch_accepted), 0);
    assert_eq!(h.count(|c| &c.events_accepted), 0);
    assert_eq!(h.count(|c| &c.channel_write_fail), 1);
    assert_eq!(expected_events(&r, false).len(), 0);
}

#[test]
fn source_ping_and_unknown_message() {
    let r = replay("source-ping-and-unknown-message");
    // Only the last connection (an empty batch) delivers, and it delivers nothing.
    assert!(r.harness.drain().is_empty());
    let h = &r.harness;
    assert_eq!(
        h.count(|c| &c.event_read_fail),
        2,
        "unknown message + truncated params"
    );
    assert_eq!(h.count(|c| &c.append_batch_received), 1);
    assert_eq!(h.count(|c| &c.append_batch_accepted), 1);
    assert_eq!(h.count(|c| &c.events_received), 0);
}
