//! Typed search queries, parsed from `name=value` pairs with the registry in hand.

use paraply_fhir::{ResourceId, ResourceType, canonical_system};

use crate::registry::{self, ParamKind};

/// A parsed search on one resource type: every clause must match (repeated = AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    pub resource_type: ResourceType,
    pub clauses: Vec<Clause>,
    /// `_count`: the page size the caller asked for, if any.
    pub count: Option<u32>,
}

/// One parameter occurrence; its values are alternatives (comma = OR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    Id(Vec<ResourceId>),
    Token {
        param: &'static str,
        values: Vec<TokenValue>,
    },
}

/// The system part of a token search value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSystem {
    /// `code`: any system.
    Any,
    /// `|code`: no system.
    Absent,
    /// `system|code` or `system|`.
    Is(String),
}

/// A token search value: `[system|]code`, `|code` or `system|`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenValue {
    pub system: TokenSystem,
    /// `None` for `system|` (any code in that system).
    pub code: Option<String>,
}

impl TokenValue {
    fn parse(raw: &str) -> Option<TokenValue> {
        let value = match raw.split_once('|') {
            None => TokenValue {
                system: TokenSystem::Any,
                code: Some(unescape(raw)),
            },
            Some(("", code)) => TokenValue {
                system: TokenSystem::Absent,
                code: Some(unescape(code)),
            },
            Some((system, code)) => TokenValue {
                system: TokenSystem::Is(canonical_system(&unescape(system)).to_owned()),
                code: (!code.is_empty()).then(|| unescape(code)),
            },
        };
        let empty = matches!(value.system, TokenSystem::Any | TokenSystem::Absent)
            && value.code.as_deref().is_none_or(str::is_empty);
        (!empty).then_some(value)
    }
}

/// Search values escape `,`, `|` and `$` with a backslash (R4 search §2.1.1.1.1).
fn unescape(raw: &str) -> String {
    raw.replace("\\,", ",")
        .replace("\\|", "|")
        .replace("\\$", "$")
        .replace("\\\\", "\\")
}

/// Splits on commas that are not escaped.
fn split_alternatives(raw: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b',' => {
                parts.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&raw[start..]);
    parts
}

/// Why a query string could not become a [`SearchQuery`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    #[error("unknown search parameter '{name}' for {resource_type}")]
    UnknownParameter {
        resource_type: ResourceType,
        name: String,
    },
    #[error("modifier ':{modifier}' is not supported on search parameter '{name}'")]
    UnsupportedModifier { name: String, modifier: String },
    #[error("invalid value '{value}' for search parameter '{name}': {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: &'static str,
    },
}

/// Result-control and format parameters that are not search criteria.
const CONTROL_PARAMS: &[&str] = &["_format", "_pretty"];

impl SearchQuery {
    /// Parses decoded `name=value` pairs for a search on `resource_type`.
    pub fn parse<'a>(
        resource_type: ResourceType,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<SearchQuery, SearchError> {
        let mut query = SearchQuery {
            resource_type,
            clauses: Vec::new(),
            count: None,
        };
        for (raw_name, raw_value) in pairs {
            let (name, modifier) = match raw_name.split_once(':') {
                Some((name, modifier)) => (name, Some(modifier)),
                None => (raw_name, None),
            };
            if CONTROL_PARAMS.contains(&name) {
                continue;
            }
            let invalid = |reason| SearchError::InvalidValue {
                name: raw_name.to_owned(),
                value: raw_value.to_owned(),
                reason,
            };
            if let Some(modifier) = modifier {
                return Err(SearchError::UnsupportedModifier {
                    name: name.to_owned(),
                    modifier: modifier.to_owned(),
                });
            }
            match name {
                "_count" => {
                    let count = raw_value
                        .parse::<u32>()
                        .map_err(|_| invalid("expected a whole number"))?;
                    query.count = Some(count);
                }
                "_id" => {
                    let ids = split_alternatives(raw_value)
                        .into_iter()
                        .map(|v| v.parse::<ResourceId>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| invalid("expected a FHIR id"))?;
                    query.clauses.push(Clause::Id(ids));
                }
                _ => {
                    let def = registry::find(resource_type, name).ok_or_else(|| {
                        SearchError::UnknownParameter {
                            resource_type,
                            name: name.to_owned(),
                        }
                    })?;
                    match def.kind {
                        ParamKind::Token => {
                            let values = split_alternatives(raw_value)
                                .into_iter()
                                .map(TokenValue::parse)
                                .collect::<Option<Vec<_>>>()
                                .ok_or_else(|| invalid("expected [system|]code"))?;
                            query.clauses.push(Clause::Token {
                                param: def.name,
                                values,
                            });
                        }
                    }
                }
            }
        }
        Ok(query)
    }
}

