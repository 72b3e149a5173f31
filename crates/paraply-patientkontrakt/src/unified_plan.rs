//! The unified view, `GET [base]/Patient/{id}/$patientkontrakt` (DOMAIN.md §5): a FHIR R4
//! `document` Bundle, patterned on the International Patient Summary's `$summary`. Its
//! first entry is a `Composition` whose sections say, in Swedish a patient can read,
//! what the patientkontrakt holds; then every resource the sections point at, once.
//!
//! What the caller may see is decided before this module (the `resources` and
//! `directory` passed in); what a patient or relative may *read* is narrowed here, for
//! [`Audience::Patient`] and [`Audience::Relative`] (DOMAIN.md I14):
//! - every `note` (and CarePlan `activity.progress`) annotation marked internal with the
//!   `codes::NOTE_VISIBILITY_URL` extension is dropped from every resource placed;
//! - a resource labelled restricted or very restricted (`meta.security` code `R` or `V`
//!   of `v3-Confidentiality`) is left out altogether: such labels mark what care has not
//!   approved for the patient's eyes, and the document must not show it by other means.

mod sections;
mod words;

use std::collections::{HashMap, HashSet};

use paraply_fhir::codes;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::json::{
    list, normalize_reference, reference_at, resource_type, self_reference, status, text,
};
use crate::kind::is_umbrella;
use words::escape;
pub use words::swedish_time;

/// Paraply's code system for the sections of the patientkontrakt document.
pub const SECTION_SYSTEM: &str = "https://paraply.se/fhir/CodeSystem/patientkontrakt-section";

/// LOINC "Plan of care note", the Composition's type.
const LOINC: &str = "http://loinc.org";
const PLAN_OF_CARE_NOTE: &str = "18776-5";
const LIST_EMPTY_REASON: &str = "http://terminology.hl7.org/CodeSystem/list-empty-reason";
const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
const XHTML_NS: &str = "http://www.w3.org/1999/xhtml";

/// The types a document may pull from the directory (who, where, which unit).
const DIRECTORY_TYPES: &[&str] = &[
    "PractitionerRole",
    "Practitioner",
    "Organization",
    "Location",
    "HealthcareService",
];

/// Who reads the document; decided by the caller from the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    Patient,
    Relative,
    Staff,
}

/// The sections of the document, in order, each with its code in [`SECTION_SYSTEM`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Overenskommelse,
    FastaKontakter,
    OverenskomnaTider,
    Planer,
    Sip,
    Narstaende,
    Kontaktvagar,
}

impl Section {
    pub const ALL: [Section; 7] = [
        Section::Overenskommelse,
        Section::FastaKontakter,
        Section::OverenskomnaTider,
        Section::Planer,
        Section::Sip,
        Section::Narstaende,
        Section::Kontaktvagar,
    ];

    /// The code in [`SECTION_SYSTEM`].
    pub fn code(self) -> &'static str {
        match self {
            Section::Overenskommelse => "overenskommelse",
            Section::FastaKontakter => "fasta-kontakter",
            Section::OverenskomnaTider => "overenskomna-tider",
            Section::Planer => "planer",
            Section::Sip => "sip",
            Section::Narstaende => "narstaende",
            Section::Kontaktvagar => "kontaktvagar",
        }
    }

    /// The section title, also the code's display.
    pub fn title(self) -> &'static str {
        match self {
            Section::Overenskommelse => "Överenskommelse",
            Section::FastaKontakter => "Fasta kontakter",
            Section::OverenskomnaTider => "Överenskomna tider",
            Section::Planer => "Planer",
            Section::Sip => "Samordnad individuell plan (SIP)",
            Section::Narstaende => "Närstående",
            Section::Kontaktvagar => "Kontaktvägar",
        }
    }
}

/// What the document is made from, all read by the caller.
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    /// Public FHIR base URL, e.g. `https://paraply.example.se/fhir` (fullUrl = base + `/Type/id`).
    pub base: &'a str,
    pub patient: &'a Value,
    /// The patient's current CarePlan, CareTeam, Goal, Appointment, AppointmentResponse,
    /// Task, Consent, RelatedPerson and Communication resources the caller may see.
    pub resources: &'a [Value],
    /// The PractitionerRole, Practitioner, Organization, Location and HealthcareService
    /// resources [`directory_references`] asked for that the caller may see.
    pub directory: &'a [Value],
    /// The window of appointments shown (the caller's default: now to +180 days).
    pub period: (OffsetDateTime, OffsetDateTime),
    pub audience: Audience,
    pub now: OffsetDateTime,
    /// A fresh uuid, for `Bundle.identifier` and the Composition's id.
    pub document_id: &'a str,
}

