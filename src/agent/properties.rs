//! A parser for the Java `.properties` format, reading a file exactly as
//! `java.util.Properties.load` does, but remembering the line every entry came from.
//!
//! What Java does, and so what this does:
//!
//! * A *natural* line ends at `\n`, `\r` or `\r\n`. Leading whitespace (space, tab, form feed)
//!   of every natural line is skipped; a line that is then empty is blank and ignored.
//! * A line whose first non-blank character is `#` or `!` is a comment. A comment never
//!   continues onto the next line, whatever it ends with.
//! * A line ending in an **odd** number of backslashes continues on the next natural line: the
//!   last backslash and the line break are dropped, and so is the leading whitespace of the next
//!   line. An even number of trailing backslashes is an escaped backslash, not a continuation.
//!   A `#` at the start of a continuation line is data, not a comment. A backslash just before
//!   the end of the file is dropped.
//! * The key ends at the first unescaped `=`, `:` or whitespace. Whitespace after the key is
//!   skipped, then at most one `=` or `:`, then more whitespace. Everything after that, including
//!   **trailing whitespace**, is the value (Java keeps it; Flume trims values later).
//! * Escapes in keys and values: `\uXXXX` (exactly four hex digits — anything else is an error,
//!   as Java's "Malformed \uxxxx encoding."), `\t \n \r \f`, and `\x` → `x` for any other `x`
//!   (so `\=`, `\:`, `\ `, `\#`, `\\`). Two `\u` escapes forming a UTF-16 surrogate pair make
//!   one character; a lone surrogate is reported as an error because it cannot be held in UTF-8.
//! * A repeated key: the last value wins, as in Java. Every occurrence is kept here so the
//!   loader can warn about the ones that lost.
//!
//! ## Encoding
//!
//! Flume up to 1.10 read `flume.conf` through a `FileReader` (the platform charset, UTF-8 on
//! any modern Linux); Flume 1.11 reads it through `Properties.load(InputStream)`, which is
//! ISO-8859-1. sluicegate reads the bytes as **UTF-8** when they are valid UTF-8 (a leading
//! byte-order mark is dropped), and otherwise as ISO-8859-1 — so a pure-ASCII file, a UTF-8
//! file and a Latin-1 file all read as their author meant. [`Properties::encoding`] tells which
//! was used. `\uXXXX` escapes work in both.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// One `key = value` entry of a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyEntry {
    /// The key, escapes resolved.
    pub key: String,
    /// The value, escapes resolved, trailing whitespace kept (as Java does).
    pub value: String,
    /// 1-based line where the entry's logical line starts.
    pub line: usize,
}

/// How the bytes of a file were decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    /// Valid UTF-8 (includes plain ASCII).
    Utf8,
    /// Valid UTF-8 that began with a byte-order mark, which was dropped.
    Utf8WithBom,
    /// Not valid UTF-8: read as ISO-8859-1, one byte per character, as Flume 1.11 does.
    Latin1,
}

/// A syntax error in a properties file (Java would throw `IllegalArgumentException`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PropertiesSyntaxError {
    /// 1-based line of the bad escape.
    pub line: usize,
    /// The entry's key, when the bad escape is in its value.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Why a properties file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PropertiesError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// One or more malformed escapes; every one found is listed.
    #[error("{}", display_syntax(.0))]
    Syntax(Vec<PropertiesSyntaxError>),
}

