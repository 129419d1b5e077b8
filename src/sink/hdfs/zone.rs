//! Calendar arithmetic for the HDFS sink's time escapes: epoch milliseconds to the fields Java's
//! `Calendar`/`SimpleDateFormat` show, in a configured zone, and rounding down as Flume's
//! `TimestampRoundDownUtil` does.
//!
//! Zones (`hdfs.timeZone`): `UTC`, `GMT`, `Z`, fixed offsets (`GMT+05:30`, `UTC-8`, `+0100`),
//! and — when the key is unset, as Flume uses the JVM default — the machine's local zone, read
//! through `localtime_r` (so its daylight-saving rules apply). A named IANA zone other than those
//! is refused at configuration time with a clear message rather than silently taken as UTC
//! (Java's `TimeZone.getTimeZone` would do that for an unknown name).
//!
//! Invariant: every function is total over `i64` milliseconds (negative = before 1970): days are
//! computed with Euclidean division and the proleptic Gregorian calendar (Hinnant's
//! `civil_from_days`), which is what `SimpleDateFormat` shows for years after 1582.

/// The zone local times are shown in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zone {
    /// A fixed offset east of UTC, in seconds.
    Fixed(i32),
    /// The machine's local zone (`hdfs.timeZone` unset).
    Local,
}

impl Zone {
    /// Parses `hdfs.timeZone`; `None` when it is not a zone this build knows.
    pub fn parse(s: &str) -> Option<Zone> {
        let t = s.trim();
        let up = t.to_ascii_uppercase();
        if matches!(
            up.as_str(),
            "UTC" | "GMT" | "Z" | "UCT" | "ETC/UTC" | "ETC/GMT" | "ZULU"
        ) {
            return Some(Zone::Fixed(0));
        }
        let rest = up
            .strip_prefix("GMT")
            .or_else(|| up.strip_prefix("UTC"))
            .unwrap_or(&up);
        let (sign, digits) = match rest.as_bytes().first() {
            Some(b'+') => (1, &rest[1..]),
            Some(b'-') => (-1, &rest[1..]),
            _ => return None,
        };
        let (h, m) = if let Some((h, m)) = digits.split_once(':') {
            (h, m)
        } else if digits.len() > 2 {
            digits.split_at(digits.len() - 2)
        } else {
            (digits, "0")
        };
        let all_digits =
            |x: &str| !x.is_empty() && x.len() <= 2 && x.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(h) || !all_digits(m) {
            return None;
        }
        let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
        if h > 23 || m > 59 {
            return None;
        }
        Some(Zone::Fixed(sign * (h * 3600 + m * 60)))
    }

    /// The offset east of UTC, in seconds, at the instant `ms`.
    pub fn offset_secs(&self, ms: i64) -> i32 {
        match self {
            Zone::Fixed(s) => *s,
            Zone::Local => local_offset(ms.div_euclid(1000)),
        }
    }
}

fn local_offset(secs: i64) -> i32 {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: `tm` is plain data that `localtime_r` fills; both pointers are valid for the call.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            0
        } else {
            tm.tm_gmtoff as i32
        }
    }
}

/// Calendar fields of one instant in one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    /// Year (proleptic Gregorian).
    pub year: i64,
    /// Month 1..=12.
    pub month: u32,
    /// Day of month 1..=31.
    pub day: u32,
    /// Hour 0..=23.
    pub hour: u32,
    /// Minute 0..=59.
    pub minute: u32,
    /// Second 0..=59.
    pub second: u32,
    /// Day of year 1..=366.
    pub yday: u32,
    /// Day of week, 0 = Sunday.
    pub wday: u32,
    /// The zone's offset at that instant, seconds east of UTC.
    pub offset: i32,
}

/// Days since 1970-01-01 to (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar fields of `ms` in `zone`.
pub fn fields(ms: i64, zone: &Zone) -> Fields {
    let offset = zone.offset_secs(ms);
    let local = ms.div_euclid(1000) + offset as i64;
    let days = local.div_euclid(86_400);
    let sod = local.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let yday = (days - days_from_civil(year, 1, 1) + 1) as u32;
    Fields {
        year,
        month,
        day,
        hour: (sod / 3600) as u32,
        minute: (sod % 3600 / 60) as u32,
        second: (sod % 60) as u32,
        yday,
        wday: (days + 4).rem_euclid(7) as u32,
        offset,
    }
}

