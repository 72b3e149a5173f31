//! Synthetic Swedish patientkontrakt data for test servers and load runs (dev only).
//!
//! Owns: a deterministic (seeded) population of N patients with valid, unique personnummer,
//! living in real municipalities, and per patient the resources of DOMAIN.md §3 (umbrella
//! CarePlan, linked plans, SIP with team, consent, insatser and meetings, fast-kontakt
//! CareTeams, goals, agreed appointments and the patient's answers, tasks, närstående with
//! consents, messages): about 20–40 resources each. Also the shared world they point into
//! (regions and municipalities as huvudman Organizations, units with HSA-ids, practitioners
//! and their roles). It delivers them as PUT transaction Bundles over the public FHIR API
//! ([`load`]) or as Bulk Data style NDJSON files ([`write_ndjson`]).
//!
//! Does not: talk to storage directly (everything goes through `POST [base]` like any
//! client's data, so it is validated and indexed the normal way), validate resources itself
//! (its tests run every resource through `paraply_fhir::validate`), or read the environment
//! ([`SynthArgs`] is parsed by the `paraply` binary). It speaks plain `http://` only.
//!
//! Same options, same bytes: the generator is a seeded SplitMix64 with one stream for the
//! world and one per patient, and every date is relative to [`SynthOptions::reference_date`],
//! never the system clock. Ids are deterministic (`Patient/p-<n>`, `CareTeam/ct-<n>-<k>`, …),
//! so loading the same seed twice overwrites instead of duplicating.

mod clock;
mod data;
mod fhir;
mod load;
mod ndjson;
mod patient;
mod personnummer;
mod rng;
mod world;

use std::path::PathBuf;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use fhir::transaction;
pub use load::{DEFAULT_CONCURRENCY, LoadReport, load};
pub use ndjson::{NdjsonReport, write_ndjson};
pub use patient::PatientResources;
pub use personnummer::{MAX_PATIENTS, is_valid_personnummer};

/// Where `paraply synth` loads to unless told otherwise.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080/fhir";

/// The default reference date: generated times lie around it (history before, agreed
/// appointments in the 180 days after).
pub const DEFAULT_REFERENCE_DATE: &str = "2026-12-01T00:00:00+01:00";

/// Patients per transaction Bundle unless told otherwise (about 1,150 entries, 1.7 MB): a
/// database commits one transaction at a time and each commit has a fixed cost, so larger
/// Bundles load faster (measured on SQLite: 1 patient per Bundle 3,900 resources/s, 10
/// 7,900, 40 about 9,500; docs/benchmarks.md), while staying far below the server's body
/// limit.
pub const DEFAULT_PATIENTS_PER_BUNDLE: u64 = 40;

/// Shared resources per transaction Bundle: small enough to stay far below the server's
/// body limit, large enough that the ~2 100 shared resources take a handful of requests.
const SHARED_PER_BUNDLE: usize = 250;

/// Everything that determines the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthOptions {
    /// Patients to generate (1..=[`MAX_PATIENTS`]).
    pub patients: u64,
    /// The seed: the same seed and options give the same output byte for byte.
    pub seed: u64,
    /// "Now" for the generated data; only its calendar date is used.
    pub reference_date: OffsetDateTime,
    /// Patients per transaction Bundle (each ~30 entries).
    pub patients_per_bundle: u64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            patients: 1000,
            seed: 1,
            reference_date: default_reference_date(),
            patients_per_bundle: DEFAULT_PATIENTS_PER_BUNDLE,
        }
    }
}

fn default_reference_date() -> OffsetDateTime {
    // 2026-12-01T00:00:00+01:00 as a constant: the macro checks it at compile time.
    time::macros::datetime!(2026-12-01 00:00:00 +01:00)
}

