//! The patientkontrakt's cross-resource rules I1–I10 (DOMAIN.md §4, as decided in
//! RULES.md), checked over one patient's whole current state after a transaction's
//! writes. The caller loads that state inside the write transaction, so two concurrent
//! writes cannot both pass; this module only judges it.

use std::collections::{HashMap, HashSet};
use std::fmt;

use paraply_fhir::{ResourceType, codes};
use serde_json::Value;

use crate::agreed_time::may_book;
use crate::json::{
    concept_code, list, patient_id, reference_at, reference_of, references_at, resource_type,
    self_reference, status, text,
};
use crate::kind::{
    claims_profile, consent_in_force, fast_kontakt_role, is_agreed_appointment, is_fast_kontakt,
    is_insats, is_paraply_plan, is_sip, is_sip_consent_for, is_sip_meeting, is_umbrella,
    narstaende_of, participant_of,
};

/// Settings of the rules (DOMAIN.md marks them configurable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSettings {
    /// I2: how many active fasta vårdkontakter (roles 1 and 4) a patient may have.
    pub max_fasta_vardkontakter: usize,
    /// How long `$hold` keeps a time for a patient before it is free again.
    pub hold_minutes: u32,
    /// The follow-up's small-cell threshold: a summary report masks counts from 1 to
    /// `min_cell - 1`, which could single people out.
    pub min_cell: u64,
}

impl Default for RuleSettings {
    fn default() -> Self {
        RuleSettings {
            max_fasta_vardkontakter: 9,
            hold_minutes: 5,
            min_cell: 5,
        }
    }
}

/// One of the server-enforced invariants of DOMAIN.md §4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    I1,
    I2,
    I3,
    I4,
    I5,
    I6,
    I7,
    I8,
    I9,
    I10,
}

impl Rule {
    /// Every rule, in order.
    pub const ALL: [Rule; 10] = [
        Rule::I1,
        Rule::I2,
        Rule::I3,
        Rule::I4,
        Rule::I5,
        Rule::I6,
        Rule::I7,
        Rule::I8,
        Rule::I9,
        Rule::I10,
    ];

    /// The code OperationOutcome diagnostics start with: `paraply-I1`.
    pub fn code(self) -> &'static str {
        match self {
            Rule::I1 => "paraply-I1",
            Rule::I2 => "paraply-I2",
            Rule::I3 => "paraply-I3",
            Rule::I4 => "paraply-I4",
            Rule::I5 => "paraply-I5",
            Rule::I6 => "paraply-I6",
            Rule::I7 => "paraply-I7",
            Rule::I8 => "paraply-I8",
            Rule::I9 => "paraply-I9",
            Rule::I10 => "paraply-I10",
        }
    }

    /// The rule in one English line.
    pub fn summary(self) -> &'static str {
        match self {
            Rule::I1 => "A patient has at most one active fast läkarkontakt (role 2).",
            Rule::I2 => {
                "A patient has at most the configured number of active fasta vårdkontakter (roles 1 and 4)."
            }
            Rule::I3 => {
                "A patient has at most one active fast vårdkontakt with overall coordination responsibility (role 4)."
            }
            Rule::I4 => {
                "A FastKontakt CareTeam has a subject, category fast-kontakt and exactly one participant with a member and a role from 1.2.752.129.5.1.69."
            }
            Rule::I5 => {
                "A patient has at most one active umbrella plan, which has no partOf; every other open Paraply plan is partOf the active umbrella; partOf never loops."
            }
            Rule::I6 => "An active SIP needs an active SIP consent of the patient naming it.",
            Rule::I7 => {
                "A SIP involves a region and a kommun huvudman, and its author (overall responsibility) is a region or kommun huvudman."
            }
            Rule::I8 => {
                "An active SIP has a Task for each region and kommun huvudman involved, and every Insats Task has an owner."
            }
            Rule::I9 => {
                "A booked AgreedAppointment has the patient's acceptance, recorded by an AppointmentResponse from the patient or a relative with booking consent."
            }
            Rule::I10 => {
                "A SipMeeting includes the patient and a region and a kommun participant, and a relative only with the patient's consent."
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A breach of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    /// The resource that breaks the rule (`CareTeam/abc`): the one written by the
    /// transaction where the breach is between several.
    pub resource: String,
    /// What is wrong, in English, naming the other resource where there is one.
    pub message: String,
}

impl fmt::Display for Violation {
    /// `paraply-I1: <message>`, the form OperationOutcome diagnostics take.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule.code(), self.message)
    }
}

