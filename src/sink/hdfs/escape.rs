//! Flume's `BucketPath` escapes for `hdfs.path` and `hdfs.filePrefix`/`hdfs.fileSuffix`.
//!
//! A template is compiled once ([`Template::parse`]) into literal text and escapes, matched as
//! Flume's pattern `%(\w|%)|%\{([\w\.-]+)\}|%\[(\w+)\]` matches them (`\w` = ASCII letters,
//! digits, `_`); anything else — a lone `%`, `%{` without a valid name and `}` — is literal text.
//!
//! | escape | value |
//! |---|---|
//! | `%{name}` | the header's value, inserted literally (no sanitising of `/`); `""` if absent |
//! | `%[localhost]`, `%[IP]`, `%[FQDN]` | host name, address, canonical name (case-insensitive); any other name is a config error |
//! | `%Y %y %m %n %d %e %H %k %I %l %M %S %j` | `yyyy yy MM M dd d HH H hh h mm ss DDD` |
//! | `%a %A %b %B %p` | `EEE EEEE MMM MMMM a` (English, as `SimpleDateFormat` in an English locale) |
//! | `%c %D %z` | `EEE MMM d HH:mm:ss yyyy`, `MM/dd/yy`, `ZZZ` (RFC 822 offset, `+0000`) |
//! | `%s` | the (rounded) time in epoch seconds |
//! | `%t` | the raw `timestamp` header text (not rounded; the local clock's ms with `useLocalTimeStamp`) |
//! | `%%` | `%` |
//! | `%` + any other word character | `""` |
//!
//! Time: every `%x` escape (even `%%`, as in Flume) needs the event's time: the `timestamp`
//! header parsed as a Java `long`, or, with `hdfs.useLocalTimeStamp`, the sink's wall clock read
//! once per expansion. A missing or unparsable header is an [`EscapeError`] naming the header
//! value — Flume's `NullPointerException`/`RuntimeException` — which makes the sink roll the
//! transaction back. The time is rounded down once per expansion (`hdfs.round`), so all escapes of
//! one string agree, then shown in `hdfs.timeZone`.

use std::fmt::Write as _;
use std::sync::OnceLock;

use super::zone::{fields, round_down, RoundUnit, Zone};
use crate::event::Event;

/// Why a template could not be expanded for one event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    /// A time escape was used and the event has no `timestamp` header.
    #[error(
        "'{template}' needs the event's time but the event has no 'timestamp' header \
         (add a timestamp interceptor or set hdfs.useLocalTimeStamp = true)"
    )]
    MissingTimestamp {
        /// The template being expanded.
        template: String,
    },
    /// The `timestamp` header is not a Java `long`.
    #[error(
        "'{template}': the event's 'timestamp' header '{value}' is not a number of milliseconds"
    )]
    BadTimestamp {
        /// The template being expanded.
        template: String,
        /// The header's text.
        value: String,
    },
}

/// An unknown `%[name]` escape (found at configuration time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the static escape '%[{0}]' is not one of %[localhost], %[IP], %[FQDN]")]
pub struct UnknownStaticEscape(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Header(String),
    Host(HostPart),
    Time(char),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostPart {
    Name,
    Ip,
    Fqdn,
}

/// How times are taken, rounded and shown (the sink's `hdfs.round*`, `timeZone`, `useLocalTimeStamp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeSettings {
    /// `hdfs.timeZone` (unset = the machine's zone).
    pub zone: Zone,
    /// `hdfs.round` with its unit and value, when rounding is on.
    pub round: Option<(RoundUnit, u32)>,
    /// `hdfs.useLocalTimeStamp`.
    pub use_local_time: bool,
}

impl Default for TimeSettings {
    fn default() -> TimeSettings {
        TimeSettings {
            zone: Zone::Fixed(0),
            round: None,
            use_local_time: false,
        }
    }
}

