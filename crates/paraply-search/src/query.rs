//! Typed search queries: query pairs parsed once, each with its parameter definition in
//! hand (R4 search.html). Storage receives only these types.

use paraply_fhir::{ResourceId, ResourceType, canonical_system};

use crate::access::Restriction;
use crate::cursor::PageCursor;
use crate::date::{DateRange, parse_date_range};
use crate::index::OF_TYPE_PARAM;
use crate::normalize::normalize;
use crate::registry::{self, ParamKind, SearchParamDef};

/// Default and largest page sizes.
pub const DEFAULT_COUNT: u32 = 50;
pub const MAX_COUNT: u32 = 1000;
/// How many `:iterate` rounds `_include`/`_revinclude` run at most.
pub const MAX_INCLUDE_DEPTH: usize = 3;

/// A parsed search on one resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub resource_type: ResourceType,
    /// Every filter must hold (repeated parameters = AND).
    pub filters: Vec<Filter>,
    /// Sort keys in order; ties (and an empty list) fall back to the write order of the
    /// current versions (see [`PageCursor`] for why, and what that means for paging).
    pub sort: Vec<SortKey>,
    /// Page size.
    pub count: u32,
    /// Where this page starts (from a next/previous link).
    pub page: Option<PageCursor>,
    pub include: Vec<Include>,
    pub revinclude: Vec<Include>,
    pub summary: Summary,
    /// `_elements`: the top-level elements to return (empty = all).
    pub elements: Vec<String>,
    pub total: Total,
    /// Parameters ignored under `Prefer: handling=lenient`, with the reason.
    pub ignored: Vec<SearchError>,
    /// What the caller may see, set by the access rules (never by the query string);
    /// `None` for unrestricted callers. Applies to matches and to included resources.
    pub restriction: Option<Restriction>,
}

/// One parameter occurrence: any alternative matches (comma = OR); `negated` turns it into
/// "no alternative matches" (`:not`).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub negated: bool,
    pub any_of: Vec<Condition>,
}

/// One alternative of a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Id(ResourceId),
    LastUpdated {
        prefix: Prefix,
        range: DateRange,
    },
    Token {
        param: &'static str,
        system: TokenSystem,
        /// `None` for `system|` (any code of that system).
        code: Option<String>,
    },
    /// `:text`: the normalized display or text starts with this.
    TokenText {
        param: &'static str,
        text: String,
    },
    String {
        param: &'static str,
        mode: StringMatch,
        /// Normalized for `StartsWith`/`Contains`, as written for `Exact`.
        value: String,
    },
    Reference {
        param: &'static str,
        target: ReferenceTarget,
    },
    Date {
        param: &'static str,
        prefix: Prefix,
        range: DateRange,
    },
    Uri {
        param: &'static str,
        mode: UriMatch,
        value: String,
    },
    Quantity {
        param: &'static str,
        prefix: Prefix,
        value: f64,
        system: Option<String>,
        code: Option<String>,
    },
    /// `:missing=true|false`.
    Missing {
        param: &'static str,
        missing: bool,
    },
    /// `subject:Patient.identifier=…`: the reference `param` points at a resource of one of
    /// `target_types` that matches `condition`.
    Chain {
        param: &'static str,
        target_types: Vec<ResourceType>,
        condition: Box<Condition>,
    },
    /// `_has:CareTeam:patient:status=active`: some `source_type` resource whose reference
    /// `param` points here matches `condition`.
    Has {
        source_type: ResourceType,
        param: &'static str,
        condition: Box<Condition>,
    },
}

