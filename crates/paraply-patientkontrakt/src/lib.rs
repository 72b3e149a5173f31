//! The patientkontrakt (DOMAIN.md §3–§5) as a domain plugged into the generic FHIR engine.
//! Its judgements are pure — no IO, no async, no database:
//! - [`rules`]: the cross-resource invariants I1–I10, judged over one patient's state;
//! - [`agreed_time`]: how an `AppointmentResponse` changes the Appointment it answers;
//! - [`scheduling`]: booking times (free, held and busy Slots; a found time);
//! - [`sip`]: the SIP workflow (meeting answers and moves, a withdrawn consent's hold);
//! - [`unified_plan`]: the `$patientkontrakt` document (a FHIR `document` Bundle);
//! - [`followup`]: the follow-up facts each write leaves and the measures M1–M4 over them.
//!
//! [`extensions`] plugs them into `paraply-core` (the only module that reads the database,
//! inside the engine's write transaction or under the caller's access rules): the profile
//! checks and conformance catalog of `paraply-profiles`, the rules and agreed times as a
//! write rule, and the `$patientkontrakt` operation. It decides no access and speaks no HTTP.

pub mod agreed_time;
mod engine;
pub mod followup;
mod json;
mod kind;
pub mod rules;
pub mod scheduling;
pub mod sip;
pub mod unified_plan;

pub use engine::{extensions, record_missing_followup};
pub use rules::RuleSettings;
