//! The `$patientkontrakt` document as the pages read it: its sections, the resources they
//! point at, and names for references. The document is the one call a page makes into the
//! domain; everything here is lookups in it, no IO.

use std::collections::HashMap;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One unified plan, indexed by `Type/id`.
pub(crate) struct PlanDocument {
    composition: Value,
    resources: HashMap<String, Value>,
    patient_reference: String,
}

/// One Composition section.
pub(crate) struct Section<'d> {
    /// Its code in Paraply's section code system (`overenskomna-tider`).
    pub code: &'d str,
    /// The Swedish narrative XHTML the domain wrote (escaped by it), `None` when absent.
    pub narrative: Option<&'d str>,
    pub entries: Vec<&'d str>,
}

/// An appointment as the patient sees it.
pub(crate) struct AppointmentView<'d> {
    pub id: &'d str,
    pub start: Option<OffsetDateTime>,
    /// `Appointment.status`.
    pub status: &'d str,
    /// The patient's own `participant.status`.
    pub patient_status: Option<&'d str>,
    pub what: Option<String>,
    pub sip_meeting: bool,
    pub with: Vec<String>,
    pub places: Vec<String>,
}

impl AppointmentView<'_> {
    /// Whether the patient's answer is still asked for: not booked by someone else's say,
    /// not over, not cancelled.
    pub fn answerable(&self) -> bool {
        matches!(self.status, "proposed" | "pending" | "booked")
            && self
                .start
                .is_none_or(|start| start > OffsetDateTime::now_utc())
    }

    pub fn waiting_for_answer(&self) -> bool {
        self.answerable() && self.patient_status.is_none_or(|s| s == "needs-action")
    }
}

impl PlanDocument {
    /// Reads a `document` Bundle; `None` when it has no Composition.
    pub fn from_bundle(bundle: &Value) -> Option<PlanDocument> {
        let mut resources = HashMap::new();
        let mut composition = None;
        for entry in bundle.get("entry")?.as_array()? {
            let Some(resource) = entry.get("resource") else {
                continue;
            };
            if text(resource, "resourceType") == Some("Composition") && composition.is_none() {
                composition = Some(resource.clone());
                continue;
            }
            if let Some(reference) = self_reference(resource) {
                resources.insert(reference, resource.clone());
            }
        }
        let composition = composition?;
        let patient_reference = composition
            .pointer("/subject/reference")
            .and_then(Value::as_str)
            .map(local)
            .unwrap_or_default()
            .to_owned();
        Some(PlanDocument {
            composition,
            resources,
            patient_reference,
        })
    }

    pub fn patient(&self) -> Option<&Value> {
        self.get(&self.patient_reference)
    }

    pub fn patient_reference(&self) -> &str {
        &self.patient_reference
    }

    /// The patient's name as they would write it.
    pub fn patient_name(&self) -> String {
        self.patient().and_then(human_name).unwrap_or_default()
    }

    pub fn get(&self, reference: &str) -> Option<&Value> {
        self.resources.get(reference)
    }

