//! Demo data for `paraply demo`: a small Swedish patientkontrakt, loaded through the
//! public FHIR engine as one transaction so it is validated like any client's data.

use std::sync::Arc;

use paraply_core::{Fhir, FhirRequest, Method, Outcome};
use paraply_store::Store;

use crate::ServerError;

const DEMO_BUNDLE: &str = include_str!("../demo/demo-bundle.json");
const MARKER: &str = "Patient/demo-tolvan";

/// Loads the demo data unless it is already there; returns how many resources were written.
pub async fn load_demo_data(store: Arc<dyn Store>) -> Result<usize, ServerError> {
    let fhir = Fhir::new(store);
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