/// The system part of a token value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSystem {
    /// `code`: any system.
    Any,
    /// `|code`: no system.
    Absent,
    /// `system|code` or `system|`.
    Is(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMatch {
    StartsWith,
    Exact,
    Contains,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriMatch {
    Exact,
    /// `:below`: the value is a prefix of the stored URI.
    Below,
    /// `:above`: the stored URI is a prefix of the value.
    Above,
}

/// What a reference search value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceTarget {
    /// `Patient/1`, or `1` with the type from a `:Patient` modifier (or none: any type).
    Local {
        target_type: Option<ResourceType>,
        id: String,
    },
    /// A URL that names no served resource (matched as written).
    Url(String),
}

/// Comparison prefixes of date, number and quantity values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

impl Prefix {
    fn split(value: &str) -> (Prefix, &str) {
        let prefixes = [
            ("eq", Prefix::Eq),
            ("ne", Prefix::Ne),
            ("gt", Prefix::Gt),
            ("lt", Prefix::Lt),
            ("ge", Prefix::Ge),
            ("le", Prefix::Le),
            ("sa", Prefix::Sa),
            ("eb", Prefix::Eb),
            ("ap", Prefix::Ap),
        ];
        for (text, prefix) in prefixes {
            // Only a prefix when a number follows: `nelson` is no `ne` + `lson`.
            if let Some(rest) = value.strip_prefix(text)
                && rest.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
            {
                return (prefix, rest);
            }
        }
        (Prefix::Eq, value)
    }
}

/// A sort key (`_sort=-date`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: SortField,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortField {
    Id,
    LastUpdated,
    Param { name: &'static str, kind: ParamKind },
}

/// `_include=CarePlan:care-team[:CareTeam]` / `_revinclude=CareTeam:patient`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The type holding the reference.
    pub source_type: ResourceType,
    /// Its reference parameter.
    pub param: &'static str,
    /// Only references to this type.
    pub target_type: Option<ResourceType>,
    /// `:iterate`: also follow from resources included by an earlier round.
    pub iterate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Summary {
    #[default]
    False,
    True,
    Count,
    Data,
    Text,
}

/// Whether a page carries `Bundle.total`, which R4 lets a server leave out (search.html#total).
/// Counting every match costs as much as reading them all, so it is done only when asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Total {
    /// `_total=none`: never.
    None,
    /// No `_total`, or `_total=estimate`: only when the page itself tells it (a first page
    /// that holds every match), so no search pays for a count. Paraply makes no estimates.
    #[default]
    IfFree,
    /// `_total=accurate`, `_summary=count` and conditional interactions: always, counted.
    Accurate,
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
        reason: String,
    },
}

impl SearchError {
    /// The parameter the error is about, for `OperationOutcome.issue.expression`.
    pub fn parameter(&self) -> &str {
        match self {
            SearchError::UnknownParameter { name, .. }
            | SearchError::UnsupportedModifier { name, .. }
            | SearchError::InvalidValue { name, .. } => name,
        }
    }
}

/// How to treat unknown parameters and bad values (`Prefer: handling=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handling {
    #[default]
    Strict,
    Lenient,
}

/// Parameters that only format the response.
const FORMAT_PARAMS: &[&str] = &["_format", "_pretty"];

impl SearchQuery {
    /// A query with no criteria and default result control.
    pub fn new(resource_type: ResourceType) -> Self {
        SearchQuery {
            resource_type,
            filters: Vec::new(),
            sort: Vec::new(),
            count: DEFAULT_COUNT,
            page: None,
            include: Vec::new(),
            revinclude: Vec::new(),
            summary: Summary::False,
            elements: Vec::new(),
            total: Total::IfFree,
            ignored: Vec::new(),
            restriction: None,
        }
    }

    /// Parses decoded `name=value` pairs strictly (the first problem is an error).
    pub fn parse<'a>(
        resource_type: ResourceType,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<SearchQuery, SearchError> {
        SearchQuery::parse_with(resource_type, pairs, Handling::Strict)
    }