    pub fn sections(&self) -> Vec<Section<'_>> {
        list(&self.composition, "section")
            .iter()
            .map(|section| Section {
                code: section
                    .pointer("/code/coding/0/code")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                narrative: section.pointer("/text/div").and_then(Value::as_str),
                entries: list(section, "entry")
                    .iter()
                    .filter_map(|e| text(e, "reference"))
                    .map(local)
                    .collect(),
            })
            .collect()
    }

    fn entries_of(&self, code: &str) -> Vec<&str> {
        self.sections()
            .into_iter()
            .find(|s| s.code == code)
            .map(|s| s.entries)
            .unwrap_or_default()
    }

    /// The appointments of the "agreed times" section, earliest first.
    pub fn appointments(&self) -> Vec<AppointmentView<'_>> {
        let mut found: Vec<AppointmentView> = self
            .entries_of("overenskomna-tider")
            .into_iter()
            .filter(|r| r.starts_with("Appointment/"))
            .filter_map(|r| self.get(r))
            .filter_map(|appointment| self.appointment_view(appointment))
            .collect();
        found.sort_by_key(|a| a.start);
        found
    }

    pub fn appointment(&self, id: &str) -> Option<AppointmentView<'_>> {
        self.get(&format!("Appointment/{id}"))
            .and_then(|appointment| self.appointment_view(appointment))
    }

    fn appointment_view<'d>(&'d self, appointment: &'d Value) -> Option<AppointmentView<'d>> {
        let actors_of = |prefixes: &[&str]| -> Vec<String> {
            list(appointment, "participant")
                .iter()
                .filter_map(|p| p.get("actor"))
                .filter(|actor| {
                    text(actor, "reference")
                        .is_some_and(|r| prefixes.iter().any(|prefix| r.starts_with(prefix)))
                })
                .filter_map(|actor| self.name_of(actor))
                .collect()
        };
        let patient_status = list(appointment, "participant")
            .iter()
            .find(|p| {
                p.pointer("/actor/reference").and_then(Value::as_str)
                    == Some(self.patient_reference.as_str())
            })
            .and_then(|p| text(p, "status"));
        Some(AppointmentView {
            id: text(appointment, "id")?,
            start: text(appointment, "start").and_then(instant),
            status: text(appointment, "status").unwrap_or_default(),
            patient_status,
            what: text(appointment, "description")
                .map(str::to_owned)
                .or_else(|| {
                    list(appointment, "serviceType")
                        .iter()
                        .find_map(concept_text)
                }),
            sip_meeting: list(appointment, "serviceType")
                .iter()
                .flat_map(|c| list(c, "coding"))
                .any(|c| text(c, "code") == Some("sip-mote")),
            with: actors_of(&["PractitionerRole/", "Practitioner/"]),
            places: actors_of(&["Location/"]),
        })
    }

    /// Whom the patient can write to: the people of their fixed contacts, as
    /// `(PractitionerRole reference, "name, unit")`, each once.
    pub fn contacts(&self) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = Vec::new();
        for team in self
            .entries_of("fasta-kontakter")
            .into_iter()
            .filter_map(|r| self.get(r))
        {
            for member in list(team, "participant")
                .iter()
                .filter_map(|p| p.get("member"))
            {
                let Some(reference) = text(member, "reference") else {
                    continue;
                };
                if reference.starts_with("PractitionerRole/")
                    && !found.iter().any(|(r, _)| r == reference)
                {
                    let name = self.name_of(member).unwrap_or_else(|| reference.to_owned());
                    found.push((reference.to_owned(), name));
                }
            }
        }
        found
    }

    /// The patient's relatives (the "närstående" section), each with the consents in force
    /// that name them.
    pub fn relatives(&self) -> Vec<(&Value, Vec<&Value>)> {
        let entries = self.entries_of("narstaende");
        let consents: Vec<&Value> = entries
            .iter()
            .filter(|r| r.starts_with("Consent/"))
            .filter_map(|r| self.get(r))
            .collect();
        entries
            .iter()
            .filter(|r| r.starts_with("RelatedPerson/"))
            .filter_map(|r| Some((*r, self.get(r)?)))
            .map(|(reference, person)| {
                let theirs = consents
                    .iter()
                    .copied()
                    .filter(|consent| {
                        list(consent.get("provision").unwrap_or(&Value::Null), "actor")
                            .iter()
                            .any(|actor| {
                                actor
                                    .pointer("/reference/reference")
                                    .and_then(Value::as_str)
                                    == Some(reference)
                            })
                    })
                    .collect();
                (person, theirs)
            })
            .collect()
    }

    /// The patient's RelatedPerson record of the person with this personnummer.
    pub fn related_person_with(&self, personnummer: &str) -> Option<&Value> {
        self.relatives()
            .into_iter()
            .map(|(person, _)| person)
            .find(|person| {
                list(person, "identifier")
                    .iter()
                    .any(|id| text(id, "value") == Some(personnummer))
            })
    }

    /// Whether the relative with this personnummer may answer times for the patient: a
    /// consent in force naming them allows `book`.
    pub fn may_book(&self, personnummer: &str) -> bool {
        let Some(person) = self.related_person_with(personnummer) else {
            return false;
        };
        // A guardian acts for a child under 13 (the access rules end it on the birthday).
        let guardian = list(person, "relationship")
            .iter()
            .flat_map(|r| list(r, "coding"))
            .any(|coding| text(coding, "code") == Some("GUARD"));
        guardian
            || self
                .relatives()
                .into_iter()
                .filter(|(candidate, _)| std::ptr::eq(*candidate, person))
                .flat_map(|(_, consents)| consents)
                .any(|consent| {
                    list(consent.get("provision").unwrap_or(&Value::Null), "action")
                        .iter()
                        .flat_map(|action| list(action, "coding"))
                        .any(|coding| text(coding, "code") == Some("book"))
                })
    }

    /// The patient's goals (the agreement's section): the umbrella's, then their own.
    pub fn goals(&self) -> Vec<&Value> {
        self.entries_of("overenskommelse")
            .into_iter()
            .filter(|r| r.starts_with("Goal/"))
            .filter_map(|r| self.get(r))
            .collect()
    }

    /// Whether the patient wrote this goal themselves (`expressedBy` them).
    pub fn by_patient(&self, goal: &Value) -> bool {
        goal.pointer("/expressedBy/reference")
            .and_then(Value::as_str)
            == Some(self.patient_reference.as_str())
    }

    /// The plans under the umbrella (the "plans" and SIP sections), in document order.
    pub fn plans(&self) -> Vec<&Value> {
        let mut plans: Vec<&Value> = Vec::new();
        for code in ["planer", "sip"] {
            for reference in self.entries_of(code) {
                if let Some(plan) = self
                    .get(reference)
                    .filter(|p| text(p, "resourceType") == Some("CarePlan") && !plans.contains(p))
                {
                    plans.push(plan);
                }
            }
        }
        plans
    }

    pub fn plan(&self, id: &str) -> Option<&Value> {
        let reference = format!("CarePlan/{id}");
        self.plans()
            .into_iter()
            .find(|plan| self_reference(plan).as_deref() == Some(reference.as_str()))
    }

    /// The Tasks (insatser) based on a plan.
    pub fn tasks_of(&self, plan_reference: &str) -> Vec<&Value> {
        let mut tasks: Vec<&Value> = self
            .resources
            .values()
            .filter(|r| text(r, "resourceType") == Some("Task"))
            .filter(|task| {
                list(task, "basedOn")
                    .iter()
                    .any(|b| text(b, "reference") == Some(plan_reference))
            })
            .collect();
        tasks.sort_by_key(|task| text(task, "id").unwrap_or_default().to_owned());
        tasks
    }

    /// A readable name for a `Reference`: a person's or organization's name, a role as
    /// "person, unit", a plan's title; the reference's `display` when the target is absent.
    pub fn name_of(&self, reference: &Value) -> Option<String> {
        let target = text(reference, "reference").and_then(|r| self.get(r));
        let name = target.and_then(|resource| match text(resource, "resourceType")? {
            "Patient" | "Practitioner" | "RelatedPerson" => human_name(resource),
            "PractitionerRole" => {
                let person = resource
                    .pointer("/practitioner/reference")
                    .and_then(Value::as_str)
                    .and_then(|r| self.get(r))
                    .and_then(human_name)
                    .or_else(|| list(resource, "code").iter().find_map(concept_text));
                let unit = resource
                    .pointer("/organization/reference")
                    .and_then(Value::as_str)
                    .and_then(|r| self.get(r))
                    .and_then(|org| text(org, "name"))
                    .map(str::to_owned);
                match (person, unit) {
                    (Some(person), Some(unit)) => Some(format!("{person}, {unit}")),
                    (person, unit) => person.or(unit),
                }
            }
            "CarePlan" => text(resource, "title").map(str::to_owned),
            _ => text(resource, "name").map(str::to_owned),
        });
        name.or_else(|| text(reference, "display").map(str::to_owned))
    }
}