/// A compiled `hdfs.path` or `hdfs.filePrefix` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Template {
    /// Compiles `s`; fails only on an unknown `%[name]`.
    pub fn parse(s: &str) -> Result<Template, UnknownStaticEscape> {
        let b = s.as_bytes();
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        let mut lit_start = 0;
        let flush = |text: &mut String, pieces: &mut Vec<Piece>| {
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(text)));
            }
        };
        while i < b.len() {
            if b[i] != b'%' || i + 1 >= b.len() {
                i += 1;
                continue;
            }
            let c = b[i + 1];
            let matched: Option<(Piece, usize)> = if is_word(c) || c == b'%' {
                Some((Piece::Time(c as char), i + 2))
            } else if c == b'{' {
                let start = i + 2;
                let mut j = start;
                while j < b.len() && (is_word(b[j]) || b[j] == b'.' || b[j] == b'-') {
                    j += 1;
                }
                (j > start && j < b.len() && b[j] == b'}')
                    .then(|| (Piece::Header(s[start..j].to_string()), j + 1))
            } else if c == b'[' {
                let start = i + 2;
                let mut j = start;
                while j < b.len() && is_word(b[j]) {
                    j += 1;
                }
                if j > start && j < b.len() && b[j] == b']' {
                    let name = &s[start..j];
                    let part = match name.to_ascii_lowercase().as_str() {
                        "localhost" => HostPart::Name,
                        "ip" => HostPart::Ip,
                        "fqdn" => HostPart::Fqdn,
                        _ => return Err(UnknownStaticEscape(name.to_string())),
                    };
                    Some((Piece::Host(part), j + 1))
                } else {
                    None
                }
            } else {
                None
            };
            match matched {
                Some((piece, next)) => {
                    text.push_str(&s[lit_start..i]);
                    flush(&mut text, &mut pieces);
                    pieces.push(piece);
                    i = next;
                    lit_start = next;
                }
                None => i += 1,
            }
        }
        text.push_str(&s[lit_start..]);
        flush(&mut text, &mut pieces);
        Ok(Template {
            source: s.to_string(),
            pieces,
        })
    }

    /// The template as configured.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the template has no escapes (expands to itself).
    pub fn is_static(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Text(_)))
    }

    /// The literal text before the first escape.
    pub fn static_prefix(&self) -> &str {
        match self.pieces.first() {
            Some(Piece::Text(t)) => t,
            _ => "",
        }
    }

    /// A regex matching every expansion (escapes as `.*`), for recovery scans.
    pub fn to_regex_source(&self) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(&regex::escape(t)),
                _ => out.push_str(".*"),
            }
        }
        out
    }

    /// Expands the template for `event`; `now_ms` is read only with `useLocalTimeStamp`.
    pub fn expand(
        &self,
        event: &Event,
        time: &TimeSettings,
        now_ms: &dyn Fn() -> i64,
    ) -> Result<String, EscapeError> {
        let mut out = String::with_capacity(self.source.len() + 16);
        // (raw text, rounded ms), computed at the first time escape.
        let mut ts: Option<(String, i64)> = None;
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Header(h) => {
                    if let Some(v) = event.header(h) {
                        out.push_str(&v);
                    }
                }
                Piece::Host(part) => out.push_str(host_part(*part)),
                Piece::Time(c) => {
                    if ts.is_none() {
                        ts = Some(self.event_time(event, time, now_ms)?);
                    }
                    let (raw, ms) = ts
                        .as_ref()
                        .map(|(r, m)| (r.as_str(), *m))
                        .unwrap_or(("", 0));
                    format_time(&mut out, *c, raw, ms, &time.zone);
                }
            }
        }
        Ok(out)
    }

    fn event_time(
        &self,
        event: &Event,
        time: &TimeSettings,
        now_ms: &dyn Fn() -> i64,
    ) -> Result<(String, i64), EscapeError> {
        let (raw, ms) = if time.use_local_time {
            let now = now_ms();
            (now.to_string(), now)
        } else {
            let raw = event
                .header("timestamp")
                .ok_or_else(|| EscapeError::MissingTimestamp {
                    template: self.source.clone(),
                })?
                .into_owned();
            let ms = parse_java_long(&raw).ok_or_else(|| EscapeError::BadTimestamp {
                template: self.source.clone(),
                value: raw.clone(),
            })?;
            (raw, ms)
        };
        let ms = match time.round {
            Some((unit, value)) => round_down(ms, unit, value, &time.zone),
            None => ms,
        };
        Ok((raw, ms))
    }
}

