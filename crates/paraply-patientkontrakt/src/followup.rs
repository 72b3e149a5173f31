//! Follow-up of the patientkontrakt (DOMAIN.md §6): what each write leaves as facts, and
//! the measures M1–M4 evaluated over those facts as a FHIR `MeasureReport`. Pure: the
//! engine records the facts in the write's transaction and hands the evaluation the facts
//! as they stood at the end of the period.
//!
//! Why facts rather than reading the resources at report time: a report over a million
//! patients must not parse tens of millions of versions, and "as the data stood" needs the
//! past, not the present. A patient's fact (umbrella plan, named contacts, patient groups,
//! strata, active SIPs) and each appointment's fact (when, SIP meeting or not, agreed with
//! the patient or not) are small, recorded only when they change, and kept with the period
//! they held for.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use paraply_fhir::codes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::{Date, Month, OffsetDateTime, UtcOffset, Weekday};

use crate::json::{list, reference_at, status, text};
use crate::kind::{
    fast_kontakt_role, is_fast_kontakt, is_sip, is_sip_meeting, is_umbrella, participant_of,
};
use crate::rules::{Huvudman, HuvudmanKind};

/// The fact kinds this domain records.
pub const PATIENT_FACT: &str = "followup/patient";
pub const APPOINTMENT_FACT: &str = "followup/appointment";

/// Where a patient is counted: region, municipality and unit (the unit they are listed at,
/// `Patient.generalPractitioner`), sex and birth date (the age band is worked out at the
/// end of the period).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Strata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub municipality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
}

/// A patient group: the condition an umbrella plan `addresses`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PatientGroup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub display: String,
}

/// What the follow-up knows of one patient at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientFact {
    pub patient: String,
    /// The status of the umbrella plan (`active` if any is), `None` without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub umbrella: Option<String>,
    pub fast_vardkontakt: bool,
    pub fast_lakarkontakt: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<PatientGroup>,
    pub strata: Strata,
    /// The huvudmän (`Organization/..`) of each active SIP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sip: Vec<Vec<String>>,
}

/// What the follow-up knows of one appointment at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentFact {
    pub patient: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    pub status: String,
    pub sip_meeting: bool,
    /// A SIP meeting's huvudmän (`Organization/..`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub huvudman: Vec<String>,
    /// The patient's participant status is `accepted`: the time was agreed with them.
    pub agreed: bool,
    pub strata: Strata,
}

/// The umbrella plan statuses that mean a patientkontrakt was offered (drafted with the
/// patient, agreed, paused, ended or declined) — not one entered in error.
const OFFERED: &[&str] = &["draft", "active", "on-hold", "completed", "revoked"];

/// Appointment statuses that count as a time that was (or is) kept.
const KEPT: &[&str] = &["booked", "arrived", "checked-in", "fulfilled"];

/// The fact of `patient` (its id) from its Patient resource (`None` when it has none) and
/// its CareTeams and CarePlans; `huvudman` resolves SIP authors and contributors and the
/// listing unit.
pub fn patient_fact(
    patient: &str,
    patient_resource: Option<&Value>,
    resources: &[Value],
    huvudman: &HashMap<String, Huvudman>,
) -> PatientFact {
    let umbrellas: Vec<&Value> = resources.iter().filter(|r| is_umbrella(r)).collect();
    let umbrella = umbrellas
        .iter()
        .filter_map(|plan| status(plan))
        .min_by_key(|s| {
            OFFERED
                .iter()
                .position(|o| o == s)
                .map_or(usize::MAX, |p| p)
        })
        .filter(|s| *s != "entered-in-error")
        .map(str::to_owned);
    let contact_roles: BTreeSet<&str> = resources
        .iter()
        .filter(|team| is_fast_kontakt(team) && status(team) == Some("active"))
        .filter_map(fast_kontakt_role)
        .collect();
    let mut groups: Vec<PatientGroup> = umbrellas
        .iter()
        .filter(|plan| status(plan) != Some("entered-in-error"))
        .flat_map(|plan| list(plan, "addresses").iter().map(|a| group_of(plan, a)))
        .collect();
    groups.sort();
    groups.dedup();
    let sip = resources
        .iter()
        .filter(|plan| is_sip(plan) && status(plan) == Some("active"))
        .map(|plan| {
            let mut orgs: Vec<String> = std::iter::once(reference_at(plan, "author"))
                .flatten()
                .chain(crate::json::references_at(plan, "contributor"))
                .filter_map(|r| huvudman.get(&r).map(|h| h.organization.clone()))
                .collect();
            orgs.sort();
            orgs.dedup();
            orgs
        })
        .collect();
    PatientFact {
        patient: patient.to_owned(),
        umbrella,
        fast_vardkontakt: contact_roles.contains("1") || contact_roles.contains("4"),
        fast_lakarkontakt: contact_roles.contains("2"),
        groups,
        strata: patient_resource
            .map(|p| strata_of(p, huvudman))
            .unwrap_or_default(),
        sip,
    }
}

