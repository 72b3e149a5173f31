//! The shared world every patient points into: regions and municipalities (the huvudmän),
//! their units, and the staff working there. It depends on the seed only (names, hours),
//! never on the number of patients, so patient `n` sees the same world in every run.

use paraply_fhir::codes::HUVUDMAN_TYPE_SYSTEM;
use paraply_fhir::{HSA_ID, ORGANISATIONSNUMMER};
use serde_json::{Value, json};

use crate::data::{FAMILY_NAMES, FEMALE_NAMES, MALE_NAMES, Profession, REGIONS};
use crate::fhir::{ORGANIZATION_TYPE, concept, identifier, phone, reference};
use crate::rng::Rng;

/// The stream number of the world's generator (patients use their own numbers, from 1).
const WORLD_STREAM: u64 = 0;

/// Which huvudman a unit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Huvudman {
    Region(usize),
    Kommun(usize),
}

pub(crate) struct Region {
    pub(crate) id: String,
    pub(crate) name: &'static str,
    orgnr: String,
    /// Clinics at the region's hospital: medicine, rehabilitation, psychiatry.
    pub(crate) clinics: Vec<usize>,
}

pub(crate) struct Kommun {
    pub(crate) id: String,
    /// The municipality's name, also the city in addresses.
    pub(crate) name: &'static str,
    pub(crate) region: usize,
    pub(crate) postal_prefix: u16,
    population: u64,
    orgnr: String,
    /// The region's primary-care unit in this municipality.
    pub(crate) vardcentral: usize,
    pub(crate) hemsjukvard: usize,
    pub(crate) hemtjanst: usize,
    pub(crate) bistand: usize,
}

pub(crate) struct Unit {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) huvudman: Huvudman,
    city: &'static str,
    hsa: String,
    pub(crate) phone: String,
    pub(crate) staff: Vec<usize>,
}

pub(crate) struct Staff {
    practitioner_id: String,
    pub(crate) role_id: String,
    pub(crate) profession: Profession,
    pub(crate) unit: usize,
    pub(crate) given: &'static str,
    pub(crate) family: &'static str,
    male: bool,
    hsa: String,
    phone: String,
    /// Weekdays the role is reachable (PractitionerRole.availableTime).
    pub(crate) days: &'static [&'static str],
    pub(crate) hours: (&'static str, &'static str),
}

pub(crate) struct World {
    pub(crate) regions: Vec<Region>,
    pub(crate) kommuner: Vec<Kommun>,
    pub(crate) units: Vec<Unit>,
    pub(crate) staff: Vec<Staff>,
}

/// Working-week patterns for staff (most full-time, some part-time).
const DAY_PATTERNS: &[&[&str]] = &[
    &["mon", "tue", "wed", "thu", "fri"],
    &["mon", "tue", "wed", "thu", "fri"],
    &["mon", "tue", "wed", "thu", "fri"],
    &["mon", "tue", "thu"],
    &["tue", "wed", "fri"],
];
const HOUR_PATTERNS: &[(&str, &str)] = &[
    ("08:00:00", "16:00:00"),
    ("07:30:00", "16:30:00"),
    ("09:00:00", "15:00:00"),
];

/// Numbers Post- och telestyrelsen reserves for fiction (08-465 004 00–99), so no
/// generated number rings a real phone.
pub(crate) fn fiction_landline(n: u64) -> String {
    format!("+46 8 465 004 {:02}", n % 100)
}

/// PTS's fiction range for mobiles: 070-174 06 05–99.
pub(crate) fn fiction_mobile(n: u64) -> String {
    format!("+46 70 174 06 {:02}", 5 + n % 95)
}

/// An organisationsnummer: a prefix plus the Luhn check digit over the first nine digits.
fn organisationsnummer(nine: &str) -> String {
    let sum: u32 = nine
        .bytes()
        .map(|b| u32::from(b - b'0'))
        .enumerate()
        .map(|(i, d)| {
            let weighted = if i % 2 == 0 { d * 2 } else { d };
            weighted / 10 + weighted % 10
        })
        .sum();
    format!("{nine}{}", (10 - sum % 10) % 10)
}