/// `Long.valueOf`: optional sign, ASCII digits, in range.
pub fn parse_java_long(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn format_time(out: &mut String, c: char, raw: &str, ms: i64, zone: &Zone) {
    let f = fields(ms, zone);
    let h12 = if f.hour.is_multiple_of(12) {
        12
    } else {
        f.hour % 12
    };
    let yyyy = |out: &mut String| {
        if f.year < 0 {
            // SimpleDateFormat shows era years; not reachable for real timestamps.
            let _ = write!(out, "{:04}", 1 - f.year);
        } else {
            let _ = write!(out, "{:04}", f.year);
        }
    };
    let day = DAYS[f.wday as usize];
    let month = MONTHS[(f.month - 1) as usize];
    let _ = match c {
        '%' => write!(out, "%"),
        'Y' => {
            yyyy(out);
            Ok(())
        }
        'y' => write!(out, "{:02}", f.year.rem_euclid(100)),
        'm' => write!(out, "{:02}", f.month),
        'n' => write!(out, "{}", f.month),
        'd' => write!(out, "{:02}", f.day),
        'e' => write!(out, "{}", f.day),
        'H' => write!(out, "{:02}", f.hour),
        'k' => write!(out, "{}", f.hour),
        'I' => write!(out, "{h12:02}"),
        'l' => write!(out, "{h12}"),
        'M' => write!(out, "{:02}", f.minute),
        'S' => write!(out, "{:02}", f.second),
        'j' => write!(out, "{:03}", f.yday),
        'a' => write!(out, "{}", &day[..3]),
        'A' => write!(out, "{day}"),
        'b' => write!(out, "{}", &month[..3]),
        'B' => write!(out, "{month}"),
        'p' => write!(out, "{}", if f.hour < 12 { "AM" } else { "PM" }),
        'c' => {
            let _ = write!(
                out,
                "{} {} {} {:02}:{:02}:{:02} ",
                &day[..3],
                &month[..3],
                f.day,
                f.hour,
                f.minute,
                f.second
            );
            yyyy(out);
            Ok(())
        }
        'D' => write!(
            out,
            "{:02}/{:02}/{:02}",
            f.month,
            f.day,
            f.year.rem_euclid(100)
        ),
        'z' => {
            let sign = if f.offset < 0 { '-' } else { '+' };
            let a = f.offset.unsigned_abs();
            write!(out, "{sign}{:02}{:02}", a / 3600, a % 3600 / 60)
        }
        's' => write!(out, "{}", ms.div_euclid(1000)),
        't' => write!(out, "{raw}"),
        _ => Ok(()),
    };
}

struct HostInfo {
    name: String,
    ip: String,
    fqdn: String,
}

fn host_info() -> &'static HostInfo {
    static INFO: OnceLock<HostInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        let name = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), 0))
            .ok()
            .and_then(|mut it| it.next())
            .map(|a| a.ip());
        let ip = addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| "127.0.0.1".into());
        let fqdn = addr
            .and_then(canonical_name)
            .unwrap_or_else(|| name.clone());
        HostInfo { name, ip, fqdn }
    })
}

/// `getnameinfo(NI_NAMEREQD)` of `ip` (Java's `getCanonicalHostName`), `None` if it has no name.
fn canonical_name(ip: std::net::IpAddr) -> Option<String> {
    let sa = socket2::SockAddr::from(std::net::SocketAddr::new(ip, 0));
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: `sa` is a valid socket address of `sa.len()` bytes; `host` is a writable buffer of
    // the length passed; no service buffer is requested.
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr().cast::<libc::sockaddr>(),
            sa.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success getnameinfo wrote a NUL-terminated string into `host`.
    let s = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    Some(s.to_string_lossy().into_owned())
}