/// The listing unit whose region [`patient_fact`] needs resolved, if the Patient has one.
pub fn listing_unit(patient: &Value) -> Option<String> {
    list(patient, "generalPractitioner")
        .iter()
        .filter_map(crate::json::reference_of)
        .find(|r| r.starts_with("Organization/"))
}

fn strata_of(patient: &Value, huvudman: &HashMap<String, Huvudman>) -> Strata {
    let unit = listing_unit(patient);
    let region = unit
        .as_ref()
        .and_then(|u| huvudman.get(u))
        .filter(|h| h.kind == HuvudmanKind::Region)
        .map(|h| h.organization.clone());
    let addresses = list(patient, "address");
    let home = addresses
        .iter()
        .find(|a| text(a, "use") == Some("home"))
        .or_else(|| addresses.first());
    Strata {
        region,
        municipality: home
            .and_then(|a| text(a, "district").or_else(|| text(a, "city")))
            .map(str::to_owned),
        unit,
        sex: text(patient, "gender").map(str::to_owned),
        birth_date: text(patient, "birthDate").map(str::to_owned),
    }
}

/// A patient group from one `addresses` reference: the code of the Condition it names when
/// the plan contains it, else the reference's display text.
fn group_of(plan: &Value, addresses: &Value) -> PatientGroup {
    let contained = text(addresses, "reference")
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|id| {
            list(plan, "contained")
                .iter()
                .find(|c| text(c, "id") == Some(id))
        });
    let coding = contained
        .and_then(|condition| condition.get("code"))
        .and_then(|code| list(code, "coding").first());
    let display = coding
        .and_then(|c| text(c, "display"))
        .or_else(|| {
            contained
                .and_then(|c| c.get("code"))
                .and_then(|c| text(c, "text"))
        })
        .or_else(|| text(addresses, "display"))
        .unwrap_or("Ej angiven");
    PatientGroup {
        system: coding.and_then(|c| text(c, "system")).map(str::to_owned),
        code: coding.and_then(|c| text(c, "code")).map(str::to_owned),
        display: display.to_owned(),
    }
}

/// The fact of an appointment of `patient` (whose strata it is counted under).
pub fn appointment_fact(
    appointment: &Value,
    patient: &PatientFact,
    huvudman: &HashMap<String, Huvudman>,
) -> AppointmentFact {
    let sip_meeting = is_sip_meeting(appointment);
    let mut orgs: Vec<String> = if sip_meeting {
        list(appointment, "participant")
            .iter()
            .filter_map(|p| reference_at(p, "actor"))
            .filter_map(|r| huvudman.get(&r).map(|h| h.organization.clone()))
            .collect()
    } else {
        Vec::new()
    };
    orgs.sort();
    orgs.dedup();
    let agreed = participant_of(appointment, &format!("Patient/{}", patient.patient))
        .is_some_and(|p| text(p, "status") == Some("accepted"));
    AppointmentFact {
        patient: patient.patient.clone(),
        start: text(appointment, "start").map(str::to_owned),
        status: status(appointment).unwrap_or("unknown").to_owned(),
        sip_meeting,
        huvudman: orgs,
        agreed,
        strata: patient.strata.clone(),
    }
}

// ---------------------------------------------------------------------------------------
// Measures
// ---------------------------------------------------------------------------------------

/// The four measures of DOMAIN.md §6, served as `Measure/m1` … `Measure/m4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasureId {
    /// Share of patients with an active umbrella plan who have an active fast vårdkontakt.
    M1,
    /// Share of them with an active fast läkarkontakt.
    M2,
    /// Patients offered a patientkontrakt, by patient group and by region and municipality.
    M3,
    /// SIP plans and SIP meetings per huvudman; share of appointments agreed with the patient.
    M4,
}