    /// Parses with the given handling: lenient collects problems in `ignored`.
    pub fn parse_with<'a>(
        resource_type: ResourceType,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        handling: Handling,
    ) -> Result<SearchQuery, SearchError> {
        let mut query = SearchQuery::new(resource_type);
        for (name, value) in pairs {
            if FORMAT_PARAMS.contains(&name) {
                continue;
            }
            if let Err(error) = query.add(name, value) {
                match handling {
                    Handling::Strict => return Err(error),
                    Handling::Lenient => query.ignored.push(error),
                }
            }
        }
        Ok(query)
    }

    fn add(&mut self, raw_name: &str, raw_value: &str) -> Result<(), SearchError> {
        let invalid = |reason: &str| SearchError::InvalidValue {
            name: raw_name.to_owned(),
            value: raw_value.to_owned(),
            reason: reason.to_owned(),
        };
        match raw_name {
            "_count" => {
                let count: u32 = raw_value
                    .parse()
                    .map_err(|_| invalid("expected a whole number"))?;
                self.count = count.min(MAX_COUNT);
            }
            "_page" => {
                self.page = Some(
                    PageCursor::decode(raw_value)
                        .ok_or_else(|| invalid("not a page cursor from a link"))?,
                )
            }
            "_sort" => {
                self.sort = raw_value
                    .split(',')
                    .map(|key| {
                        self.sort_key(key)
                            .ok_or_else(|| invalid("unknown sort parameter"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "_summary" => {
                self.summary = match raw_value {
                    "true" => Summary::True,
                    "false" => Summary::False,
                    "count" => Summary::Count,
                    "data" => Summary::Data,
                    "text" => Summary::Text,
                    _ => return Err(invalid("expected true, false, count, data or text")),
                }
            }
            "_elements" => {
                self.elements = raw_value
                    .split(',')
                    .map(|e| e.trim().to_owned())
                    .filter(|e| !e.is_empty())
                    .collect();
            }
            "_total" => {
                self.total = match raw_value {
                    "none" => Total::None,
                    "estimate" => Total::IfFree,
                    "accurate" => Total::Accurate,
                    _ => return Err(invalid("expected none, estimate or accurate")),
                }
            }
            "_include" | "_include:iterate" | "_revinclude" | "_revinclude:iterate" => {
                let reverse = raw_name.starts_with("_revinclude");
                let include = parse_include(raw_value, raw_name.ends_with(":iterate"), reverse).ok_or_else(|| {
                    invalid("expected SourceType:reference-parameter[:TargetType] naming a reference parameter")
                })?;
                if reverse {
                    self.revinclude.push(include);
                } else {
                    self.include.push(include);
                }
            }
            _ => {
                let filter = parse_filter(self.resource_type, raw_name, raw_value)?;
                self.filters.push(filter);
            }
        }
        Ok(())
    }

    fn sort_key(&self, key: &str) -> Option<SortKey> {
        let (descending, name) = match key.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, key),
        };
        let field = match name {
            "_id" => SortField::Id,
            "_lastUpdated" => SortField::LastUpdated,
            other => {
                // Quantities have no single order (units differ), so they do not sort.
                let def = registry::find(self.resource_type, other)
                    .filter(|d| d.kind != ParamKind::Quantity)?;
                SortField::Param {
                    name: def.name,
                    kind: def.kind,
                }
            }
        };
        Some(SortKey { field, descending })
    }
}

fn parse_include(value: &str, iterate: bool, reverse: bool) -> Option<Include> {
    let mut parts = value.split(':');
    let source_type: ResourceType = parts.next()?.parse().ok()?;
    let def = registry::find(source_type, parts.next()?)?;
    if def.kind != ParamKind::Reference {
        return None;
    }
    let target_type = match parts.next() {
        Some(t) => Some(t.parse::<ResourceType>().ok()?),
        None => None,
    };
    if parts.next().is_some()
        || (reverse && target_type.is_some() && !def.targets.contains(&target_type?))
    {
        return None;
    }
    Some(Include {
        source_type,
        param: def.name,
        target_type,
        iterate,
    })
}

/// Search values escape `,`, `|`, `$` and `\` with a backslash (R4 search §2.1.1.1.1).
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            other => out.push(other),
        }
    }
    out
}

