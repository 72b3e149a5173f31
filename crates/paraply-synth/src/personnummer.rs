//! Valid, unique personnummer (Skatteverket SKV 704): `YYYYMMDDNNNC`, where `C` is the Luhn
//! check digit over the ten-digit form `YYMMDDNNN` and the last serial digit is odd for men.
//!
//! Numbers are not drawn at random: with a million patients random draws would repeat
//! (the birthday problem over ~35 000 dates × 1 000 serials). Instead patient `n` maps to a
//! slot by an affine permutation of the slot space, so every patient gets a different
//! number and patient `n` gets the same number whatever the population size. Patients and
//! relatives use disjoint serial ranges so they never collide with each other either.
//!
//! Synthetic numbers are real-shaped: any one may belong to a living person. They are
//! generated only for test servers, never for production data.

use time::{Date, Duration, Month};

use crate::rng::mix;

/// A generated personnummer with what it encodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Personnummer {
    /// Twelve digits, no hyphen: the form Paraply stores.
    pub(crate) value: String,
    pub(crate) birth_date: Date,
    pub(crate) male: bool,
}

/// A multiplier coprime with both slot-space sizes (it is a prime larger than both), so
/// `slot = (i * P + offset) mod size` is a bijection on `0..size`.
const PERMUTATION_PRIME: u128 = 2_654_435_761;

/// One class of people: its birth-date window and its serial range.
struct Space {
    first: Date,
    last: Date,
    serial_low: u64,
    serial_high: u64,
    /// Keeps the two classes' offsets independent for the same seed.
    salt: u64,
}

impl Space {
    fn days(&self) -> u64 {
        (self.last.to_julian_day() - self.first.to_julian_day() + 1) as u64
    }

    fn size(&self) -> u64 {
        self.days() * (self.serial_high - self.serial_low)
    }

    fn number(&self, seed: u64, index: u64) -> Personnummer {
        let size = self.size();
        let offset = u128::from(mix(seed ^ self.salt) % size);
        let slot = ((u128::from(index) * PERMUTATION_PRIME + offset) % u128::from(size)) as u64;
        let days = self.days();
        let birth_date = self.first + Duration::days((slot % days) as i64);
        let serial = self.serial_low + slot / days;
        from_parts(birth_date, serial)
    }
}

/// Patients are born 1920–2015 and use serials 001–799.
const PATIENTS: Space = Space {
    first: date(1920, Month::January, 1),
    last: date(2015, Month::December, 31),
    serial_low: 1,
    serial_high: 800,
    salt: 0x5041_5449_454E_5453,
};

/// Relatives are adults born 1930–2005 and use serials 800–999.
const RELATIVES: Space = Space {
    first: date(1930, Month::January, 1),
    last: date(2005, Month::December, 31),
    serial_low: 800,
    serial_high: 1000,
    salt: 0x5245_4C41_5449_5645,
};

/// Relatives per patient the numbering reserves room for.
pub(crate) const RELATIVES_PER_PATIENT: u64 = 2;

/// The largest population that still gets unique numbers (bounded by the relatives'
/// space: 27 759 days × 200 serials / 2 relatives per patient).
pub const MAX_PATIENTS: u64 = 2_000_000;

const fn date(year: i32, month: Month, day: u8) -> Date {
    match Date::from_calendar_date(year, month, day) {
        Ok(date) => date,
        Err(_) => panic!("invalid constant date"),
    }
}

/// Patient `index`'s personnummer.
pub(crate) fn patient(seed: u64, index: u64) -> Personnummer {
    PATIENTS.number(seed, index)
}

/// The personnummer of patient `patient`'s relative number `k` (`k < RELATIVES_PER_PATIENT`).
pub(crate) fn relative(seed: u64, patient: u64, k: u64) -> Personnummer {
    RELATIVES.number(seed, patient * RELATIVES_PER_PATIENT + k)
}

fn from_parts(birth_date: Date, serial: u64) -> Personnummer {
    let ten = format!(
        "{:02}{:02}{:02}{:03}",
        birth_date.year() % 100,
        u8::from(birth_date.month()),
        birth_date.day(),
        serial
    );
    let check = luhn_check_digit(&ten);
    Personnummer {
        value: format!("{}{}{}", birth_date.year() / 100, ten, check),
        birth_date,
        male: serial % 2 == 1,
    }
}

/// The Luhn check digit over a string of ASCII digits (weights 2, 1, 2, 1, … from the left).
fn luhn_check_digit(digits: &str) -> u32 {
    let sum: u32 = digits
        .bytes()
        .map(|b| u32::from(b - b'0'))
        .enumerate()
        .map(|(i, d)| {
            let weighted = if i % 2 == 0 { d * 2 } else { d };
            weighted / 10 + weighted % 10
        })
        .sum();
    (10 - sum % 10) % 10
}

/// Whether a twelve-digit personnummer has a real date and a correct check digit.
pub fn is_valid_personnummer(value: &str) -> bool {
    if value.len() != 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let field = |range: std::ops::Range<usize>| value[range].parse::<u32>().ok();
    let (Some(year), Some(month), Some(day)) = (field(0..4), field(4..6), field(6..8)) else {
        return false;
    };
    let real_date = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .zip(u8::try_from(day).ok())
        .is_some_and(|(m, d)| Date::from_calendar_date(year as i32, m, d).is_ok());
    real_date && luhn_check_digit(&value[2..11]).to_string() == value[11..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn luhn_matches_the_skatteverket_example() {
        // SKV 704's worked example: 811218-987 has check digit 6.
        assert_eq!(luhn_check_digit("811218987"), 6);
        assert!(is_valid_personnummer("191212121212"));
        assert!(!is_valid_personnummer("191212121213"));
        assert!(!is_valid_personnummer("191213321212"));
    }

    #[test]
    fn generated_numbers_are_valid_unique_and_carry_the_gender() {
        let mut seen = BTreeSet::new();
        for n in 0..20_000 {
            let p = patient(42, n);
            assert!(is_valid_personnummer(&p.value), "{}", p.value);
            assert_eq!(p.male, (p.value.as_bytes()[10] - b'0') % 2 == 1);
            assert!((1920..=2015).contains(&p.birth_date.year()));
            assert!(seen.insert(p.value));
        }
        for n in 0..10_000 {
            for k in 0..RELATIVES_PER_PATIENT {
                let r = relative(42, n, k);
                assert!(is_valid_personnummer(&r.value), "{}", r.value);
                assert!(seen.insert(r.value), "a relative shares a number");
            }
        }
    }

    #[test]
    fn max_patients_fits_both_spaces() {
        assert!(MAX_PATIENTS <= PATIENTS.size());
        assert!(MAX_PATIENTS * RELATIVES_PER_PATIENT <= RELATIVES.size());
        assert!(u128::from(PATIENTS.size()) < PERMUTATION_PRIME);
    }
}
