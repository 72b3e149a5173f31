//! Who a validated token speaks for.

use std::fmt;

use crate::scopes::Scopes;

/// The authenticated caller, built from a validated access token. Access rules (paraply-core)
/// decide what it may do; this crate only says who it is and which SMART scopes it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person logged in with citizen eID: a patient or a relative (DOMAIN.md §7).
    Citizen {
        /// From the issuer's personnummer claim; 12 digits with a valid check digit.
        personnummer: Personnummer,
        /// The issuer that vouched for it.
        issuer: String,
        /// Granted SMART scopes.
        scopes: Scopes,
    },
    /// A member of staff, acting within one assignment (unit + care provider).
    Staff {
        /// employeeHsaId.
        hsa_id: String,
        /// healthCareUnitHsaId of the current assignment.
        unit_hsa_id: String,
        /// healthCareProviderHsaId (vårdgivare) of the current assignment.
        care_provider_hsa_id: String,
        /// Role codes (`lakare`, `sjukskoterska`, …); empty when the claim is absent.
        roles: Vec<String>,
        /// Whom the issuer speaks for, from the configuration (`Organization/…`).
        huvudman: Option<String>,
        /// The issuer that vouched for it.
        issuer: String,
        /// Granted SMART scopes.
        scopes: Scopes,
    },
    /// A client acting on its own behalf (client-credentials grant, no user).
    System {
        /// The token's `client_id`.
        client_id: String,
        /// The issuer that vouched for it.
        issuer: String,
        /// Granted SMART scopes.
        scopes: Scopes,
    },
}

impl Principal {
    /// The issuer identifier that vouched for this principal.
    pub fn issuer(&self) -> &str {
        match self {
            Principal::Citizen { issuer, .. }
            | Principal::Staff { issuer, .. }
            | Principal::System { issuer, .. } => issuer,
        }
    }

    /// The SMART scopes granted to this principal.
    pub fn scopes(&self) -> &Scopes {
        match self {
            Principal::Citizen { scopes, .. }
            | Principal::Staff { scopes, .. }
            | Principal::System { scopes, .. } => scopes,
        }
    }
}

/// A Swedish personal identity number (or coordination number) in the 12-digit form
/// `YYYYMMDDNNNC`, with a valid Luhn check digit over the last ten digits.
///
/// `Debug` hides the number so that a logged `Principal` leaks no identity (docs/LOGGING.md).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Personnummer(String);

impl Personnummer {
    /// Parses the 12-digit form; `None` if it has another shape or a wrong check digit.
    pub fn parse(text: &str) -> Option<Personnummer> {
        let digits: Vec<u32> = text
            .chars()
            .map(|c| c.to_digit(10))
            .collect::<Option<_>>()?;
        if digits.len() != 12 || !text.is_ascii() {
            return None;
        }
        // Luhn over YYMMDDNNNC: from the left, weights 2,1,2,1,…
        let sum: u32 = digits[2..]
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                let p = if i % 2 == 0 { d * 2 } else { d };
                p / 10 + p % 10
            })
            .sum();
        sum.is_multiple_of(10)
            .then(|| Personnummer(text.to_owned()))
    }

    /// The 12 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Personnummer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Personnummer(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_personnummer_from_the_test_accounts() {
        for pnr in [
            "191212121212",
            "197001011233",
            "198505052384",
            "201703152387",
        ] {
            assert_eq!(
                Personnummer::parse(pnr).map(|p| p.0),
                Some(pnr.to_owned()),
                "{pnr}"
            );
        }
    }

    #[test]
    fn wrong_check_digit_or_shape_is_refused() {
        for bad in [
            "197001011234", // check digit should be 3
            "198505052382",
            "7001011233", // 10 digits
            "19700101-1233",
            "1970010112334",
            "",
            "19700101123٣", // non-ASCII digit
        ] {
            assert!(Personnummer::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn debug_does_not_reveal_the_number() {
        let p = Personnummer::parse("191212121212").unwrap();
        assert!(!format!("{p:?}").contains("1212"));
    }
}
