//! The patientkontrakt's domain logic (DOMAIN.md §3–§5), pure: no IO, no async, no
//! database. It owns
//! - [`rules`]: the cross-resource invariants I1–I10, judged over one patient's state;
//! - [`agreed_time`]: how an `AppointmentResponse` changes the Appointment it answers;
//! - [`unified_plan`]: the `$patientkontrakt` document (a FHIR `document` Bundle).
//!
//! It does not load anything, decide who may see what, or speak HTTP: the caller reads
//! the resources (inside the write transaction for the rules), passes them in as
//! `serde_json::Value`, and turns the answers into writes, 422s and responses.

pub mod agreed_time;
mod json;
mod kind;
pub mod rules;
pub mod unified_plan;