/// Splits on an unescaped `separator`.
fn split_unescaped(raw: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in raw.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, c) if c == separator => {
                parts.push(&raw[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&raw[start..]);
    parts
}

/// Parses one `name[:modifier][.chain]=value` pair into a filter.
fn parse_filter(
    resource_type: ResourceType,
    raw_name: &str,
    raw_value: &str,
) -> Result<Filter, SearchError> {
    if let Some(rest) = raw_name.strip_prefix("_has:") {
        return parse_has(resource_type, raw_name, rest, raw_value);
    }
    let (head, chained) = match raw_name.split_once('.') {
        Some((head, chained)) => (head, Some(chained)),
        None => (raw_name, None),
    };
    let (name, modifier) = match head.split_once(':') {
        Some((name, modifier)) => (name, Some(modifier)),
        None => (head, None),
    };
    let unknown = || SearchError::UnknownParameter {
        resource_type,
        name: name.to_owned(),
    };
    let unsupported = |modifier: &str| SearchError::UnsupportedModifier {
        name: name.to_owned(),
        modifier: modifier.to_owned(),
    };
    let invalid = |reason: &str| SearchError::InvalidValue {
        name: raw_name.to_owned(),
        value: raw_value.to_owned(),
        reason: reason.to_owned(),
    };

    if let Some(chained) = chained {
        let def = registry::find(resource_type, name).ok_or_else(unknown)?;
        if def.kind != ParamKind::Reference {
            return Err(invalid("only reference parameters can be chained"));
        }
        let target_types = match modifier {
            Some(t) => vec![t.parse::<ResourceType>().map_err(|_| unsupported(t))?],
            None => def.targets.to_vec(),
        };
        if chained.contains('.') {
            return Err(invalid("Paraply chains one level"));
        }
        let (chained_name, chained_modifier) = match chained.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (chained, None),
        };
        // The chained parameter must exist, with one kind, on every target it applies to.
        let defs: Vec<(ResourceType, &SearchParamDef)> = target_types
            .iter()
            .filter_map(|t| chained_def(*t, chained_name).map(|d| (*t, d)))
            .collect();
        let Some((_, first_def)) = defs.first().copied() else {
            return Err(invalid(
                "the chained parameter exists on none of the reference's target types",
            ));
        };
        if defs.iter().any(|(_, d)| d.kind != first_def.kind) {
            return Err(invalid(
                "the chained parameter differs between target types; add a type modifier",
            ));
        }
        let inner = parse_alternatives(
            chained_name,
            first_def,
            chained_modifier,
            raw_name,
            raw_value,
        )?;
        if inner.negated {
            return Err(invalid(":not cannot be chained"));
        }
        let target_types: Vec<ResourceType> = defs.into_iter().map(|(t, _)| t).collect();
        return Ok(Filter {
            negated: false,
            any_of: inner
                .any_of
                .into_iter()
                .map(|condition| Condition::Chain {
                    param: def.name,
                    target_types: target_types.clone(),
                    condition: Box::new(condition),
                })
                .collect(),
        });
    }

    let def = chained_def(resource_type, name).ok_or_else(unknown)?;
    parse_alternatives(name, def, modifier, raw_name, raw_value)
}

/// The definition of `name`, including `_id` and `_lastUpdated`.
fn chained_def(resource_type: ResourceType, name: &str) -> Option<&'static SearchParamDef> {
    match name {
        "_id" => Some(&ID),
        "_lastUpdated" => Some(&LAST_UPDATED),
        other => registry::find(resource_type, other),
    }
}

const ID: SearchParamDef = SearchParamDef {
    name: "_id",
    kind: ParamKind::Token,
    paths: &[],
    targets: &[],
    url: "http://hl7.org/fhir/SearchParameter/Resource-id",
};

const LAST_UPDATED: SearchParamDef = SearchParamDef {
    name: "_lastUpdated",
    kind: ParamKind::Date,
    paths: &[],
    targets: &[],
    url: "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
};

