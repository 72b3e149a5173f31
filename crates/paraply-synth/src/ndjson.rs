//! Bulk Data style output: one `<ResourceType>.ndjson` file per type, one resource per
//! line, ids assigned here (the same as in the transaction Bundles).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{SynthError, SynthOptions, generate};

/// What [`write_ndjson`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NdjsonReport {
    pub dir: PathBuf,
    pub patients: u64,
    pub resources: u64,
    /// Lines per file, by resource type (sorted by type).
    pub files: BTreeMap<String, u64>,
}

impl fmt::Display for NdjsonReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wrote {} patients: {} resources in {} files under {}",
            self.patients,
            self.resources,
            self.files.len(),
            self.dir.display()
        )
    }
}

/// Writes the population of `options` into `dir` (created if missing): shared resources
/// first, then the patients in order, so the files are the same byte for byte per seed.
/// Existing files of the same names are replaced.
pub fn write_ndjson(dir: &Path, options: &SynthOptions) -> Result<NdjsonReport, SynthError> {
    let population = generate(options)?;
    std::fs::create_dir_all(dir).map_err(|source| SynthError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut writers = Writers {
        dir,
        open: BTreeMap::new(),
        report: NdjsonReport {
            dir: dir.to_owned(),
            patients: 0,
            resources: 0,
            files: BTreeMap::new(),
        },
    };
    for resource in population.shared_resources() {
        writers.write(&resource)?;
    }
    for patient in population.patients() {
        for resource in &patient.resources {
            writers.write(resource)?;
        }
        writers.report.patients += 1;
    }
    writers.finish()
}

struct Writers<'a> {
    dir: &'a Path,
    open: BTreeMap<String, (PathBuf, BufWriter<File>)>,
    report: NdjsonReport,
}

impl Writers<'_> {
    fn write(&mut self, resource: &Value) -> Result<(), SynthError> {
        let resource_type = resource["resourceType"].as_str().unwrap_or("Unknown");
        if !self.open.contains_key(resource_type) {
            let path = self.dir.join(format!("{resource_type}.ndjson"));
            let file = File::create(&path).map_err(|source| SynthError::Io {
                path: path.clone(),
                source,
            })?;
            self.open
                .insert(resource_type.to_owned(), (path, BufWriter::new(file)));
        }
        if let Some((path, out)) = self.open.get_mut(resource_type) {
            writeln!(out, "{resource}").map_err(|source| SynthError::Io {
                path: path.clone(),
                source,
            })?;
        }
        *self
            .report
            .files
            .entry(resource_type.to_owned())
            .or_default() += 1;
        self.report.resources += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<NdjsonReport, SynthError> {
        for (path, out) in self.open.values_mut() {
            out.flush().map_err(|source| SynthError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(self.report)
    }
}