impl MeasureId {
    pub fn from_id(id: &str) -> Option<MeasureId> {
        match id {
            "m1" => Some(MeasureId::M1),
            "m2" => Some(MeasureId::M2),
            "m3" => Some(MeasureId::M3),
            "m4" => Some(MeasureId::M4),
            _ => None,
        }
    }

    fn id(self) -> &'static str {
        match self {
            MeasureId::M1 => "m1",
            MeasureId::M2 => "m2",
            MeasureId::M3 => "m3",
            MeasureId::M4 => "m4",
        }
    }

    pub fn url(self) -> String {
        format!("{}/Measure/{}", codes::CANONICAL_BASE, self.id())
    }

    /// Whether the measure is evaluated over appointments as well as patients.
    pub fn needs_appointments(self) -> bool {
        self == MeasureId::M4
    }
}

/// The period a report covers; its end is the instant the facts are read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

/// A stratifier: which of a patient's strata a report breaks counts down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Stratifier {
    Region,
    Municipality,
    Unit,
    Sex,
    AgeBand,
    PatientGroup,
    Huvudman,
}

impl Stratifier {
    fn code(self) -> &'static str {
        match self {
            Stratifier::Region => "region",
            Stratifier::Municipality => "municipality",
            Stratifier::Unit => "unit",
            Stratifier::Sex => "sex",
            Stratifier::AgeBand => "age-band",
            Stratifier::PatientGroup => "patient-group",
            Stratifier::Huvudman => "huvudman",
        }
    }
}

/// A stratum's value: an Organization (named at rendering) or a text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum StratumValue {
    Organization(String),
    Text(String),
    Group(PatientGroup),
}

/// A patient's strata as numbers ([`Interner`] ids; the age band's index in [`AGE_BANDS`]):
/// a million patients fall into far fewer cells than they are, so a report counts cells and
/// breaks them down by each stratifier once, at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Cell {
    region: Option<u32>,
    municipality: Option<u32>,
    unit: Option<u32>,
    sex: Option<u32>,
    age_band: Option<usize>,
}

/// Each text a report counts by, once.
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<String, u32>,
    texts: Vec<String>,
}

impl Interner {
    fn id(&mut self, text: &str) -> u32 {
        if let Some(id) = self.ids.get(text) {
            return *id;
        }
        let id = u32::try_from(self.texts.len()).unwrap_or(u32::MAX);
        self.texts.push(text.to_owned());
        self.ids.insert(text.to_owned(), id);
        id
    }

    fn text(&self, id: u32) -> String {
        self.texts.get(id as usize).cloned().unwrap_or_default()
    }
}

/// Counts of the populations, by [`population_index`].
type Counts = [u64; 3];

fn population_index(population: &str) -> usize {
    match population {
        INITIAL => 0,
        DENOMINATOR => 1,
        _ => 2,
    }
}