fn parse_has(
    resource_type: ResourceType,
    raw_name: &str,
    rest: &str,
    raw_value: &str,
) -> Result<Filter, SearchError> {
    let invalid = |reason: &str| SearchError::InvalidValue {
        name: raw_name.to_owned(),
        value: raw_value.to_owned(),
        reason: reason.to_owned(),
    };
    let mut parts = rest.splitn(3, ':');
    let (Some(source), Some(param), Some(filter_name)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("expected _has:Type:reference-parameter:parameter"));
    };
    let source_type: ResourceType = source
        .parse()
        .map_err(|_| invalid("unknown resource type"))?;
    let reference = registry::find(source_type, param)
        .filter(|d| {
            d.kind == ParamKind::Reference
                && (d.targets.is_empty() || d.targets.contains(&resource_type))
        })
        .ok_or_else(|| invalid("not a reference parameter of that type pointing here"))?;
    if filter_name.starts_with("_has:") {
        return Err(invalid("Paraply follows _has one level"));
    }
    let inner = parse_filter(source_type, filter_name, raw_value)?;
    if inner.negated {
        return Err(invalid(":not cannot be used inside _has"));
    }
    Ok(Filter {
        negated: false,
        any_of: inner
            .any_of
            .into_iter()
            .map(|condition| Condition::Has {
                source_type,
                param: reference.name,
                condition: Box::new(condition),
            })
            .collect(),
    })
}

