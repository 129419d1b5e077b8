//! Flume-style command-line pieces shared by `sluicegate agent` and `sluicegate check`:
//! `-Dkey=value` system properties and the logging setup `-Dflume.root.logger` asks for.

use std::collections::BTreeMap;

/// `-Dkey=value` settings, as Java system properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemProps(pub BTreeMap<String, String>);

impl SystemProps {
    /// Parses `key=value` strings (a bare `key` means `key=`, as `java -Dkey` does).
    pub fn parse<'a>(defs: impl IntoIterator<Item = &'a str>) -> SystemProps {
        let mut m = BTreeMap::new();
        for d in defs {
            let (k, v) = d.split_once('=').unwrap_or((d, ""));
            m.insert(k.trim().to_string(), v.to_string());
        }
        SystemProps(m)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The log level `-Dflume.root.logger=LEVEL,console` selects (default `INFO`), in
    /// `tracing` filter syntax.
    pub fn log_filter(&self) -> String {
        let level = self
            .get("flume.root.logger")
            .and_then(|v| v.split(',').next())
            .map(|l| l.trim().to_ascii_lowercase())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "info".to_string());
        match level.as_str() {
            "all" => "trace".to_string(),
            "fatal" => "error".to_string(),
            "off" => "off".to_string(),
            "trace" | "debug" | "info" | "warn" | "error" => level,
            _ => "info".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_java_style_defines_and_logger_levels() {
        let p = SystemProps::parse(["flume.root.logger=DEBUG,console", "flume.monitoring.port=34545", "bare"]);
        assert_eq!(p.get("flume.monitoring.port"), Some("34545"));
        assert_eq!(p.get("bare"), Some(""));
        assert_eq!(p.log_filter(), "debug");
        assert_eq!(SystemProps::default().log_filter(), "info");
        assert_eq!(SystemProps::parse(["flume.root.logger=FATAL"]).log_filter(), "error");
    }
}