/// The kind of a huvudman (`HUVUDMAN_TYPE_SYSTEM`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HuvudmanKind {
    Region,
    Kommun,
    PrivatUtforare,
    Annan,
}

impl HuvudmanKind {
    /// The kind from its code (`region`, `kommun`, `privat-utforare`, `annan`).
    pub fn from_code(code: &str) -> Option<HuvudmanKind> {
        match code {
            "region" => Some(HuvudmanKind::Region),
            "kommun" => Some(HuvudmanKind::Kommun),
            "privat-utforare" => Some(HuvudmanKind::PrivatUtforare),
            "annan" => Some(HuvudmanKind::Annan),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            HuvudmanKind::Region => "region",
            HuvudmanKind::Kommun => "kommun",
            HuvudmanKind::PrivatUtforare => "privat-utforare",
            HuvudmanKind::Annan => "annan",
        }
    }

    /// The huvudman kind an Organization declares by its `type` (`None`: the Organization
    /// is a unit, whose huvudman is found by following `partOf`).
    pub fn of_organization(organization: &Value) -> Option<HuvudmanKind> {
        if resource_type(organization) != Some("Organization") {
            return None;
        }
        list(organization, "type")
            .iter()
            .filter_map(|concept| concept_code(concept, codes::HUVUDMAN_TYPE_SYSTEM))
            .find_map(HuvudmanKind::from_code)
    }
}

/// The huvudman a reference resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Huvudman {
    /// The huvudman's Organization, `Organization/<id>`.
    pub organization: String,
    pub kind: HuvudmanKind,
}

/// What the rules see of one patient, read inside the write transaction after its writes.
#[derive(Clone, Copy, Debug)]
pub struct PatientState<'a> {
    /// The Patient id (not `Patient/..`).
    pub patient: &'a str,
    /// Every current, non-deleted CareTeam, CarePlan, Consent, Task and Appointment whose
    /// patient ([`patient_of`]) is `patient`.
    pub resources: &'a [Value],
    /// The AppointmentResponses whose `appointment` is one of the written Appointments
    /// (any actor).
    pub responses: &'a [Value],
    /// Reference text (`Organization/x`, `PractitionerRole/y`) → its huvudman, for every
    /// reference [`huvudman_references`] asked for; a missing key means no huvudman is known.
    pub huvudman: &'a HashMap<String, Huvudman>,
    pub today: time::Date,
}

/// Which rules a transaction's writes call for, from the types it wrote (RULES.md):
/// CareTeam → I1–I4, CarePlan → I5–I8, Task → I8, Appointment → I9 and I10. Consents
/// call for none: a patient can always withdraw a consent, even one an active SIP needs.
pub fn rules_for(resource_types_written: &[ResourceType]) -> Vec<Rule> {
    let wanted: HashSet<Rule> = resource_types_written
        .iter()
        .flat_map(|written| -> &'static [Rule] {
            match written {
                ResourceType::CareTeam => &[Rule::I1, Rule::I2, Rule::I3, Rule::I4],
                ResourceType::CarePlan => &[Rule::I5, Rule::I6, Rule::I7, Rule::I8],
                ResourceType::Task => &[Rule::I8],
                ResourceType::Appointment => &[Rule::I9, Rule::I10],
                _ => &[],
            }
        })
        .copied()
        .collect();
    Rule::ALL
        .into_iter()
        .filter(|rule| wanted.contains(rule))
        .collect()
}