/// `hdfs.roundUnit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundUnit {
    /// `second`.
    Second,
    /// `minute`.
    Minute,
    /// `hour`.
    Hour,
}

/// Rounds `ms` down as `TimestampRoundDownUtil` does in `zone`: the unit's field becomes a
/// multiple of `value`, every smaller field (down to milliseconds) becomes zero.
pub fn round_down(ms: i64, unit: RoundUnit, value: u32, zone: &Zone) -> i64 {
    let value = value.max(1) as i64;
    let off = zone.offset_secs(ms) as i64 * 1000;
    let local = ms + off;
    let day_start = local.div_euclid(86_400_000) * 86_400_000;
    let in_day = local - day_start;
    let rounded = match unit {
        RoundUnit::Second => {
            let min_start = in_day / 60_000 * 60_000;
            let s = (in_day - min_start) / 1000;
            min_start + (s - s % value) * 1000
        }
        RoundUnit::Minute => {
            let hour_start = in_day / 3_600_000 * 3_600_000;
            let m = (in_day - hour_start) / 60_000;
            hour_start + (m - m % value) * 60_000
        }
        RoundUnit::Hour => {
            let h = in_day / 3_600_000;
            (h - h % value) * 3_600_000
        }
    };
    day_start + rounded - off
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_known_instants_in_utc() {
        // 2023-11-14T22:13:20Z, a Tuesday, day 318.
        let f = fields(1_700_000_000_000, &Zone::Fixed(0));
        assert_eq!(
            (f.year, f.month, f.day, f.hour, f.minute, f.second, f.yday, f.wday),
            (2023, 11, 14, 22, 13, 20, 318, 2)
        );
        let f = fields(0, &Zone::Fixed(0));
        assert_eq!((f.year, f.month, f.day, f.wday, f.yday), (1970, 1, 1, 4, 1));
        let f = fields(-1, &Zone::Fixed(0));
        assert_eq!(
            (f.year, f.month, f.day, f.hour, f.minute, f.second),
            (1969, 12, 31, 23, 59, 59)
        );
        // Leap day 2024-02-29T00:00:00Z.
        let f = fields(1_709_164_800_000, &Zone::Fixed(0));
        assert_eq!((f.year, f.month, f.day, f.yday), (2024, 2, 29, 60));
    }

    #[test]
    fn civil_round_trips_over_four_centuries() {
        for d in (-200_000..200_000).step_by(37) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn offsets_move_the_fields() {
        let z = Zone::parse("GMT+05:30").unwrap();
        assert_eq!(z, Zone::Fixed(5 * 3600 + 1800));
        let f = fields(1_700_000_000_000, &z);
        assert_eq!((f.day, f.hour, f.minute), (15, 3, 43));
        assert_eq!(Zone::parse("UTC-8"), Some(Zone::Fixed(-8 * 3600)));
        assert_eq!(Zone::parse("+0100"), Some(Zone::Fixed(3600)));
        assert_eq!(Zone::parse("utc"), Some(Zone::Fixed(0)));
        assert_eq!(Zone::parse("America/New_York"), None);
        assert_eq!(Zone::parse("GMT+25"), None);
    }

    #[test]
    fn rounding_matches_the_fixture_table() {
        let utc = Zone::Fixed(0);
        let r = |ms| round_down(ms, RoundUnit::Minute, 10, &utc);
        assert_eq!(r(1_699_999_679_999), 1_699_999_200_000); // 22:07:59.999 -> 22:00
        assert_eq!(r(1_699_999_800_000), 1_699_999_800_000); // 22:10 stays
        assert_eq!(r(1_700_000_399_999), 1_699_999_800_000); // 22:19:59.999 -> 22:10
        assert_eq!(
            round_down(1_700_000_399_999, RoundUnit::Hour, 1, &utc),
            1_699_999_200_000
        );
        assert_eq!(
            round_down(1_700_000_399_999, RoundUnit::Second, 15, &utc),
            1_700_000_385_000
        );
        // Hours round in the zone: 03:43 at +05:30 rounded to 2 h is 02:00 local = 20:30Z.
        let ist = Zone::Fixed(5 * 3600 + 1800);
        assert_eq!(
            round_down(1_700_000_000_000, RoundUnit::Hour, 2, &ist),
            1_699_993_800_000
        );
        // Before 1970 too.
        assert_eq!(round_down(-1, RoundUnit::Minute, 1, &utc), -60_000);
    }
}