impl SynthOptions {
    fn check(&self) -> Result<(), SynthError> {
        if self.patients > MAX_PATIENTS {
            return Err(SynthError::InvalidOptions(format!(
                "--patients: at most {MAX_PATIENTS} patients get unique personnummer, {} asked",
                self.patients
            )));
        }
        if self.patients_per_bundle == 0 {
            return Err(SynthError::InvalidOptions(
                "--patients-per-bundle must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Why synthesis or loading failed.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// The request did not get an answer (connection refused, reset, timeout).
    #[error("{what}: request to {url} failed: {source}")]
    Http {
        what: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered, but not with success for every entry.
    #[error("{what}: the server answered {status}: {detail}")]
    Rejected {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The generated population: the shared world plus a recipe for each patient. Patients
/// are generated on demand, so a million-patient run never holds them all in memory.
pub struct Population {
    options: SynthOptions,
    world: world::World,
    kommun_weights: Vec<u64>,
}

/// One transaction Bundle of patient resources and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientBundle {
    /// The first patient's number (from 1).
    pub first_patient: u64,
    pub patients: u64,
    pub resources: u64,
    pub bundle: Value,
}

/// Checks the options and builds the shared world.
pub fn generate(options: &SynthOptions) -> Result<Population, SynthError> {
    options.check()?;
    let world = world::World::new(options.seed);
    let kommun_weights = world.kommun_weights();
    Ok(Population {
        options: options.clone(),
        world,
        kommun_weights,
    })
}

impl Population {
    pub fn options(&self) -> &SynthOptions {
        &self.options
    }

    /// The shared resources (Organizations, Practitioners, PractitionerRoles) in load order.
    pub fn shared_resources(&self) -> Vec<Value> {
        self.world.resources()
    }

    /// The shared resources as transaction Bundles, to load before any patient.
    pub fn shared_bundles(&self) -> Vec<Value> {
        self.shared_resources()
            .chunks(SHARED_PER_BUNDLE)
            .map(transaction)
            .collect()
    }

    /// Patient `number`'s resources (`1..=patients`; numbers beyond still generate).
    pub fn patient(&self, number: u64) -> PatientResources {
        patient::generate(
            &self.world,
            &self.kommun_weights,
            self.options.seed,
            number,
            self.options.reference_date.date(),
        )
    }

    /// Every patient, in order.
    pub fn patients(&self) -> impl Iterator<Item = PatientResources> + Send + '_ {
        (1..=self.options.patients).map(|n| self.patient(n))
    }

    /// The patients as transaction Bundles of `patients_per_bundle` patients each.
    pub fn patient_bundles(&self) -> impl Iterator<Item = PatientBundle> + Send + '_ {
        let per = self.options.patients_per_bundle;
        let total = self.options.patients;
        (0..total.div_ceil(per)).map(move |chunk| {
            let first = chunk * per + 1;
            let last = (first + per - 1).min(total);
            let resources: Vec<Value> = (first..=last)
                .flat_map(|n| self.patient(n).resources)
                .collect();
            PatientBundle {
                first_patient: first,
                patients: last - first + 1,
                resources: resources.len() as u64,
                bundle: transaction(&resources),
            }
        })
    }
}

/// `paraply synth`: load a synthetic population into a running server, or write it as
/// NDJSON with `--ndjson DIR`.
#[derive(Debug, Clone, clap::Args)]
pub struct SynthArgs {
    /// Patients to generate.
    #[arg(long, default_value_t = 1000)]
    pub patients: u64,
    /// Seed: the same seed gives the same data byte for byte.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The server's FHIR base URL (http only).
    #[arg(long, default_value = DEFAULT_BASE_URL)]
    pub base_url: String,
    /// Transactions in flight at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Patients per transaction Bundle.
    #[arg(long, default_value_t = DEFAULT_PATIENTS_PER_BUNDLE)]
    pub patients_per_bundle: u64,
    /// "Now" for the generated data (RFC 3339).
    #[arg(long, default_value = DEFAULT_REFERENCE_DATE, value_parser = parse_reference_date)]
    pub reference_date: OffsetDateTime,
    /// Write `<ResourceType>.ndjson` files into DIR instead of loading a server.
    #[arg(long, value_name = "DIR")]
    pub ndjson: Option<PathBuf>,
}

fn parse_reference_date(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        format!("'{text}' is not an RFC 3339 date-time like {DEFAULT_REFERENCE_DATE}: {e}")
    })
}

impl SynthArgs {
    pub fn options(&self) -> SynthOptions {
        SynthOptions {
            patients: self.patients,
            seed: self.seed,
            reference_date: self.reference_date,
            patients_per_bundle: self.patients_per_bundle,
        }
    }
}

/// What [`run`] did.
#[derive(Debug, Clone)]
pub enum Summary {
    Loaded(LoadReport),
    Written(NdjsonReport),
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Summary::Loaded(report) => report.fmt(f),
            Summary::Written(report) => report.fmt(f),
        }
    }
}

/// The body of `paraply synth`: writes NDJSON if `--ndjson` is given, otherwise loads the
/// server (with a progress bar on a terminal). Prints the final line (counts and rate) to
/// stdout and returns it.
pub async fn run(args: SynthArgs) -> Result<Summary, SynthError> {
    let options = args.options();
    let summary = match &args.ndjson {
        // Synchronous on purpose: `paraply synth` runs alone on its runtime, and file
        // writing through a buffered writer is not worth a blocking-pool hop.
        Some(dir) => Summary::Written(write_ndjson(dir, &options)?),
        None => Summary::Loaded(load(&args.base_url, &options, args.concurrency).await?),
    };
    println!("{summary}");
    Ok(summary)
}