/// The references (`Type/id`) the document wants resolved into the directory: every
/// reference to a PractitionerRole, Practitioner, Organization, Location or
/// HealthcareService anywhere in `resources`, deduplicated in first-seen order.
/// Call it again on the directory resources found (a PractitionerRole names its
/// Practitioner, Organization, Location and HealthcareService) until nothing new comes.
pub fn directory_references(resources: &[Value]) -> Vec<String> {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    for resource in resources {
        collect_references(resource, &mut |reference| {
            let wanted = reference
                .split('/')
                .next()
                .is_some_and(|kind| DIRECTORY_TYPES.contains(&kind));
            if wanted && seen.insert(reference.clone()) {
                found.push(reference);
            }
        });
    }
    found
}

/// Every `reference` string inside `value`, normalized to `Type/id`.
fn collect_references(value: &Value, sink: &mut dyn FnMut(String)) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                if key == "reference"
                    && let Some(reference) = inner.as_str().and_then(normalize_reference)
                {
                    sink(reference);
                    continue;
                }
                collect_references(inner, sink);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_references(item, sink)),
        _ => {}
    }
}

/// The `$patientkontrakt` document: a FHIR R4 Bundle of type `document`.
pub fn document(input: &PlanInput) -> Value {
    let narrowed = narrow(input);
    let doc = Doc::new(input, &narrowed);
    let sections: Vec<SectionOut> = Section::ALL
        .into_iter()
        .map(|section| doc.section(section))
        .collect();

    // The Patient first, then what the sections point at, then the directory resources
    // those name (transitively: a PractitionerRole's Practitioner and unit).
    let mut placed: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    let mut place = |reference: &str, placed: &mut Vec<String>| {
        if doc.index.contains_key(reference) && seen.insert(reference.to_owned()) {
            placed.push(reference.to_owned());
        }
    };
    place(&doc.patient_ref, &mut placed);
    if let Some(author) = &doc.author {
        place(author, &mut placed);
    }
    for section in &sections {
        for entry in &section.entries {
            place(entry, &mut placed);
        }
    }
    let mut next = 0;
    while next < placed.len() {
        let resource = doc.index[placed[next].as_str()];
        for reference in directory_references(std::slice::from_ref(resource)) {
            place(&reference, &mut placed);
        }
        next += 1;
    }

    let composition = doc.composition(&sections);
    let mut entries = vec![json!({
        "fullUrl": format!("urn:uuid:{}", input.document_id),
        "resource": composition,
    })];
    entries.extend(placed.iter().map(|reference| {
        json!({"fullUrl": doc.full_url(reference), "resource": doc.index[reference.as_str()]})
    }));
    json!({
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{}", input.document_id)},
        "type": "document",
        "timestamp": instant(input.now),
        "entry": entries,
    })
}

fn instant(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// Whether a patient or relative may see the resource at all (see the module doc).
fn restricted(resource: &Value) -> bool {
    resource.get("meta").is_some_and(|meta| {
        list(meta, "security").iter().any(|label| {
            text(label, "system") == Some(CONFIDENTIALITY)
                && matches!(text(label, "code"), Some("R" | "V"))
        })
    })
}

/// Drops internal annotations (I14) from `note` and `progress` at any depth, and the
/// element itself when nothing is left (FHIR allows no empty arrays).
fn drop_internal_notes(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for key in ["note", "progress"] {
                if let Some(Value::Array(notes)) = object.get_mut(key) {
                    notes.retain(|note| !is_internal_note(note));
                    if notes.is_empty() {
                        object.remove(key);
                    }
                }
            }
            object.values_mut().for_each(drop_internal_notes);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_internal_notes),
        _ => {}
    }
}

fn is_internal_note(note: &Value) -> bool {
    list(note, "extension").iter().any(|extension| {
        text(extension, "url") == Some(codes::NOTE_VISIBILITY_URL)
            && text(extension, "valueCode") == Some("internal")
    })
}

/// The resources the document may use, copied and narrowed for the audience; an
/// entered-in-error resource is never shown to anyone.
fn narrow(input: &PlanInput) -> Vec<Value> {
    let narrowing = input.audience != Audience::Staff;
    std::iter::once(input.patient)
        .chain(input.resources)
        .chain(input.directory)
        .filter(|resource| status(resource) != Some("entered-in-error"))
        // The patient's own record is the document's subject: never left out.
        .filter(|resource| !narrowing || !restricted(resource) || *resource == input.patient)
        .map(|resource| {
            let mut copy = resource.clone();
            if narrowing {
                drop_internal_notes(&mut copy);
            }
            copy
        })
        .collect()
}

/// One section's content before it becomes JSON.
struct SectionOut {
    section: Section,
    /// The resources it points at (`Type/id`), in reading order.
    entries: Vec<String>,
    /// XHTML content inside the narrative `div`; `None` when the section is empty.
    html: Option<String>,
    /// What the narrative says when the section is empty.
    empty_text: &'static str,
}

