//! One patient's patientkontrakt (DOMAIN.md §3): the Patient, the umbrella CarePlan and
//! everything under it. Each patient has its own generator stream, so patient `n` is the
//! same whatever the population size or the order patients are generated in.

use paraply_fhir::PERSONNUMMER;
use paraply_fhir::codes::{
    CARE_TEAM_CATEGORY_SYSTEM, FAST_KONTAKT, FAST_KONTAKT_ROLE_SYSTEM, PATIENTKONTRAKT,
    PLAN_CATEGORY_SYSTEM, PLAN_TYPE_SYSTEM, profile,
};
use serde_json::{Value, json};
use time::Date;

use crate::clock::{at, day, plus_days, weekday_on_or_after};
use crate::data::{
    APPOINTMENT_TOPICS, FAMILY_NAMES, FEMALE_NAMES, GOALS, KOMMUN_TASKS, LINKED_PLANS, MALE_NAMES,
    PATIENT_MESSAGES, PATIENT_TASKS, Profession, REGION_TASKS, REQUEST_OTHER_TIME, STAFF_MESSAGES,
    STREETS,
};
use crate::fhir::{
    CONSENT_ACTION, CONSENT_SCOPE, LOINC, V3_ACT_CODE, V3_PARTICIPATION_TYPE, V3_ROLE_CODE, claims,
    concept, identifier, phone, reachable_hours, reference,
};
use crate::personnummer::{self, Personnummer, RELATIVES_PER_PATIENT};
use crate::rng::Rng;
use crate::world::{Huvudman, World, fiction_mobile};

mod sip;

/// Everything generated for one patient, in load order.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientResources {
    /// The patient's number, from 1; it is part of every id (`Patient/p-<number>`).
    pub number: u64,
    pub resources: Vec<Value>,
}

/// A fixed contact the patient has: the staff member and the role code on the CareTeam.
struct Contact {
    staff: usize,
    role_code: &'static str,
    team_id: String,
}

/// A närstående with a permit Consent.
struct Relative {
    id: String,
    given: &'static str,
}

/// ICD-10, for the conditions patient groups are named by.
const ICD_10: &str = "http://hl7.org/fhir/sid/icd-10";

/// Patient groups with complex needs (ICD-10 chapter codes and Swedish names).
const PATIENT_GROUPS: &[(&str, &str)] = &[
    ("I50", "Hjärtsvikt"),
    ("J44", "KOL"),
    ("F03", "Demens"),
    ("C80", "Cancer"),
    ("E11", "Typ 2-diabetes"),
    ("F32", "Depression"),
];

/// One or (for every third patient) two patient groups of patient `n`.
pub(crate) fn patient_groups(n: u64) -> Vec<(&'static str, &'static str)> {
    let len = PATIENT_GROUPS.len() as u64;
    let first = PATIENT_GROUPS[(n.wrapping_mul(7) % len) as usize];
    let mut groups = vec![first];
    if n.is_multiple_of(3) {
        let second = PATIENT_GROUPS[((n.wrapping_mul(7) + 1 + n / 3) % len) as usize];
        if second != first {
            groups.push(second);
        }
    }
    groups
}

fn role_display(code: &str) -> &'static str {
    match code {
        "1" => "Fast vårdkontakt",
        "2" => "Fast läkarkontakt",
        "3" => "Fast omsorgskontakt",
        _ => "Fast vårdkontakt med övergripande samordningsansvar",
    }
}

/// "Kunna gå" → "kunna gå", for goals quoted inside a sentence.
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

/// Builds one patient's resources. Counters keep ids unique within the patient.
struct Builder<'w> {
    world: &'w World,
    rng: Rng,
    n: u64,
    today: Date,
    patient_id: String,
    umbrella_id: String,
    /// GOALS indices not used yet, in random order, so a patient never repeats a goal.
    goal_texts: Vec<usize>,
    goals: u32,
    tasks: u32,
    responses: u32,
    out: Vec<Value>,
}

pub(crate) fn generate(
    world: &World,
    kommun_weights: &[u64],
    seed: u64,
    n: u64,
    today: Date,
) -> PatientResources {
    let mut goal_texts: Vec<usize> = (0..GOALS.len()).collect();
    let mut rng = Rng::for_stream(seed, n);
    rng.shuffle(&mut goal_texts);
    let mut b = Builder {
        world,
        rng,
        n,
        today,
        patient_id: format!("p-{n}"),
        umbrella_id: format!("pk-{n}"),
        goal_texts,
        goals: 0,
        tasks: 0,
        responses: 0,
        out: Vec::with_capacity(40),
    };
    b.build(seed, kommun_weights);
    PatientResources {
        number: n,
        resources: b.out,
    }
}

