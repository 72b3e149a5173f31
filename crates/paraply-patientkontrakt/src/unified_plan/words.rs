//! Swedish words for codes, dates and times in the document's narrative, and XHTML
//! escaping. Everything a patient reads passes through here.

use time::{Date, Month, OffsetDateTime, UtcOffset, Weekday};

/// Text escaped for XHTML element content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

pub(crate) fn fast_kontakt_role(code: &str) -> &'static str {
    match code {
        "1" => "Fast vårdkontakt",
        "2" => "Fast läkarkontakt",
        "3" => "Fast omsorgskontakt",
        "4" => "Fast vårdkontakt med samordningsansvar",
        _ => "Fast kontakt",
    }
}

/// The national plan types (GetCarePlans), in words.
pub(crate) fn plan_type(code: &str) -> &'static str {
    match code {
        "SIP" => "Samordnad individuell plan (SIP)",
        "SPLPTLRV" => "Samordnad plan vid utskrivning från psykiatrisk tvångsvård",
        "SPU" => "Samordnad plan vid utskrivning från sjukhus",
        "VP" => "Vårdplan",
        "HP" => "Habiliteringsplan",
        "RP" => "Rehabiliteringsplan",
        "GP" => "Genomförandeplan",
        "SVP" => "Standardiserat vårdförlopp",
        _ => "Plan",
    }
}

pub(crate) fn plan_status(status: &str) -> &'static str {
    match status {
        "draft" => "Utkast",
        "active" => "Gäller",
        "on-hold" => "Pausad",
        "revoked" => "Avbruten",
        "completed" => "Avslutad",
        _ => "Okänd status",
    }
}

pub(crate) fn goal_status(status: &str) -> &'static str {
    match status {
        "proposed" => "Föreslaget",
        "planned" => "Planerat",
        "accepted" => "Överenskommet",
        "active" => "Pågår",
        "on-hold" => "Pausat",
        "completed" => "Uppnått",
        "cancelled" => "Avbrutet",
        "rejected" => "Inte aktuellt",
        _ => "Okänd status",
    }
}

pub(crate) fn task_status(status: &str) -> &'static str {
    match status {
        "draft" => "Utkast",
        "requested" => "Beställd",
        "received" => "Mottagen",
        "accepted" => "Accepterad",
        "rejected" => "Avvisad",
        "ready" => "Klar att påbörja",
        "cancelled" => "Avbruten",
        "in-progress" => "Pågår",
        "on-hold" => "Pausad",
        "failed" => "Kunde inte genomföras",
        "completed" => "Klar",
        _ => "Okänd status",
    }
}

pub(crate) fn sip_role(code: &str) -> &'static str {
    match code {
        "sip-samordnare" => "SIP-samordnare",
        "insatsansvarig" => "Ansvarig för insats",
        "narstaende" => "Närstående",
        "annan-aktor" => "Annan aktör",
        _ => "Deltagare",
    }
}

/// The patient's side of an appointment, in words, for the reader: the patient is
/// "du"; a relative or staff member reads about "patienten".
pub(crate) fn appointment_state(
    appointment_status: &str,
    patient_status: Option<&str>,
    to_the_patient: bool,
) -> &'static str {
    match (appointment_status, patient_status) {
        ("cancelled", _) | (_, Some("declined")) => "Avbokad",
        ("fulfilled" | "arrived" | "checked-in", _) => "Genomförd",
        ("noshow", _) => "Uteblev",
        (_, Some("tentative")) if to_the_patient => "Du har bett om en annan tid",
        (_, Some("tentative")) => "Patienten har bett om en annan tid",
        ("booked", _) => "Bokad",
        (_, Some("accepted")) if to_the_patient => {
            "Du har tackat ja – väntar på bekräftelse från mottagningen"
        }
        (_, Some("accepted")) => "Patienten har tackat ja – väntar på bekräftelse",
        _ if to_the_patient => "Föreslagen – väntar på ditt svar",
        _ => "Föreslagen – väntar på patientens svar",
    }
}

fn weekday(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "måndag",
        Weekday::Tuesday => "tisdag",
        Weekday::Wednesday => "onsdag",
        Weekday::Thursday => "torsdag",
        Weekday::Friday => "fredag",
        Weekday::Saturday => "lördag",
        Weekday::Sunday => "söndag",
    }
}

fn month(month: Month) -> &'static str {
    match month {
        Month::January => "januari",
        Month::February => "februari",
        Month::March => "mars",
        Month::April => "april",
        Month::May => "maj",
        Month::June => "juni",
        Month::July => "juli",
        Month::August => "augusti",
        Month::September => "september",
        Month::October => "oktober",
        Month::November => "november",
        Month::December => "december",
    }
}