fn display_syntax(errors: &[PropertiesSyntaxError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The parsed contents of a `.properties` file: every entry in file order, duplicates kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Properties {
    entries: Vec<PropertyEntry>,
    encoding: TextEncoding,
}

impl Properties {
    /// Reads and parses a file (see the module docs for the encoding rules).
    pub fn load(path: &Path) -> Result<Properties, PropertiesError> {
        let bytes = std::fs::read(path).map_err(|source| PropertiesError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Properties::parse_bytes(&bytes).map_err(PropertiesError::Syntax)
    }

    /// Parses raw bytes: UTF-8 (BOM dropped) when valid, otherwise ISO-8859-1.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Properties, Vec<PropertiesSyntaxError>> {
        let (text, encoding) = decode(bytes);
        let mut p = Properties::parse(&text)?;
        p.encoding = encoding;
        Ok(p)
    }

    /// Parses text exactly as `java.util.Properties.load(Reader)` would.
    pub fn parse(text: &str) -> Result<Properties, Vec<PropertiesSyntaxError>> {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for logical in logical_lines(text) {
            match split_entry(&logical) {
                Ok(e) => entries.push(e),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(Properties {
                entries,
                encoding: TextEncoding::Utf8,
            })
        } else {
            Err(errors)
        }
    }

    /// How the bytes were decoded ([`TextEncoding::Utf8`] for [`Properties::parse`]).
    pub fn encoding(&self) -> TextEncoding {
        self.encoding
    }

    /// Every entry in file order, including the ones a later duplicate overrides.
    pub fn all_entries(&self) -> &[PropertyEntry] {
        &self.entries
    }

    /// The entries Java would keep: for each key its last occurrence, in file order.
    pub fn effective(&self) -> Vec<&PropertyEntry> {
        let last = self.last_index();
        self.entries
            .iter()
            .enumerate()
            .filter(|(i, e)| last.get(e.key.as_str()) == Some(i))
            .map(|(_, e)| e)
            .collect()
    }

    /// The value Java would return for `key` (the last occurrence wins).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    }

    /// The entry Java would keep for `key`.
    pub fn entry(&self, key: &str) -> Option<&PropertyEntry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }

    /// Keys set more than once, each with all of its occurrences in file order (the last one
    /// is the value in force), sorted by the line of the first occurrence.
    pub fn duplicates(&self) -> Vec<Vec<&PropertyEntry>> {
        let mut by_key: HashMap<&str, Vec<&PropertyEntry>> = HashMap::new();
        for e in &self.entries {
            by_key.entry(e.key.as_str()).or_default().push(e);
        }
        let mut dups: Vec<Vec<&PropertyEntry>> =
            by_key.into_values().filter(|v| v.len() > 1).collect();
        dups.sort_by_key(|v| v[0].line);
        dups
    }

    /// Number of distinct keys (what `Properties.size()` would say).
    pub fn len(&self) -> usize {
        self.last_index().len()
    }

    /// True when the file holds no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn last_index(&self) -> HashMap<&str, usize> {
        let mut last = HashMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            last.insert(e.key.as_str(), i);
        }
        last
    }
}

impl fmt::Display for TextEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Utf8WithBom => "UTF-8 (byte-order mark dropped)",
            TextEncoding::Latin1 => "ISO-8859-1",
        })
    }
}

/// Decodes a file: UTF-8 when valid (BOM dropped), else ISO-8859-1.
pub fn decode(bytes: &[u8]) -> (String, TextEncoding) {
    let (body, bom) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (rest, true),
        None => (bytes, false),
    };
    match std::str::from_utf8(body) {
        Ok(s) if bom => (s.to_string(), TextEncoding::Utf8WithBom),
        Ok(s) => (s.to_string(), TextEncoding::Utf8),
        Err(_) => (
            bytes.iter().map(|&b| char::from(b)).collect(),
            TextEncoding::Latin1,
        ),
    }
}

/// A logical line: its characters (continuations joined) and, for each, its physical line.
#[derive(Default)]
struct Logical {
    chars: Vec<char>,
    lines: Vec<usize>,
    /// Line of the first character, even one later dropped as a continuation backslash.
    start: Option<usize>,
}