impl Builder<'_> {
    fn patient_ref(&self) -> Value {
        reference("Patient", &self.patient_id)
    }

    /// A day in `from..=to` (clamped so `to >= from`).
    fn day_between(&mut self, from: Date, to: Date) -> Date {
        let span = (to.to_julian_day() - from.to_julian_day()).max(0) as u64;
        plus_days(from, self.rng.below(span + 1) as i64)
    }

    fn build(&mut self, seed: u64, kommun_weights: &[u64]) {
        let world = self.world;
        let pnr = personnummer::patient(seed, self.n);
        let k = self.rng.weighted(kommun_weights);
        let kommun = &world.kommuner[k];
        let given = self.given_name(pnr.male);
        let family = self.rng.pick(FAMILY_NAMES);
        // The patientkontrakt started between a month and two years ago.
        let since = plus_days(self.today, -(self.rng.range(30, 720) as i64));

        let mut name = json!({ "use": "official", "family": family, "given": [given] });
        if self.rng.chance(30) {
            let second = self.given_name(pnr.male);
            if second != given {
                name["given"] = json!([given, second]);
            }
        }
        let patient = json!({
            "resourceType": "Patient",
            "id": self.patient_id,
            "active": true,
            "identifier": [identifier(PERSONNUMMER, &pnr.value)],
            "name": [name],
            "telecom": [phone(&fiction_mobile(self.n), "mobile")],
            "gender": if pnr.male { "male" } else { "female" },
            "birthDate": day(pnr.birth_date),
            "address": [{
                "use": "home",
                "line": [format!("{} {}", self.rng.pick(STREETS), self.rng.range(1, 120))],
                "city": kommun.name,
                "postalCode": format!("{} {:02}", kommun.postal_prefix, self.rng.range(10, 99)),
                "country": "SE",
            }],
            "generalPractitioner": [reference("Organization", &world.units[kommun.vardcentral].id)],
        });
        self.out.push(patient);

        let relatives = self.relatives(seed, &pnr, family, since);
        let contacts = self.contacts(k, since);
        let umbrella_goals: Vec<(String, &str)> = (0..self.rng.range(1, 3))
            .map(|_| self.goal(since))
            .collect();
        let appointments = self.agreed_appointments(&contacts);
        let mut umbrella_tasks = Vec::new();
        for _ in 0..self.rng.range(1, 5) {
            let task = self.umbrella_task(k, &contacts);
            umbrella_tasks.push(task);
        }
        let umbrella_id = self.umbrella_id.clone();
        self.linked_plans(k, since, &umbrella_id);
        if self.rng.chance(30) {
            self.sip(k, since, &relatives);
        }
        self.messages(&contacts, since);

        let coordinator = contacts.iter().find(|c| c.role_code == "4");
        let goal_words: Vec<String> = umbrella_goals
            .iter()
            .map(|(_, text)| lower_first(text))
            .collect();
        let mut umbrella = json!({
            "resourceType": "CarePlan",
            "id": umbrella_id,
            "meta": claims(profile::PATIENTKONTRAKT),
            "status": "active",
            "intent": "plan",
            "category": [concept(PLAN_CATEGORY_SYSTEM, PATIENTKONTRAKT, "Patientkontrakt")],
            "title": "Patientkontrakt",
            "description": format!(
                "Överenskommelse mellan {given} {family} och vården. Det viktigaste för {given}: {}.",
                goal_words.join("; ")
            ),
            "subject": self.patient_ref(),
            "period": { "start": day(since) },
            "created": day(since),
            "careTeam": contacts
                .iter()
                .map(|c| reference("CareTeam", &c.team_id))
                .collect::<Vec<_>>(),
            "goal": umbrella_goals
                .iter()
                .map(|(g, _)| reference("Goal", g))
                .collect::<Vec<_>>(),
            "activity": appointments
                .iter()
                .map(|a| json!({ "reference": reference("Appointment", a) }))
                .chain(umbrella_tasks.iter().map(|t| json!({ "reference": reference("Task", t) })))
                .collect::<Vec<_>>(),
        });
        // The patient groups the agreement addresses (follow-up measure M3 counts by them),
        // taken from the patient's number rather than the generator so that adding them
        // left every other generated value as it was.
        let groups = patient_groups(self.n);
        umbrella["contained"] = groups
            .iter()
            .enumerate()
            .map(|(i, (code, display))| {
                json!({
                    "resourceType": "Condition",
                    "id": format!("grupp{i}"),
                    "code": {"coding": [{"system": ICD_10, "code": code, "display": display}]},
                    "subject": self.patient_ref(),
                })
            })
            .collect();
        umbrella["addresses"] = (0..groups.len())
            .map(|i| json!({ "reference": format!("#grupp{i}") }))
            .collect();
        // The umbrella's author is the contact with overall coordination responsibility
        // (role 4); a patient without one has a plan without an author.
        if let Some(c) = coordinator {
            umbrella["author"] = reference("PractitionerRole", &world.staff[c.staff].role_id);
        }
        self.out.push(umbrella);
    }

    fn given_name(&mut self, male: bool) -> &'static str {
        if male {
            self.rng.pick(MALE_NAMES)
        } else {
            self.rng.pick(FEMALE_NAMES)
        }
    }

    /// 0–2 närstående, each a RelatedPerson with its own personnummer and a permit Consent
    /// to read the patient's data.
    fn relatives(
        &mut self,
        seed: u64,
        patient: &Personnummer,
        family: &'static str,
        since: Date,
    ) -> Vec<Relative> {
        let count = self.rng.weighted(&[25, 50, 25]) as u64;
        let mut relatives = Vec::new();
        for k in 0..count.min(RELATIVES_PER_PATIENT) {
            let pnr = personnummer::relative(seed, self.n, k);
            let years = pnr.birth_date.year() - patient.birth_date.year();
            // The relationship follows the age gap so a 90-year-old is nobody's daughter.
            let (code, display, text) = match (years, pnr.male) {
                (18.., true) => ("SONC", "son", "Son"),
                (18.., false) => ("DAUC", "daughter", "Dotter"),
                (..=-18, true) => ("FTH", "father", "Pappa"),
                (..=-18, false) => ("MTH", "mother", "Mamma"),
                (_, true) if patient.birth_date.year() > self.today.year() - 18 => {
                    ("BRO", "brother", "Bror")
                }
                (_, false) if patient.birth_date.year() > self.today.year() - 18 => {
                    ("SIS", "sister", "Syster")
                }
                _ => ("SPS", "spouse", "Make/maka"),
            };
            let relative_family = if self.rng.chance(60) {
                family
            } else {
                self.rng.pick(FAMILY_NAMES)
            };
            let given = self.given_name(pnr.male);
            let id = format!("rp-{}-{}", self.n, k + 1);
            self.out.push(json!({
                "resourceType": "RelatedPerson",
                "id": id,
                "active": true,
                "identifier": [identifier(PERSONNUMMER, &pnr.value)],
                "patient": self.patient_ref(),
                "relationship": [{
                    "coding": [{ "system": V3_ROLE_CODE, "code": code, "display": display }],
                    "text": text,
                }],
                "name": [{ "family": relative_family, "given": [given] }],
                "telecom": [phone(&fiction_mobile(self.n + k + 1), "mobile")],
                "gender": if pnr.male { "male" } else { "female" },
                "birthDate": day(pnr.birth_date),
            }));
            let granted = self.day_between(since, self.today);
            self.out.push(json!({
                "resourceType": "Consent",
                "id": format!("consent-{}-{}", self.n, k + 1),
                "meta": claims(profile::NARSTAENDE_CONSENT),
                "status": "active",
                "scope": concept(CONSENT_SCOPE, "patient-privacy", "Privacy Consent"),
                "category": [concept(LOINC, "59284-0", "Patient Consent")],
                "patient": self.patient_ref(),
                "dateTime": day(granted),
                "performer": [self.patient_ref()],
                "policyRule": concept(V3_ACT_CODE, "OPTIN", "opt-in"),
                "provision": {
                    "type": "permit",
                    "period": { "start": day(granted) },
                    "actor": [{
                        "role": concept(V3_PARTICIPATION_TYPE, "IRCP", "information recipient"),
                        "reference": reference("RelatedPerson", &id),
                    }],
                    "action": [concept(CONSENT_ACTION, "access", "Access")],
                },
            }));
            relatives.push(Relative { id, given });
        }
        relatives
    }

    /// 1–9 fasta kontakter (mostly 1–3), one CareTeam each, and for 60 % of patients a
    /// fast läkarkontakt at their vårdcentral.
    fn contacts(&mut self, k: usize, since: Date) -> Vec<Contact> {
        let world = self.world;
        let kommun = &world.kommuner[k];
        let region = &world.regions[kommun.region];
        let vc_nurses = world.staff_of(kommun.vardcentral, Profession::Sjukskoterska);
        let mut pool: Vec<usize> = vc_nurses.clone();
        for clinic in &region.clinics {
            pool.extend(&world.units[*clinic].staff);
        }
        pool.extend(&world.units[kommun.hemsjukvard].staff);
        pool.extend(&world.units[kommun.hemtjanst].staff);
        self.rng.shuffle(&mut pool);
        // Most patients' first fast vårdkontakt is a nurse at their vårdcentral.
        if self.rng.chance(70)
            && let Some(pos) = pool.iter().position(|s| vc_nurses.contains(s))
        {
            pool.swap(0, pos);
        }
        let count = 1 + self.rng.weighted(&[30, 28, 18, 9, 6, 4, 2, 2, 1]);
        let is_region = |s: usize| {
            matches!(
                world.units[world.staff[s].unit].huvudman,
                Huvudman::Region(_)
            )
        };
        let coordinator = if self.rng.chance(85) {
            pool[..count].iter().copied().find(|s| is_region(*s))
        } else {
            None
        };
        let mut contacts: Vec<Contact> = pool[..count]
            .iter()
            .enumerate()
            .map(|(i, &s)| Contact {
                staff: s,
                role_code: if Some(s) == coordinator {
                    "4"
                } else if is_region(s) {
                    "1"
                } else {
                    "3"
                },
                team_id: format!("ct-{}-{}", self.n, i + 1),
            })
            .collect();
        if self.rng.chance(60) {
            let doctors = world.staff_of(kommun.vardcentral, Profession::Lakare);
            contacts.push(Contact {
                staff: self.rng.pick(&doctors),
                role_code: "2",
                team_id: format!("ct-{}-{}", self.n, count + 1),
            });
        }
        for contact in &contacts {
            let staff = &world.staff[contact.staff];
            let unit = &world.units[staff.unit];
            let from = self.day_between(since, self.today);
            let display = role_display(contact.role_code);
            self.out.push(json!({
                "resourceType": "CareTeam",
                "id": contact.team_id,
                "meta": claims(profile::FAST_KONTAKT),
                // Reachable when the contact works (their role's availableTime).
                "extension": [reachable_hours(staff.days, staff.hours.0, staff.hours.1)],
                "status": "active",
                "category": [concept(CARE_TEAM_CATEGORY_SYSTEM, FAST_KONTAKT, "Fast kontakt")],
                "name": display,
                "subject": self.patient_ref(),
                "period": { "start": day(from) },
                "participant": [{
                    "role": [concept(FAST_KONTAKT_ROLE_SYSTEM, contact.role_code, display)],
                    // No onBehalfOf: R4's ctm-1 allows it only for a Practitioner
                    // member; the role's own `organization` names the unit.
                    "member": reference("PractitionerRole", &staff.role_id),
                }],
                "managingOrganization": [reference("Organization", &unit.id)],
                "telecom": [phone(&unit.phone, "work")],
            }));
        }
        contacts
    }

    /// A Goal in the patient's words; returns its id and text.
    fn goal(&mut self, since: Date) -> (String, &'static str) {
        self.goals += 1;
        let id = format!("goal-{}-{}", self.n, self.goals);
        // There are more goal texts than a patient can use (3 + 3 + 1).
        let text = self.goal_texts.pop().map_or(GOALS[0], |i| GOALS[i]);
        let mut goal = json!({
            "resourceType": "Goal",
            "id": id,
            "lifecycleStatus": "active",
            "description": { "text": text },
            "subject": self.patient_ref(),
            "startDate": day(since),
            "expressedBy": self.patient_ref(),
        });
        if self.rng.chance(50) {
            let due = plus_days(self.today, self.rng.range(30, 365) as i64);
            goal["target"] = json!([{ "dueDate": day(due) }]);
        }
        self.out.push(goal);
        (id, text)
    }

    /// 1–4 appointments agreed with the patient in the next 180 days: proposed (not
    /// answered), pending (the patient asked for another time) or booked (accepted).
    fn agreed_appointments(&mut self, contacts: &[Contact]) -> Vec<String> {
        let world = self.world;
        let count = 1 + self.rng.weighted(&[20, 35, 25, 20]);
        let mut ids = Vec::new();
        for i in 0..count {
            let id = format!("appt-{}-{}", self.n, i + 1);
            let contact = &contacts[self.rng.index(contacts.len())];
            let staff = &world.staff[contact.staff];
            let date = weekday_on_or_after(plus_days(self.today, self.rng.range(1, 180) as i64));
            let hour = self.rng.range(8, 15) as u8;
            let minute = self.rng.pick(&[0u8, 15, 30, 45]);
            let length = self.rng.pick(&[30u8, 45, 60]);
            let (end_hour, end_minute) = (hour + (minute + length) / 60, (minute + length) % 60);
            let (status, patient_status) = match self.rng.weighted(&[50, 30, 20]) {
                0 => ("booked", "accepted"),
                1 => ("proposed", "needs-action"),
                _ => ("pending", "tentative"),
            };
            let created = plus_days(self.today, -(self.rng.range(1, 30) as i64));
            self.out.push(json!({
                "resourceType": "Appointment",
                "id": id,
                "meta": claims(profile::AGREED_APPOINTMENT),
                "status": status,
                "description": self.rng.pick(APPOINTMENT_TOPICS),
                "start": at(date, hour, minute),
                "end": at(date, end_hour, end_minute),
                "created": day(created),
                "participant": [
                    { "actor": self.patient_ref(), "required": "required", "status": patient_status },
                    {
                        "actor": reference("PractitionerRole", &staff.role_id),
                        "required": "required",
                        "status": "accepted",
                    },
                ],
            }));
            if status != "proposed" {
                let mut response = json!({
                    "resourceType": "AppointmentResponse",
                    "id": self.next_response_id(),
                    "appointment": reference("Appointment", &id),
                    "actor": self.patient_ref(),
                    "participantStatus": patient_status,
                });
                if status == "pending" {
                    response["comment"] = json!(self.rng.pick(REQUEST_OTHER_TIME));
                }
                self.out.push(response);
            }
            ids.push(id);
        }
        ids
    }

    fn next_response_id(&mut self) -> String {
        self.responses += 1;
        format!("svar-{}-{}", self.n, self.responses)
    }

    /// A Task (Insats); returns its id.
    fn task(&mut self, description: &str, based_on: &str, owner: Value) -> String {
        self.tasks += 1;
        let id = format!("task-{}-{}", self.n, self.tasks);
        let today = self.today;
        let status = self.rng.pick(&[
            "requested",
            "accepted",
            "in-progress",
            "in-progress",
            "completed",
        ]);
        let (start, end) = match status {
            "completed" => {
                let end = plus_days(today, -(self.rng.range(1, 30) as i64));
                (plus_days(end, -(self.rng.range(7, 90) as i64)), end)
            }
            "requested" => {
                let start = plus_days(today, self.rng.range(7, 60) as i64);
                (start, plus_days(start, self.rng.range(30, 180) as i64))
            }
            _ => {
                let start = plus_days(today, -(self.rng.range(0, 60) as i64));
                (start, plus_days(start, self.rng.range(30, 180) as i64))
            }
        };
        let authored = plus_days(start.min(today), -(self.rng.range(1, 14) as i64));
        self.out.push(json!({
            "resourceType": "Task",
            "id": id,
            "meta": claims(profile::INSATS),
            "status": status,
            "intent": "plan",
            "description": description,
            "basedOn": [reference("CarePlan", based_on)],
            "for": self.patient_ref(),
            "authoredOn": day(authored),
            "owner": owner,
            "executionPeriod": { "start": day(start), "end": day(end) },
        }));
        id
    }

    /// A task under the umbrella, owned by the patient, one of their contacts, or a unit.
    fn umbrella_task(&mut self, k: usize, contacts: &[Contact]) -> String {
        let world = self.world;
        let kommun = &world.kommuner[k];
        let umbrella = self.umbrella_id.clone();
        match self.rng.weighted(&[25, 40, 35]) {
            0 => {
                let text = self.rng.pick(PATIENT_TASKS);
                let owner = self.patient_ref();
                self.task(text, &umbrella, owner)
            }
            1 => {
                let staff = &world.staff[contacts[self.rng.index(contacts.len())].staff];
                let text = match world.units[staff.unit].huvudman {
                    Huvudman::Region(_) => self.rng.pick(REGION_TASKS),
                    Huvudman::Kommun(_) => self.rng.pick(KOMMUN_TASKS),
                };
                self.task(
                    text,
                    &umbrella,
                    reference("PractitionerRole", &staff.role_id),
                )
            }
            _ => {
                let (unit, text) = if self.rng.chance(50) {
                    (kommun.vardcentral, self.rng.pick(REGION_TASKS))
                } else {
                    (kommun.hemtjanst, self.rng.pick(KOMMUN_TASKS))
                };
                self.task(
                    text,
                    &umbrella,
                    reference("Organization", &world.units[unit].id),
                )
            }
        }
    }

    /// 0–3 other plans under the umbrella, each written by a unit, with a goal, a task and
    /// (often) the plan document kept by another system.
    fn linked_plans(&mut self, k: usize, since: Date, umbrella_id: &str) {
        let world = self.world;
        let kommun = &world.kommuner[k];
        let region = &world.regions[kommun.region];
        let count = self.rng.weighted(&[15, 35, 30, 20]);
        let mut types: Vec<usize> = (0..LINKED_PLANS.len()).collect();
        self.rng.shuffle(&mut types);
        for (i, &t) in types.iter().take(count).enumerate() {
            let (code, title, municipal) = LINKED_PLANS[t];
            let unit = match code {
                "VP" => kommun.vardcentral,
                "RP" | "HP" => region.clinics[1],
                "SPLPTLRV" => region.clinics[2],
                _ if municipal => kommun.hemtjanst,
                _ => region.clinics[0],
            };
            let unit_id = &world.units[unit].id;
            let id = format!("plan-{}-{}", self.n, i + 1);
            let start = self.day_between(since, self.today);
            let (goal, _) = self.goal(start);
            let text = if municipal {
                self.rng.pick(KOMMUN_TASKS)
            } else {
                self.rng.pick(REGION_TASKS)
            };
            let task = self.task(text, &id, reference("Organization", unit_id));
            let mut plan = json!({
                "resourceType": "CarePlan",
                "id": id,
                "meta": claims(profile::LINKED_PLAN),
                "status": "active",
                "intent": "plan",
                "category": [concept(PLAN_TYPE_SYSTEM, code, title)],
                "title": title,
                "subject": self.patient_ref(),
                "period": { "start": day(start) },
                "created": day(start),
                "partOf": [reference("CarePlan", umbrella_id)],
                "author": reference("Organization", unit_id),
                "goal": [reference("Goal", &goal)],
                "activity": [{ "reference": reference("Task", &task) }],
            });
            // The plan's own document lives in the unit's system; Paraply links to it.
            if self.rng.chance(60) {
                let doc = format!("doc-{}-{}", self.n, i + 1);
                self.out.push(json!({
                    "resourceType": "DocumentReference",
                    "id": doc,
                    "status": "current",
                    "type": { "text": title },
                    "subject": self.patient_ref(),
                    "date": at(start, 10, 0),
                    "author": [reference("Organization", unit_id)],
                    "description": format!("{title} (PDF)"),
                    "content": [{
                        "attachment": {
                            "contentType": "application/pdf",
                            "url": format!("https://dokument.example/{}/{doc}.pdf", world.huvudman_id(world.units[unit].huvudman)),
                            "title": title,
                        },
                    }],
                }));
                plan["supportingInfo"] = json!([reference("DocumentReference", &doc)]);
            }
            self.out.push(plan);
        }
    }

    /// 1–4 messages between the patient and their contacts.
    fn messages(&mut self, contacts: &[Contact], since: Date) {
        let world = self.world;
        let count = 1 + self.rng.weighted(&[30, 30, 25, 15]);
        for i in 0..count {
            let contact = &contacts[self.rng.index(contacts.len())];
            let staff_ref = reference("PractitionerRole", &world.staff[contact.staff].role_id);
            let from_patient = self.rng.chance(60);
            let (sender, recipient, text) = if from_patient {
                (
                    self.patient_ref(),
                    staff_ref,
                    self.rng.pick(PATIENT_MESSAGES),
                )
            } else {
                (staff_ref, self.patient_ref(), self.rng.pick(STAFF_MESSAGES))
            };
            // Sent before the reference instant (midnight), so on an earlier day.
            let date = self.day_between(since, plus_days(self.today, -1));
            let sent = at(
                date,
                self.rng.range(7, 20) as u8,
                self.rng.range(0, 59) as u8,
            );
            self.out.push(json!({
                "resourceType": "Communication",
                "id": format!("msg-{}-{}", self.n, i + 1),
                "status": "completed",
                "subject": self.patient_ref(),
                "sent": sent,
                "sender": sender,
                "recipient": [recipient],
                "payload": [{ "contentString": text }],
            }));
        }
    }
}