/// FHIR `daysOfWeek` codes in week order.
const DAYS: [(&str, &str); 7] = [
    ("mon", "måndag"),
    ("tue", "tisdag"),
    ("wed", "onsdag"),
    ("thu", "torsdag"),
    ("fri", "fredag"),
    ("sat", "lördag"),
    ("sun", "söndag"),
];

/// Days of the week in words: a run of three or more as "måndag–fredag".
pub(crate) fn days(codes: &[&str]) -> String {
    let mut indices: Vec<usize> = codes
        .iter()
        .filter_map(|code| DAYS.iter().position(|(c, _)| c == code))
        .collect();
    indices.sort_unstable();
    indices.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j + 1] == indices[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}–{}", DAYS[indices[i]].1, DAYS[indices[j]].1));
        } else {
            parts.extend(indices[i..=j].iter().map(|&d| DAYS[d].1.to_owned()));
        }
        i = j + 1;
    }
    parts.join(", ")
}

/// `08:00:00` → `08:00`.
pub(crate) fn clock(time: &str) -> &str {
    time.get(..5).unwrap_or(time)
}

/// Swedish local time (CET/CEST, EU rule: summer time from the last Sunday of March to
/// the last Sunday of October, switching at 01:00 UTC), so a time stored in UTC reads as
/// the clock on the patient's wall.
pub fn swedish_time(instant: OffsetDateTime) -> OffsetDateTime {
    let utc = instant.to_offset(UtcOffset::UTC);
    let year = utc.year();
    let switch = |month: Month| {
        last_sunday(year, month).map(|day| day.with_hms(1, 0, 0).map(|t| t.assume_utc()))
    };
    let summer = match (switch(Month::March), switch(Month::October)) {
        (Some(Ok(start)), Some(Ok(end))) => utc >= start && utc < end,
        _ => false,
    };
    let hours = if summer { 2 } else { 1 };
    match UtcOffset::from_hms(hours, 0, 0) {
        Ok(offset) => utc.to_offset(offset),
        Err(_) => utc,
    }
}

fn last_sunday(year: i32, month: Month) -> Option<Date> {
    let last = Date::from_calendar_date(year, month, month.length(year)).ok()?;
    let back = last.weekday().number_days_from_sunday();
    last.checked_sub(time::Duration::days(i64::from(back)))
}

/// `tisdag 14 april 2026 kl. 09:30`, in Swedish time.
pub(crate) fn date_time(instant: OffsetDateTime) -> String {
    let local = swedish_time(instant);
    format!(
        "{} {} {} {} kl. {:02}:{:02}",
        weekday(local.weekday()),
        local.day(),
        month(local.month()),
        local.year(),
        local.hour(),
        local.minute()
    )
}

/// `14 april 2026`, from a FHIR date or dateTime (the date part as written).
pub(crate) fn date(text: &str) -> String {
    let parsed = text.get(..10).and_then(|day| {
        Date::parse(
            day,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .ok()
    });
    match parsed {
        Some(day) => format!("{} {} {}", day.day(), month(day.month()), day.year()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_read_as_swedish_wall_clock_summer_and_winter() {
        assert_eq!(
            date_time(datetime!(2026-04-14 07:30 UTC)),
            "tisdag 14 april 2026 kl. 09:30"
        );
        assert_eq!(
            date_time(datetime!(2026-01-12 08:00 UTC)),
            "måndag 12 januari 2026 kl. 09:00"
        );
        // The night summer time starts (29 March 2026, 01:00 UTC).
        assert_eq!(
            date_time(datetime!(2026-03-29 00:59 UTC)),
            "söndag 29 mars 2026 kl. 01:59"
        );
        assert_eq!(
            date_time(datetime!(2026-03-29 01:00 UTC)),
            "söndag 29 mars 2026 kl. 03:00"
        );
    }

    #[test]
    fn runs_of_days_read_as_a_span() {
        assert_eq!(days(&["mon", "tue", "wed", "thu", "fri"]), "måndag–fredag");
        assert_eq!(days(&["fri", "mon"]), "måndag, fredag");
        assert_eq!(
            days(&["mon", "tue", "thu", "fri", "sat"]),
            "måndag, tisdag, torsdag–lördag"
        );
    }

    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(
            escape("<b>\"A&O\"</b>"),
            "&lt;b&gt;&quot;A&amp;O&quot;&lt;/b&gt;"
        );
    }
}
