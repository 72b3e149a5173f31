//! Demo data for `paraply demo`: a small, realistic Swedish patientkontrakt world, loaded
//! through the public FHIR engine as one transaction so it is validated like any client's data.
//!
//! `demo/demo-bundle.json` holds Region Stockholm, Solna stad and Sundbybergs stad (huvudmän),
//! their units with HealthcareServices (phone, opening hours), staff with HSA-ids, and three
//! patients showing every part of a patientkontrakt (DOMAIN.md §1, §3): Tolvan Tolvansson
//! (elderly, municipal home care, a SIP, his daughter Lisa as consented relative, three fixed
//! contacts, a booked and a proposed agreed time), Eva Lindqvist (cancer care, Min vårdplan,
//! a kontaktsjuksköterska) and Elias Karlsson (young adult in psychiatric care, a SIP with the
//! school and social services, Försäkringskassan as another actor, a request for another time),
//! and the bookable times (Schedule and free Slots, 18–27 January 2027) of the vårdcentral,
//! the oncology clinic and the psychiatric clinic, for `Appointment/$find` and `$hold`.
//! It is a reviewed JSON file rather than Rust code so the data can be read and changed as
//! what a client would send; every entry is a PUT to a fixed id, so loading twice overwrites.

use paraply_core::{Fhir, FhirRequest, Method, Outcome};

use crate::ServerError;

const DEMO_BUNDLE: &str = include_str!("../demo/demo-bundle.json");
const MARKER: &str = "Patient/demo-tolvan";

/// Loads the demo data through `fhir` (the server's engine, so the profiles and rules
/// apply) unless it is already there; returns how many resources were written.
pub async fn load_demo_data(fhir: &Fhir) -> Result<usize, ServerError> {
    if fhir
        .handle(FhirRequest::new(Method::Get, MARKER))
        .await
        .is_ok()
    {
        return Ok(0);
    }
    let mut request = FhirRequest::new(Method::Post, "");
    request.body =
        Some(serde_json::from_str(DEMO_BUNDLE).map_err(|e| ServerError::Demo(e.to_string()))?);
    match fhir.handle(request).await {
        Ok(Outcome::BundleResponse { entries, .. }) => Ok(entries.len()),
        Ok(_) => Err(ServerError::Demo(
            "unexpected answer to the demo transaction".into(),
        )),
        Err(error) => Err(ServerError::Demo(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use paraply_fhir::codes::profile;
    use serde_json::Value;

    use super::DEMO_BUNDLE;

    /// The profiles Paraply defines; a claim of anything else is a typo.
    const PROFILES: &[&str] = profile::ALL;

    #[test]
    fn every_demo_resource_is_valid_r4_put_at_its_own_id_and_claims_known_profiles() {
        let bundle: Value = serde_json::from_str(DEMO_BUNDLE).unwrap();
        let entries = bundle["entry"].as_array().unwrap();
        let mut claimed = Vec::new();
        for entry in entries {
            let resource = &entry["resource"];
            let key = format!(
                "{}/{}",
                resource["resourceType"].as_str().unwrap(),
                resource["id"].as_str().unwrap()
            );
            assert_eq!(entry["request"]["method"], "PUT", "{key}");
            assert_eq!(entry["request"]["url"], key.as_str());
            if let Err(invalid) = paraply_fhir::validate(resource) {
                panic!("{key}: {:?}", invalid.issues());
            }
            for url in resource["meta"]["profile"].as_array().into_iter().flatten() {
                let url = url.as_str().unwrap();
                assert!(PROFILES.contains(&url), "{key} claims {url}");
                claimed.push(url);
            }
            // R4 ctm-1: onBehalfOf only with a Practitioner member.
            for participant in resource["participant"].as_array().into_iter().flatten() {
                if !participant["onBehalfOf"].is_null() {
                    let member = participant["member"]["reference"].as_str().unwrap();
                    assert!(member.starts_with("Practitioner/"), "{key}: ctm-1");
                }
            }
        }
        // Every part of a patientkontrakt is shown (the demo has no spärr).
        for url in &PROFILES[..PROFILES.len() - 1] {
            assert!(claimed.contains(url), "nothing claims {url}");
        }
    }
}
