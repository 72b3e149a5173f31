//! Batch and transaction Bundles (R4 http.html#transaction).
//!
//! Each entry becomes a [`FhirRequest`] and is parsed by the same [`Interaction::parse`]
//! as a request sent alone. A batch runs each entry on its own; a transaction runs all of
//! them in one store transaction, in the order the spec prescribes (DELETE, POST,
//! PUT/PATCH, GET), after resolving `urn:uuid:` full URLs and conditional references.

use std::collections::HashMap;

use async_trait::async_trait;
use paraply_fhir::{ResourceId, ResourceType};
use paraply_search::SearchQuery;
use serde_json::Value;

use crate::access::Access;
use crate::access_record::AccessSummary;
use crate::engine::{Fhir, Outcome, Reader, is_write, log_read_in, restricted};
use crate::error::{CoreError, Method};
use crate::operations::Operations;
use crate::request::{FhirRequest, Interaction, conditional, parse_query};
use crate::write::{WriteFailure, WriteTx, WriteWork, named_target, write_checked};

/// One entry of an incoming batch or transaction.
struct Entry {
    full_url: Option<String>,
    /// `METHOD url`, for messages.
    label: String,
    interaction: Result<Interaction, CoreError>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BundleKind {
    Batch,
    Transaction,
}

impl Fhir {
    pub(crate) async fn bundle(
        &self,
        bundle: Value,
        access: Option<&Access>,
    ) -> Result<Outcome, CoreError> {
        if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            return Err(CoreError::bad_request(
                "POST to the base takes a Bundle of type batch or transaction",
            ));
        }
        let kind = match bundle.get("type").and_then(Value::as_str) {
            Some("batch") => BundleKind::Batch,
            Some("transaction") => BundleKind::Transaction,
            other => {
                return Err(CoreError::BadRequest {
                    message: format!(
                        "Bundle.type must be 'batch' or 'transaction', not '{}'",
                        other.unwrap_or("(missing)")
                    ),
                    expression: Some("Bundle.type".into()),
                });
            }
        };
        let entries: Vec<Entry> = match bundle.get("entry") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|entry| parse_entry(entry, self.operations()))
                .collect(),
            Some(_) => {
                return Err(CoreError::BadRequest {
                    message: "Bundle.entry must be an array".into(),
                    expression: Some("Bundle.entry".into()),
                });
            }
        };
        match kind {
            BundleKind::Batch => Ok(self.batch(entries, access).await),
            BundleKind::Transaction => self.transaction(entries, access).await,
        }
    }

    async fn batch(&self, entries: Vec<Entry>, access: Option<&Access>) -> Outcome {
        let mut results = Vec::with_capacity(entries.len());
        for entry in entries {
            let result = match entry.interaction {
                Ok(interaction) => Box::pin(self.execute(interaction, access)).await,
                Err(error) => Err(error),
            };
            results.push(result);
        }
        Outcome::BundleResponse {
            transaction: false,
            entries: results,
        }
    }

    async fn transaction(
        &self,
        entries: Vec<Entry>,
        access: Option<&Access>,
    ) -> Result<Outcome, CoreError> {
        let mut interactions = Vec::with_capacity(entries.len());
        let mut labels = Vec::with_capacity(entries.len());
        let mut entry_urls = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            let mut interaction = entry
                .interaction
                .map_err(|error| entry_failed(index, &entry.label, error))?;
            let checked = match access {
                Some(access) => access.check_interaction(&interaction),
                None => Ok(()),
            }
            .and_then(|()| self.validator_ref().prevalidate(&mut interaction));
            if let Err(error) = checked {
                if let Some(access) = access {
                    self.log_failure(access, AccessSummary::of(&interaction), &error)
                        .await?;
                }
                return Err(entry_failed(index, &entry.label, error));
            }
            interactions.push(restricted(interaction, access));
            labels.push(entry.label);
            entry_urls.push(entry.full_url);
            // Validating a large Bundle takes milliseconds of CPU in one go; letting other
            // tasks run between entries keeps this worker thread from holding up the one
            // write transaction in progress, which everyone's writes queue behind.
            tokio::task::yield_now().await;
        }
        let work = TransactionWork {
            fhir: self,
            interactions: &interactions,
            labels: &labels,
            entry_urls: &entry_urls,
            access,
        };
        let result = self
            .write_transaction(access, &work)
            .await
            .map_err(|failure| match failure.entry {
                // The rules, the access checks or the commit failed on an entry's write.
                Some(index) if !matches!(failure.error, CoreError::Transaction { .. }) => {
                    entry_failed(index, &labels[index], failure.error)
                }
                _ => failure.error,
            });
        // The transaction is rolled back: the entry that failed it is logged on its own.
        if let (Some(access), Err(CoreError::Transaction { index, source, .. })) = (access, &result)
            && let Some(interaction) = interactions.get(*index)
        {
            self.log_failure(access, AccessSummary::of(interaction), source)
                .await?;
        }
        result
    }
}

