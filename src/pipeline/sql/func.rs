//! The scalar functions' kernels: pure functions on borrowed strings and numbers, so each is
//! unit-tested on its own (null handling lives in the compiled closures: every function here is
//! only called with non-null arguments, and a `None` result is SQL `NULL`).

/// `substr(s, start[, len])`, standard SQL (PostgreSQL) semantics with 1-based character
/// positions: the characters at positions `start .. start+len-1` that exist. `len < 0` → `None`.
pub fn substr(s: &str, start: i64, len: Option<i64>) -> Option<&str> {
    let end = match len {
        Some(l) if l < 0 => return None,
        Some(l) => start.saturating_add(l),
        None => i64::MAX,
    };
    let from = start.max(1);
    if end <= from {
        return Some("");
    }
    // Character positions [from, end) → byte offsets.
    let mut begin_byte = None;
    let mut end_byte = s.len();
    for (pos, (b, _)) in (1i64..).zip(s.char_indices()) {
        if pos == from {
            begin_byte = Some(b);
        }
        if pos == end {
            end_byte = b;
            break;
        }
    }
    match begin_byte {
        Some(b) => Some(&s[b..end_byte]),
        None => Some(""),
    }
}

/// `split(s, delim)`: every piece between occurrences of `delim`, empty pieces included
/// (`split('a,,b', ',')` = `['a','','b']`, `split('', ',')` = `['']`), as DuckDB's `string_split`
/// and Spark's `split` give them. `delim` is non-empty (checked at compile time).
#[inline]
pub fn split_each<'a>(s: &'a str, delim: &str, mut f: impl FnMut(&'a str)) {
    if delim.len() == 1 {
        let d = delim.as_bytes()[0];
        let b = s.as_bytes();
        let mut start = 0;
        for (i, &c) in b.iter().enumerate() {
            if c == d {
                // ASCII delimiter: byte offsets are character boundaries.
                f(&s[start..i]);
                start = i + 1;
            }
        }
        f(&s[start..]);
    } else {
        for piece in s.split(delim) {
            f(piece)
        }
    }
}

/// `regexp_extract(s, re, group)`: the group of the first match, `""` when there is no match or
/// the group did not take part (DuckDB's and Spark's rule).
pub fn regexp_extract<'a>(s: &'a str, re: &regex::Regex, group: usize) -> &'a str {
    match re.captures(s) {
        Some(c) => c.get(group).map(|m| m.as_str()).unwrap_or(""),
        None => "",
    }
}

/// Translates a `LIKE` pattern (`%` any run, `_` one character, `escape` quoting the next
/// character) into an anchored regular expression.
pub fn like_to_regex(pattern: &str, escape: Option<char>, case_insensitive: bool) -> String {
    let mut re = String::from(if case_insensitive { "(?is)^" } else { "(?s)^" });
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            if let Some(n) = chars.next() {
                re.push_str(&regex::escape(n.encode_utf8(&mut [0; 4])));
            }
            continue;
        }
        match c {
            '%' => re.push_str(".*"),
            '_' => re.push('.'),
            c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    re.push('$');
    re
}

/// A parsed `json_value` path: `$`, `.name`, `."quoted name"`, `[index]`.
#[derive(Debug, Clone, PartialEq)]
pub enum PathStep {
    /// An object member.
    Key(String),
    /// An array element (0-based).
    Index(usize),
}

/// Parses a JSON path such as `$.a.b[0]`.
pub fn parse_json_path(p: &str) -> Result<Vec<PathStep>, String> {
    let rest = p
        .strip_prefix('$')
        .ok_or_else(|| format!("a JSON path starts with `$`, found `{p}`"))?;
    let b = rest.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        match b[i] {
            b'.' => {
                i += 1;
                if i < b.len() && b[i] == b'"' {
                    let end = rest[i + 1..]
                        .find('"')
                        .ok_or_else(|| format!("unterminated quoted name in JSON path `{p}`"))?;
                    out.push(PathStep::Key(rest[i + 1..i + 1 + end].to_string()));
                    i += end + 2;
                } else {
                    let start = i;
                    while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                        i += 1;
                    }
                    if i == start {
                        return Err(format!("empty member name in JSON path `{p}`"));
                    }
                    out.push(PathStep::Key(rest[start..i].to_string()));
                }
            }
            b'[' => {
                let end = rest[i..]
                    .find(']')
                    .ok_or_else(|| format!("unterminated `[` in JSON path `{p}`"))?;
                let n: usize = rest[i + 1..i + end].trim().parse().map_err(|_| {
                    format!("array index in JSON path `{p}` must be a non-negative integer")
                })?;
                out.push(PathStep::Index(n));
                i += end + 1;
            }
            _ => {
                return Err(format!(
                    "unexpected character in JSON path `{p}` (use `$.a.b[0]`)"
                ))
            }
        }
    }
    Ok(out)
}