impl World {
    pub(crate) fn new(seed: u64) -> World {
        let mut rng = Rng::for_stream(seed, WORLD_STREAM);
        let mut world = World {
            regions: Vec::new(),
            kommuner: Vec::new(),
            units: Vec::new(),
            staff: Vec::new(),
        };
        for (r, region) in REGIONS.iter().enumerate() {
            // Regions' organisationsnummer start 232100, municipalities' 212000 (the real
            // prefixes); the rest is synthetic.
            let orgnr = organisationsnummer(&format!("2321000{:02}", r + 1));
            world.regions.push(Region {
                id: format!("region-{:02}", r + 1),
                name: region.name,
                orgnr,
                clinics: Vec::new(),
            });
            let huvudman = Huvudman::Region(r);
            for (clinic, staff) in [
                (
                    "Medicinkliniken",
                    [Profession::Lakare, Profession::Sjukskoterska],
                ),
                (
                    "Rehabiliteringskliniken",
                    [Profession::Fysioterapeut, Profession::Arbetsterapeut],
                ),
                (
                    "Psykiatriska kliniken",
                    [Profession::Lakare, Profession::Kurator],
                ),
            ] {
                let unit = world.add_unit(
                    &mut rng,
                    format!("{}, {clinic}", region.hospital),
                    // The hospital is in the region's first (main) municipality.
                    region
                        .municipalities
                        .first()
                        .map_or(region.name, |m| m.name),
                    huvudman,
                    &staff,
                );
                world.regions[r].clinics.push(unit);
            }
            for municipality in region.municipalities {
                let k = world.kommuner.len();
                let orgnr = organisationsnummer(&format!("212000{:03}", k + 1));
                let name = municipality.name;
                let vardcentral = world.add_unit(
                    &mut rng,
                    format!("Vårdcentralen {name}"),
                    name,
                    huvudman,
                    &[
                        Profession::Lakare,
                        Profession::Lakare,
                        Profession::Sjukskoterska,
                        Profession::Sjukskoterska,
                    ],
                );
                let kommun = Huvudman::Kommun(k);
                let hemsjukvard = world.add_unit(
                    &mut rng,
                    format!("Hemsjukvården {name}"),
                    name,
                    kommun,
                    &[Profession::Sjukskoterska, Profession::Sjukskoterska],
                );
                let hemtjanst = world.add_unit(
                    &mut rng,
                    format!("Hemtjänsten {name}"),
                    name,
                    kommun,
                    &[Profession::Underskoterska, Profession::Underskoterska],
                );
                let bistand = world.add_unit(
                    &mut rng,
                    format!("Biståndsenheten {name}"),
                    name,
                    kommun,
                    &[Profession::Bistandshandlaggare],
                );
                world.kommuner.push(Kommun {
                    id: format!("kommun-{:03}", k + 1),
                    name,
                    region: r,
                    postal_prefix: municipality.postal_prefix,
                    population: municipality.population,
                    orgnr,
                    vardcentral,
                    hemsjukvard,
                    hemtjanst,
                    bistand,
                });
            }
        }
        world
    }

    fn add_unit(
        &mut self,
        rng: &mut Rng,
        name: String,
        city: &'static str,
        huvudman: Huvudman,
        professions: &[Profession],
    ) -> usize {
        let index = self.units.len();
        // A unit's HSA-id hangs off its huvudman's organisationsnummer; the municipality
        // may not be pushed yet, so its number is derived the same way here.
        let orgnr = match huvudman {
            Huvudman::Region(r) => organisationsnummer(&format!("2321000{:02}", r + 1)),
            Huvudman::Kommun(k) => organisationsnummer(&format!("212000{:03}", k + 1)),
        };
        let mut unit = Unit {
            id: format!("unit-{}", index + 1),
            name,
            huvudman,
            city,
            hsa: format!("SE{orgnr}-E{:04}", index + 1),
            phone: fiction_landline(index as u64),
            staff: Vec::new(),
        };
        for profession in professions {
            let s = self.staff.len();
            let male = rng.chance(40);
            let given = if male {
                rng.pick(MALE_NAMES)
            } else {
                rng.pick(FEMALE_NAMES)
            };
            self.staff.push(Staff {
                practitioner_id: format!("prac-{}", s + 1),
                role_id: format!("role-{}", s + 1),
                profession: *profession,
                unit: index,
                given,
                family: rng.pick(FAMILY_NAMES),
                male,
                hsa: format!("SE{orgnr}-P{:05}", s + 1),
                phone: fiction_landline(s as u64),
                days: rng.pick(DAY_PATTERNS),
                hours: rng.pick(HOUR_PATTERNS),
            });
            unit.staff.push(s);
        }
        self.units.push(unit);
        index
    }

