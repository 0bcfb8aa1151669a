//! XEP-0082 dates and times, as XMPP carries them (`2026-11-23T12:00:00Z`): formatted from and
//! parsed into unix time, in the proleptic Gregorian calendar, without a date library.

/// Formats unix seconds as an XEP-0082 DateTime in UTC (`2026-11-23T12:00:00Z`).
pub fn format(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil-from-days (proleptic Gregorian), valid for all u64 seconds we can meet.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses an XEP-0082 DateTime (`2026-11-23T12:00:00Z`, optional fractions of a second, `Z`
/// or a `±hh:mm` offset) into unix seconds. `None` for anything else, or before 1970.
pub fn parse(s: &str) -> Option<u64> {
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let (year, month, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if date.len() != 10 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // The zone: `Z`, or `+hh:mm` / `-hh:mm` after the clock time.
    let (clock, offset) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (c, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        if zone.len() != 6 {
            return None;
        }
        let (h, m) = zone[1..].split_once(':')?;
        let (h, m) = (num(h)?, num(m)?);
        if h > 23 || m > 59 {
            return None;
        }
        (c, sign * (h * 3600 + m * 60))
    };
    let clock = clock.split_once('.').map_or(clock, |(whole, frac)| {
        if frac.bytes().all(|b| b.is_ascii_digit()) {
            whole
        } else {
            "invalid"
        }
    });
    let mut c = clock.splitn(3, ':');
    let (h, m, sec) = (num(c.next()?)?, num(c.next()?)?, num(c.next()?)?);
    if clock.len() != 8 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from civil (proleptic Gregorian), the inverse of `civil_from_days`.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let unix = days * 86_400 + h * 3600 + m * 60 + sec - offset;
    u64::try_from(unix).ok()
}

/// Formats unix microseconds as an XEP-0082 DateTime in UTC with six fractional digits
/// (`2024-02-29T23:59:59.000001Z`), as an archive stamps what it keeps.
pub fn format_micros(micros: u64) -> String {
    let whole = format(micros / 1_000_000);
    let frac = micros % 1_000_000;
    // `…:SSZ` → `…:SS.ffffffZ`
    format!("{}.{frac:06}Z", &whole[..whole.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_match_known_values() {
        assert_eq!(format(0), "1970-01-01T00:00:00Z");
        assert_eq!(format(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(
            format_micros(1_709_251_199_000_001),
            "2024-02-29T23:59:59.000001Z"
        );
        assert_eq!(format_micros(0), "1970-01-01T00:00:00.000000Z");
        for t in [0, 86_399, 951_868_800, 1_709_251_199, 4_102_444_800] {
            assert_eq!(parse(&format(t)), Some(t));
        }
        assert_eq!(parse("2000-03-01T01:00:00+01:00"), Some(951_868_800));
        assert_eq!(parse("2000-03-01T00:00:00.123Z"), Some(951_868_800));
        assert_eq!(parse("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse("2000-13-01T00:00:00Z"), None);
        assert_eq!(parse("2000-03-01 00:00:00Z"), None);
    }

    #[test]
    fn datetime_known_values() {
        assert_eq!(format(0), "1970-01-01T00:00:00Z");
        assert_eq!(format(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format(1_795_435_200), "2026-11-23T12:00:00Z");
    }

    #[test]
    fn datetime_parsing() {
        for t in [
            0,
            951_782_400,
            1_795_435_200,
            4_102_444_799,
            86_399,
            1_234_567_890,
        ] {
            assert_eq!(parse(&format(t)), Some(t), "{t}");
        }
        // Fractions and zone offsets (XEP-0082's examples).
        assert_eq!(parse("1969-07-21T02:56:15.123Z"), None, "before 1970");
        assert_eq!(parse("2026-11-23T12:00:00.999Z"), Some(1_795_435_200));
        assert_eq!(parse("2026-11-23T14:00:00+02:00"), Some(1_795_435_200));
        assert_eq!(parse("2026-11-23T07:30:00-04:30"), Some(1_795_435_200));
        for bad in [
            "",
            "2026-11-23",
            "2026-11-23T12:00:00",
            "2026-13-01T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T12:00Z",
            "26-11-23T12:00:00Z",
            "2026-11-23T12:00:00.x1Z",
            "2026-11-23T12:00:00+2:00",
            "2026-11-23T12:00:00+25:00",
            "２026-11-23T12:00:00Z",
            "+026-11-23T12:00:00Z",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        // Arbitrary strings from the format's own characters never panic.
        let alphabet = ['0', '1', '9', '-', ':', 'T', 'Z', '+', '.', 'é'];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..(seed % 30) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let _ = parse(&s);
        }
    }
}