fn host_part(p: HostPart) -> &'static str {
    let h = host_info();
    match p {
        HostPart::Name => &h.name,
        HostPart::Ip => &h.ip,
        HostPart::Fqdn => &h.fqdn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: Option<&str>, extra: &[(&str, &str)]) -> Event {
        let mut h: Vec<(&str, &str)> = extra.to_vec();
        if let Some(t) = ts {
            h.push(("timestamp", t));
        }
        Event::new(h, "b")
    }

    fn utc() -> TimeSettings {
        TimeSettings::default()
    }

    fn x(tpl: &str, e: &Event, t: &TimeSettings) -> Result<String, EscapeError> {
        Template::parse(tpl)
            .unwrap()
            .expand(e, t, &|| 1_234_567_890_123)
    }

    // 2023-11-14T22:13:20.000Z, a Tuesday.
    const TS: &str = "1700000000000";

    #[test]
    fn each_date_escape_formats_as_simple_date_format() {
        let e = ev(Some(TS), &[]);
        let t = utc();
        let cases = [
            ("%Y", "2023"),
            ("%y", "23"),
            ("%m", "11"),
            ("%n", "11"),
            ("%d", "14"),
            ("%e", "14"),
            ("%H", "22"),
            ("%k", "22"),
            ("%I", "10"),
            ("%l", "10"),
            ("%M", "13"),
            ("%S", "20"),
            ("%j", "318"),
            ("%a", "Tue"),
            ("%A", "Tuesday"),
            ("%b", "Nov"),
            ("%B", "November"),
            ("%p", "PM"),
            ("%c", "Tue Nov 14 22:13:20 2023"),
            ("%D", "11/14/23"),
            ("%z", "+0000"),
            ("%s", "1700000000"),
            ("%t", "1700000000000"),
            ("%%", "%"),
            ("%q", ""),
            ("%0", ""),
        ];
        for (tpl, want) in cases {
            assert_eq!(x(tpl, &e, &t).unwrap(), want, "escape {tpl}");
        }
    }

    #[test]
    fn unpadded_and_twelve_hour_forms_on_a_morning_in_january() {
        // 2024-01-05T03:04:05Z, a Friday, day 5.
        let e = ev(Some("1704423845000"), &[]);
        let got = x("%n|%e|%k|%l|%I|%p|%j|%y|%D|%a", &e, &utc()).unwrap();
        assert_eq!(got, "1|5|3|3|03|AM|005|24|01/05/24|Fri");
        // Midnight shows as 12 AM in the 12-hour forms.
        let e = ev(Some("1704412800000"), &[]);
        assert_eq!(x("%l %I %p", &e, &utc()).unwrap(), "12 12 AM");
    }

    #[test]
    fn headers_are_inserted_literally_and_missing_ones_are_empty() {
        let e = ev(None, &[("topic", "a/b$c\\d"), ("x.y-z", "1")]);
        assert_eq!(
            x("/out/%{topic}/%{x.y-z}/%{absent}/", &e, &utc()).unwrap(),
            "/out/a/b$c\\d/1//"
        );
        // Not escapes: lone %, empty name, unterminated brace, a bad character in the name.
        assert_eq!(
            x("100% %{} %{topic %{a b}", &e, &utc()).unwrap(),
            "100% %{} %{topic %{a b}"
        );
    }

    #[test]
    fn a_missing_or_bad_timestamp_is_an_error_only_when_time_is_needed() {
        let e = ev(None, &[("topic", "t")]);
        assert_eq!(x("/out/%{topic}", &e, &utc()).unwrap(), "/out/t");
        let err = x("/out/%Y", &e, &utc()).unwrap_err();
        assert!(matches!(err, EscapeError::MissingTimestamp { .. }));
        assert!(err.to_string().contains("no 'timestamp' header"), "{err}");
        // Even %% needs it, as in Flume.
        assert!(x("%%", &e, &utc()).is_err());
        let e = ev(Some("12x"), &[]);
        let err = x("%Y", &e, &utc()).unwrap_err();
        assert_eq!(
            err,
            EscapeError::BadTimestamp {
                template: "%Y".into(),
                value: "12x".into()
            }
        );
    }

    #[test]
    fn local_time_stamp_uses_the_clock_and_ignores_the_header() {
        let e = ev(Some(TS), &[]);
        let t = TimeSettings {
            use_local_time: true,
            ..utc()
        };
        // 1234567890123 = 2009-02-13T23:31:30.123Z
        assert_eq!(
            x("%Y-%m-%d %H:%M:%S %t", &e, &t).unwrap(),
            "2009-02-13 23:31:30 1234567890123"
        );
        assert_eq!(x("%Y", &ev(None, &[]), &t).unwrap(), "2009");
    }

    #[test]
    fn rounding_applies_to_every_escape_but_not_to_t() {
        let e = ev(Some("1700000399999"), &[]);
        let t = TimeSettings {
            round: Some((RoundUnit::Minute, 10)),
            ..utc()
        };
        assert_eq!(
            x("%H%M%S %s %t", &e, &t).unwrap(),
            "221000 1699999800 1700000399999"
        );
    }

    #[test]
    fn the_zone_shifts_fields_and_z() {
        let e = ev(Some(TS), &[]);
        let t = TimeSettings {
            zone: Zone::parse("GMT-03:30").unwrap(),
            ..utc()
        };
        assert_eq!(
            x("%Y-%m-%d %H:%M %z", &e, &t).unwrap(),
            "2023-11-14 18:43 -0330"
        );
    }

    #[test]
    fn host_escapes_resolve_and_unknown_names_are_refused() {
        let e = ev(None, &[]);
        let name = x("%[localhost]", &e, &utc()).unwrap();
        assert_eq!(name, rustix::system::uname().nodename().to_string_lossy());
        assert_eq!(x("%[LOCALHOST]", &e, &utc()).unwrap(), name);
        let ip = x("%[IP]", &e, &utc()).unwrap();
        assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{ip}");
        assert!(!x("%[FQDN]", &e, &utc()).unwrap().is_empty());
        assert_eq!(
            Template::parse("/x/%[host]").unwrap_err(),
            UnknownStaticEscape("host".into())
        );
    }

    #[test]
    fn static_parts_and_regexes() {
        let t = Template::parse("/data/%{topic}/%Y").unwrap();
        assert!(!t.is_static());
        assert_eq!(t.static_prefix(), "/data/");
        assert_eq!(t.to_regex_source(), "/data/.*/.*");
        assert!(Template::parse("/data/x").unwrap().is_static());
        assert_eq!(parse_java_long("+12"), Some(12));
        assert_eq!(parse_java_long("-12"), Some(-12));
        assert_eq!(parse_java_long(" 12"), None);
        assert_eq!(parse_java_long(""), None);
    }
}