/// Counts of one group of a report: per population, in total, per cell of patient strata and
/// per stratum of its own (patient group, huvudman), and the patients of each population
/// (kept only for a subject list).
#[derive(Debug, Default)]
struct Tally {
    total: Counts,
    cells: HashMap<Cell, Counts>,
    strata: BTreeMap<(Stratifier, StratumValue), Counts>,
    subjects: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Tally {
    fn count(
        &mut self,
        populations: &[&'static str],
        cell: Option<Cell>,
        strata: &[(Stratifier, StratumValue)],
        subject: Option<&str>,
    ) {
        let add = |counts: &mut Counts| {
            for population in populations {
                counts[population_index(population)] += 1;
            }
        };
        add(&mut self.total);
        if let Some(cell) = cell {
            add(self.cells.entry(cell).or_default());
        }
        for stratum in strata {
            match self.strata.get_mut(stratum) {
                Some(counts) => add(counts),
                None => add(self.strata.entry(stratum.clone()).or_default()),
            }
        }
        if let Some(subject) = subject {
            for population in populations {
                self.subjects
                    .entry(population)
                    .or_default()
                    .insert(subject.to_owned());
            }
        }
    }

    /// Every stratum's counts: the cells broken down by each patient stratifier, and the
    /// group's own strata.
    fn by_stratum(&self, texts: &Interner) -> BTreeMap<(Stratifier, StratumValue), Counts> {
        let mut by_id: HashMap<(Stratifier, u32), Counts> = HashMap::new();
        for (cell, counts) in &self.cells {
            let values = [
                (Stratifier::Region, cell.region),
                (Stratifier::Municipality, cell.municipality),
                (Stratifier::Unit, cell.unit),
                (Stratifier::Sex, cell.sex),
                (
                    Stratifier::AgeBand,
                    cell.age_band.and_then(|b| u32::try_from(b).ok()),
                ),
            ];
            for (stratifier, value) in values {
                if let Some(value) = value {
                    let total = by_id.entry((stratifier, value)).or_default();
                    for (sum, count) in total.iter_mut().zip(counts) {
                        *sum += count;
                    }
                }
            }
        }
        let mut strata = self.strata.clone();
        for ((stratifier, id), counts) in by_id {
            let value = match stratifier {
                Stratifier::Region | Stratifier::Unit => StratumValue::Organization(texts.text(id)),
                Stratifier::AgeBand => StratumValue::Text(
                    AGE_BANDS
                        .get(id as usize)
                        .copied()
                        .unwrap_or_default()
                        .to_owned(),
                ),
                _ => StratumValue::Text(texts.text(id)),
            };
            strata.insert((stratifier, value), counts);
        }
        strata
    }
}

/// How a group is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scoring {
    /// numerator / denominator.
    Proportion,
    /// A count of the initial population.
    Cohort,
}

struct GroupSpec {
    code: &'static str,
    text: &'static str,
    scoring: Scoring,
}

const M1_GROUPS: &[GroupSpec] = &[GroupSpec {
    code: "fast-vardkontakt",
    text: "Andel med aktiv fast vårdkontakt bland patienter med aktivt patientkontrakt",
    scoring: Scoring::Proportion,
}];
const M2_GROUPS: &[GroupSpec] = &[GroupSpec {
    code: "fast-lakarkontakt",
    text: "Andel med aktiv fast läkarkontakt bland patienter med aktivt patientkontrakt",
    scoring: Scoring::Proportion,
}];
const M3_GROUPS: &[GroupSpec] = &[GroupSpec {
    code: "erbjudna",
    text: "Patienter som erbjudits patientkontrakt",
    scoring: Scoring::Cohort,
}];
const M4_GROUPS: &[GroupSpec] = &[
    GroupSpec {
        code: "sip-planer",
        text: "Aktiva SIP per huvudman vid periodens slut",
        scoring: Scoring::Cohort,
    },
    GroupSpec {
        code: "sip-moten",
        text: "SIP-möten under perioden per huvudman",
        scoring: Scoring::Cohort,
    },
    GroupSpec {
        code: "overenskomna-tider",
        text: "Andel besökstider under perioden som överenskommits med patienten",
        scoring: Scoring::Proportion,
    },
];

fn groups_of(measure: MeasureId) -> &'static [GroupSpec] {
    match measure {
        MeasureId::M1 => M1_GROUPS,
        MeasureId::M2 => M2_GROUPS,
        MeasureId::M3 => M3_GROUPS,
        MeasureId::M4 => M4_GROUPS,
    }
}

const INITIAL: &str = "initial-population";
const DENOMINATOR: &str = "denominator";
const NUMERATOR: &str = "numerator";

/// A measure being evaluated: feed it the facts current at the end of the period, then
/// render the report.
pub struct Evaluation {
    measure: MeasureId,
    period: Period,
    /// Only patients listed at this unit (`Organization/..`), when set.
    unit: Option<String>,
    /// Keep the patients of each population (a subject list).
    subjects: bool,
    groups: Vec<Tally>,
    texts: Interner,
}

impl Evaluation {
    pub fn new(measure: MeasureId, period: Period, unit: Option<String>, subjects: bool) -> Self {
        Evaluation {
            measure,
            period,
            unit,
            subjects,
            groups: groups_of(measure)
                .iter()
                .map(|_| Tally::default())
                .collect(),
            texts: Interner::default(),
        }
    }

    fn in_scope(&self, strata: &Strata) -> bool {
        self.unit.is_none() || strata.unit == self.unit
    }

    fn cell(&mut self, strata: &Strata) -> Cell {
        let end = self.period.end.date();
        let mut id = |text: &Option<String>| text.as_deref().map(|t| self.texts.id(t));
        Cell {
            region: id(&strata.region),
            municipality: id(&strata.municipality),
            unit: id(&strata.unit),
            sex: id(&strata.sex),
            age_band: strata
                .birth_date
                .as_deref()
                .and_then(|birth| age_band(birth, end)),
        }
    }