    /// The relative weights of the municipalities (their populations), in order.
    pub(crate) fn kommun_weights(&self) -> Vec<u64> {
        self.kommuner.iter().map(|k| k.population).collect()
    }

    /// The top-level Organization id of a huvudman.
    pub(crate) fn huvudman_id(&self, huvudman: Huvudman) -> &str {
        match huvudman {
            Huvudman::Region(r) => &self.regions[r].id,
            Huvudman::Kommun(k) => &self.kommuner[k].id,
        }
    }

    /// Staff of a unit with a given profession.
    pub(crate) fn staff_of(&self, unit: usize, profession: Profession) -> Vec<usize> {
        self.units[unit]
            .staff
            .iter()
            .copied()
            .filter(|s| self.staff[*s].profession == profession)
            .collect()
    }

    /// Every shared resource in load order: huvudmän, units (whose `partOf` points at a
    /// huvudman), practitioners, then the roles that link the two.
    pub(crate) fn resources(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for region in &self.regions {
            out.push(huvudman_org(
                &region.id,
                region.name,
                &region.orgnr,
                "region",
                "Region",
            ));
        }
        for kommun in &self.kommuner {
            out.push(huvudman_org(
                &kommun.id,
                &format!("{} kommun", kommun.name),
                &kommun.orgnr,
                "kommun",
                "Kommun",
            ));
        }
        for unit in &self.units {
            out.push(json!({
                "resourceType": "Organization",
                "id": unit.id,
                "active": true,
                "identifier": [identifier(HSA_ID, &unit.hsa)],
                "type": [concept(ORGANIZATION_TYPE, "prov", "Healthcare Provider")],
                "name": unit.name,
                "telecom": [phone(&unit.phone, "work")],
                "address": [{ "use": "work", "city": unit.city, "country": "SE" }],
                "partOf": reference("Organization", self.huvudman_id(unit.huvudman)),
            }));
        }
        for staff in &self.staff {
            out.push(json!({
                "resourceType": "Practitioner",
                "id": staff.practitioner_id,
                "active": true,
                "identifier": [identifier(HSA_ID, &staff.hsa)],
                "name": [{ "family": staff.family, "given": [staff.given] }],
                "gender": if staff.male { "male" } else { "female" },
            }));
        }
        for staff in &self.staff {
            let unit = &self.units[staff.unit];
            out.push(json!({
                "resourceType": "PractitionerRole",
                "id": staff.role_id,
                "active": true,
                "identifier": [identifier(HSA_ID, &staff.hsa)],
                "practitioner": reference("Practitioner", &staff.practitioner_id),
                "organization": reference("Organization", &unit.id),
                "code": [{ "text": staff.profession.title() }],
                "telecom": [phone(&staff.phone, "work")],
                "availableTime": [{
                    "daysOfWeek": staff.days,
                    "availableStartTime": staff.hours.0,
                    "availableEndTime": staff.hours.1,
                }],
            }));
        }
        out
    }
}

fn huvudman_org(id: &str, name: &str, orgnr: &str, code: &str, display: &str) -> Value {
    json!({
        "resourceType": "Organization",
        "id": id,
        "active": true,
        "identifier": [
            identifier(HSA_ID, &format!("SE{orgnr}-0001")),
            identifier(ORGANISATIONSNUMMER, orgnr),
        ],
        "type": [concept(HUVUDMAN_TYPE_SYSTEM, code, display)],
        "name": name,
    })
}