struct Doc<'d> {
    input: &'d PlanInput<'d>,
    /// Every resource the document may use, by `Type/id`, narrowed for the audience.
    index: HashMap<String, &'d Value>,
    /// The same, in input order (patient, resources, directory), for stable listings.
    ordered: Vec<&'d Value>,
    patient_ref: String,
    /// The umbrella plan shown: the active one, else one on hold, else a draft.
    umbrella: Option<&'d Value>,
    /// The Composition's author: the umbrella's author when the document holds it.
    author: Option<String>,
    /// The reader is the patient ("du"), not someone reading about them.
    to_the_patient: bool,
}

impl<'d> Doc<'d> {
    fn new(input: &'d PlanInput<'d>, narrowed: &'d [Value]) -> Doc<'d> {
        let ordered: Vec<&Value> = narrowed.iter().collect();
        let index: HashMap<String, &Value> = ordered
            .iter()
            .filter_map(|resource| Some((self_reference(resource)?, *resource)))
            .collect();
        let patient_ref = self_reference(input.patient).unwrap_or_default();
        let umbrella = ["active", "on-hold", "draft"].iter().find_map(|wanted| {
            ordered
                .iter()
                .copied()
                .find(|plan| is_umbrella(plan) && status(plan) == Some(*wanted))
        });
        let author = umbrella
            .and_then(|plan| reference_at(plan, "author"))
            .filter(|author| index.contains_key(author));
        Doc {
            input,
            index,
            ordered,
            patient_ref,
            umbrella,
            author,
            to_the_patient: input.audience == Audience::Patient,
        }
    }

    fn full_url(&self, reference: &str) -> String {
        format!("{}/{reference}", self.input.base.trim_end_matches('/'))
    }

    fn get(&self, reference: &str) -> Option<&'d Value> {
        self.index.get(reference).copied()
    }

    fn of_type(&self, kind: &'static str) -> impl Iterator<Item = &'d Value> + use<'d> {
        self.ordered
            .clone()
            .into_iter()
            .filter(move |resource| resource_type(resource) == Some(kind))
    }

    fn composition(&self, sections: &[SectionOut]) -> Value {
        let author = self.author.as_deref().unwrap_or(&self.patient_ref);
        let mut composition = json!({
            "resourceType": "Composition",
            "id": self.input.document_id,
            "status": "final",
            "type": {
                "coding": [{"system": LOINC, "code": PLAN_OF_CARE_NOTE, "display": "Plan of care note"}],
                "text": "Patientkontrakt"
            },
            "subject": self.reference_json(&self.patient_ref),
            "date": instant(self.input.now),
            "author": [self.reference_json(author)],
            "title": "Patientkontrakt",
            "section": sections.iter().map(|section| self.section_json(section)).collect::<Vec<_>>(),
        });
        if let Some(umbrella) = self.umbrella.and_then(self_reference) {
            composition["event"] = json!([{"detail": [self.reference_json(&umbrella)]}]);
        }
        composition
    }

    /// A Reference to a placed resource by its fullUrl: the Composition's own fullUrl is a
    /// `urn:uuid:`, against which a relative reference would not resolve.
    fn reference_json(&self, reference: &str) -> Value {
        let mut json = json!({"reference": self.full_url(reference)});
        if let Some(name) = self.get(reference).and_then(|r| self.display_name(r)) {
            json["display"] = json!(name);
        }
        json
    }

    fn section_json(&self, out: &SectionOut) -> Value {
        let body = match &out.html {
            Some(html) => html.clone(),
            None => format!("<p>{}</p>", escape(out.empty_text)),
        };
        let mut section = json!({
            "title": out.section.title(),
            "code": {"coding": [{"system": SECTION_SYSTEM, "code": out.section.code(), "display": out.section.title()}]},
            "text": {"status": "generated", "div": format!("<div xmlns=\"{XHTML_NS}\">{body}</div>")},
        });
        if out.entries.is_empty() {
            section["emptyReason"] = json!({
                "coding": [{"system": LIST_EMPTY_REASON, "code": "nilknown", "display": "Nil Known"}]
            });
        } else {
            section["entry"] = out
                .entries
                .iter()
                .map(|entry| json!({"reference": self.full_url(entry)}))
                .collect();
        }
        section
    }

    fn section(&self, section: Section) -> SectionOut {
        let mut out = SectionOut {
            section,
            entries: Vec::new(),
            html: None,
            empty_text: "",
        };
        match section {
            Section::Overenskommelse => self.overenskommelse(&mut out),
            Section::FastaKontakter => self.fasta_kontakter(&mut out),
            Section::OverenskomnaTider => self.overenskomna_tider(&mut out),
            Section::Planer => self.planer(&mut out),
            Section::Sip => self.sip(&mut out),
            Section::Narstaende => self.narstaende(&mut out),
            Section::Kontaktvagar => self.kontaktvagar(&mut out),
        }
        if out.entries.is_empty() {
            out.html = None;
        }
        out
    }
}

#[cfg(test)]
mod tests;
