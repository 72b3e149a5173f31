//! Every word the PDF prints itself, in one table (ids in the style of Fluent message ids,
//! so the portal's message files can take the rows over), and dates in words.
//!
//! The sections' *content* is not here: it is the document's own narrative, which
//! `paraply-patientkontrakt` writes in Swedish.

use crate::Language;

/// A string the PDF prints; [`Message::text`] gives it in a language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    Title,
    Printed,
    Page,
    Missing,
    Overenskommelse,
    FastaKontakter,
    OverenskomnaTider,
    Planer,
    Sip,
    Narstaende,
    Kontaktvagar,
}

impl Message {
    /// `(id, Swedish, English)`: the one table. `{page}` and `{pages}` are placeholders.
    const fn row(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Message::Title => ("pdf-title", "Min plan", "My plan"),
            Message::Printed => ("pdf-printed", "Skriven ut", "Printed"),
            Message::Page => (
                "pdf-page",
                "Sida {page} av {pages}",
                "Page {page} of {pages}",
            ),
            Message::Missing => ("pdf-missing", "—", "—"),
            Message::Overenskommelse => (
                "pdf-section-overenskommelse",
                "Överenskommelse och mål",
                "Agreement and goals",
            ),
            Message::FastaKontakter => (
                "pdf-section-fasta-kontakter",
                "Fasta kontakter",
                "Named contacts",
            ),
            Message::OverenskomnaTider => (
                "pdf-section-overenskomna-tider",
                "Kommande tider",
                "Coming appointments",
            ),
            Message::Planer => ("pdf-section-planer", "Planer", "Plans"),
            Message::Sip => (
                "pdf-section-sip",
                "Samordnad individuell plan (SIP)",
                "Coordinated individual plan (SIP)",
            ),
            Message::Narstaende => ("pdf-section-narstaende", "Närstående", "Relatives"),
            Message::Kontaktvagar => (
                "pdf-section-kontaktvagar",
                "Vid frågor",
                "Where to turn with questions",
            ),
        }
    }

    /// The message id, for the portal's message files.
    #[cfg(test)]
    pub(crate) fn id(self) -> &'static str {
        self.row().0
    }

    pub(crate) fn text(self, language: Language) -> &'static str {
        let (_, sv, en) = self.row();
        match language {
            Language::Sv => sv,
            Language::En => en,
        }
    }

    /// The heading of a section of the document, by its code in the patientkontrakt
    /// section system; `None` for a code this crate does not know.
    pub(crate) fn section(code: &str) -> Option<Message> {
        Some(match code {
            "overenskommelse" => Message::Overenskommelse,
            "fasta-kontakter" => Message::FastaKontakter,
            "overenskomna-tider" => Message::OverenskomnaTider,
            "planer" => Message::Planer,
            "sip" => Message::Sip,
            "narstaende" => Message::Narstaende,
            "kontaktvagar" => Message::Kontaktvagar,
            _ => return None,
        })
    }
}