fn parse_alternatives(
    name: &str,
    def: &'static SearchParamDef,
    modifier: Option<&str>,
    raw_name: &str,
    raw_value: &str,
) -> Result<Filter, SearchError> {
    let invalid = |reason: &str| SearchError::InvalidValue {
        name: raw_name.to_owned(),
        value: raw_value.to_owned(),
        reason: reason.to_owned(),
    };
    let unsupported = |modifier: &str| SearchError::UnsupportedModifier {
        name: name.to_owned(),
        modifier: modifier.to_owned(),
    };
    if modifier == Some("missing") {
        let missing = match raw_value {
            "true" => true,
            "false" => false,
            _ => return Err(invalid("expected true or false")),
        };
        if matches!(def.name, "_id" | "_lastUpdated") {
            return Err(unsupported("missing"));
        }
        return Ok(Filter {
            negated: false,
            any_of: vec![Condition::Missing {
                param: def.name,
                missing,
            }],
        });
    }
    let negated = modifier == Some("not");
    let alternatives = split_unescaped(raw_value, ',');
    let mut any_of = Vec::with_capacity(alternatives.len());
    for alternative in alternatives {
        if alternative.is_empty() {
            return Err(invalid("empty value"));
        }
        let condition = match (def.kind, def.name) {
            (_, "_id") => match modifier {
                None => Condition::Id(
                    unescape(alternative)
                        .parse()
                        .map_err(|_| invalid("expected a FHIR id"))?,
                ),
                Some(m) => return Err(unsupported(m)),
            },
            (_, "_lastUpdated") => {
                let (prefix, range) = date_value(alternative)
                    .ok_or_else(|| invalid("expected a FHIR date or dateTime"))?;
                match modifier {
                    None => Condition::LastUpdated { prefix, range },
                    Some(m) => return Err(unsupported(m)),
                }
            }
            (ParamKind::Token, _) => match modifier {
                None | Some("not") => {
                    token(def.name, alternative).ok_or_else(|| invalid("expected [system|]code"))?
                }
                Some("text") => Condition::TokenText {
                    param: def.name,
                    text: normalize(&unescape(alternative)),
                },
                Some("of-type") if def.name == "identifier" => {
                    let parts = split_unescaped(alternative, '|');
                    let [system, code, value] = parts[..] else {
                        return Err(invalid("expected type-system|type-code|value"));
                    };
                    Condition::Token {
                        param: OF_TYPE_PARAM,
                        system: TokenSystem::Is(unescape(system)),
                        code: Some(format!("{}|{}", unescape(code), unescape(value))),
                    }
                }
                Some(m) => return Err(unsupported(m)),
            },
            (ParamKind::String, _) => {
                let value = unescape(alternative);
                match modifier {
                    None => Condition::String {
                        param: def.name,
                        mode: StringMatch::StartsWith,
                        value: normalize(&value),
                    },
                    Some("contains") => Condition::String {
                        param: def.name,
                        mode: StringMatch::Contains,
                        value: normalize(&value),
                    },
                    Some("exact") => Condition::String {
                        param: def.name,
                        mode: StringMatch::Exact,
                        value,
                    },
                    Some(m) => return Err(unsupported(m)),
                }
            }
            (ParamKind::Reference, _) => {
                let type_modifier = match modifier {
                    None => None,
                    Some(m) => match m.parse::<ResourceType>() {
                        Ok(t) if def.targets.contains(&t) => Some(t),
                        _ => return Err(unsupported(m)),
                    },
                };
                let target = reference_target(&unescape(alternative), type_modifier, def)
                    .ok_or_else(|| invalid("expected Type/id, an id or a URL"))?;
                Condition::Reference {
                    param: def.name,
                    target,
                }
            }
            (ParamKind::Date, _) => {
                if let Some(m) = modifier {
                    return Err(unsupported(m));
                }
                let (prefix, range) = date_value(alternative).ok_or_else(|| {
                    invalid("expected a FHIR date or dateTime, with an optional prefix like ge")
                })?;
                Condition::Date {
                    param: def.name,
                    prefix,
                    range,
                }
            }
            (ParamKind::Uri, _) => {
                let mode = match modifier {
                    None => UriMatch::Exact,
                    Some("below") => UriMatch::Below,
                    Some("above") => UriMatch::Above,
                    Some(m) => return Err(unsupported(m)),
                };
                Condition::Uri {
                    param: def.name,
                    mode,
                    value: unescape(alternative),
                }
            }
            (ParamKind::Quantity, _) => {
                if let Some(m) = modifier {
                    return Err(unsupported(m));
                }
                let (prefix, rest) = Prefix::split(alternative);
                let parts = split_unescaped(rest, '|');
                let number: f64 = parts[0]
                    .parse()
                    .map_err(|_| invalid("expected [prefix]number[|system|code]"))?;
                let text = |i: usize| parts.get(i).map(|s| unescape(s)).filter(|s| !s.is_empty());
                Condition::Quantity {
                    param: def.name,
                    prefix,
                    value: number,
                    system: text(1),
                    code: text(2),
                }
            }
        };
        any_of.push(condition);
    }
    if negated && def.kind != ParamKind::Token {
        return Err(unsupported("not"));
    }
    Ok(Filter { negated, any_of })
}

fn token(param: &'static str, raw: &str) -> Option<Condition> {
    let parts = split_unescaped(raw, '|');
    let (system, code) = match parts[..] {
        [code] => (TokenSystem::Any, Some(unescape(code))),
        ["", code] => (TokenSystem::Absent, Some(unescape(code))),
        [system, ""] => (
            TokenSystem::Is(canonical_system(&unescape(system)).to_owned()),
            None,
        ),
        [system, code] => (
            TokenSystem::Is(canonical_system(&unescape(system)).to_owned()),
            Some(unescape(code)),
        ),
        _ => return None,
    };
    if matches!(system, TokenSystem::Any | TokenSystem::Absent)
        && code.as_deref().is_none_or(str::is_empty)
    {
        return None;
    }
    Some(Condition::Token {
        param,
        system,
        code,
    })
}

fn date_value(raw: &str) -> Option<(Prefix, DateRange)> {
    let (prefix, rest) = Prefix::split(raw);
    Some((prefix, parse_date_range(rest)?))
}

