//! Flume-style command-line pieces shared by `sluicegate agent` and `sluicegate check`:
//! `-Dkey=value` system properties and the logging level `-Dflume.root.logger` asks for.

use crate::config::SystemProps;

/// Parses `-D` definitions (`key=value`; a bare `key` means `key=`, as `java -Dkey` does) and
/// adds Flume's `FLUME_SSL_*` environment fallbacks.
pub fn parse_defines<'a>(defs: impl IntoIterator<Item = &'a str>) -> SystemProps {
    let mut props = SystemProps::new();
    for d in defs {
        let (k, v) = d.split_once('=').unwrap_or((d, ""));
        props.set(k.trim(), v);
    }
    props.with_env()
}

/// The `tracing` filter for `-Dflume.root.logger=LEVEL,console` (default `info`).
pub fn log_filter(props: &SystemProps) -> String {
    let level = props
        .get("flume.root.logger")
        .and_then(|v| v.split(',').next())
        .map(|l| l.trim().to_ascii_lowercase())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "info".to_string());
    match level.as_str() {
        "all" => "trace".to_string(),
        "fatal" => "error".to_string(),
        "off" | "trace" | "debug" | "info" | "warn" | "error" => level,
        _ => "info".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_java_style_defines_and_logger_levels() {
        let p = parse_defines([
            "flume.root.logger=DEBUG,console",
            "flume.monitoring.port=34545",
            "bare",
        ]);
        assert_eq!(p.get("flume.monitoring.port"), Some("34545"));
        assert_eq!(p.get("bare"), Some(""));
        assert_eq!(log_filter(&p), "debug");
        assert_eq!(log_filter(&SystemProps::new()), "info");
        assert_eq!(
            log_filter(&parse_defines(["flume.root.logger=FATAL,console"])),
            "error"
        );
    }
}
