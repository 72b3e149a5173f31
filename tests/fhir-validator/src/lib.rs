//! The independent FHIR R4 validator (`../shared/tools/fhir-validate`, a Python tool outside
//! this repository) for tests: what Paraply emits is checked by something that is not
//! Paraply. It runs when `PARAPLY_FHIR_VALIDATOR_PYTHON` names a Python with
//! `fhir.resources` installed (`tests/run-all.sh` sets one up) and the tool is present
//! beside the repository; otherwise it says loudly that it skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The validator's script, beside the repository (`../shared`).
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/fhir-validate/validate_r4.py")
}

/// The Python to run the validator with, or why it cannot run.
fn python() -> Result<String, String> {
    let python = std::env::var("PARAPLY_FHIR_VALIDATOR_PYTHON").map_err(|_| {
        "PARAPLY_FHIR_VALIDATOR_PYTHON is not set; emitted JSON not validated independently"
            .to_owned()
    })?;
    if !script().exists() {
        return Err(format!("{} is absent", script().display()));
    }
    Ok(python)
}

/// Asserts that every file is valid R4, or prints why the check was skipped.
pub fn assert_files_valid(files: &[PathBuf]) {
    let python = match python() {
        Ok(python) => python,
        Err(reason) => {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
    let output = Command::new(python)
        .arg(script())
        .arg("-q")
        .args(files)
        .output()
        .unwrap_or_else(|error| panic!("cannot run the FHIR validator: {error}"));
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Asserts that every `(name, JSON text)` is valid R4, or prints why the check was skipped.
pub fn assert_valid(documents: &[(&str, &str)]) {
    if let Err(reason) = python() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "paraply-validate-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    let files: Vec<PathBuf> = documents
        .iter()
        .map(|(name, text)| {
            let file = dir.join(format!("{name}.json"));
            std::fs::write(&file, text)
                .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
            file
        })
        .collect();
    assert_files_valid(&files);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A number no other call in this process has used, for a private directory.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