fn reference_target(
    value: &str,
    type_modifier: Option<ResourceType>,
    def: &SearchParamDef,
) -> Option<ReferenceTarget> {
    let trimmed = match value.find("/_history/") {
        Some(i) => &value[..i],
        None => value,
    };
    let mut segments = trimmed.rsplit('/');
    let last = segments.next()?;
    let before = segments.next();
    match before.map(str::parse::<ResourceType>) {
        Some(Ok(target_type)) if last.parse::<ResourceId>().is_ok() => {
            if type_modifier.is_some_and(|t| t != target_type) {
                return None;
            }
            Some(ReferenceTarget::Local {
                target_type: Some(target_type),
                id: last.to_owned(),
            })
        }
        None if last.parse::<ResourceId>().is_ok() => {
            let target_type = type_modifier.or(match def.targets {
                [only] => Some(*only),
                _ => None,
            });
            Some(ReferenceTarget::Local {
                target_type,
                id: last.to_owned(),
            })
        }
        _ if value.contains(':') => Some(ReferenceTarget::Url(trimmed.to_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResourceType::*;

    fn parse(t: ResourceType, pairs: &[(&str, &str)]) -> Result<SearchQuery, SearchError> {
        SearchQuery::parse(t, pairs.iter().copied())
    }

    fn only(q: &SearchQuery) -> &Condition {
        &q.filters[0].any_of[0]
    }

    #[test]
    fn token_values_take_all_four_forms() {
        let q = parse(Patient, &[("identifier", "a|1,|2,a|,3")]).unwrap();
        let systems: Vec<&TokenSystem> = q.filters[0]
            .any_of
            .iter()
            .map(|c| match c {
                Condition::Token { system, .. } => system,
                _ => panic!("token"),
            })
            .collect();
        assert_eq!(
            systems,
            [
                &TokenSystem::Is("a".into()),
                &TokenSystem::Absent,
                &TokenSystem::Is("a".into()),
                &TokenSystem::Any
            ]
        );
    }

    #[test]
    fn a_string_that_looks_like_a_prefix_is_not_one() {
        let q = parse(Patient, &[("family", "nelson")]).unwrap();
        assert_eq!(
            only(&q),
            &Condition::String {
                param: "family",
                mode: StringMatch::StartsWith,
                value: "nelson".into()
            }
        );
    }

    #[test]
    fn date_prefixes_and_precision() {
        let q = parse(Appointment, &[("date", "ge2026-11-22")]).unwrap();
        let Condition::Date { prefix, range, .. } = only(&q) else {
            panic!("date")
        };
        assert_eq!(*prefix, Prefix::Ge);
        assert_eq!(range.end - range.start, 86_400_000_000);
        assert!(parse(Appointment, &[("date", "ge22 november")]).is_err());
    }

    #[test]
    fn chains_resolve_target_types_that_have_the_parameter() {
        let q = parse(
            CareTeam,
            &[(
                "patient.identifier",
                "http://electronichealth.se/identifier/personnummer|191212121212",
            )],
        )
        .unwrap();
        let Condition::Chain {
            param,
            target_types,
            condition,
        } = only(&q)
        else {
            panic!("chain")
        };
        assert_eq!(
            (*param, target_types.as_slice()),
            ("patient", &[Patient][..])
        );
        assert!(matches!(
            **condition,
            Condition::Token {
                param: "identifier",
                ..
            }
        ));
        assert!(parse(CareTeam, &[("patient.nope", "x")]).is_err());
        assert!(parse(CareTeam, &[("patient.organization.name", "x")]).is_err());
    }

    #[test]
    fn has_finds_the_reverse_reference() {
        let q = parse(Patient, &[("_has:CareTeam:patient:status", "active")]).unwrap();
        assert!(matches!(
            only(&q),
            Condition::Has {
                source_type: CareTeam,
                param: "patient",
                ..
            }
        ));
        assert!(parse(Patient, &[("_has:CareTeam:status:status", "active")]).is_err());
    }

    #[test]
    fn modifiers_are_checked_against_the_kind() {
        assert!(parse(Patient, &[("family:exact", "Ågren")]).is_ok());
        assert!(parse(Patient, &[("family:below", "x")]).is_err());
        assert!(parse(Patient, &[("gender:not", "male")]).unwrap().filters[0].negated);
        assert!(parse(Patient, &[("birthdate:not", "2020")]).is_err());
        assert!(parse(Patient, &[("gender:missing", "true")]).is_ok());
        assert!(parse(CarePlan, &[("subject:Patient", "1")]).is_ok());
        assert!(parse(CarePlan, &[("subject:Location", "1")]).is_err());
        assert!(
            parse(
                Patient,
                &[(
                    "identifier:of-type",
                    "http://terminology.hl7.org/CodeSystem/v2-0203|MR|42"
                )]
            )
            .is_ok()
        );
    }

    #[test]
    fn references_take_relative_id_only_and_absolute_forms() {
        let target = |v: &str| match only(&parse(CarePlan, &[("patient", v)]).unwrap()) {
            Condition::Reference { target, .. } => target.clone(),
            _ => panic!("reference"),
        };
        let local = ReferenceTarget::Local {
            target_type: Some(Patient),
            id: "p1".into(),
        };
        assert_eq!(target("Patient/p1"), local);
        assert_eq!(target("p1"), local);
        assert_eq!(target("https://vard.se/fhir/Patient/p1"), local);
        assert_eq!(
            target("urn:uuid:abc"),
            ReferenceTarget::Url("urn:uuid:abc".into())
        );
    }

    #[test]
    fn result_control_parameters() {
        let q = parse(
            CarePlan,
            &[
                ("_count", "5000"),
                ("_sort", "-date,_id"),
                ("_include", "CarePlan:care-team"),
                ("_revinclude:iterate", "Task:based-on"),
                ("_summary", "count"),
                ("_elements", "status,subject"),
                ("_total", "none"),
            ],
        )
        .unwrap();
        assert_eq!(q.count, MAX_COUNT);
        assert_eq!(
            q.sort[0],
            SortKey {
                field: SortField::Param {
                    name: "date",
                    kind: ParamKind::Date
                },
                descending: true
            }
        );
        assert_eq!(
            q.include[0],
            Include {
                source_type: CarePlan,
                param: "care-team",
                target_type: None,
                iterate: false
            }
        );
        assert!(q.revinclude[0].iterate);
        assert_eq!((q.summary, q.total), (Summary::Count, Total::None));
        assert_eq!(q.elements, ["status", "subject"]);
        assert!(parse(CarePlan, &[("_include", "CarePlan:status")]).is_err());
        assert!(parse(CarePlan, &[("_sort", "colour")]).is_err());
    }

    #[test]
    fn total_is_counted_only_when_asked_and_estimate_is_the_default() {
        let total = |pairs: &[(&str, &str)]| parse(Task, pairs).map(|q| q.total);
        assert_eq!(total(&[]), Ok(Total::IfFree));
        assert_eq!(total(&[("_total", "estimate")]), Ok(Total::IfFree));
        assert_eq!(total(&[("_total", "accurate")]), Ok(Total::Accurate));
        assert_eq!(total(&[("_total", "none")]), Ok(Total::None));
        assert!(total(&[("_total", "exact")]).is_err());
    }

    #[test]
    fn lenient_handling_collects_problems() {
        let q = SearchQuery::parse_with(
            Patient,
            [("colour", "red"), ("gender", "male")],
            Handling::Lenient,
        )
        .unwrap();
        assert_eq!(q.filters.len(), 1);
        assert_eq!(q.ignored[0].parameter(), "colour");
        assert!(SearchQuery::parse(Patient, [("colour", "red")]).is_err());
    }

    #[test]
    fn escaped_separators_stay_in_the_value() {
        let q = parse(Patient, &[("identifier", "x|a\\,b")]).unwrap();
        assert_eq!(q.filters[0].any_of.len(), 1);
        assert!(matches!(only(&q), Condition::Token { code: Some(c), .. } if c == "a,b"));
    }
}