/// The references whose huvudman the rules need, deduplicated in first-seen order: SIP
/// `author` and `contributor`s (I7, I8), Task `owner`s (I8) and SipMeeting participants'
/// actors (I10) that are Organizations or PractitionerRoles.
pub fn huvudman_references(resources: &[Value]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut references = Vec::new();
    for resource in resources {
        let candidates: Vec<String> = if is_sip(resource) {
            sip_parties(resource)
        } else if resource_type(resource) == Some("Task") {
            reference_at(resource, "owner").into_iter().collect()
        } else if is_sip_meeting(resource) {
            list(resource, "participant")
                .iter()
                .filter_map(|participant| reference_at(participant, "actor"))
                .collect()
        } else {
            Vec::new()
        };
        for candidate in candidates {
            let may_have_huvudman = candidate.starts_with("Organization/")
                || candidate.starts_with("PractitionerRole/");
            if may_have_huvudman && seen.insert(candidate.clone()) {
                references.push(candidate);
            }
        }
    }
    references
}

/// The patient whose rules a resource falls under, if it is a kind the rules read:
/// `CareTeam.subject`, `CarePlan.subject`, `Consent.patient`, `Task.for`, or the first
/// Patient among an Appointment's participants' actors. `Some("p1")`.
pub fn patient_of(resource: &Value) -> Option<String> {
    let patient_reference = match resource_type(resource)? {
        "CareTeam" | "CarePlan" => reference_at(resource, "subject"),
        "Consent" => reference_at(resource, "patient"),
        "Task" => reference_at(resource, "for"),
        "Appointment" => list(resource, "participant")
            .iter()
            .filter_map(|participant| reference_at(participant, "actor"))
            .find(|actor| actor.starts_with("Patient/")),
        _ => None,
    }?;
    patient_id(&patient_reference).map(str::to_owned)
}

/// Every breach of `rules` in `state`. `written` are the references (`CareTeam/x`)
/// written by this transaction: where a breach is between several resources, the
/// written one is reported as breaking it, and I9 is only checked for written
/// appointments (an older booking must not block an unrelated write).
pub fn check(
    state: &PatientState,
    rules: &[Rule],
    written: &[String],
    settings: &RuleSettings,
) -> Vec<Violation> {
    let checker = Checker { state, written };
    let mut violations = Vec::new();
    for rule in Rule::ALL.into_iter().filter(|rule| rules.contains(rule)) {
        let found = match rule {
            Rule::I1 => checker.at_most_one_active_role(Rule::I1, "2", "fast läkarkontakt"),
            Rule::I2 => checker.fasta_vardkontakter(settings.max_fasta_vardkontakter),
            Rule::I3 => checker.at_most_one_active_role(
                Rule::I3,
                "4",
                "fast vårdkontakt with overall coordination responsibility",
            ),
            Rule::I4 => checker
                .resources()
                .filter_map(|care_team| fast_kontakt_shape(care_team, Some(state.patient)))
                .collect(),
            Rule::I5 => checker.umbrella_and_part_of(),
            Rule::I6 => checker.sip_consents(),
            Rule::I7 => checker.sip_huvudman(),
            Rule::I8 => checker.sip_tasks(),
            Rule::I9 => checker.bookings(),
            Rule::I10 => checker.sip_meetings(),
        };
        violations.extend(found);
    }
    violations
}

