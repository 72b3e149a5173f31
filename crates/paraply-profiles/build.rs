//! Embeds every file of `fhir-profiles/` (repo root): lists the folder and writes one
//! `include_str!` per file, so a file added there is served and checked without touching code.

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let folder = manifest_dir.join("../../fhir-profiles").canonicalize()?;
    // A directory here makes cargo rerun this script when any file in it changes or appears.
    println!("cargo::rerun-if-changed={}", folder.display());

    let mut files: Vec<(String, String, PathBuf)> = Vec::new();
    for entry in fs::read_dir(&folder)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        // `<resourceType>-<id>.json`: resource type names have no hyphen, ids may.
        let Some((resource_type, id)) = stem.split_once('-') else {
            return Err(format!("{name}: expected <resourceType>-<id>.json").into());
        };
        files.push((resource_type.to_owned(), id.to_owned(), path.clone()));
    }
    files.sort();

    let mut code = String::from(
        "/// Every file of `fhir-profiles/`: (resource type, id, JSON text), sorted by file name.\n\
         pub(crate) const EMBEDDED: &[(&str, &str, &str)] = &[\n",
    );
    for (resource_type, id, path) in &files {
        writeln!(
            code,
            "    ({resource_type:?}, {id:?}, include_str!({:?})),",
            path.display().to_string()
        )?;
    }
    code.push_str("];\n");
    fs::write(
        PathBuf::from(env::var("OUT_DIR")?).join("embedded.rs"),
        code,
    )?;
    Ok(())
}