const MONTHS_SV: [&str; 12] = [
    "januari",
    "februari",
    "mars",
    "april",
    "maj",
    "juni",
    "juli",
    "augusti",
    "september",
    "oktober",
    "november",
    "december",
];
const MONTHS_EN: [&str; 12] = [
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

/// `10 april 2026` / `10 April 2026` for a FHIR date, dateTime or instant, on the
/// Swedish calendar (Europe/Stockholm); `None` when it is not one.
pub(crate) fn date(text: &str, language: Language) -> Option<String> {
    let (year, month, day) = stockholm_date(text)?;
    let months = match language {
        Language::Sv => &MONTHS_SV,
        Language::En => &MONTHS_EN,
    };
    let month = months.get(usize::try_from(month).ok()?.checked_sub(1)?)?;
    Some(format!("{day} {month} {year}"))
}

/// The calendar date in Sweden of a FHIR date or dateTime. A time with an offset is
/// moved to Swedish time (CET, CEST from the last Sunday of March to the last Sunday
/// of October, 01:00 UTC): a plan printed at 23:30 on 9 April shows 9 April, not
/// the UTC date. A date without a time is taken as written.
fn stockholm_date(text: &str) -> Option<(i64, i64, i64)> {
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if text.get(4..5) != Some("-") || text.get(7..8) != Some("-") {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if text.len() == 10 {
        return Some((year, month, day));
    }
    let (hour, minute) = (number(11..13)?, number(14..16)?);
    let offset = if text.ends_with('Z') {
        0
    } else {
        let sign = match text.get(text.len().checked_sub(6)?..text.len().checked_sub(5)?)? {
            "+" => 1,
            "-" => -1,
            _ => return None,
        };
        let at = text.len() - 5;
        sign * (number(at..at + 2)? * 60 + number(at + 3..at + 5)?)
    };
    let utc = days_from_civil(year, month, day) * 1440 + hour * 60 + minute - offset;
    let summer_from = last_sunday(year, 3) * 1440 + 60;
    let summer_to = last_sunday(year, 10) * 1440 + 60;
    let local = utc
        + if (summer_from..summer_to).contains(&utc) {
            120
        } else {
            60
        };
    Some(civil_from_days(local.div_euclid(1440)))
}

/// Days since 1970-01-01 of the last Sunday of a 31-day month.
fn last_sunday(year: i64, month: i64) -> i64 {
    let last = days_from_civil(year, month, 31);
    // 1970-01-01 was a Thursday: (days + 4) mod 7 is 0 on Sundays.
    last - (last + 4).rem_euclid(7)
}

/// Days since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_printed_in_words_on_swedish_time() {
        let cases = [
            ("2026-04-10T08:00:00Z", Language::Sv, "10 april 2026"),
            ("2026-04-10T08:00:00Z", Language::En, "10 April 2026"),
            // 22:30 UTC in summer is already the next day in Sweden.
            ("2026-06-30T22:30:00Z", Language::Sv, "1 juli 2026"),
            // In winter the offset is one hour.
            ("2026-01-31T22:30:00Z", Language::Sv, "31 januari 2026"),
            ("2026-01-31T23:30:00Z", Language::Sv, "1 februari 2026"),
            (
                "2026-12-31T23:59:59.123+01:00",
                Language::Sv,
                "31 december 2026",
            ),
            ("2026-03-01", Language::Sv, "1 mars 2026"),
            (
                "2024-02-29T10:00:00+02:00",
                Language::En,
                "29 February 2024",
            ),
        ];
        for (text, language, expected) in cases {
            assert_eq!(date(text, language).as_deref(), Some(expected), "{text}");
        }
    }

    #[test]
    fn summer_time_starts_and_ends_on_the_last_sundays_at_one_utc() {
        // 2026: summer time from 29 March to 25 October.
        assert_eq!(stockholm_date("2026-03-29T00:59:00Z"), Some((2026, 3, 29)));
        assert_eq!(stockholm_date("2026-10-24T22:30:00Z"), Some((2026, 10, 25)));
        assert_eq!(stockholm_date("2026-10-25T22:30:00Z"), Some((2026, 10, 25)));
    }

    #[test]
    fn what_is_not_a_date_gives_none() {
        for text in [
            "",
            "2026",
            "2026-13-01",
            "idag",
            "2026-04-10T08:00",
            "2026-04-10Tx",
        ] {
            assert_eq!(date(text, Language::Sv), None, "{text}");
        }
    }

    #[test]
    fn every_message_has_an_id_and_both_languages() {
        let all = [
            Message::Title,
            Message::Printed,
            Message::Page,
            Message::Missing,
            Message::Overenskommelse,
            Message::FastaKontakter,
            Message::OverenskomnaTider,
            Message::Planer,
            Message::Sip,
            Message::Narstaende,
            Message::Kontaktvagar,
        ];
        let mut ids: Vec<&str> = all.iter().map(|m| m.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len(), "message ids are unique");
        for message in all {
            assert!(!message.text(Language::Sv).is_empty());
            assert!(!message.text(Language::En).is_empty());
        }
    }
}