/// A transaction's entries, run in one write transaction (again on each attempt).
struct TransactionWork<'a> {
    fhir: &'a Fhir,
    interactions: &'a [Interaction],
    labels: &'a [String],
    entry_urls: &'a [Option<String>],
    access: Option<&'a Access>,
}

#[async_trait]
impl WriteWork for TransactionWork<'_> {
    type Output = Outcome;

    async fn run(&self, tx: &mut WriteTx) -> Result<Outcome, WriteFailure> {
        self.fhir
            .run_transaction(
                tx,
                self.interactions.to_vec(),
                self.interactions,
                (self.labels, self.entry_urls),
                self.access,
            )
            .await
    }
}

impl Fhir {
    /// Runs checked entries in store transaction `tx`; every error names its entry.
    /// `interactions` are consumed (their references rewritten, then executed);
    /// `originals` are the same entries as sent, for the access log.
    async fn run_transaction(
        &self,
        tx: &mut WriteTx,
        mut interactions: Vec<Interaction>,
        originals: &[Interaction],
        (labels, entry_urls): (&[String], &[Option<String>]),
        access: Option<&Access>,
    ) -> Result<Outcome, WriteFailure> {
        // Reserve ids so references between entries resolve before anything is written.
        let mut assigned: Vec<Option<ResourceId>> = vec![None; interactions.len()];
        let mut full_urls: HashMap<String, String> = HashMap::new();
        for (index, interaction) in interactions.iter().enumerate() {
            let label = &labels[index];
            let target = match interaction {
                Interaction::Create {
                    resource_type,
                    if_none_exist,
                    ..
                } => {
                    let existing = match if_none_exist {
                        Some(query) => single_match(tx.store(), query)
                            .await
                            .map_err(|e| entry_failed(index, label, e))?,
                        None => None,
                    };
                    let id = existing.unwrap_or_else(|| {
                        let id = ResourceId::generate();
                        assigned[index] = Some(id.clone());
                        id
                    });
                    Some(format!("{resource_type}/{id}"))
                }
                Interaction::ConditionalUpdate { query, body } => {
                    let existing = single_match(tx.store(), query)
                        .await
                        .map_err(|e| entry_failed(index, label, e))?;
                    let id = match (existing, body.get("id").and_then(Value::as_str)) {
                        (Some(id), _) => id.to_string(),
                        (None, Some(body_id)) => body_id.to_owned(),
                        (None, None) => {
                            let id = ResourceId::generate();
                            assigned[index] = Some(id.clone());
                            id.to_string()
                        }
                    };
                    Some(format!("{}/{id}", query.resource_type))
                }
                Interaction::Update {
                    resource_type, id, ..
                } => Some(format!("{resource_type}/{id}")),
                _ => None,
            };
            if let (Some(full_url), Some(target)) = (&entry_urls[index], target)
                && (full_url.starts_with("urn:uuid:") || full_url.starts_with("urn:oid:"))
            {
                full_urls.insert(full_url.clone(), target);
            }
        }

        // Rewrite `urn:uuid:` and conditional references in every body.
        for (index, interaction) in interactions.iter_mut().enumerate() {
            let body = match interaction {
                Interaction::Create { body, .. }
                | Interaction::Update { body, .. }
                | Interaction::ConditionalUpdate { body, .. } => body,
                _ => continue,
            };
            let mut references = Vec::new();
            collect_references(body, &mut references);
            let mut resolved = HashMap::new();
            for reference in references {
                if let Some(target) = full_urls.get(&reference) {
                    resolved.insert(reference, target.clone());
                } else if let Some(target) = resolve_conditional(tx.store(), &reference, access)
                    .await
                    .map_err(|e| entry_failed(index, &labels[index], e))?
                {
                    resolved.insert(reference, target);
                }
            }
            if !resolved.is_empty() {
                rewrite_references(body, &resolved);
            }
        }

        // Every resource an entry names by id, read (and on PostgreSQL locked) in one
        // round trip instead of one per entry.
        let targets: Vec<(ResourceType, ResourceId)> =
            interactions.iter().filter_map(named_target).collect();
        tx.store().read_many(&targets).await?;

        let mut results: Vec<Option<Outcome>> = (0..interactions.len()).map(|_| None).collect();
        let mut ordered: Vec<(usize, Interaction)> = interactions.into_iter().enumerate().collect();
        ordered.sort_by_key(|(_, interaction)| processing_rank(interaction));
        for (index, interaction) in ordered {
            let label = &labels[index];
            tx.set_entry(Some(index));
            let outcome = if is_write(&interaction) {
                write_checked(tx, interaction, assigned[index].clone(), access).await
            } else if matches!(interaction, Interaction::Bundle { .. }) {
                Err(CoreError::bad_request(
                    "a Bundle entry cannot be another batch or transaction",
                ))
            } else {
                match self
                    .read(&mut Reader::Tx(tx.store()), interaction, access)
                    .await
                {
                    Ok(outcome) => log_read_in(tx.store(), access, &originals[index], &outcome)
                        .await
                        .map(|()| outcome),
                    Err(error) => Err(error),
                }
            };
            results[index] = Some(outcome.map_err(|e| entry_failed(index, label, e))?);
        }
        tx.set_entry(None);
        Ok(Outcome::BundleResponse {
            transaction: true,
            entries: results.into_iter().flatten().map(Ok).collect(),
        })
    }
}