    /// Counts one patient fact (the body of a [`PATIENT_FACT`]).
    pub fn add_patient(&mut self, fact: &PatientFact) {
        if !self.in_scope(&fact.strata) {
            return;
        }
        let subject = self.subjects.then_some(fact.patient.as_str());
        match self.measure {
            MeasureId::M1 | MeasureId::M2 => {
                if fact.umbrella.as_deref() != Some("active") {
                    return;
                }
                let cell = self.cell(&fact.strata);
                let has = if self.measure == MeasureId::M1 {
                    fact.fast_vardkontakt
                } else {
                    fact.fast_lakarkontakt
                };
                let populations: &[&str] = if has {
                    &[INITIAL, DENOMINATOR, NUMERATOR]
                } else {
                    &[INITIAL, DENOMINATOR]
                };
                self.groups[0].count(populations, Some(cell), &[], subject);
            }
            MeasureId::M3 => {
                if !fact
                    .umbrella
                    .as_deref()
                    .is_some_and(|s| OFFERED.contains(&s))
                {
                    return;
                }
                let cell = self.cell(&fact.strata);
                let mut strata: Vec<_> = fact
                    .groups
                    .iter()
                    .map(|g| (Stratifier::PatientGroup, StratumValue::Group(g.clone())))
                    .collect();
                if strata.is_empty() {
                    strata.push((
                        Stratifier::PatientGroup,
                        StratumValue::Text("Ej angiven".into()),
                    ));
                }
                self.groups[0].count(&[INITIAL], Some(cell), &strata, subject);
            }
            MeasureId::M4 => {
                for huvudman in &fact.sip {
                    let strata: Vec<_> = huvudman
                        .iter()
                        .map(|h| (Stratifier::Huvudman, StratumValue::Organization(h.clone())))
                        .collect();
                    self.groups[0].count(&[INITIAL], None, &strata, None);
                }
            }
        }
    }

    /// Counts one appointment fact (the body of an [`APPOINTMENT_FACT`]); only M4 does.
    pub fn add_appointment(&mut self, fact: &AppointmentFact) {
        if self.measure != MeasureId::M4 || !self.in_scope(&fact.strata) {
            return;
        }
        let Some(start) = fact.start.as_deref().and_then(|s| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        }) else {
            return;
        };
        if start < self.period.start || start > self.period.end {
            return;
        }
        if fact.sip_meeting {
            if matches!(
                fact.status.as_str(),
                "cancelled" | "entered-in-error" | "noshow"
            ) {
                return;
            }
            let strata: Vec<_> = fact
                .huvudman
                .iter()
                .map(|h| (Stratifier::Huvudman, StratumValue::Organization(h.clone())))
                .collect();
            self.groups[1].count(&[INITIAL], None, &strata, None);
        } else if KEPT.contains(&fact.status.as_str()) {
            let cell = self.cell(&fact.strata);
            let populations: &[&str] = if fact.agreed {
                &[INITIAL, DENOMINATOR, NUMERATOR]
            } else {
                &[INITIAL, DENOMINATOR]
            };
            self.groups[2].count(populations, Some(cell), &[], None);
        }
    }

    /// The Organizations the report names (regions, units, huvudmän), to be named.
    pub fn organizations(&self) -> BTreeSet<String> {
        let in_cells = self
            .groups
            .iter()
            .flat_map(|g| g.cells.keys())
            .flat_map(|cell| [cell.region, cell.unit])
            .flatten()
            .map(|id| self.texts.text(id));
        let in_strata =
            self.groups
                .iter()
                .flat_map(|g| g.strata.keys())
                .filter_map(|(_, value)| match value {
                    StratumValue::Organization(r) => Some(r.clone()),
                    _ => None,
                });
        in_cells.chain(in_strata).collect()
    }

    /// The patients a subject list names, over every population.
    pub fn subjects(&self) -> BTreeSet<String> {
        self.groups
            .iter()
            .flat_map(|g| g.subjects.values().flatten().cloned())
            .collect()
    }

    /// Keeps only the patients in `visible` in every count and list of a subject list: a
    /// caller sees the patients they have a care relationship with, and counts that agree.
    pub fn keep_subjects(&mut self, visible: &BTreeSet<String>) {
        for tally in &mut self.groups {
            tally.total = Counts::default();
            for (population, subjects) in &mut tally.subjects {
                subjects.retain(|s| visible.contains(s));
                tally.total[population_index(population)] = subjects.len() as u64;
            }
            tally.cells.clear();
            tally.strata.clear();
        }
    }

    /// The MeasureReport. `names` gives each Organization's display name and HSA-id;
    /// `min_cell`: counts from 1 to `min_cell - 1` are masked in a summary (a subject list
    /// shows patients the caller may see anyway, and is not masked); `now` is the report's
    /// date.
    pub fn report(
        &self,
        names: &HashMap<String, (String, Option<String>)>,
        min_cell: u64,
        now: OffsetDateTime,
    ) -> Value {
        let masking = if self.subjects { 0 } else { min_cell };
        let mut contained = Vec::new();
        let groups: Vec<Value> = groups_of(self.measure)
            .iter()
            .zip(&self.groups)
            .map(|(spec, tally)| {
                let mut group = json!({
                    "code": {
                        "coding": [{"system": GROUP_SYSTEM, "code": spec.code}],
                        "text": spec.text,
                    },
                });
                let populations = populations(spec.scoring);
                let mut rendered: Vec<Value> = populations
                    .iter()
                    .map(|p| population(p, &tally.total, masking, spec.scoring))
                    .collect();
                if self.subjects {
                    for (value, name) in rendered.iter_mut().zip(populations) {
                        let list_id = format!("{}-{}", spec.code, name);
                        contained.push(subject_list(
                            &list_id,
                            tally.subjects.get(name).into_iter().flatten(),
                        ));
                        value["subjectResults"] = json!({"reference": format!("#{list_id}")});
                    }
                }
                group["population"] = Value::Array(rendered);
                if let Some(score) = score(&tally.total, masking, spec.scoring) {
                    group["measureScore"] = score;
                }
                let stratifiers =
                    stratifiers(tally.by_stratum(&self.texts), names, masking, spec.scoring);
                if !stratifiers.is_empty() {
                    group["stratifier"] = Value::Array(stratifiers);
                }
                group
            })
            .collect();
        let mut report = json!({
            "resourceType": "MeasureReport",
            "status": "complete",
            "type": if self.subjects { "subject-list" } else { "summary" },
            "measure": self.measure.url(),
            "date": rfc3339(now),
            "period": {"start": rfc3339(self.period.start), "end": rfc3339(self.period.end)},
            "group": groups,
        });
        if !contained.is_empty() {
            report["contained"] = Value::Array(contained);
        }
        report
    }
}