impl Logical {
    fn start_line(&self) -> usize {
        self.start.or(self.lines.first().copied()).unwrap_or(1)
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// Splits text into logical lines as Java's `Properties.LineReader` does.
fn logical_lines(text: &str) -> Vec<Logical> {
    let mut out = Vec::new();
    let mut cur = Logical::default();
    let mut line_no = 1usize;
    let mut prev_cr = false;
    let mut skip_ws = true;
    let mut appended_line_begin = false;
    let mut is_new_line = true;
    let mut is_comment = false;
    let mut preceding_backslash = false;
    let mut skip_lf = false;

    for c in text.chars() {
        // Physical line bookkeeping: the line this character is on.
        let this_line = line_no;
        match c {
            '\r' => {
                line_no += 1;
                prev_cr = true;
            }
            '\n' => {
                if !prev_cr {
                    line_no += 1;
                }
                prev_cr = false;
            }
            _ => prev_cr = false,
        }

        if skip_lf {
            skip_lf = false;
            if c == '\n' {
                continue;
            }
        }
        if skip_ws {
            if is_blank(c) {
                continue;
            }
            if !appended_line_begin && (c == '\r' || c == '\n') {
                continue;
            }
            skip_ws = false;
            appended_line_begin = false;
        }
        if is_new_line {
            is_new_line = false;
            if c == '#' || c == '!' {
                is_comment = true;
                continue;
            }
        }
        if c != '\n' && c != '\r' {
            if is_comment {
                continue;
            }
            cur.start.get_or_insert(this_line);
            cur.chars.push(c);
            cur.lines.push(this_line);
            preceding_backslash = if c == '\\' {
                !preceding_backslash
            } else {
                false
            };
            continue;
        }
        // End of a natural line.
        if is_comment || cur.chars.is_empty() {
            is_comment = false;
            is_new_line = true;
            skip_ws = true;
            appended_line_begin = false;
            preceding_backslash = false;
            cur = Logical::default();
            continue;
        }
        if preceding_backslash {
            cur.chars.pop();
            cur.lines.pop();
            skip_ws = true;
            appended_line_begin = true;
            preceding_backslash = false;
            if c == '\r' {
                skip_lf = true;
            }
        } else {
            out.push(std::mem::take(&mut cur));
            is_new_line = true;
            skip_ws = true;
            appended_line_begin = false;
        }
    }
    if !is_comment && !cur.chars.is_empty() {
        if preceding_backslash {
            cur.chars.pop();
            cur.lines.pop();
        }
        if !cur.chars.is_empty() {
            out.push(cur);
        }
    }
    out
}

/// Splits one logical line into key and value (Java's `Properties.load0`) and unescapes both.
fn split_entry(l: &Logical) -> Result<PropertyEntry, Vec<PropertiesSyntaxError>> {
    let limit = l.chars.len();
    let mut key_len = 0;
    let mut value_start = limit;
    let mut has_sep = false;
    let mut preceding_backslash = false;
    while key_len < limit {
        let c = l.chars[key_len];
        if (c == '=' || c == ':') && !preceding_backslash {
            value_start = key_len + 1;
            has_sep = true;
            break;
        } else if is_blank(c) && !preceding_backslash {
            value_start = key_len + 1;
            break;
        }
        preceding_backslash = if c == '\\' {
            !preceding_backslash
        } else {
            false
        };
        key_len += 1;
    }
    while value_start < limit {
        let c = l.chars[value_start];
        if !is_blank(c) {
            if !has_sep && (c == '=' || c == ':') {
                has_sep = true;
            } else {
                break;
            }
        }
        value_start += 1;
    }
    let mut errors = Vec::new();
    let key = unescape(&l.chars[..key_len], &l.lines[..key_len], &mut errors);
    let key_ok = errors.is_empty();
    let value = unescape(
        &l.chars[value_start..],
        &l.lines[value_start..],
        &mut errors,
    );
    if key_ok {
        for e in &mut errors {
            e.key = Some(key.clone());
        }
    }
    if errors.is_empty() {
        Ok(PropertyEntry {
            key,
            value,
            line: l.start_line(),
        })
    } else {
        Err(errors)
    }
}

/// Java's `loadConvert`, plus surrogate-pair joining for `\uXXXX` escapes.
fn unescape(chars: &[char], lines: &[usize], errors: &mut Vec<PropertiesSyntaxError>) -> String {
    let mut out = String::with_capacity(chars.len());
    let mut pending_high: Option<(u16, usize)> = None;
    let mut i = 0;
    let flush_high = |pending: &mut Option<(u16, usize)>,
                      errors: &mut Vec<PropertiesSyntaxError>| {
        if let Some((h, line)) = pending.take() {
            errors.push(PropertiesSyntaxError {
                line,
                key: None,
                message: format!(
                    "\\u{h:04X} is the first half of a UTF-16 surrogate pair but no \\uDC00-\\uDFFF \
                     escape follows it; write the character itself or both halves"
                ),
            });
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let line = lines[i];
        i += 1;
        if c != '\\' {
            flush_high(&mut pending_high, errors);
            out.push(c);
            continue;
        }
        let Some(&e) = chars.get(i) else {
            // A lone trailing backslash cannot survive line joining; drop it as Java would.
            break;
        };
        i += 1;
        if e != 'u' {
            flush_high(&mut pending_high, errors);
            out.push(match e {
                't' => '\t',
                'r' => '\r',
                'n' => '\n',
                'f' => '\x0c',
                other => other,
            });
            continue;
        }
        // \uXXXX: exactly four hex digits.
        let digits: String = chars[i..chars.len().min(i + 4)].iter().collect();
        let unit = if digits.len() == 4 && digits.chars().all(|d| d.is_ascii_hexdigit()) {
            u16::from_str_radix(&digits, 16).ok()
        } else {
            None
        };
        let Some(unit) = unit else {
            flush_high(&mut pending_high, errors);
            errors.push(PropertiesSyntaxError {
                line,
                key: None,
                message: format!(
                    "malformed \\uxxxx escape '\\u{digits}': \\u must be followed by exactly four \
                     hex digits (Java refuses the whole file: \"Malformed \\uxxxx encoding.\"); \
                     write '\\\\u' for a literal backslash-u"
                ),
            });
            i += digits.chars().take_while(|d| d.is_ascii_hexdigit()).count();
            continue;
        };
        i += 4;
        match unit {
            0xD800..=0xDBFF => {
                flush_high(&mut pending_high, errors);
                pending_high = Some((unit, line));
            }
            0xDC00..=0xDFFF => match pending_high.take() {
                Some((h, _)) => {
                    let cp = 0x10000 + ((u32::from(h) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                    out.push(char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER));
                }
                None => errors.push(PropertiesSyntaxError {
                    line,
                    key: None,
                    message: format!(
                        "\\u{unit:04X} is the second half of a UTF-16 surrogate pair with no first \
                         half before it"
                    ),
                }),
            },
            _ => {
                flush_high(&mut pending_high, errors);
                out.push(char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
        }
    }
    flush_high(&mut pending_high, errors);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String, usize)> {
        Properties::parse(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
            .all_entries()
            .iter()
            .map(|e| (e.key.clone(), e.value.clone(), e.line))
            .collect()
    }

    fn one(text: &str) -> (String, String) {
        let v = kv(text);
        assert_eq!(v.len(), 1, "{text:?} -> {v:?}");
        (v[0].0.clone(), v[0].1.clone())
    }

    #[test]
    fn separators_and_whitespace_table() {
        let table: &[(&str, &str, &str)] = &[
            ("a=b", "a", "b"),
            ("a:b", "a", "b"),
            ("a b", "a", "b"),
            ("a\tb", "a", "b"),
            ("a\x0cb", "a", "b"),
            ("a = b", "a", "b"),
            ("a : b", "a", "b"),
            ("a   =   b", "a", "b"),
            ("   a=b", "a", "b"),
            ("\t \x0c a=b", "a", "b"),
            ("a=b   ", "a", "b   "),
            ("a=b\t", "a", "b\t"),
            ("a==b", "a", "=b"),
            ("a=:b", "a", ":b"),
            ("a = = b", "a", "= b"),
            ("a :=b", "a", "=b"),
            ("a b c", "a", "b c"),
            ("a  =", "a", ""),
            ("a", "a", ""),
            ("a=", "a", ""),
            ("=b", "", "b"),
            (":b", "", "b"),
            ("a=b=c", "a", "b=c"),
            ("a:b:c", "a", "b:c"),
            ("a = b # not a comment", "a", "b # not a comment"),
            ("key.with.dots = v", "key.with.dots", "v"),
        ];
        for (input, k, v) in table {
            assert_eq!(
                one(input),
                (k.to_string(), v.to_string()),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn escapes_table() {
        let table: &[(&str, &str, &str)] = &[
            (r"a\=b=c", "a=b", "c"),
            (r"a\:b:c", "a:b", "c"),
            (r"a\ b c", "a b", "c"),
            (r"a\ b=c", "a b", "c"),
            (r"\#a=b", "#a", "b"),
            (r"\!a=b", "!a", "b"),
            (r"a=\tb", "a", "\tb"),
            (r"a=b\nc", "a", "b\nc"),
            (r"a=\r\f", "a", "\r\x0c"),
            (r"a=\q\z", "a", "qz"),
            (r"a=c:\\dir\\x", "a", r"c:\dir\x"),
            (r"a=\u0041\u00e9", "a", "Aé"),
            (r"a=\u20AC", "a", "€"),
            (r"\u0061=x", "a", "x"),
            (r"a=\uD83D\uDE00", "a", "😀"),
            (r"a=\\u0041", "a", r"\u0041"),
            (r"a=\ \ lead", "a", "  lead"),
            (r"a=\    ", "a", "    "),
            ("a=é€😀", "a", "é€😀"),
            (r"a\\=b", r"a\", "b"),
        ];
        for (input, k, v) in table {
            assert_eq!(
                one(input),
                (k.to_string(), v.to_string()),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn comments_and_blank_lines() {
        let text = "# comment\n! bang comment\n   # indented comment\n\n   \n\t\na=1\n#a=2\n";
        assert_eq!(kv(text), vec![("a".into(), "1".into(), 7)]);
        // A comment ending in a backslash does not continue.
        assert_eq!(kv("# comment \\\na=1\n"), vec![("a".into(), "1".into(), 2)]);
        // A continued line starting with '#' is data.
        assert_eq!(kv("a=x\\\n#y\n"), vec![("a".into(), "x#y".into(), 1)]);
    }

    #[test]
    fn continuations() {
        assert_eq!(kv("a=b\\\n   c\n"), vec![("a".into(), "bc".into(), 1)]);
        assert_eq!(
            kv("a = one \\\n      two \\\n\tthree\nb=2"),
            vec![
                ("a".into(), "one two three".into(), 1),
                ("b".into(), "2".into(), 4)
            ]
        );
        // Even number of backslashes: an escaped backslash, no continuation.
        assert_eq!(
            kv("a=b\\\\\nc=d\n"),
            vec![("a".into(), "b\\".into(), 1), ("c".into(), "d".into(), 2)]
        );
        // Three backslashes: one escaped backslash plus a continuation.
        assert_eq!(kv("a=b\\\\\\\n c\n"), vec![("a".into(), "b\\c".into(), 1)]);
        // Continuation inside the key.
        assert_eq!(kv("ke\\\n  y = v\n"), vec![("key".into(), "v".into(), 1)]);
        // Continuation onto an empty line ends the logical line.
        assert_eq!(
            kv("a=b\\\n\nc=d"),
            vec![("a".into(), "b".into(), 1), ("c".into(), "d".into(), 3)]
        );
        // Backslash at end of file is dropped.
        assert_eq!(kv("a=b\\"), vec![("a".into(), "b".into(), 1)]);
        // A lone backslash line continues into the next one.
        assert_eq!(kv("\\\n a=b\n"), vec![("a".into(), "b".into(), 1)]);
        // Whitespace before the continuation backslash is kept, after it dropped.
        assert_eq!(kv("a=x \\\n   y"), vec![("a".into(), "x y".into(), 1)]);
    }

    #[test]
    fn line_endings() {
        for sep in ["\n", "\r\n", "\r"] {
            let text = format!("a=1{sep}{sep}# c{sep}b=2\\{sep}  3{sep}c=4");
            assert_eq!(
                kv(&text),
                vec![
                    ("a".into(), "1".into(), 1),
                    ("b".into(), "23".into(), 4),
                    ("c".into(), "4".into(), 6)
                ],
                "separator {sep:?}"
            );
        }
        // CRLF continuation does not treat the LF as an empty continuation line.
        assert_eq!(
            kv("a=x\\\r\n y\r\nb=z\r\n"),
            vec![("a".into(), "xy".into(), 1), ("b".into(), "z".into(), 3)]
        );
        // Mixed endings.
        assert_eq!(
            kv("a=1\rb=2\nc=3\r\nd=4"),
            vec![
                ("a".into(), "1".into(), 1),
                ("b".into(), "2".into(), 2),
                ("c".into(), "3".into(), 3),
                ("d".into(), "4".into(), 4)
            ]
        );
    }

    #[test]
    fn duplicates_last_wins_and_are_recorded() {
        let p = Properties::parse("a=1\nb=x\na=2\na = 3\n").unwrap();
        assert_eq!(p.get("a"), Some("3"));
        assert_eq!(p.len(), 2);
        assert_eq!(p.all_entries().len(), 4);
        let eff: Vec<_> = p
            .effective()
            .iter()
            .map(|e| (e.key.as_str(), e.line))
            .collect();
        assert_eq!(eff, vec![("b", 2), ("a", 4)]);
        let d = p.duplicates();
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![1, 3, 4]
        );
    }

    #[test]
    fn malformed_unicode_escapes_are_errors_with_lines() {
        let err = Properties::parse("ok=1\nbad=\\u12G4\nalso=\\u12\nx=\\uD800 lone\n").unwrap_err();
        let lines: Vec<usize> = err.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4], "{err:?}");
        assert!(
            err[0]
                .message
                .contains("malformed \\uxxxx escape '\\u12G4'"),
            "{}",
            err[0]
        );
        assert!(err[1].message.contains("'\\u12'"), "{}", err[1]);
        assert!(
            err[2].message.contains("\\uD800 is the first half"),
            "{}",
            err[2]
        );
        // The error points at the physical line of the escape inside a continuation.
        let err = Properties::parse("a = x \\\n  y \\\n  \\uZZZZ\n").unwrap_err();
        assert_eq!(err[0].line, 3);
        let err = Properties::parse("a=\\uDC00").unwrap_err();
        assert!(err[0].message.contains("second half"));
    }

    #[test]
    fn encodings() {
        let p = Properties::parse_bytes(b"\xEF\xBB\xBFa1.x=caf\xC3\xA9\n").unwrap();
        assert_eq!(p.encoding(), TextEncoding::Utf8WithBom);
        assert_eq!(p.get("a1.x"), Some("café"));
        let p = Properties::parse_bytes(b"a=caf\xE9\n").unwrap();
        assert_eq!(p.encoding(), TextEncoding::Latin1);
        assert_eq!(p.get("a"), Some("café"));
        let p = Properties::parse_bytes(b"a=plain\n").unwrap();
        assert_eq!(p.encoding(), TextEncoding::Utf8);
    }

    #[test]
    fn empty_and_whitespace_only_inputs() {
        assert!(Properties::parse("").unwrap().is_empty());
        assert!(Properties::parse("\n\n  \r\n\t").unwrap().is_empty());
        assert!(Properties::parse("# only\n! comments").unwrap().is_empty());
    }
}