/// A transaction's error, naming the entry that caused it.
fn entry_failed(index: usize, label: &str, source: CoreError) -> CoreError {
    CoreError::Transaction {
        index,
        request: label.to_owned(),
        source: Box::new(source),
    }
}

/// The id of the one resource matching `query`, `None` when nothing matches.
async fn single_match(
    tx: &mut dyn paraply_store::StoreTx,
    query: &SearchQuery,
) -> Result<Option<ResourceId>, CoreError> {
    let page = tx.search(query).await?;
    match page.total.unwrap_or_default() {
        0 => Ok(None),
        1 => Ok(page.matches.into_iter().next().map(|m| m.resource.id)),
        count => Err(CoreError::MultipleMatches {
            resource_type: query.resource_type,
            count,
        }),
    }
}

/// Resolves `Type?criteria` to `Type/id` of its single match; other references pass.
async fn resolve_conditional(
    tx: &mut dyn paraply_store::StoreTx,
    reference: &str,
    access: Option<&Access>,
) -> Result<Option<String>, CoreError> {
    let Some((type_name, criteria)) = reference.split_once('?') else {
        return Ok(None);
    };
    let Ok(resource_type) = type_name.parse::<ResourceType>() else {
        return Err(CoreError::UnresolvedReference {
            reference: reference.to_owned(),
            count: 0,
        });
    };
    let mut query = conditional(resource_type, &parse_query(criteria))?;
    query.restriction = access.and_then(Access::restriction);
    let page = tx.search(&query).await?;
    match (page.total.unwrap_or_default(), page.matches.first()) {
        (1, Some(found)) => Ok(Some(format!("{resource_type}/{}", found.resource.id))),
        (count, _) => Err(CoreError::UnresolvedReference {
            reference: reference.to_owned(),
            count,
        }),
    }
}

fn collect_references(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("reference", Value::String(reference)) => out.push(reference.clone()),
                    _ => collect_references(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_references(item, out)),
        _ => {}
    }
}

