//! Swedish wall-clock times as FHIR `dateTime`/`instant` text.
//!
//! Everything is computed from the reference date in the options, never from the system
//! clock, so a seed gives the same output on any day. Times carry the offset Sweden uses on
//! that date (CET +01:00, CEST +02:00 from the last Sunday of March to the last Sunday of
//! October) so that "09:00" is nine in the morning in Sweden all year round.

use time::{Date, Duration, Month, Weekday};

/// The last Sunday of a month (EU summer time starts and ends on one).
fn last_sunday(year: i32, month: Month) -> Option<Date> {
    let last = Date::from_calendar_date(year, month, month.length(year)).ok()?;
    let back = last.weekday().number_days_from_sunday();
    Some(last - Duration::days(i64::from(back)))
}

/// Whether daytime hours on `date` are summer time. (The switch happens at night, and the
/// generator only places events in daytime, so the day decides.)
fn summer_time(date: Date) -> bool {
    match (
        last_sunday(date.year(), Month::March),
        last_sunday(date.year(), Month::October),
    ) {
        (Some(start), Some(end)) => date >= start && date < end,
        _ => false,
    }
}

/// `YYYY-MM-DD`.
pub(crate) fn day(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// `YYYY-MM-DDThh:mm:00+0X:00` in Swedish local time (valid as `dateTime` and `instant`).
pub(crate) fn at(date: Date, hour: u8, minute: u8) -> String {
    let offset = if summer_time(date) { 2 } else { 1 };
    format!("{}T{hour:02}:{minute:02}:00+0{offset}:00", day(date))
}

/// The same day, or the following Monday if it falls on a weekend (clinics book weekdays).
pub(crate) fn weekday_on_or_after(date: Date) -> Date {
    match date.weekday() {
        Weekday::Saturday => date + Duration::days(2),
        Weekday::Sunday => date + Duration::days(1),
        _ => date,
    }
}

pub(crate) fn plus_days(date: Date, days: i64) -> Date {
    date + Duration::days(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn offsets_follow_swedish_summer_time() {
        assert_eq!(at(date!(2027 - 01 - 12), 9, 0), "2027-01-12T09:00:00+01:00");
        // Summer time 2027 runs from Sunday 28 March to Sunday 31 October.
        assert_eq!(at(date!(2027 - 03 - 27), 9, 0), "2027-03-27T09:00:00+01:00");
        assert_eq!(at(date!(2027 - 03 - 28), 9, 0), "2027-03-28T09:00:00+02:00");
        assert_eq!(at(date!(2027 - 10 - 30), 9, 0), "2027-10-30T09:00:00+02:00");
        assert_eq!(at(date!(2027 - 10 - 31), 9, 0), "2027-10-31T09:00:00+01:00");
    }

    #[test]
    fn weekends_move_to_monday() {
        assert_eq!(
            weekday_on_or_after(date!(2026 - 12 - 05)),
            date!(2026 - 12 - 07)
        );
        assert_eq!(
            weekday_on_or_after(date!(2026 - 12 - 04)),
            date!(2026 - 12 - 04)
        );
    }
}
