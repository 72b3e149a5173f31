//! Loading through the public FHIR API: shared Bundles one after another (everything
//! else points at them), then patient Bundles with a fixed number in flight.

use std::fmt;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::Value;

use crate::{PatientBundle, SynthError, SynthOptions, generate};

/// Transactions in flight at once unless told otherwise: enough that the next Bundle is
/// parsed and validated while the database writes the current one.
pub const DEFAULT_CONCURRENCY: usize = 4;

const FHIR_JSON: &str = "application/fhir+json";

/// The longest server message quoted in an error.
const DETAIL_LIMIT: usize = 500;

/// What a load did and how fast.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    pub patients: u64,
    /// Transaction Bundles posted, shared ones included.
    pub bundles: u64,
    /// Resources written, shared ones included.
    pub resources: u64,
    pub shared_resources: u64,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn resources_per_second(&self) -> f64 {
        self.resources as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    pub fn patients_per_second(&self) -> f64 {
        self.patients as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loaded {} patients: {} resources ({} shared) in {} transactions, {:.1} s, {:.0} resources/s ({:.1} patients/s)",
            self.patients,
            self.resources,
            self.shared_resources,
            self.bundles,
            self.elapsed.as_secs_f64(),
            self.resources_per_second(),
            self.patients_per_second()
        )
    }
}

/// Generates the population of `options` and loads it into the server at `base_url`
/// (`http://host:port/fhir`) with `concurrency` transactions in flight. Stops at the first
/// transaction that does not fully succeed; what was loaded before stays (reloading is
/// idempotent: every entry is a PUT to a fixed id).
pub async fn load(
    base_url: &str,
    options: &SynthOptions,
    concurrency: usize,
) -> Result<LoadReport, SynthError> {
    if !base_url.starts_with("http://") {
        return Err(SynthError::InvalidOptions(format!(
            "--base-url: '{base_url}' must start with http:// (this tool speaks no TLS)"
        )));
    }
    if concurrency == 0 {
        return Err(SynthError::InvalidOptions(
            "--concurrency must be at least 1".into(),
        ));
    }
    let population = generate(options)?;
    let url = base_url.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .build()
        .map_err(|source| SynthError::Http {
            what: "HTTP client".into(),
            url: url.clone(),
            source,
        })?;
    let started = Instant::now();

    let shared = population.shared_bundles();
    let mut report = LoadReport {
        patients: 0,
        bundles: 0,
        resources: 0,
        shared_resources: 0,
        elapsed: Duration::ZERO,
    };
    for (i, bundle) in shared.iter().enumerate() {
        let entries = post(&client, &url, bundle, &format!("shared bundle {}", i + 1)).await?;
        report.bundles += 1;
        report.shared_resources += entries;
    }
    report.resources = report.shared_resources;

    // Drawn on stderr and hidden when it is not a terminal, so piped output stays clean.
    let progress = ProgressBar::new(options.patients);
    progress.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} patients ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let client = &client;
    let url = url.as_str();
    let mut done = stream::iter(population.patient_bundles())
        .map(|bundle: PatientBundle| async move {
            let what = format!(
                "patients {}..={}",
                bundle.first_patient,
                bundle.first_patient + bundle.patients - 1
            );
            post(client, url, &bundle.bundle, &what).await?;
            Ok::<_, SynthError>(bundle)
        })
        .buffer_unordered(concurrency);
    loop {
        match done.try_next().await {
            Ok(Some(bundle)) => {
                report.patients += bundle.patients;
                report.resources += bundle.resources;
                report.bundles += 1;
                progress.inc(bundle.patients);
            }
            Ok(None) => break,
            Err(error) => {
                progress.abandon();
                return Err(error);
            }
        }
    }
    progress.finish_and_clear();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Posts one transaction; `Ok` gives the number of entries, all of which succeeded.
async fn post(
    client: &reqwest::Client,
    url: &str,
    bundle: &Value,
    what: &str,
) -> Result<u64, SynthError> {
    let http_error = |source| SynthError::Http {
        what: what.to_owned(),
        url: url.to_owned(),
        source,
    };
    let body = bundle.to_string();
    let response = client
        .post(url)
        .header(CONTENT_TYPE, FHIR_JSON)
        .header(ACCEPT, FHIR_JSON)
        // Only each entry's status is checked: without the resources echoed back, the
        // answer is a few hundred bytes instead of the whole Bundle again.
        .header("prefer", "return=minimal")
        .body(body)
        .send()
        .await
        .map_err(http_error)?;
    let status = response.status();
    let text = response.text().await.map_err(http_error)?;
    let rejected = |detail: String| SynthError::Rejected {
        what: what.to_owned(),
        status: status.as_u16(),
        detail,
    };
    let answer: Option<Value> = serde_json::from_str(&text).ok();
    if !status.is_success() {
        return Err(rejected(match &answer {
            Some(outcome) => outcome_text(outcome),
            None => truncate(&text),
        }));
    }
    let Some(answer) = answer else {
        return Err(rejected(format!("not JSON: {}", truncate(&text))));
    };
    let entries = answer["entry"].as_array().map_or(&[][..], Vec::as_slice);
    let expected = bundle["entry"].as_array().map_or(0, Vec::len);
    if entries.len() != expected {
        return Err(rejected(format!(
            "{} response entries for {expected} requests",
            entries.len()
        )));
    }
    // A transaction succeeds or fails as a whole, so a failed entry here means the server
    // broke the rules; check anyway rather than count a failure as a load.
    if let Some((i, entry)) = entries.iter().enumerate().find(|(_, e)| {
        !e["response"]["status"]
            .as_str()
            .is_some_and(|s| s.starts_with('2'))
    }) {
        return Err(rejected(format!(
            "entry {i} answered {}",
            truncate(&entry["response"].to_string())
        )));
    }
    Ok(expected as u64)
}

/// The OperationOutcome's issues as one line (diagnostics and locations).
fn outcome_text(outcome: &Value) -> String {
    let issues: Vec<String> = outcome["issue"]
        .as_array()
        .map(|issues| {
            issues
                .iter()
                .map(|issue| {
                    let text = issue["diagnostics"]
                        .as_str()
                        .or_else(|| issue["details"]["text"].as_str())
                        .unwrap_or("(no text)");
                    match issue["expression"].get(0).and_then(Value::as_str) {
                        Some(at) => format!("{text} at {at}"),
                        None => text.to_owned(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if issues.is_empty() {
        truncate(&outcome.to_string())
    } else {
        truncate(&issues.join("; "))
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(DETAIL_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_is_send_so_it_can_be_spawned() {
        fn assert_send<T: Send>(_: T) {}
        let options = SynthOptions::default();
        assert_send(load("http://127.0.0.1:1/fhir", &options, 1));
    }

    #[test]
    fn refuses_https_and_zero_concurrency_before_any_request() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let options = SynthOptions::default();
        let https = runtime.block_on(load("https://example.org/fhir", &options, 8));
        assert!(matches!(https, Err(SynthError::InvalidOptions(_))));
        let zero = runtime.block_on(load("http://127.0.0.1:1/fhir", &options, 0));
        assert!(matches!(zero, Err(SynthError::InvalidOptions(_))));
    }

    #[test]
    fn outcome_text_names_issue_and_location() {
        let outcome = serde_json::json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": "required", "diagnostics": "missing", "expression": ["Goal.subject"] }],
        });
        assert_eq!(outcome_text(&outcome), "missing at Goal.subject");
    }
}