/// `json_value(s, path)`: the scalar at `path` as text (strings unquoted, numbers and booleans
/// as written); `None` when `s` is not JSON, the path does not exist, or the value is `null`,
/// an object or an array (SQL/JSON `JSON_VALUE` semantics).
pub fn json_value(s: &str, path: &[PathStep]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(s).ok()?;
    let mut cur = &v;
    for step in path {
        cur = match step {
            PathStep::Key(k) => cur.as_object()?.get(k)?,
            PathStep::Index(i) => cur.as_array()?.get(*i)?,
        };
    }
    match cur {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

struct Fields {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u64,
    offset_s: i64,
}

impl Fields {
    fn to_ms(&self) -> Option<i64> {
        if !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let secs =
            days * 86_400 + self.hour as i64 * 3600 + self.minute as i64 * 60 + self.second as i64
                - self.offset_s;
        Some(secs * 1000 + (self.nanos / 1_000_000) as i64)
    }
}

fn take_num(s: &[u8], i: &mut usize, min: usize, max: usize) -> Option<u64> {
    let start = *i;
    while *i < s.len() && *i - start < max && s[*i].is_ascii_digit() {
        *i += 1;
    }
    if *i - start < min {
        return None;
    }
    std::str::from_utf8(&s[start..*i]).ok()?.parse().ok()
}

fn take_fraction(s: &[u8], i: &mut usize) -> Option<u64> {
    let start = *i;
    let mut nanos = 0u64;
    while *i < s.len() && s[*i].is_ascii_digit() {
        if *i - start < 9 {
            nanos = nanos * 10 + (s[*i] - b'0') as u64;
        }
        *i += 1;
    }
    let n = *i - start;
    if n == 0 {
        return None;
    }
    for _ in n..9 {
        nanos *= 10;
    }
    Some(nanos)
}

fn take_offset(s: &[u8], i: &mut usize) -> Option<i64> {
    if *i < s.len() && (s[*i] == b'Z' || s[*i] == b'z') {
        *i += 1;
        return Some(0);
    }
    let sign = match s.get(*i)? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    *i += 1;
    let h = take_num(s, i, 2, 2)? as i64;
    if s.get(*i) == Some(&b':') {
        *i += 1;
    }
    let m = take_num(s, i, 2, 2)? as i64;
    Some(sign * (h * 3600 + m * 60))
}

/// `parse_timestamp(s)`: ISO 8601 / RFC 3339 (`2024-01-02T03:04:05.123Z`, `T` or a space,
/// optional fraction, optional `Z`/`±hh:mm`, no offset = UTC), or a date alone; ms since the
/// epoch, `None` when it does not parse.
pub fn parse_timestamp_iso(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let mut i = 0;
    let mut f = Fields {
        year: 0,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        nanos: 0,
        offset_s: 0,
    };
    f.year = take_num(b, &mut i, 4, 4)? as i64;
    (b.get(i) == Some(&b'-')).then_some(())?;
    i += 1;
    f.month = take_num(b, &mut i, 2, 2)? as u32;
    (b.get(i) == Some(&b'-')).then_some(())?;
    i += 1;
    f.day = take_num(b, &mut i, 2, 2)? as u32;
    if i < b.len() {
        (b[i] == b'T' || b[i] == b't' || b[i] == b' ').then_some(())?;
        i += 1;
        f.hour = take_num(b, &mut i, 2, 2)? as u32;
        (b.get(i) == Some(&b':')).then_some(())?;
        i += 1;
        f.minute = take_num(b, &mut i, 2, 2)? as u32;
        if b.get(i) == Some(&b':') {
            i += 1;
            f.second = take_num(b, &mut i, 2, 2)? as u32;
            if b.get(i) == Some(&b'.') {
                i += 1;
                f.nanos = take_fraction(b, &mut i)?;
            }
        }
        if i < b.len() {
            f.offset_s = take_offset(b, &mut i)?;
        }
    }
    (i == b.len()).then_some(())?;
    f.to_ms()
}

/// Checks a `parse_timestamp` format (strftime subset: `%Y %m %d %H %M %S %f %b %z %%`).
pub fn check_format(fmt: &str) -> Result<(), String> {
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('Y' | 'm' | 'd' | 'H' | 'M' | 'S' | 'f' | 'b' | 'z' | '%') => {}
                Some(o) => {
                    return Err(format!(
                        "unsupported directive %{o} in timestamp format (supported: %Y %m %d %H %M %S %f %b %z %%)"
                    ))
                }
                None => return Err("timestamp format ends with a lone %".into()),
            }
        }
    }
    Ok(())
}