/// Breaches a written resource shows on its own when it names no patient
/// ([`patient_of`] is `None`), so that no [`PatientState`] can be loaded for it: a
/// FastKontakt without a subject (I4), an Insats without an owner (I8), a booked
/// AgreedAppointment or a SipMeeting without the patient (I9, I10).
pub fn check_without_patient(resource: &Value, rules: &[Rule]) -> Vec<Violation> {
    let Some(this) = self_reference(resource) else {
        return Vec::new();
    };
    let mut violations = Vec::new();
    if rules.contains(&Rule::I4) {
        violations.extend(fast_kontakt_shape(resource, None));
    }
    if rules.contains(&Rule::I8) && is_insats(resource) && lacks_owner(resource) {
        violations.push(insats_without_owner(&this));
    }
    if rules.contains(&Rule::I9)
        && is_agreed_appointment(resource)
        && status(resource) == Some("booked")
    {
        violations.push(Violation {
            rule: Rule::I9,
            resource: this.clone(),
            message: format!("{this} is booked but has no Patient participant to have accepted it"),
        });
    }
    if rules.contains(&Rule::I10) && is_sip_meeting(resource) && sip_meeting_is_on(resource) {
        violations.push(Violation {
            rule: Rule::I10,
            resource: this.clone(),
            message: format!("{this} is a SIP meeting without the patient as participant"),
        });
    }
    violations
}

struct Checker<'s, 'a> {
    state: &'s PatientState<'a>,
    written: &'s [String],
}

fn not_in_error(resource: &Value) -> bool {
    status(resource) != Some("entered-in-error")
}

fn sip_meeting_is_on(meeting: &Value) -> bool {
    !matches!(status(meeting), Some("cancelled" | "entered-in-error"))
}

/// `author` then `contributor`s of a plan.
fn sip_parties(plan: &Value) -> Vec<String> {
    reference_at(plan, "author")
        .into_iter()
        .chain(references_at(plan, "contributor"))
        .collect()
}

fn lacks_owner(task: &Value) -> bool {
    // An owner given by identifier or display only still names who is responsible.
    not_in_error(task) && task.get("owner").is_none()
}

fn insats_without_owner(task: &str) -> Violation {
    Violation {
        rule: Rule::I8,
        resource: task.to_owned(),
        message: format!("{task} is an insats but has no owner (who is responsible for it)"),
    }
}

/// I4 for one CareTeam, if it is a FastKontakt (by category, or by claiming the profile,
/// so that a claim without the category is caught too) and not entered-in-error.
/// `patient` is the patient whose state is checked, when there is one.
fn fast_kontakt_shape(care_team: &Value, patient: Option<&str>) -> Option<Violation> {
    let claims = claims_profile(care_team, codes::profile::FAST_KONTAKT);
    if !(is_fast_kontakt(care_team) || claims) || !not_in_error(care_team) {
        return None;
    }
    let this = self_reference(care_team)?;
    let mut problems = Vec::new();
    match reference_at(care_team, "subject") {
        Some(subject) if subject.starts_with("Patient/") => {}
        Some(subject) => problems.push(format!("its subject {subject} is not a Patient")),
        None => problems.push(match patient {
            Some(patient) => format!("it has no subject (Patient/{patient})"),
            None => "it has no subject (the Patient)".to_owned(),
        }),
    }
    if !is_fast_kontakt(care_team) {
        problems.push("it has no category fast-kontakt".to_owned());
    }
    let participants = list(care_team, "participant");
    if participants.len() != 1 {
        problems.push(format!(
            "it has {} participants where exactly one is required",
            participants.len()
        ));
    }
    if let Some(participant) = participants.first() {
        if participant.get("member").is_none() {
            problems.push("its participant has no member".to_owned());
        }
        if fast_kontakt_role(care_team).is_none() {
            problems.push(format!(
                "its participant has no role coding from {} (1, 2, 3 or 4)",
                codes::FAST_KONTAKT_ROLE_SYSTEM
            ));
        }
    }
    (!problems.is_empty()).then(|| Violation {
        rule: Rule::I4,
        resource: this.clone(),
        message: format!("{this} is a FastKontakt but {}", problems.join("; ")),
    })
}

impl<'s, 'a> Checker<'s, 'a> {
    fn resources(&self) -> impl Iterator<Item = &'a Value> + use<'a> {
        self.state.resources.iter()
    }