fn rewrite_references(node: &mut Value, resolved: &HashMap<String, String>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(reference) if key == "reference" => {
                        if let Some(target) = resolved.get(reference.as_str()) {
                            *reference = target.clone();
                        }
                    }
                    other => rewrite_references(other, resolved),
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_references(item, resolved)),
        _ => {}
    }
}

/// DELETE, then POST, then PUT/PATCH, then GET (R4 http.html#trules).
fn processing_rank(interaction: &Interaction) -> u8 {
    match interaction {
        Interaction::Delete { .. } | Interaction::ConditionalDelete { .. } => 0,
        Interaction::Create { .. } => 1,
        Interaction::Update { .. }
        | Interaction::ConditionalUpdate { .. }
        | Interaction::Patch { .. } => 2,
        _ => 3,
    }
}

fn parse_entry((index, entry): (usize, &Value), operations: &Operations) -> Entry {
    let request = entry.get("request");
    let method = request
        .and_then(|r| r.get("method"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let url = request
        .and_then(|r| r.get("url"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let label = format!("{method} {url}");
    let full_url = entry
        .get("fullUrl")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let interaction = (|| {
        let method = Method::parse(method).ok_or_else(|| CoreError::BadRequest {
            message: format!(
                "entry {index}: request.method must be GET, POST, PUT, PATCH or DELETE"
            ),
            expression: Some(format!("Bundle.entry[{index}].request.method")),
        })?;
        if url.is_empty() {
            return Err(CoreError::BadRequest {
                message: format!("entry {index}: request.url is required"),
                expression: Some(format!("Bundle.entry[{index}].request.url")),
            });
        }
        let mut request = FhirRequest::from_url(method, url);
        request.if_match = string_at(request_field(entry, "ifMatch"));
        request.if_none_exist = string_at(request_field(entry, "ifNoneExist"));
        request.body = entry.get("resource").cloned();
        if method == Method::Patch {
            request.body = request.body.map(binary_patch).transpose()?;
        }
        Interaction::parse(request, operations)
    })();
    Entry {
        full_url,
        label,
        interaction,
    }
}

fn request_field<'a>(entry: &'a Value, name: &str) -> Option<&'a Value> {
    entry.get("request").and_then(|r| r.get(name))
}

fn string_at(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

/// A PATCH entry carries its JSON Patch as a Binary resource (R4 http.html#patch).
fn binary_patch(resource: Value) -> Result<Value, CoreError> {
    let data = (resource.get("resourceType").and_then(Value::as_str) == Some("Binary"))
        .then(|| resource.get("data").and_then(Value::as_str))
        .flatten()
        .ok_or_else(|| {
            CoreError::bad_request("a PATCH entry needs a Binary resource holding a JSON Patch")
        })?;
    let bytes = base64_decode(data)
        .ok_or_else(|| CoreError::bad_request("Binary.data is not valid base64"))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| CoreError::bad_request(format!("Binary.data is not a JSON Patch: {e}")))
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
    {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_patch_documents() {
        assert_eq!(base64_decode("W10=").as_deref(), Some(&b"[]"[..]));
        assert_eq!(base64_decode("aGVq").as_deref(), Some(&b"hej"[..]));
        assert_eq!(base64_decode("a*"), None);
    }

    #[test]
    fn references_are_rewritten_everywhere() {
        let mut body = serde_json::json!({"subject": {"reference": "urn:uuid:1"},
            "participant": [{"member": {"reference": "urn:uuid:2"}}]});
        let mut found = Vec::new();
        collect_references(&body, &mut found);
        assert_eq!(found, vec!["urn:uuid:1", "urn:uuid:2"]);
        let resolved = HashMap::from([
            ("urn:uuid:1".to_owned(), "Patient/a".to_owned()),
            ("urn:uuid:2".to_owned(), "PractitionerRole/b".to_owned()),
        ]);
        rewrite_references(&mut body, &resolved);
        assert_eq!(body["subject"]["reference"], "Patient/a");
        assert_eq!(
            body["participant"][0]["member"]["reference"],
            "PractitionerRole/b"
        );
    }
}
