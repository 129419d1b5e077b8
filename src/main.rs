//! The `sluicegate` command line. Filled in by the agent work.

fn main() {
    eprintln!("sluicegate: not yet wired");
    std::process::exit(2);
}