/// Paraply's codes for the groups of its measures.
const GROUP_SYSTEM: &str = "https://paraply.se/fhir/CodeSystem/measure-group";
const STRATIFIER_SYSTEM: &str = "https://paraply.se/fhir/CodeSystem/measure-stratifier";
const POPULATION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/measure-population";
const DATA_ABSENT_REASON: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";

fn populations(scoring: Scoring) -> &'static [&'static str] {
    match scoring {
        Scoring::Proportion => &[INITIAL, DENOMINATOR, NUMERATOR],
        Scoring::Cohort => &[INITIAL],
    }
}

/// Whether a count would single out fewer than `min_cell` people.
fn small(count: u64, min_cell: u64) -> bool {
    count > 0 && count < min_cell
}

/// Whether a proportion's numerator (and so its score) must be masked: a small numerator,
/// or a small remainder (the denominator less the numerator, which the two would reveal).
fn numerator_masked(counts: &Counts, min_cell: u64) -> bool {
    let numerator = counts[population_index(NUMERATOR)];
    let denominator = counts[population_index(DENOMINATOR)];
    small(numerator, min_cell) || small(denominator - numerator.min(denominator), min_cell)
}

fn population(name: &'static str, counts: &Counts, min_cell: u64, scoring: Scoring) -> Value {
    let count = counts[population_index(name)];
    let mut value = json!({
        "code": {"coding": [{"system": POPULATION_SYSTEM, "code": name}]},
    });
    let masked = small(count, min_cell)
        || (scoring == Scoring::Proportion
            && name == NUMERATOR
            && numerator_masked(counts, min_cell));
    if masked {
        value["_count"] =
            json!({"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "masked"}]});
    } else {
        value["count"] = json!(count);
    }
    value
}

fn score(counts: &Counts, min_cell: u64, scoring: Scoring) -> Option<Value> {
    if scoring != Scoring::Proportion {
        return None;
    }
    let denominator = counts[population_index(DENOMINATOR)];
    if denominator == 0 || small(denominator, min_cell) || numerator_masked(counts, min_cell) {
        return None;
    }
    let numerator = counts[population_index(NUMERATOR)];
    // Four decimals: a share, not a float's noise.
    let share = (numerator as f64 / denominator as f64 * 10_000.0).round() / 10_000.0;
    Some(json!({"value": share, "unit": "1", "system": "http://unitsofmeasure.org", "code": "1"}))
}

fn stratifiers(
    strata: BTreeMap<(Stratifier, StratumValue), Counts>,
    names: &HashMap<String, (String, Option<String>)>,
    min_cell: u64,
    scoring: Scoring,
) -> Vec<Value> {
    let mut by_stratifier: BTreeMap<Stratifier, Vec<Value>> = BTreeMap::new();
    for ((stratifier, value), counts) in &strata {
        let mut stratum = json!({
            "value": stratum_value(value, names),
            "population": populations(scoring)
                .iter()
                .map(|p| population(p, counts, min_cell, scoring))
                .collect::<Vec<_>>(),
        });
        if let Some(score) = score(counts, min_cell, scoring) {
            stratum["measureScore"] = score;
        }
        by_stratifier.entry(*stratifier).or_default().push(stratum);
    }
    by_stratifier
        .into_iter()
        .map(|(stratifier, stratum)| {
            json!({
                "code": [{"coding": [{"system": STRATIFIER_SYSTEM, "code": stratifier.code()}]}],
                "stratum": stratum,
            })
        })
        .collect()
}

fn stratum_value(value: &StratumValue, names: &HashMap<String, (String, Option<String>)>) -> Value {
    match value {
        StratumValue::Text(text) => json!({"text": text}),
        StratumValue::Group(group) => match (&group.system, &group.code) {
            (Some(system), Some(code)) => json!({
                "coding": [{"system": system, "code": code, "display": group.display}],
                "text": group.display,
            }),
            _ => json!({"text": group.display}),
        },
        StratumValue::Organization(reference) => {
            let (name, hsa) = names
                .get(reference)
                .cloned()
                .unwrap_or_else(|| (reference.clone(), None));
            match hsa {
                Some(hsa) => json!({
                    "coding": [{"system": paraply_fhir::HSA_ID, "code": hsa, "display": name}],
                    "text": name,
                }),
                None => json!({"text": name}),
            }
        }
    }
}

fn subject_list<'a>(id: &str, subjects: impl Iterator<Item = &'a String>) -> Value {
    json!({
        "resourceType": "List",
        "id": id,
        "status": "current",
        "mode": "snapshot",
        "entry": subjects
            .map(|s| json!({"item": {"reference": format!("Patient/{s}")}}))
            .collect::<Vec<_>>(),
    })
}

/// The age bands a report counts by.
const AGE_BANDS: &[&str] = &["0-17", "18-44", "45-64", "65-79", "80+"];

/// The age band (its index in [`AGE_BANDS`]) of someone born on `birth_date` (`YYYY`,
/// `YYYY-MM` or `YYYY-MM-DD`) at `at`.
fn age_band(birth_date: &str, at: Date) -> Option<usize> {
    let year: i32 = birth_date.get(0..4)?.parse().ok()?;
    let month: u8 = birth_date
        .get(5..7)
        .and_then(|m| m.parse().ok())
        .unwrap_or(1);
    let day: u8 = birth_date
        .get(8..10)
        .and_then(|d| d.parse().ok())
        .unwrap_or(1);
    let mut age = at.year() - year;
    if (u8::from(at.month()), at.day()) < (month, day) {
        age -= 1;
    }
    Some(match age {
        ..=17 => 0,
        18..=44 => 1,
        45..=64 => 2,
        65..=79 => 3,
        _ => 4,
    })
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A `periodStart`/`periodEnd` value: a date (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, taken in
/// Swedish time, the start of its first day or the end of its last) or, to pin a report to
/// an instant, a dateTime with its offset.
pub fn period_bound(value: &str, end: bool) -> Option<OffsetDateTime> {
    if value.len() > 10 {
        return OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).ok();
    }
    let year: i32 = value.get(0..4)?.parse().ok()?;
    let (first_month, last_month) = match value.get(5..7) {
        Some(m) => {
            let m: u8 = m.parse().ok()?;
            (m, m)
        }
        None if value.len() == 4 => (1, 12),
        None => return None,
    };
    let month = Month::try_from(if end { last_month } else { first_month }).ok()?;
    let day = match value.get(8..10) {
        Some(d) => Date::from_calendar_date(year, month, d.parse().ok()?).ok()?,
        None if end => {
            let first = Date::from_calendar_date(year, month, 1).ok()?;
            first
                .replace_day(time::util::days_in_month(month, year))
                .ok()?
        }
        None => Date::from_calendar_date(year, month, 1).ok()?,
    };
    if value.len() != 4 && value.len() != 7 && value.len() != 10 {
        return None;
    }
    let local = if end {
        day.next_day()?.midnight()
    } else {
        day.midnight()
    };
    let instant = local.assume_offset(stockholm_offset(day));
    Some(if end {
        instant - time::Duration::microseconds(1)
    } else {
        instant
    })
}

/// Sweden's UTC offset on `day`: +2 from the last Sunday of March to the last Sunday of
/// October (EU summer time), else +1. The switch hour itself does not matter for a
/// period's bounds, which fall at midnight.
fn stockholm_offset(day: Date) -> UtcOffset {
    let last_sunday = |month: Month| {
        let mut d = Date::from_calendar_date(day.year(), month, 31).unwrap_or(day);
        while d.weekday() != Weekday::Sunday {
            d = d.previous_day().unwrap_or(d);
        }
        d
    };
    let summer = day >= last_sunday(Month::March) && day < last_sunday(Month::October);
    UtcOffset::from_hms(if summer { 2 } else { 1 }, 0, 0).unwrap_or(UtcOffset::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn fact(patient: &str, umbrella: &str, vardkontakt: bool, lakarkontakt: bool) -> PatientFact {
        PatientFact {
            patient: patient.into(),
            umbrella: Some(umbrella.into()),
            fast_vardkontakt: vardkontakt,
            fast_lakarkontakt: lakarkontakt,
            groups: Vec::new(),
            strata: Strata {
                region: Some("Organization/r".into()),
                municipality: Some("Solna".into()),
                unit: Some("Organization/u".into()),
                sex: Some("female".into()),
                birth_date: Some("1940-06-01".into()),
            },
            sip: Vec::new(),
        }
    }

    fn period() -> Period {
        Period {
            start: datetime!(2026-01-01 0:00 UTC),
            end: datetime!(2026-12-31 23:00 UTC),
        }
    }

    #[test]
    fn m1_counts_active_umbrellas_and_masks_small_cells() {
        let mut m1 = Evaluation::new(MeasureId::M1, period(), None, false);
        for n in 0..20 {
            m1.add_patient(&fact(&format!("p{n}"), "active", n < 12, false));
        }
        m1.add_patient(&fact("draft", "draft", true, true));
        let report = m1.report(&HashMap::new(), 5, period().end);
        let group = &report["group"][0];
        assert_eq!(group["population"][1]["count"], 20);
        assert_eq!(group["population"][2]["count"], 12);
        assert_eq!(group["measureScore"]["value"], 0.6);
        // A municipality of 20 is shown; 3 without a contact would be, so the numerator
        // is masked when 2 lack one.
        let mut m1 = Evaluation::new(MeasureId::M1, period(), None, false);
        for n in 0..20 {
            m1.add_patient(&fact(&format!("p{n}"), "active", n < 18, false));
        }
        let report = m1.report(&HashMap::new(), 5, period().end);
        let group = &report["group"][0];
        assert_eq!(group["population"][1]["count"], 20);
        assert!(group["population"][2].get("count").is_none());
        assert_eq!(
            group["population"][2]["_count"]["extension"][0]["valueCode"],
            "masked"
        );
        assert!(group.get("measureScore").is_none());
    }

    #[test]
    fn age_bands_turn_on_the_birthday() {
        let band = |birth, at| age_band(birth, at).map(|b| AGE_BANDS[b]);
        assert_eq!(band("2008-03-10", date!(2026 - 03 - 09)), Some("0-17"));
        assert_eq!(band("2008-03-10", date!(2026 - 03 - 10)), Some("18-44"));
        assert_eq!(band("1940", date!(2026 - 01 - 01)), Some("80+"));
    }

    #[test]
    fn period_bounds_are_swedish_days() {
        assert_eq!(
            period_bound("2026", false),
            Some(datetime!(2025-12-31 23:00 UTC))
        );
        assert_eq!(
            period_bound("2026-06", true),
            Some(datetime!(2026-06-30 21:59:59.999999 UTC))
        );
        assert_eq!(
            period_bound("2026-07-01T12:00:00Z", true),
            Some(datetime!(2026-07-01 12:00 UTC))
        );
        assert_eq!(period_bound("2026-13", false), None);
        assert_eq!(period_bound("soon", false), None);
    }
}