/// `Type/id` of a reference, whether written relative or as a full URL (the Composition
/// names what it holds by fullUrl).
fn local(reference: &str) -> &str {
    let mut slashes = reference.rmatch_indices('/').map(|(at, _)| at);
    match (slashes.next(), slashes.next()) {
        (Some(_), Some(before_type)) => &reference[before_type + 1..],
        _ => reference,
    }
}

pub(crate) fn text<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

pub(crate) fn list<'v>(value: &'v Value, key: &str) -> &'v [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

pub(crate) fn self_reference(resource: &Value) -> Option<String> {
    Some(format!(
        "{}/{}",
        text(resource, "resourceType")?,
        text(resource, "id")?
    ))
}

/// A CodeableConcept in words: its text, else its first coding's display.
pub(crate) fn concept_text(concept: &Value) -> Option<String> {
    text(concept, "text")
        .or_else(|| {
            list(concept, "coding")
                .iter()
                .find_map(|c| text(c, "display"))
        })
        .map(str::to_owned)
}

pub(crate) fn human_name(resource: &Value) -> Option<String> {
    let name = list(resource, "name").first()?;
    if let Some(full) = text(name, "text") {
        return Some(full.to_owned());
    }
    let mut parts: Vec<&str> = list(name, "given")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    parts.extend(text(name, "family"));
    (!parts.is_empty()).then(|| parts.join(" "))
}

