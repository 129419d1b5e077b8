//! The README's main command, `sluicegate agent -n a1 -f examples/hop.conf`, run through the
//! binary from a directory holding a copy of the example (only its port is changed, to a free
//! one, so parallel runs do not collide; its relative `./target/hop` paths land in the temporary
//! directory). A healthy start must log no WARN or ERROR, the periodic summary must appear, and
//! every generated event must arrive in the `file_roll` output.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sluicegate");

fn out_lines(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .lines()
                        .count()
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn the_readme_demo_starts_clean_summarises_and_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hop.conf"))
            .unwrap();
    assert!(conf.contains("totalEvents = 100000") && conf.contains("./target/hop/out"));
    std::fs::create_dir_all(d.join("examples")).unwrap();
    std::fs::write(
        d.join("examples/hop.conf"),
        conf.replace("4141", &port.to_string()),
    )
    .unwrap();

    let mut child = Command::new(BIN)
        .current_dir(d)
        .args(["agent", "-n", "a1", "-f", "examples/hop.conf"])
        .arg("-Dsluicegate.summary.interval=1s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|r| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        })
    })
    .collect();
    drop(tx);

    // Read the output for 15 s; if the events are not all there by then (a loaded machine),
    // keep reading until they are, within a generous bound.
    let out = d.join("target/hop/out");
    let start = Instant::now();
    let mut lines = Vec::new();
    loop {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(50)) {
            lines.push(l);
        }
        let t = start.elapsed();
        if t >= Duration::from_secs(15) && out_lines(&out) >= 100_000 {
            break;
        }
        if t >= Duration::from_secs(120) {
            break;
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > end {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for r in readers {
        r.join().unwrap();
    }
    lines.extend(rx.try_iter());
    let all = lines.join("\n");
    assert!(status.is_some_and(|s| s.success()), "unclean stop:\n{all}");
    let bad: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(bad.is_empty(), "WARN/ERROR on a healthy start:\n{all}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("output: sink out writes events to files in ./target/hop/out")),
        "the first lines say where the output goes:\n{all}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("flow c0: gen ") && l.contains("-> fwd ")),
        "no summary line for c0:\n{all}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("flow c1: r1 ") && l.contains("-> out ")),
        "no summary line for c1:\n{all}"
    );
    let mut got: Vec<u64> = std::fs::read_dir(&out)
        .unwrap()
        .flat_map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .map(|l| l.parse::<u64>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    got.sort_unstable();
    assert_eq!(
        got,
        (0..100_000).collect::<Vec<u64>>(),
        "every generated event exactly once"
    );
}