    fn patient(&self) -> String {
        format!("Patient/{}", self.state.patient)
    }

    fn today(&self) -> String {
        self.state.today.to_string()
    }

    fn is_written(&self, reference: &str) -> bool {
        self.written.iter().any(|written| written == reference)
    }

    fn find(&self, reference: &str) -> Option<&'a Value> {
        self.resources()
            .find(|resource| self_reference(resource).as_deref() == Some(reference))
    }

    fn huvudman(&self, reference: &str) -> Option<&'a Huvudman> {
        self.state.huvudman.get(reference)
    }

    /// Of several holders where fewer are allowed: the written ones are at fault, or
    /// (nothing written among them) every one after the first `allowed`.
    fn at_fault(&self, holders: &[String], allowed: usize) -> Vec<String> {
        let written: Vec<String> = holders
            .iter()
            .filter(|holder| self.is_written(holder))
            .cloned()
            .collect();
        if written.is_empty() {
            holders.iter().skip(allowed).cloned().collect()
        } else {
            written
        }
    }

    fn active_fast_kontakter(&self, roles: &[&str]) -> Vec<String> {
        self.resources()
            .filter(|care_team| is_fast_kontakt(care_team) && status(care_team) == Some("active"))
            .filter(|care_team| {
                fast_kontakt_role(care_team).is_some_and(|role| roles.contains(&role))
            })
            .filter_map(self_reference)
            .collect()
    }

    /// I1 and I3: at most one active FastKontakt with `role`.
    fn at_most_one_active_role(&self, rule: Rule, role: &str, what: &str) -> Vec<Violation> {
        let holders = self.active_fast_kontakter(&[role]);
        if holders.len() <= 1 {
            return Vec::new();
        }
        self.at_fault(&holders, 1)
            .into_iter()
            .map(|at_fault| {
                let other = holders
                    .iter()
                    .find(|holder| **holder != at_fault)
                    .cloned()
                    .unwrap_or_default();
                Violation {
                    rule,
                    message: format!("{} already has an active {what} ({other})", self.patient()),
                    resource: at_fault,
                }
            })
            .collect()
    }

    /// I2: at most `max` active FastKontakt with role 1 or 4.
    fn fasta_vardkontakter(&self, max: usize) -> Vec<Violation> {
        let holders = self.active_fast_kontakter(&["1", "4"]);
        if holders.len() <= max {
            return Vec::new();
        }
        self.at_fault(&holders, max)
            .into_iter()
            .map(|at_fault| Violation {
                rule: Rule::I2,
                message: format!(
                    "{} would have {} active fasta vårdkontakter (roles 1 and 4); at most {max} are allowed",
                    self.patient(),
                    holders.len()
                ),
                resource: at_fault,
            })
            .collect()
    }

    /// I5: one active umbrella, without partOf; every open Paraply plan partOf it; no cycles.
    fn umbrella_and_part_of(&self) -> Vec<Violation> {
        let mut violations = Vec::new();
        let plans: Vec<&Value> = self
            .resources()
            .filter(|plan| is_paraply_plan(plan) && not_in_error(plan))
            .collect();
        let active_umbrellas: Vec<String> = plans
            .iter()
            .filter(|plan| is_umbrella(plan) && status(plan) == Some("active"))
            .filter_map(|plan| self_reference(plan))
            .collect();
        if active_umbrellas.len() > 1 {
            for at_fault in self.at_fault(&active_umbrellas, 1) {
                let other = active_umbrellas
                    .iter()
                    .find(|umbrella| **umbrella != at_fault)
                    .cloned()
                    .unwrap_or_default();
                violations.push(Violation {
                    rule: Rule::I5,
                    message: format!(
                        "{} already has an active umbrella plan ({other})",
                        self.patient()
                    ),
                    resource: at_fault,
                });
            }
        }
        for plan in &plans {
            let Some(this) = self_reference(plan) else {
                continue;
            };
            let part_of = references_at(plan, "partOf");
            if is_umbrella(plan) {
                if let Some(parent) = part_of.first() {
                    violations.push(Violation {
                        rule: Rule::I5,
                        resource: this.clone(),
                        message: format!(
                            "{this} is an umbrella plan (patientkontrakt) and must not be partOf another plan ({parent})"
                        ),
                    });
                }
                continue;
            }
            if !matches!(status(plan), Some("draft" | "active" | "on-hold")) {
                continue;
            }
            if part_of
                .iter()
                .any(|parent| active_umbrellas.contains(parent))
            {
                continue;
            }
            let umbrella = match active_umbrellas.first() {
                Some(umbrella) => format!("the active umbrella plan {umbrella}"),
                None => format!("an active umbrella plan, and {} has none", self.patient()),
            };
            let message = match part_of.first() {
                None => format!("{this} has no partOf; it must name {umbrella}"),
                Some(parent) => format!(
                    "{this} is partOf {parent}, which is not an active umbrella plan of {}; it must name {umbrella}",
                    self.patient()
                ),
            };
            violations.push(Violation {
                rule: Rule::I5,
                resource: this,
                message,
            });
        }
        violations.extend(self.part_of_cycles());
        violations
    }

    /// I5's no-cycle rule over every CarePlan of the patient, one breach per cycle,
    /// reported on a written plan of it where there is one.
    fn part_of_cycles(&self) -> Vec<Violation> {
        let edges: HashMap<String, Vec<String>> = self
            .resources()
            .filter(|plan| resource_type(plan) == Some("CarePlan"))
            .filter_map(|plan| Some((self_reference(plan)?, references_at(plan, "partOf"))))
            .collect();
        let mut starts: Vec<&String> = self
            .resources()
            .filter(|plan| resource_type(plan) == Some("CarePlan"))
            .filter_map(|plan| edges.get_key_value(&self_reference(plan)?).map(|(k, _)| k))
            .collect();
        // Written plans first, so a cycle is reported on what this transaction changed.
        starts.sort_by_key(|plan| !self.is_written(plan));
        let mut on_reported_cycle = HashSet::new();
        let mut violations = Vec::new();
        for start in starts {
            if on_reported_cycle.contains(start) {
                continue;
            }
            if let Some(cycle) = cycle_through(start, &edges) {
                on_reported_cycle.extend(cycle.iter().cloned());
                violations.push(Violation {
                    rule: Rule::I5,
                    resource: start.clone(),
                    message: format!(
                        "following partOf from {start} comes back to it: {}",
                        cycle.join(" → ")
                    ),
                });
            }
        }
        violations
    }

    /// I6: an active SIP has an active SIP consent naming it.
    fn sip_consents(&self) -> Vec<Violation> {
        let today = self.today();
        self.resources()
            .filter(|plan| is_sip(plan) && status(plan) == Some("active"))
            .filter_map(self_reference)
            .filter(|sip| {
                !self.resources().any(|consent| {
                    consent_in_force(consent, &today) && is_sip_consent_for(consent, sip)
                })
            })
            .map(|sip| Violation {
                rule: Rule::I6,
                message: format!(
                    "{sip} is an active SIP but {} has no active SIP consent naming it",
                    self.patient()
                ),
                resource: sip,
            })
            .collect()
    }

    /// I7: a SIP involves a region and a kommun huvudman; its author is one of them.
    fn sip_huvudman(&self) -> Vec<Violation> {
        let mut violations = Vec::new();
        for sip in self
            .resources()
            .filter(|plan| is_sip(plan) && not_in_error(plan))
        {
            let Some(this) = self_reference(sip) else {
                continue;
            };
            let kinds: Vec<HuvudmanKind> = sip_parties(sip)
                .iter()
                .filter_map(|party| self.huvudman(party))
                .map(|huvudman| huvudman.kind)
                .collect();
            let mut problems = Vec::new();
            for (kind, name) in [
                (HuvudmanKind::Region, "region"),
                (HuvudmanKind::Kommun, "kommun"),
            ] {
                if !kinds.contains(&kind) {
                    problems.push(format!(
                        "no {name} huvudman is among its author and contributors"
                    ));
                }
            }
            match reference_at(sip, "author") {
                None => problems.push(
                    "it has no author (the huvudman with overall responsibility)".to_owned(),
                ),
                Some(author) => match self.huvudman(&author) {
                    Some(huvudman)
                        if matches!(huvudman.kind, HuvudmanKind::Region | HuvudmanKind::Kommun) => {}
                    Some(huvudman) => problems.push(format!(
                        "its author {author} resolves to {} ({}), not a region or kommun",
                        huvudman.organization,
                        huvudman.kind.code()
                    )),
                    None => problems.push(format!(
                        "its author {author} resolves to no known huvudman, so it cannot hold the overall responsibility"
                    )),
                },
            }
            if !problems.is_empty() {
                violations.push(Violation {
                    rule: Rule::I7,
                    resource: this.clone(),
                    message: format!("{this} is a SIP but {}", problems.join("; ")),
                });
            }
        }
        violations
    }

    /// I8: each region/kommun huvudman of an active SIP owns a live Task of it; every
    /// Insats has an owner.
    fn sip_tasks(&self) -> Vec<Violation> {
        let mut violations = Vec::new();
        for sip in self
            .resources()
            .filter(|plan| is_sip(plan) && status(plan) == Some("active"))
        {
            let Some(this) = self_reference(sip) else {
                continue;
            };
            let mut responsible: Vec<&Huvudman> = Vec::new();
            for huvudman in sip_parties(sip)
                .iter()
                .filter_map(|party| self.huvudman(party))
            {
                let counts = matches!(huvudman.kind, HuvudmanKind::Region | HuvudmanKind::Kommun);
                if counts
                    && !responsible
                        .iter()
                        .any(|h| h.organization == huvudman.organization)
                {
                    responsible.push(huvudman);
                }
            }
            for huvudman in responsible {
                let has_task = self.resources().any(|task| {
                    resource_type(task) == Some("Task")
                        && !matches!(
                            status(task),
                            Some("cancelled" | "rejected" | "entered-in-error")
                        )
                        && list(task, "basedOn")
                            .iter()
                            .filter_map(reference_of)
                            .any(|plan| plan == this)
                        && reference_at(task, "owner")
                            .and_then(|owner| self.huvudman(&owner))
                            .is_some_and(|owner| owner.organization == huvudman.organization)
                });
                if !has_task {
                    violations.push(Violation {
                        rule: Rule::I8,
                        resource: this.clone(),
                        message: format!(
                            "{this} is an active SIP but has no Task owned by its {} huvudman {}",
                            huvudman.kind.code(),
                            huvudman.organization
                        ),
                    });
                }
            }
        }
        violations.extend(
            self.resources()
                .filter(|task| is_insats(task) && lacks_owner(task))
                .filter_map(self_reference)
                .map(|task| insats_without_owner(&task)),
        );
        violations
    }

    /// I9, for the written AgreedAppointments that are booked.
    fn bookings(&self) -> Vec<Violation> {
        let patient = self.patient();
        let consents: Vec<Value> = self
            .resources()
            .filter(|resource| resource_type(resource) == Some("Consent"))
            .cloned()
            .collect();
        let mut violations = Vec::new();
        for written in self
            .written
            .iter()
            .filter(|w| w.starts_with("Appointment/"))
        {
            let Some(appointment) = self.find(written) else {
                continue;
            };
            if !is_agreed_appointment(appointment) || status(appointment) != Some("booked") {
                continue;
            }
            let accepted = participant_of(appointment, &patient)
                .is_some_and(|participant| text(participant, "status") == Some("accepted"));
            if !accepted {
                violations.push(Violation {
                    rule: Rule::I9,
                    resource: written.clone(),
                    message: format!(
                        "{written} is booked but its participant {patient} has not accepted it"
                    ),
                });
                continue;
            }
            let recorded = self.state.responses.iter().any(|response| {
                reference_at(response, "appointment").as_deref() == Some(written.as_str())
                    && text(response, "participantStatus") == Some("accepted")
                    && reference_at(response, "actor").is_some_and(|actor| {
                        actor == patient
                            || (actor.starts_with("RelatedPerson/")
                                && may_book(
                                    &consents,
                                    self.state.patient,
                                    &actor,
                                    self.state.today,
                                ))
                    })
            });
            if !recorded {
                violations.push(Violation {
                    rule: Rule::I9,
                    resource: written.clone(),
                    message: format!(
                        "{written} is booked but no AppointmentResponse accepting it comes from {patient} or a relative with a booking consent"
                    ),
                });
            }
        }
        violations
    }

    /// I10: a SIP meeting has the patient, a region and a kommun participant, and
    /// relatives only with the patient's consent.
    fn sip_meetings(&self) -> Vec<Violation> {
        let patient = self.patient();
        let today = self.today();
        let consented: HashSet<String> = self
            .resources()
            .filter(|consent| consent_in_force(consent, &today))
            .flat_map(narstaende_of)
            .collect();
        let mut violations = Vec::new();
        for meeting in self
            .resources()
            .filter(|m| is_sip_meeting(m) && sip_meeting_is_on(m))
        {
            let Some(this) = self_reference(meeting) else {
                continue;
            };
            let actors: Vec<String> = list(meeting, "participant")
                .iter()
                .filter_map(|participant| reference_at(participant, "actor"))
                .collect();
            let mut problems = Vec::new();
            if !actors.contains(&patient) {
                problems.push(format!("{patient} is not a participant"));
            }
            let kinds: Vec<HuvudmanKind> = actors
                .iter()
                .filter_map(|actor| self.huvudman(actor))
                .map(|huvudman| huvudman.kind)
                .collect();
            for (kind, name) in [
                (HuvudmanKind::Region, "region"),
                (HuvudmanKind::Kommun, "kommun"),
            ] {
                if !kinds.contains(&kind) {
                    problems.push(format!("no participant resolves to a {name} huvudman"));
                }
            }
            if status(meeting) == Some("booked")
                && let Err(reason) =
                    crate::sip::may_be_booked(meeting, &patient, self.state.huvudman)
            {
                problems.push(format!("it cannot be booked: {reason}"));
            }
            for relative in actors.iter().filter(|a| a.starts_with("RelatedPerson/")) {
                if !consented.contains(relative) {
                    problems.push(format!(
                        "{relative} takes part without an active närstående consent of {patient} naming them"
                    ));
                }
            }
            if !problems.is_empty() {
                violations.push(Violation {
                    rule: Rule::I10,
                    resource: this.clone(),
                    message: format!("{this} is a SIP meeting but {}", problems.join("; ")),
                });
            }
        }
        violations
    }
}

/// A path `start → … → start` along `edges`, if one exists (depth-first, each plan
/// visited once, so a long chain or a loop not through `start` cannot hang it).
fn cycle_through(start: &str, edges: &HashMap<String, Vec<String>>) -> Option<Vec<String>> {
    let mut visited = HashSet::new();
    let mut path = vec![start.to_owned()];
    fn walk(
        node: &str,
        start: &str,
        edges: &HashMap<String, Vec<String>>,
        visited: &mut HashSet<String>,
        path: &mut Vec<String>,
    ) -> bool {
        for next in edges.get(node).map(Vec::as_slice).unwrap_or(&[]) {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if visited.insert(next.clone()) {
                path.push(next.clone());
                if walk(next, start, edges, visited, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(start, start, edges, &mut visited, &mut path).then_some(path)
}

#[cfg(test)]
mod tests;