/// `parse_timestamp(s, format)` with a checked strftime-subset format; ms since the epoch.
pub fn parse_timestamp_fmt(s: &str, fmt: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut f = Fields {
        year: 1970,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        nanos: 0,
        offset_s: 0,
    };
    let mut fc = fmt.chars();
    while let Some(c) = fc.next() {
        if c != '%' {
            let mut buf = [0u8; 4];
            let lit = c.encode_utf8(&mut buf).as_bytes();
            (b.get(i..i + lit.len())? == lit).then_some(())?;
            i += lit.len();
            continue;
        }
        match fc.next()? {
            'Y' => f.year = take_num(b, &mut i, 4, 4)? as i64,
            'm' => f.month = take_num(b, &mut i, 1, 2)? as u32,
            'd' => f.day = take_num(b, &mut i, 1, 2)? as u32,
            'H' => f.hour = take_num(b, &mut i, 1, 2)? as u32,
            'M' => f.minute = take_num(b, &mut i, 1, 2)? as u32,
            'S' => f.second = take_num(b, &mut i, 1, 2)? as u32,
            'f' => f.nanos = take_fraction(b, &mut i)?,
            'z' => f.offset_s = take_offset(b, &mut i)?,
            'b' => {
                let m = std::str::from_utf8(b.get(i..i + 3)?)
                    .ok()?
                    .to_ascii_lowercase();
                f.month = MONTHS.iter().position(|x| *x == m)? as u32 + 1;
                i += 3;
            }
            '%' => {
                (b.get(i) == Some(&b'%')).then_some(())?;
                i += 1;
            }
            _ => return None,
        }
    }
    (i == b.len()).then_some(())?;
    f.to_ms()
}

/// `CAST(s AS BIGINT)`: an optionally signed decimal integer (surrounding spaces allowed);
/// `None` otherwise (TRY_CAST semantics, see the dialect's deviations).
pub fn str_to_int(s: &str) -> Option<i64> {
    s.trim().parse().ok()
}

/// `CAST(s AS DOUBLE)`.
pub fn str_to_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "infinity" | "+inf" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => t.parse().ok(),
    }
}

/// `CAST(s AS BOOLEAN)`: true/false/t/f/yes/no/y/n/1/0, any case.
pub fn str_to_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// `CAST(x AS BIGINT)` of a double: rounded half away from zero; `None` when out of range or
/// not finite.
pub fn float_to_int(x: f64) -> Option<i64> {
    let r = x.round();
    if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r) {
        Some(r as i64)
    } else {
        None
    }
}

