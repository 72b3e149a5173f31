//! FHIR dates as ranges: `2026` is the whole year, `2026-05-03` the whole day,
//! `2026-05-03T10:00:00+01:00` that second. Search compares ranges (R4 search §2.1.1.2.3).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// A half-open range `[start, end)` in microseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateRange {
    pub start: i64,
    pub end: i64,
}

impl DateRange {
    /// The open-ended bounds of a Period with a missing start or end.
    pub const MIN: i64 = i64::MIN;
    pub const MAX: i64 = i64::MAX;
}

fn micros(at: OffsetDateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos() / 1000;
    i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

/// Parses a FHIR `date`, `dateTime` or `instant` into the range its precision covers. Values
/// without a time zone are read as UTC.
pub fn parse_date_range(text: &str) -> Option<DateRange> {
    let (date_part, time_part) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut fields = date_part.split('-');
    let year: i32 = fields.next()?.parse().ok()?;
    if date_part.len() < 4 || !(1..=9999).contains(&year) {
        return None;
    }
    let month = fields
        .next()
        .map(|m| m.parse::<u8>().ok().and_then(|m| Month::try_from(m).ok()));
    let day = fields.next().map(|d| d.parse::<u8>().ok());
    if fields.next().is_some() {
        return None;
    }
    let utc = |date: Date| PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc();
    match (month, day, time_part) {
        (None, None, None) => {
            let start = Date::from_calendar_date(year, Month::January, 1).ok()?;
            let end = Date::from_calendar_date(year + 1, Month::January, 1).ok()?;
            Some(DateRange {
                start: micros(utc(start)),
                end: micros(utc(end)),
            })
        }
        (Some(Some(month)), None, None) => {
            let start = Date::from_calendar_date(year, month, 1).ok()?;
            let (next_year, next_month) = if month == Month::December {
                (year + 1, Month::January)
            } else {
                (year, month.next())
            };
            let end = Date::from_calendar_date(next_year, next_month, 1).ok()?;
            Some(DateRange {
                start: micros(utc(start)),
                end: micros(utc(end)),
            })
        }
        (Some(Some(month)), Some(Some(day)), None) => {
            let start = Date::from_calendar_date(year, month, day).ok()?;
            let end = start.next_day()?;
            Some(DateRange {
                start: micros(utc(start)),
                end: micros(utc(end)),
            })
        }
        (Some(Some(month)), Some(Some(day)), Some(time)) => {
            let date = Date::from_calendar_date(year, month, day).ok()?;
            parse_time_range(date, time)
        }
        _ => None,
    }
}

/// `hh:mm[:ss[.fff]][Z|±hh:mm]`; the range is the precision written (minute or second;
/// fractions count as exact).
fn parse_time_range(date: Date, text: &str) -> Option<DateRange> {
    let (clock, offset) = match text.find(['Z', '+', '-']) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    let offset = match offset {
        "" | "Z" => UtcOffset::UTC,
        sign_and_time => {
            let negative = sign_and_time.starts_with('-');
            let (h, m) = sign_and_time[1..].split_once(':')?;
            let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
            let (h, m) = if negative { (-h, -m) } else { (h, m) };
            UtcOffset::from_hms(h, m, 0).ok()?
        }
    };
    let mut parts = clock.split(':');
    let hour: u8 = parts.next()?.parse().ok()?;
    let minute: u8 = parts.next()?.parse().ok()?;
    let (second, nanos, width) = match parts.next() {
        None => (0u8, 0u32, 60_000_000i64),
        Some(seconds) => {
            let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
            let second: u8 = whole.parse().ok()?;
            if fraction.is_empty() {
                (second, 0, 1_000_000)
            } else {
                let digits: String = fraction.chars().take(9).collect();
                let scale = 10u32.pow(9 - u32::try_from(digits.len()).ok()?);
                (second, digits.parse::<u32>().ok()? * scale, 1)
            }
        }
    };
    if parts.next().is_some() {
        return None;
    }
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    let start = micros(PrimitiveDateTime::new(date, time).assume_offset(offset));
    Some(DateRange {
        start,
        end: start.saturating_add(width),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> (i64, i64) {
        let r = parse_date_range(text).unwrap_or_else(|| panic!("{text} should parse"));
        (r.start, r.end)
    }

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn precision_sets_the_width() {
        let (start, end) = range("2026-05-03");
        assert_eq!(end - start, DAY);
        let (start, end) = range("2026-02");
        assert_eq!(end - start, 28 * DAY);
        let (start, end) = range("2024");
        assert_eq!(end - start, 366 * DAY);
        let (start, end) = range("2026-05-03T10:00:00Z");
        assert_eq!(end - start, 1_000_000);
        let (start, end) = range("2026-05-03T10:00Z");
        assert_eq!(end - start, 60_000_000);
    }

    #[test]
    fn offsets_are_honoured() {
        assert_eq!(
            range("2026-05-03T10:00:00+02:00").0,
            range("2026-05-03T08:00:00Z").0
        );
        assert_eq!(
            range("2026-05-03T10:00:00.250Z").0,
            range("2026-05-03T10:00:00Z").0 + 250_000
        );
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            "",
            "26",
            "2026-13",
            "2026-02-30",
            "yesterday",
            "2026-05-03T25:00:00Z",
            "2026-05-03-01",
        ] {
            assert!(parse_date_range(bad).is_none(), "{bad}");
        }
    }
}