impl std::fmt::Display for SearchQuery {
    /// The query as a client would write it: `Patient?identifier=system|code`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}?", self.resource_type)?;
        for (i, clause) in self.clauses.iter().enumerate() {
            if i > 0 {
                f.write_str("&")?;
            }
            match clause {
                Clause::Id(ids) => {
                    let ids: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
                    write!(f, "_id={}", ids.join(","))?;
                }
                Clause::Token { param, values } => {
                    let values: Vec<String> = values
                        .iter()
                        .map(|v| {
                            let code = v.code.as_deref().unwrap_or("");
                            match &v.system {
                                TokenSystem::Any => code.to_owned(),
                                TokenSystem::Absent => format!("|{code}"),
                                TokenSystem::Is(system) => format!("{system}|{code}"),
                            }
                        })
                        .collect();
                    write!(f, "{param}={}", values.join(","))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paraply_fhir::PERSONNUMMER;

    fn parse(pairs: &[(&str, &str)]) -> Result<SearchQuery, SearchError> {
        SearchQuery::parse(ResourceType::Patient, pairs.iter().copied())
    }

    #[test]
    fn token_values_take_all_four_forms() {
        let q = parse(&[("identifier", "a|1,|2,a|,3")]).unwrap();
        let Clause::Token { values, .. } = &q.clauses[0] else {
            panic!("expected a token clause");
        };
        assert_eq!(
            values,
            &vec![
                TokenValue {
                    system: TokenSystem::Is("a".into()),
                    code: Some("1".into())
                },
                TokenValue {
                    system: TokenSystem::Absent,
                    code: Some("2".into())
                },
                TokenValue {
                    system: TokenSystem::Is("a".into()),
                    code: None
                },
                TokenValue {
                    system: TokenSystem::Any,
                    code: Some("3".into())
                },
            ]
        );
    }

    #[test]
    fn oid_alias_of_personnummer_searches_the_stored_system() {
        let q = parse(&[("identifier", "urn:oid:1.2.752.129.2.1.3.1|191212121212")]).unwrap();
        let Clause::Token { values, .. } = &q.clauses[0] else {
            panic!("expected a token clause");
        };
        assert_eq!(values[0].system, TokenSystem::Is(PERSONNUMMER.into()));
    }

    #[test]
    fn escaped_comma_is_part_of_the_value() {
        let q = parse(&[("identifier", "x|a\\,b")]).unwrap();
        let Clause::Token { values, .. } = &q.clauses[0] else {
            panic!("expected a token clause");
        };
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].code.as_deref(), Some("a,b"));
    }

    #[test]
    fn unknown_parameter_is_named() {
        assert_eq!(
            parse(&[("family", "x")]),
            Err(SearchError::UnknownParameter {
                resource_type: ResourceType::Patient,
                name: "family".into()
            })
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&[("_count", "ten")]).is_err());
        assert!(parse(&[("_id", "a/b")]).is_err());
        assert!(parse(&[("identifier", "")]).is_err());
        assert!(parse(&[("identifier:text", "x")]).is_err());
    }
}