pub(crate) fn instant(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn document() -> Value {
        json!({"resourceType": "Bundle", "type": "document", "entry": [
            {"resource": {"resourceType": "Composition",
                "subject": {"reference": "https://paraply.example/fhir/Patient/p"},
                "section": [
                    {"code": {"coding": [{"code": "overenskomna-tider"}]},
                     "text": {"div": "<div>tider</div>"},
                     "entry": [{"reference": "https://paraply.example/fhir/Appointment/late"},
                        {"reference": "Appointment/early"}]},
                    {"code": {"coding": [{"code": "planer"}]},
                     "entry": [{"reference": "CarePlan/rehab"}]}]}},
            {"resource": {"resourceType": "Patient", "id": "p",
                "name": [{"given": ["Tolvan"], "family": "Tolvansson"}]}},
            {"resource": {"resourceType": "Appointment", "id": "late", "status": "booked",
                "start": "2031-05-01T09:00:00Z",
                "participant": [{"actor": {"reference": "Patient/p"}, "status": "accepted"}]}},
            {"resource": {"resourceType": "Appointment", "id": "early", "status": "proposed",
                "start": "2031-04-01T09:00:00Z",
                "serviceType": [{"coding": [{"code": "sip-mote", "display": "SIP-möte"}]}],
                "participant": [
                    {"actor": {"reference": "Patient/p"}, "status": "needs-action"},
                    {"actor": {"reference": "PractitionerRole/r"}, "status": "accepted"}]}},
            {"resource": {"resourceType": "PractitionerRole", "id": "r",
                "practitioner": {"reference": "Practitioner/d"},
                "organization": {"reference": "Organization/vc"}}},
            {"resource": {"resourceType": "Practitioner", "id": "d", "name": [{"text": "Doktor D"}]}},
            {"resource": {"resourceType": "Organization", "id": "vc", "name": "Vårdcentralen"}},
            {"resource": {"resourceType": "CarePlan", "id": "rehab", "title": "Rehab"}},
            {"resource": {"resourceType": "Task", "id": "t",
                "basedOn": [{"reference": "CarePlan/rehab"}]}}
        ]})
    }

    #[test]
    fn appointments_come_earliest_first_with_names_and_the_patients_answer() {
        let document = PlanDocument::from_bundle(&document()).unwrap();
        assert_eq!(document.patient_name(), "Tolvan Tolvansson");
        let appointments = document.appointments();
        let ids: Vec<&str> = appointments.iter().map(|a| a.id).collect();
        assert_eq!(ids, ["early", "late"]);
        assert!(appointments[0].sip_meeting);
        assert_eq!(appointments[0].with, ["Doktor D, Vårdcentralen"]);
        assert!(appointments[0].waiting_for_answer());
        assert!(!appointments[1].waiting_for_answer());
    }

    #[test]
    fn plans_and_their_tasks_are_found_by_reference() {
        let document = PlanDocument::from_bundle(&document()).unwrap();
        assert!(document.plan("rehab").is_some());
        assert!(document.plan("other").is_none());
        assert_eq!(document.tasks_of("CarePlan/rehab").len(), 1);
    }
}