/// `CAST(x AS VARCHAR)` of a double: the shortest text that reads back the same, with a
/// decimal point (`1.0`, `0.1`, `1e300` as `1e300`), `nan`, `inf`, `-inf`.
pub fn float_to_string(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{x:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substr_is_standard_sql() {
        assert_eq!(substr("hello", 2, Some(3)), Some("ell"));
        assert_eq!(substr("hello", 2, None), Some("ello"));
        assert_eq!(substr("hello", 0, Some(2)), Some("h"));
        assert_eq!(substr("hello", -3, None), Some("hello"));
        assert_eq!(substr("hello", 4, Some(10)), Some("lo"));
        assert_eq!(substr("hello", 9, Some(1)), Some(""));
        assert_eq!(substr("hello", 1, Some(-1)), None);
        assert_eq!(substr("héllo", 2, Some(2)), Some("él"));
        assert_eq!(substr("", 1, Some(1)), Some(""));
    }

    #[test]
    fn split_keeps_empty_pieces() {
        let mut v = Vec::new();
        split_each("a,,b,", ",", |p| v.push(p));
        assert_eq!(v, ["a", "", "b", ""]);
        v.clear();
        split_each("", " ", |p| v.push(p));
        assert_eq!(v, [""]);
        v.clear();
        split_each("x::y", "::", |p| v.push(p));
        assert_eq!(v, ["x", "y"]);
    }

    #[test]
    fn regexp_extract_gives_empty_on_no_match() {
        let re = regex::Regex::new(r"(\d+)-(\w+)?").unwrap();
        assert_eq!(regexp_extract("id 42-x", &re, 1), "42");
        assert_eq!(regexp_extract("id 42-x", &re, 0), "42-x");
        assert_eq!(regexp_extract("id 42-", &re, 2), "");
        assert_eq!(regexp_extract("none", &re, 1), "");
    }

    #[test]
    fn like_patterns() {
        let m = |p: &str, s: &str| {
            regex::Regex::new(&like_to_regex(p, None, false))
                .unwrap()
                .is_match(s)
        };
        assert!(m("%err%", "an error"));
        assert!(!m("%err%", "an ERROR"));
        assert!(m("a_c", "abc"));
        assert!(!m("a_c", "abbc"));
        assert!(m("a.c", "a.c"));
        assert!(!m("a.c", "abc"));
        assert!(m("100%", "100 percent"));
        let esc = regex::Regex::new(&like_to_regex("100!%", Some('!'), false)).unwrap();
        assert!(esc.is_match("100%"));
        assert!(!esc.is_match("1000"));
        let ci = regex::Regex::new(&like_to_regex("%ERR%", None, true)).unwrap();
        assert!(ci.is_match("an error"));
        assert!(m("%", "line\nbreak"));
    }

    #[test]
    fn json_paths() {
        let p = parse_json_path("$.a.b[1]").unwrap();
        assert_eq!(
            p,
            vec![
                PathStep::Key("a".into()),
                PathStep::Key("b".into()),
                PathStep::Index(1)
            ]
        );
        assert_eq!(json_value(r#"{"a":{"b":[1,"x"]}}"#, &p), Some("x".into()));
        let q = parse_json_path("$.n").unwrap();
        assert_eq!(json_value(r#"{"n":12.5}"#, &q), Some("12.5".into()));
        assert_eq!(json_value(r#"{"n":true}"#, &q), Some("true".into()));
        assert_eq!(json_value(r#"{"n":null}"#, &q), None);
        assert_eq!(json_value(r#"{"n":{"x":1}}"#, &q), None);
        assert_eq!(json_value(r#"{"m":1}"#, &q), None);
        assert_eq!(json_value("not json", &q), None);
        assert_eq!(
            json_value(r#"{"a b":"v"}"#, &parse_json_path(r#"$."a b""#).unwrap()),
            Some("v".into())
        );
        assert!(parse_json_path("a.b").is_err());
        assert!(parse_json_path("$.a[x]").is_err());
        assert!(parse_json_path("$..a").is_err());
        assert_eq!(parse_json_path("$").unwrap(), vec![]);
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp_iso("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp_iso("2024-02-29 12:00:00.5"),
            Some(1_709_208_000_500)
        );
        assert_eq!(
            parse_timestamp_iso("2024-02-29T12:00:00+01:00"),
            Some(1_709_204_400_000)
        );
        assert_eq!(parse_timestamp_iso("2024-01-02"), Some(1_704_153_600_000));
        assert_eq!(parse_timestamp_iso("2023-02-29"), None);
        assert_eq!(parse_timestamp_iso("1969-12-31T23:59:59Z"), Some(-1000));
        assert_eq!(parse_timestamp_iso("nope"), None);
        assert_eq!(parse_timestamp_iso("2024-01-02T03:04:05Zjunk"), None);
        assert!(check_format("%d/%b/%Y:%H:%M:%S %z").is_ok());
        assert!(check_format("%Q").is_err());
        assert_eq!(
            parse_timestamp_fmt("10/Oct/2000:13:55:36 -0700", "%d/%b/%Y:%H:%M:%S %z"),
            Some(971_211_336_000)
        );
        assert_eq!(
            parse_timestamp_fmt("10/Xyz/2000:13:55:36 -0700", "%d/%b/%Y:%H:%M:%S %z"),
            None
        );
        assert_eq!(parse_timestamp_fmt("2000-10-10 extra", "%Y-%m-%d"), None);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn casts() {
        assert_eq!(str_to_int(" 42 "), Some(42));
        assert_eq!(str_to_int("4.2"), None);
        assert_eq!(str_to_float("4.5"), Some(4.5));
        assert!(str_to_float("NaN").unwrap().is_nan());
        assert_eq!(str_to_float("x"), None);
        assert_eq!(str_to_bool("T"), Some(true));
        assert_eq!(str_to_bool("0"), Some(false));
        assert_eq!(str_to_bool("maybe"), None);
        assert_eq!(float_to_int(2.5), Some(3));
        assert_eq!(float_to_int(-2.5), Some(-3));
        assert_eq!(float_to_int(f64::NAN), None);
        assert_eq!(float_to_int(1e19), None);
        assert_eq!(float_to_string(1.0), "1.0");
        assert_eq!(float_to_string(f64::NEG_INFINITY), "-inf");
    }
}
