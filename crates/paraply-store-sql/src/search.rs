//! A typed [`SearchQuery`] as bound SQL over `resource_version` and the index tables of
//! migration 0002 — the same text on SQLite and PostgreSQL.
//!
//! Shape of a search: `resource_version r` (current, non-deleted, of the type) filtered by
//! one predicate per [`Filter`]. At most one filter — the one that looks most selective — is
//! written as a set the query can start from (`r.seq IN (SELECT rid FROM index_… WHERE
//! resource_type = … AND param = … AND …)`, an index range read); every other filter is a
//! correlated `EXISTS` on the candidate's own rows (a primary-key range read per candidate).
//! Writing them differently is deliberate: SQLite plans without statistics and would
//! otherwise happily materialise `status=active` for the whole table to test a handful of
//! candidates. PostgreSQL turns both forms into semi-joins and picks by its statistics.
//!
//! A [`Restriction`] (what the caller may see, [`crate::access`]) is one more predicate on
//! the matches, on chain targets, on `_has` sources and on every included resource; for a
//! patient or a relative it may instead be the set the query starts from.
//!
//! Sort values are correlated `MIN`/`MAX` subqueries in an inner select; the keyset condition
//! and `ORDER BY` apply to the outer one (`q`), so both use the same computed values. Every
//! order ends with the version row (`seq`), and without `_sort` it is the whole order: then
//! a driving filter whose index yields its rows in `rid` order (see [`in_rid_order`]) is
//! instead the outer loop of a join, read from the cursor on and stopped after the page, so
//! a page costs the same for an owner of forty tasks as for one of forty thousand.
//!
//! The `COUNT(*)` statement exists only for `_total=accurate`; it reads every match, which
//! is why nothing else asks for it.

use paraply_fhir::ResourceType;
use paraply_search::{
    Condition, DateRange, Filter, Include, PageCursor, ParamKind, Prefix, ReferenceTarget,
    Restriction, SearchQuery, SortField, SortKey, SortValue, StringMatch, TokenSystem, Total,
    UriMatch, find, normalize,
};

use crate::sql::{Bind, Statement};

/// What one sort column of a page row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SortType {
    Int,
    Text,
}

/// The statements of one search page.
#[derive(Debug)]
pub(crate) struct SearchSql {
    /// `seq, resource_type, id, version_id, last_updated, body` then one column per sort key;
    /// at most `count + 1` rows, in the order read (reversed order for a backwards cursor).
    pub(crate) page: Statement,
    /// `COUNT(*)` over the filters, without the cursor; only with `_total=accurate`.
    pub(crate) total: Option<Statement>,
    pub(crate) sort: Vec<SortType>,
    pub(crate) backwards: bool,
}

/// Filters ranked at most this (see [`rank`]) may drive a query; weaker ones (a date range,
/// `:contains`) would read a large part of an index and then sort it all, where walking the
/// type's resources in write order (the `(resource_type, seq)` index) and stopping after a
/// page is cheaper.
const DRIVER_RANK_LIMIT: u8 = 3;

/// A restriction to the rows of a few named patients is as selective as a reference filter
/// (see [`rank`]).
const RESTRICTION_RANK: u8 = 1;

const DAY_US: i64 = 86_400_000_000;

/// Whether the current `resource_type/id` passes `restriction`: one row or none.
pub(crate) fn visible(
    resource_type: ResourceType,
    id: &str,
    restriction: &Restriction,
) -> Statement {
    let mut b = Builder::new(0, Some(restriction));
    let types = [resource_type];
    let t = b.stmt.text(resource_type.as_str());
    let id = b.stmt.text(id);
    let restricted = b.and_restricted("r", &types);
    b.stmt.sql = format!(
        "SELECT r.seq FROM resource_version r WHERE r.resource_type = {t} AND r.id = {id} \
         AND r.is_current AND r.body IS NOT NULL{restricted}"
    );
    b.stmt
}

/// The page and count statements of `query`; `now_us` anchors `ap` (approximately).
pub(crate) fn search(query: &SearchQuery, now_us: i64) -> SearchSql {
    let mut b = Builder::new(now_us, query.restriction.as_ref());
    let types = [query.resource_type];
    let subject = Subject {
        alias: "r",
        types: &types,
    };
    let best = query
        .filters
        .iter()
        .enumerate()
        .filter_map(|(i, f)| filter_rank(f).map(|rank| (rank, i)))
        .filter(|(rank, _)| *rank <= DRIVER_RANK_LIMIT)
        .min();
    // The patients a patient or relative may see are few: when no filter is as selective,
    // their rows drive the query (`CareTeam?status=active` of one patient reads that
    // patient's rows, not every active team).
    let restriction_drives = best.is_none_or(|(rank, _)| rank > RESTRICTION_RANK);
    let restriction_set = if restriction_drives {
        b.restriction_set(query.resource_type)
    } else {
        None
    };
    let driver = best.filter(|_| restriction_set.is_none()).map(|(_, i)| i);
    // Without `_sort` the order is the version row, in which an equality lookup of the
    // driving index already yields its rows: the page is then read straight off that index
    // and stops after `count + 1` rows, whatever the number of matches.
    let streamed =
        driver
            .filter(|_| query.sort.is_empty())
            .and_then(|i| match &query.filters[i].any_of[..] {
                [only] if in_rid_order(only) => b.lookup(&types, only).map(|lookup| (i, lookup)),
                _ => None,
            });
    let mut conditions = vec!["r.is_current".to_owned(), "r.body IS NOT NULL".to_owned()];
    // A driving set of version rows (`r.seq IN (…)`) holds only rows of the type already.
    // Repeating the type here would tempt SQLite to walk the type's id index in page order
    // and test every resource against the set, instead of looking up the few rows in it.
    let by_seq = restriction_set.is_some()
        || driver.is_some_and(|i| {
            !query.filters[i]
                .any_of
                .iter()
                .all(|c| matches!(c, Condition::Id(_)))
        });
    let restricted = match restriction_set {
        Some(set) => Some(format!("r.seq IN ({set})")),
        None => b.restricted("r", &types),
    };
    // A staff restriction may lead PostgreSQL to start from the caller's patients and look
    // each up by id: without the type, the (type, id) index cannot serve that lookup.
    let staff = matches!(query.restriction, Some(Restriction::Staff(_))) && restricted.is_some();
    if !by_seq || staff {
        let resource_type = b.stmt.text(query.resource_type.as_str());
        conditions.push(format!("r.resource_type = {resource_type}"));
    }
    // Index rows exist only for current, non-deleted versions (the write path keeps it so):
    // a streamed page whose other conditions only test index rows needs no version row
    // per candidate — only the page's own rows are read, for their bodies.
    let index_only = streamed.is_some()
        && restricted.is_none()
        && query
            .filters
            .iter()
            .all(|f| !f.any_of.iter().any(reads_version_row));
    conditions.extend(restricted);
    let mut filtered_by = Vec::with_capacity(query.filters.len());
    for (i, filter) in query.filters.iter().enumerate() {
        if streamed.as_ref().is_none_or(|(s, _)| *s != i) {
            filtered_by.push(b.filter(&subject, filter, driver == Some(i)));
        }
    }
    conditions.extend(filtered_by.iter().cloned());
    // Every condition but a streamed driver, which the page joins instead.
    let tested = conditions.join(" AND ");
    let filtered = match &streamed {
        Some((_, lookup)) => format!("r.seq IN ({}) AND {tested}", lookup.set()),
        None => tested.clone(),
    };
    let total = (query.total == Total::Accurate).then(|| Statement {
        sql: format!("SELECT COUNT(*) FROM resource_version r WHERE {filtered}"),
        binds: b.stmt.binds.clone(),
    });
    let backwards = query.page.as_ref().is_some_and(|c| c.backwards);
    let (candidates, sort) = match streamed {
        Some((_, lookup)) => {
            let Lookup {
                alias: a,
                from,
                predicate,
            } = &lookup;
            // Index rows, not resources, drive: a resource with two matching rows (the same
            // target named twice, once by URL) is one match, hence the GROUP BY, which the
            // index order serves without sorting.
            let keyset = match &query.page {
                Some(cursor) => {
                    let op = if backwards { "<" } else { ">" };
                    format!(" AND {a}.rid {op} {}", b.stmt.int(cursor.seq))
                }
                None => String::new(),
            };
            let direction = if backwards { "DESC" } else { "ASC" };
            let limit = b.stmt.int(i64::from(query.count) + 1);
            let candidates = if index_only {
                let tests = if filtered_by.is_empty() {
                    "TRUE".to_owned()
                } else {
                    filtered_by.join(" AND ")
                };
                format!(
                    "SELECT r.seq FROM (SELECT {a}.rid AS seq FROM {from} \
                     WHERE {predicate}{keyset}) r WHERE {tests} GROUP BY r.seq \
                     ORDER BY r.seq {direction} LIMIT {limit}"
                )
            } else {
                format!(
                    "SELECT {a}.rid AS seq FROM {from} JOIN resource_version r ON r.seq = {a}.rid \
                     WHERE {predicate} AND {tested}{keyset} GROUP BY {a}.rid \
                     ORDER BY {a}.rid {direction} LIMIT {limit}"
                )
            };
            (candidates, Vec::new())
        }
        None => {
            let mut columns = String::new();
            let mut sort = Vec::with_capacity(query.sort.len());
            for (i, key) in query.sort.iter().enumerate() {
                let (expr, kind) = b.sort_expr(key);
                columns.push_str(&format!(", {expr} AS s{i}"));
                sort.push(kind);
            }
            let keyset = match &query.page {
                Some(cursor) => format!(" WHERE {}", b.keyset(&query.sort, &sort, cursor)),
                None => String::new(),
            };
            let outer = sort_columns(sort.len());
            let order = order_by(&query.sort, backwards);
            let limit = b.stmt.int(i64::from(query.count) + 1);
            let candidates = format!(
                "SELECT q.seq{outer} FROM (SELECT r.seq{columns} FROM resource_version r \
                 WHERE {filtered}) q{keyset} ORDER BY {order} LIMIT {limit}"
            );
            (candidates, sort)
        }
    };
    let outer = sort_columns(sort.len());
    let order = order_by(&query.sort, backwards);
    // Candidates are sorted and cut to the page with their keys only; the bodies of the page
    // rows are read afterwards (sorting a thousand bodies to keep fifty costs milliseconds).
    b.stmt.sql = format!(
        "SELECT v.seq, v.resource_type, v.id, v.version_id, v.last_updated, v.body{outer} \
         FROM ({candidates}) q JOIN resource_version v ON v.seq = q.seq ORDER BY {order}"
    );
    SearchSql {
        page: b.stmt,
        total,
        sort,
        backwards,
    }
}

/// `_include`: the current targets of `spec.param` references held by the version rows
/// `seqs` (all of type `spec.source_type`) that `restriction` lets the caller see.
pub(crate) fn include(
    spec: &Include,
    seqs: &[i64],
    restriction: Option<&Restriction>,
) -> Statement {
    let mut b = Builder::new(0, restriction);
    let list = int_list(&mut b.stmt, seqs);
    let param = b.stmt.text(spec.param);
    let target = match spec.target_type {
        Some(t) => format!(" AND x.target_type = {}", b.stmt.text(t.as_str())),
        None => String::new(),
    };
    // Each target is checked for its own type: the reference may name several.
    let targets = match spec.target_type {
        Some(t) => vec![t],
        None => match find(spec.source_type, spec.param) {
            Some(def) if !def.targets.is_empty() => def.targets.to_vec(),
            _ => ResourceType::ALL.to_vec(),
        },
    };
    let allowed = b.and_restricted("t", &targets);
    b.stmt.sql = format!(
        "SELECT t.seq, t.resource_type, t.id, t.version_id, t.last_updated, t.body \
         FROM index_reference x JOIN resource_version t \
         ON t.resource_type = x.target_type AND t.id = x.target_id \
         WHERE x.rid IN ({list}) AND x.param = {param}{target} \
         AND t.is_current AND t.body IS NOT NULL{allowed}"
    );
    b.stmt
}

/// `_revinclude`: current `spec.source_type` resources whose `spec.param` points at one of
/// the version rows `seqs`, and that `restriction` lets the caller see.
pub(crate) fn revinclude(
    spec: &Include,
    seqs: &[i64],
    restriction: Option<&Restriction>,
) -> Statement {
    let mut b = Builder::new(0, restriction);
    let list = int_list(&mut b.stmt, seqs);
    let source = b.stmt.text(spec.source_type.as_str());
    let param = b.stmt.text(spec.param);
    let allowed = b.and_restricted("s", &[spec.source_type]);
    b.stmt.sql = format!(
        "SELECT s.seq, s.resource_type, s.id, s.version_id, s.last_updated, s.body \
         FROM resource_version t \
         JOIN index_reference x ON x.target_id = t.id AND x.target_type = t.resource_type \
         JOIN resource_version s ON s.seq = x.rid \
         WHERE t.seq IN ({list}) AND x.resource_type = {source} AND x.param = {param} \
         AND s.is_current AND s.body IS NOT NULL{allowed}"
    );
    b.stmt
}

/// `, q.s0, q.s1, …`: the sort values a candidate carries out of its subquery.
fn sort_columns(keys: usize) -> String {
    (0..keys).map(|i| format!(", q.s{i}")).collect()
}

fn int_list(stmt: &mut Statement, values: &[i64]) -> String {
    let list: Vec<String> = values.iter().map(|v| stmt.int(*v)).collect();
    list.join(", ")
}

/// `ORDER BY` of the outer select: the keys (missing values last in either direction), then
/// the write order; everything reversed when reading backwards from a cursor.
fn order_by(keys: &[SortKey], backwards: bool) -> String {
    let mut order: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| match (key.descending, backwards) {
            (false, false) => format!("q.s{i} ASC NULLS LAST"),
            (true, false) => format!("q.s{i} DESC NULLS LAST"),
            (false, true) => format!("q.s{i} DESC NULLS FIRST"),
            (true, true) => format!("q.s{i} ASC NULLS FIRST"),
        })
        .collect();
    order.push(if backwards { "q.seq DESC" } else { "q.seq ASC" }.to_owned());
    order.join(", ")
}

/// How selective a filter looks (lower is more selective); `None` when it cannot drive a
/// query (negated, or an alternative that is no index lookup).
fn filter_rank(filter: &Filter) -> Option<u8> {
    if filter.negated || filter.any_of.is_empty() {
        return None;
    }
    filter
        .any_of
        .iter()
        .map(rank)
        .try_fold(0, |worst, r| r.map(|r| worst.max(r)))
}

/// Parameters whose values (nearly) identify a resource.
const IDENTIFYING_TOKENS: &[&str] = &[
    "identifier",
    "identifier:of-type",
    "telecom",
    "email",
    "phone",
];

fn rank(condition: &Condition) -> Option<u8> {
    Some(match condition {
        Condition::Id(_) => 0,
        Condition::Reference {
            target: ReferenceTarget::Local { .. },
            ..
        } => 1,
        Condition::Reference { .. } => 2,
        Condition::Token { code: None, .. } => 4,
        Condition::Token { param, .. } if IDENTIFYING_TOKENS.contains(param) => 1,
        Condition::Token { .. } => 3,
        Condition::String {
            mode: StringMatch::Contains,
            ..
        } => 5,
        Condition::String { .. } => 2,
        Condition::Uri {
            mode: UriMatch::Above,
            ..
        } => 5,
        Condition::Uri { .. } => 2,
        Condition::Date { .. } | Condition::Quantity { .. } => 4,
        Condition::TokenText { .. } => 5,
        Condition::Chain { condition, .. } | Condition::Has { condition, .. } => {
            rank(condition)?.saturating_add(1)
        }
        Condition::LastUpdated { .. } | Condition::Missing { .. } => return None,
    })
}

/// The index table of a parameter kind.
fn table_of(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Token => "index_token",
        ParamKind::String => "index_string",
        ParamKind::Reference => "index_reference",
        ParamKind::Date => "index_date",
        ParamKind::Uri => "index_uri",
        ParamKind::Quantity => "index_quantity",
    }
}

/// The resource rows a condition is about: `alias` names a `resource_version` row, one of
/// `types`.
struct Subject<'a> {
    alias: &'a str,
    types: &'a [ResourceType],
}

/// Builds one statement; the access rules on it live in [`crate::access`].
pub(crate) struct Builder<'q> {
    pub(crate) stmt: Statement,
    /// Counter for unique aliases of nested subqueries.
    aliases: usize,
    now_us: i64,
    /// What the caller may see: applies to matches, chain targets, `_has` sources and
    /// included resources alike.
    pub(crate) restriction: Option<&'q Restriction>,
}

impl<'q> Builder<'q> {
    pub(crate) fn new(now_us: i64, restriction: Option<&'q Restriction>) -> Self {
        Builder {
            stmt: Statement::default(),
            aliases: 0,
            now_us,
            restriction,
        }
    }

    pub(crate) fn alias(&mut self, prefix: &str) -> String {
        self.aliases += 1;
        format!("{prefix}{}", self.aliases)
    }

    pub(crate) fn type_list(&mut self, types: &[ResourceType]) -> String {
        let list: Vec<String> = types.iter().map(|t| self.stmt.text(t.as_str())).collect();
        if list.is_empty() {
            // No type can match; `IN ()` is not valid SQL.
            "NULL".to_owned()
        } else {
            list.join(", ")
        }
    }

    /// One filter as a predicate on the subject: OR of its alternatives, `NOT` for `:not`
    /// (so resources without the element match `:not`). `drive` writes it as a set.
    fn filter(&mut self, s: &Subject, filter: &Filter, drive: bool) -> String {
        if drive && !filter.negated && !filter.any_of.is_empty() {
            if filter.any_of.iter().all(|c| matches!(c, Condition::Id(_))) {
                let ids: Vec<String> = filter
                    .any_of
                    .iter()
                    .filter_map(|c| match c {
                        Condition::Id(id) => Some(self.stmt.text(id.as_str())),
                        _ => None,
                    })
                    .collect();
                return format!("{}.id IN ({})", s.alias, ids.join(", "));
            }
            let sets: Vec<String> = filter
                .any_of
                .iter()
                .map(|c| self.rid_set(s.types, c))
                .collect();
            return format!("{}.seq IN ({})", s.alias, sets.join(" UNION ALL "));
        }
        let mut any: Vec<String> = match same_token_codes(&filter.any_of) {
            // `status=requested,accepted`: one lookup of the candidate's rows, not one per code.
            Some((param, system, codes)) => vec![self.token_codes(s, param, system, &codes)],
            None => filter.any_of.iter().map(|c| self.test(s, c)).collect(),
        };
        let any = match any.len() {
            0 => "FALSE".to_owned(),
            1 => any.remove(0),
            _ => format!("({})", any.join(" OR ")),
        };
        if filter.negated {
            format!("NOT ({any})")
        } else {
            any
        }
    }

    /// The index rows of resources of `types` that match `condition`, when one index row
    /// answers it.
    fn lookup(&mut self, types: &[ResourceType], condition: &Condition) -> Option<Lookup> {
        let (table, param) = index_of(condition)?;
        let a = self.alias("a");
        let type_list = self.type_list(types);
        let param = self.stmt.text(param);
        let row = self.row_predicate(&a, condition);
        Some(Lookup {
            from: format!("{table} {a}"),
            predicate: format!(
                "{a}.resource_type IN ({type_list}) AND {a}.param = {param} AND {row}"
            ),
            alias: a,
        })
    }

    /// `SELECT <seq of a matching version row>`: the condition as a set to start from.
    fn rid_set(&mut self, types: &[ResourceType], condition: &Condition) -> String {
        if let Some(lookup) = self.lookup(types, condition) {
            return lookup.set();
        }
        match condition {
            Condition::Chain {
                param,
                target_types,
                condition,
            } => {
                let (x, t) = (self.alias("x"), self.alias("t"));
                let type_list = self.type_list(types);
                let param = self.stmt.text(param);
                let targets = self.type_list(target_types);
                let inner = self.rid_set(target_types, condition);
                let allowed = self.and_restricted(&t, target_types);
                format!(
                    "SELECT {x}.rid FROM index_reference {x} JOIN resource_version {t} \
                     ON {t}.resource_type = {x}.target_type AND {t}.id = {x}.target_id \
                     WHERE {x}.resource_type IN ({type_list}) AND {x}.param = {param} \
                     AND {x}.target_type IN ({targets}) AND {t}.is_current \
                     AND {t}.body IS NOT NULL AND {t}.seq IN ({inner}){allowed}"
                )
            }
            Condition::Has {
                source_type,
                param,
                condition,
            } => {
                let (x, v) = (self.alias("x"), self.alias("v"));
                let source = self.stmt.text(source_type.as_str());
                let param = self.stmt.text(param);
                let type_list = self.type_list(types);
                let inner = self.rid_set(&[*source_type], condition);
                // Sources the caller may not see must not reveal their targets.
                let (sources, allowed) = if self.restriction.is_some() {
                    let h = self.alias("h");
                    let allowed = self.and_restricted(&h, &[*source_type]);
                    (
                        format!(" JOIN resource_version {h} ON {h}.seq = {x}.rid"),
                        allowed,
                    )
                } else {
                    (String::new(), String::new())
                };
                format!(
                    "SELECT {v}.seq FROM index_reference {x} JOIN resource_version {v} \
                     ON {v}.resource_type = {x}.target_type AND {v}.id = {x}.target_id\
                     {sources} WHERE {x}.resource_type = {source} AND {x}.param = {param} \
                     AND {x}.target_type IN ({type_list}) AND {v}.is_current \
                     AND {v}.body IS NOT NULL AND {x}.rid IN ({inner}){allowed}"
                )
            }
            // Id, _lastUpdated, :missing: the versions of the types that pass the test.
            _ => {
                let v = self.alias("v");
                let type_list = self.type_list(types);
                let test = self.test(&Subject { alias: &v, types }, condition);
                format!(
                    "SELECT {v}.seq FROM resource_version {v} WHERE {v}.resource_type IN \
                     ({type_list}) AND {v}.is_current AND {v}.body IS NOT NULL AND {test}"
                )
            }
        }
    }

    /// The condition as a test of one candidate (correlated with the subject's row).
    fn test(&mut self, s: &Subject, condition: &Condition) -> String {
        let alias = s.alias;
        if let Some((table, param)) = index_of(condition) {
            let a = self.alias("a");
            let param = self.stmt.text(param);
            let row = self.row_predicate(&a, condition);
            return format!(
                "EXISTS (SELECT 1 FROM {table} {a} WHERE {a}.rid = {alias}.seq \
                 AND {a}.param = {param} AND {row})"
            );
        }
        match condition {
            Condition::Id(id) => format!("{alias}.id = {}", self.stmt.text(id.as_str())),
            Condition::LastUpdated { prefix, range } => {
                // A stored instant is the range of its precision: one microsecond.
                let start = format!("{alias}.last_updated");
                let end = format!("({alias}.last_updated + 1)");
                self.date_predicate(&start, &end, *prefix, *range)
            }
            Condition::Missing { param, missing } => {
                let Some(def) = s.types.first().and_then(|t| find(*t, param)) else {
                    // Not an indexed parameter: every resource lacks it.
                    return if *missing { "TRUE" } else { "FALSE" }.to_owned();
                };
                let a = self.alias("a");
                let param = self.stmt.text(def.name);
                let exists = format!(
                    "EXISTS (SELECT 1 FROM {} {a} WHERE {a}.rid = {alias}.seq \
                     AND {a}.param = {param})",
                    table_of(def.kind)
                );
                if *missing {
                    format!("NOT {exists}")
                } else {
                    exists
                }
            }
            Condition::Chain {
                param,
                target_types,
                condition,
            } => {
                let (x, t) = (self.alias("x"), self.alias("t"));
                let param = self.stmt.text(param);
                let targets = self.type_list(target_types);
                let inner = self.test(
                    &Subject {
                        alias: &t,
                        types: target_types,
                    },
                    condition,
                );
                let allowed = self.and_restricted(&t, target_types);
                format!(
                    "EXISTS (SELECT 1 FROM index_reference {x} JOIN resource_version {t} \
                     ON {t}.resource_type = {x}.target_type AND {t}.id = {x}.target_id \
                     WHERE {x}.rid = {alias}.seq AND {x}.param = {param} \
                     AND {x}.target_type IN ({targets}) AND {t}.is_current \
                     AND {t}.body IS NOT NULL AND {inner}{allowed})"
                )
            }
            Condition::Has {
                source_type,
                param,
                condition,
            } => {
                // Index rows exist only for current, non-deleted versions, so the source
                // row `h` needs no further check.
                let (x, h) = (self.alias("x"), self.alias("h"));
                let source = self.stmt.text(source_type.as_str());
                let param = self.stmt.text(param);
                let inner = self.test(
                    &Subject {
                        alias: &h,
                        types: &[*source_type],
                    },
                    condition,
                );
                let allowed = self.and_restricted(&h, &[*source_type]);
                format!(
                    "EXISTS (SELECT 1 FROM index_reference {x} JOIN resource_version {h} \
                     ON {h}.seq = {x}.rid WHERE {x}.target_id = {alias}.id \
                     AND {x}.target_type = {alias}.resource_type \
                     AND {x}.resource_type = {source} AND {x}.param = {param} AND {inner}\
                     {allowed})"
                )
            }
            // Index conditions were handled above.
            _ => "FALSE".to_owned(),
        }
    }

    /// Whether the subject has a `param` token row with one of `codes` (and `system`).
    fn token_codes(
        &mut self,
        s: &Subject,
        param: &str,
        system: &TokenSystem,
        codes: &[&str],
    ) -> String {
        let a = self.alias("a");
        let param = self.stmt.text(param);
        let codes: Vec<String> = codes.iter().map(|code| self.stmt.text(code)).collect();
        let system = match system {
            TokenSystem::Any => String::new(),
            TokenSystem::Absent => format!(" AND {a}.system = ''"),
            TokenSystem::Is(system) => format!(" AND {a}.system = {}", self.stmt.text(system)),
        };
        format!(
            "EXISTS (SELECT 1 FROM index_token {a} WHERE {a}.rid = {}.seq AND {a}.param = {param} \
             AND {a}.code IN ({}){system})",
            s.alias,
            codes.join(", ")
        )
    }

    /// What one index row `a` must hold to match an index condition.
    fn row_predicate(&mut self, a: &str, condition: &Condition) -> String {
        match condition {
            Condition::Token { system, code, .. } => {
                let mut parts = Vec::with_capacity(2);
                if let Some(code) = code {
                    parts.push(format!("{a}.code = {}", self.stmt.text(code)));
                }
                match system {
                    TokenSystem::Any => {}
                    TokenSystem::Absent => parts.push(format!("{a}.system = ''")),
                    TokenSystem::Is(system) => {
                        parts.push(format!("{a}.system = {}", self.stmt.text(system)));
                    }
                }
                if parts.is_empty() {
                    "TRUE".to_owned()
                } else {
                    parts.join(" AND ")
                }
            }
            Condition::TokenText { text, .. } => self.prefix(&format!("{a}.text"), text),
            Condition::String { mode, value, .. } => match mode {
                StringMatch::StartsWith => self.prefix(&format!("{a}.normalized"), value),
                StringMatch::Contains => {
                    let pattern = self.stmt.text(&format!("%{}%", escape_like(value)));
                    format!("{a}.normalized LIKE {pattern} ESCAPE '\\'")
                }
                StringMatch::Exact => {
                    // The normalized form lets the lookup index find the candidates.
                    let normalized = self.stmt.text(&normalize(value));
                    let exact = self.stmt.text(value);
                    format!("{a}.normalized = {normalized} AND {a}.exact = {exact}")
                }
            },
            Condition::Reference { target, .. } => match target {
                ReferenceTarget::Local { target_type, id } => {
                    let id = self.stmt.text(id);
                    match target_type {
                        Some(t) => format!(
                            "{a}.target_id = {id} AND {a}.target_type = {}",
                            self.stmt.text(t.as_str())
                        ),
                        None => format!("{a}.target_id = {id}"),
                    }
                }
                // A URL naming no served resource is stored with an empty target id.
                ReferenceTarget::Url(url) => {
                    format!("{a}.target_id = '' AND {a}.url = {}", self.stmt.text(url))
                }
            },
            Condition::Date { prefix, range, .. } => self.date_predicate(
                &format!("{a}.start_us"),
                &format!("{a}.end_us"),
                *prefix,
                *range,
            ),
            Condition::Uri { mode, value, .. } => match mode {
                UriMatch::Exact => format!("{a}.value = {}", self.stmt.text(value)),
                UriMatch::Below => self.prefix(&format!("{a}.value"), value),
                UriMatch::Above => format!(
                    "{a}.value <> '' AND substr({}, 1, length({a}.value)) = {a}.value",
                    self.stmt.text(value)
                ),
            },
            Condition::Quantity {
                prefix,
                value,
                system,
                code,
                ..
            } => {
                let column = format!("{a}.value");
                let mut parts = vec![self.number_predicate(&column, *prefix, *value)];
                if let Some(system) = system {
                    parts.push(format!("{a}.system = {}", self.stmt.text(system)));
                }
                if let Some(code) = code {
                    parts.push(format!("{a}.code = {}", self.stmt.text(code)));
                }
                parts.join(" AND ")
            }
            _ => "FALSE".to_owned(),
        }
    }

    /// `column` starts with `prefix`, as a range the index can seek (`LIKE` would not use
    /// the index on PostgreSQL's "C" columns nor on SQLite's case-insensitive `LIKE`).
    fn prefix(&mut self, column: &str, prefix: &str) -> String {
        let low = self.stmt.text(prefix);
        match next_prefix(prefix) {
            Some(high) => {
                let high = self.stmt.text(&high);
                format!("{column} >= {low} AND {column} < {high}")
            }
            None => format!("{column} >= {low}"),
        }
    }

    /// R4 date prefixes on a stored half-open range `[start, end)` against the searched
    /// range `[s, e)`. `ge`/`le` match a stored range that reaches into or beyond the
    /// searched one (`end > s` / `start < e`).
    fn date_predicate(
        &mut self,
        start: &str,
        end: &str,
        prefix: Prefix,
        range: DateRange,
    ) -> String {
        let DateRange { start: s, end: e } = range;
        match prefix {
            Prefix::Eq | Prefix::Ne => {
                let (s, e) = (self.stmt.int(s), self.stmt.int(e));
                let within = format!("{start} >= {s} AND {end} <= {e}");
                if prefix == Prefix::Eq {
                    within
                } else {
                    format!("NOT ({within})")
                }
            }
            Prefix::Gt => format!("{end} > {}", self.stmt.int(e)),
            Prefix::Lt => format!("{start} < {}", self.stmt.int(s)),
            Prefix::Ge => format!("{end} > {}", self.stmt.int(s)),
            Prefix::Le => format!("{start} < {}", self.stmt.int(e)),
            Prefix::Sa => format!("{start} >= {}", self.stmt.int(e)),
            Prefix::Eb => format!("{end} <= {}", self.stmt.int(s)),
            Prefix::Ap => {
                // Widened by 10% of the distance from now, at least a day, on each side.
                let middle = s / 2 + e / 2;
                let gap = (i128::from(self.now_us) - i128::from(middle)).unsigned_abs() / 10;
                let widen = i64::try_from(gap).unwrap_or(i64::MAX).max(DAY_US);
                let low = self.stmt.int(s.saturating_sub(widen));
                let high = self.stmt.int(e.saturating_add(widen));
                format!("{start} < {high} AND {end} > {low}")
            }
        }
    }

    /// Prefixes on a number (a quantity's value, a point): `sa`/`eb` are `gt`/`lt`, `ap`
    /// is within 10%.
    fn number_predicate(&mut self, column: &str, prefix: Prefix, value: f64) -> String {
        let op = match prefix {
            Prefix::Eq => "=",
            Prefix::Ne => "<>",
            Prefix::Gt | Prefix::Sa => ">",
            Prefix::Lt | Prefix::Eb => "<",
            Prefix::Ge => ">=",
            Prefix::Le => "<=",
            Prefix::Ap => {
                let margin = value.abs() * 0.1;
                let low = self.stmt.bind(Bind::Real(value - margin));
                let high = self.stmt.bind(Bind::Real(value + margin));
                return format!("{column} >= {low} AND {column} <= {high}");
            }
        };
        format!("{column} {op} {}", self.stmt.bind(Bind::Real(value)))
    }

    /// The value a resource sorts by for one key: dates by their start ascending and their
    /// end descending (the earliest/latest instant they cover), other kinds by the smallest
    /// value ascending and the largest descending; NULL when the resource has none.
    fn sort_expr(&mut self, key: &SortKey) -> (String, SortType) {
        let (name, kind) = match &key.field {
            SortField::Id => return ("r.id".to_owned(), SortType::Text),
            SortField::LastUpdated => return ("r.last_updated".to_owned(), SortType::Int),
            SortField::Param { name, kind } => (*name, *kind),
        };
        let a = self.alias("a");
        let (column, sort_type, extra) = match kind {
            // Text-only concepts have no code to sort by.
            ParamKind::Token => (
                format!("{a}.code"),
                SortType::Text,
                format!(" AND {a}.code <> ''"),
            ),
            ParamKind::String => (format!("{a}.normalized"), SortType::Text, String::new()),
            ParamKind::Reference => (
                format!(
                    "CASE WHEN {a}.url = '' THEN {a}.target_type || '/' || {a}.target_id \
                     ELSE {a}.url END"
                ),
                SortType::Text,
                String::new(),
            ),
            ParamKind::Date if key.descending => {
                (format!("{a}.end_us"), SortType::Int, String::new())
            }
            ParamKind::Date => (format!("{a}.start_us"), SortType::Int, String::new()),
            ParamKind::Uri => (format!("{a}.value"), SortType::Text, String::new()),
            // Quantities in different units have no order (the parser refuses them).
            ParamKind::Quantity => return ("CAST(NULL AS TEXT)".to_owned(), SortType::Text),
        };
        let aggregate = if key.descending { "MAX" } else { "MIN" };
        let param = self.stmt.text(name);
        (
            format!(
                "(SELECT {aggregate}({column}) FROM {} {a} WHERE {a}.rid = r.seq \
                 AND {a}.param = {param}{extra})",
                table_of(kind)
            ),
            sort_type,
        )
    }

    /// Rows strictly after (or, backwards, before) the cursor's row in the query's order:
    /// `k1 beyond c1 OR (k1 = c1 AND (k2 beyond c2 OR (… AND seq beyond cseq)))`, with missing
    /// values (NULL) last in either direction.
    fn keyset(&mut self, keys: &[SortKey], types: &[SortType], cursor: &PageCursor) -> String {
        let backwards = cursor.backwards;
        let seq = self.stmt.int(cursor.seq);
        let mut expr = format!("q.seq {} {seq}", if backwards { "<" } else { ">" });
        for (i, key) in keys.iter().enumerate().rev() {
            let column = format!("q.s{i}");
            // A value of the wrong type (a cursor of another query) reads as missing.
            let value = match (cursor.values.get(i), types.get(i)) {
                (Some(SortValue::Int(v)), Some(SortType::Int)) => Some(self.stmt.int(*v)),
                (Some(SortValue::Text(v)), Some(SortType::Text)) => Some(self.stmt.text(v)),
                _ => None,
            };
            let (beyond, equal) = match value {
                Some(value) => {
                    let op = if key.descending == backwards {
                        ">"
                    } else {
                        "<"
                    };
                    let beyond = if backwards {
                        format!("{column} {op} {value}")
                    } else {
                        format!("({column} {op} {value} OR {column} IS NULL)")
                    };
                    (beyond, format!("{column} = {value}"))
                }
                None => {
                    let beyond = if backwards {
                        format!("{column} IS NOT NULL")
                    } else {
                        "FALSE".to_owned()
                    };
                    (beyond, format!("{column} IS NULL"))
                }
            };
            expr = format!("({beyond} OR ({equal} AND {expr}))");
        }
        expr
    }
}

/// Index rows matching one condition: `FROM {from} WHERE {predicate}`.
struct Lookup {
    /// The index table's alias, whose `rid` is the matching version row.
    alias: String,
    /// The index table with its alias.
    from: String,
    predicate: String,
}

impl Lookup {
    /// The version rows as a set to start from.
    fn set(&self) -> String {
        let Lookup {
            alias,
            from,
            predicate,
        } = self;
        format!("SELECT {alias}.rid FROM {from} WHERE {predicate}")
    }
}

/// The parameter, system and codes of alternatives that are all tokens of one parameter
/// and system, each with a code (`status=requested,accepted`); `None` otherwise or for one.
fn same_token_codes(any_of: &[Condition]) -> Option<(&'static str, &TokenSystem, Vec<&str>)> {
    let [Condition::Token { param, system, .. }, ..] = any_of else {
        return None;
    };
    if any_of.len() < 2 {
        return None;
    }
    let codes = any_of
        .iter()
        .map(|c| match c {
            Condition::Token {
                param: p,
                system: sys,
                code: Some(code),
            } if p == param && sys == system => Some(code.as_str()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((param, system, codes))
}

/// Whether testing `condition` reads a column of the version row beyond its `seq` (its id,
/// type or write time), which index rows alone cannot answer.
fn reads_version_row(condition: &Condition) -> bool {
    matches!(
        condition,
        Condition::Id(_) | Condition::LastUpdated { .. } | Condition::Has { .. }
    )
}

/// Whether the lookup index of a condition on one resource type yields its rows in `rid`
/// order: true when the condition fixes every index column before `rid` by equality (the
/// `*_lookup` indexes and `index_reference_target` of migration 0002 end in `rid`). A
/// search without `_sort` driven by such a condition reads its page straight off the
/// index. Not so a token without a system (rows are ordered by system first), a reference
/// without a type, or a prefix or range.
fn in_rid_order(condition: &Condition) -> bool {
    matches!(
        condition,
        Condition::Reference {
            target: ReferenceTarget::Local {
                target_type: Some(_),
                ..
            },
            ..
        } | Condition::Token {
            system: TokenSystem::Is(_) | TokenSystem::Absent,
            code: Some(_),
            ..
        } | Condition::String {
            mode: StringMatch::Exact,
            ..
        } | Condition::Uri {
            mode: UriMatch::Exact,
            ..
        }
    )
}

/// The index table and parameter of a condition answered by one index row.
fn index_of(condition: &Condition) -> Option<(&'static str, &'static str)> {
    Some(match condition {
        Condition::Token { param, .. } | Condition::TokenText { param, .. } => {
            ("index_token", param)
        }
        Condition::String { param, .. } => ("index_string", param),
        Condition::Reference { param, .. } => ("index_reference", param),
        Condition::Date { param, .. } => ("index_date", param),
        Condition::Uri { param, .. } => ("index_uri", param),
        Condition::Quantity { param, .. } => ("index_quantity", param),
        _ => return None,
    })
}

/// The smallest string greater than every string starting with `prefix` (`None` if there
/// is none, e.g. for an empty prefix).
fn next_prefix(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut code = u32::from(last) + 1;
        if (0xD800..0xE000).contains(&code) {
            code = 0xE000;
        }
        if let Some(next) = char::from_u32(code) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Escapes `LIKE` wildcards with `\`.
fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(t: ResourceType, pairs: &[(&str, &str)]) -> SearchQuery {
        SearchQuery::parse(t, pairs.iter().copied()).unwrap()
    }

    #[test]
    fn search_values_are_bound_never_spliced_into_the_sql() {
        let q = query(
            ResourceType::Patient,
            &[
                ("identifier", "x'y|1,2"),
                ("family", "o'brien"),
                ("_id", "a"),
                ("_total", "accurate"),
            ],
        );
        let sql = search(&q, 0);
        assert!(!sql.page.sql.contains("x'y") && !sql.page.sql.contains("brien"));
        assert!(sql.page.binds.contains(&Bind::Text("x'y".into())));
        let total = sql.total.unwrap();
        assert!(
            total
                .sql
                .starts_with("SELECT COUNT(*) FROM resource_version r WHERE")
        );
        // The page binds the limit after the filter's values.
        assert_eq!(total.binds[..], sql.page.binds[..total.binds.len()]);
        assert_eq!(sql.page.binds.last(), Some(&Bind::Int(51)));
    }

    #[test]
    fn the_most_selective_filter_drives_and_the_others_test_candidates() {
        let q = query(
            ResourceType::CareTeam,
            &[
                ("status", "active"),
                ("patient", "Patient/p1"),
                ("_sort", "date"),
            ],
        );
        let sql = search(&q, 0).page.sql;
        assert!(sql.contains("r.seq IN (SELECT a"), "{sql}");
        assert!(sql.contains("EXISTS (SELECT 1 FROM index_token"), "{sql}");
        assert!(
            !sql.contains("EXISTS (SELECT 1 FROM index_reference"),
            "{sql}"
        );
    }

    #[test]
    fn without_sort_a_lookup_in_write_order_is_read_off_its_index_up_to_the_page() {
        let streamed = |t, pairs: &[(&str, &str)]| {
            let sql = search(&query(t, pairs), 0).page.sql;
            sql.contains("FROM index_")
                && (sql.contains("GROUP BY a1.rid ORDER BY a1.rid")
                    || sql.contains("GROUP BY r.seq ORDER BY r.seq"))
        };
        assert!(streamed(
            ResourceType::Task,
            &[
                ("owner", "Organization/o1"),
                ("status", "requested,accepted")
            ]
        ));
        assert!(streamed(
            ResourceType::Patient,
            &[("identifier", "urn:x|1")]
        ));
        assert!(streamed(ResourceType::Patient, &[("family:exact", "Berg")]));
        // Sorted by other keys, or rows that come ordered by something else first (the
        // system of a token without one, the type of an untyped reference, a prefix), or
        // several alternatives: the candidates are a set, sorted.
        for (t, pairs) in [
            (
                ResourceType::Task,
                &[("owner", "Organization/o1"), ("_sort", "_id")][..],
            ),
            (ResourceType::Task, &[("status", "requested")][..]),
            (ResourceType::Task, &[("owner", "o1")][..]),
            (ResourceType::Patient, &[("family", "Berg")][..]),
            (
                ResourceType::Task,
                &[("owner", "Organization/o1,Organization/o2")][..],
            ),
        ] {
            assert!(!streamed(t, pairs), "{t}?{pairs:?}");
        }
    }

    #[test]
    fn a_streamed_page_tests_index_rows_alone_and_looks_up_only_its_own_versions() {
        let owner_and_status = search(
            &query(
                ResourceType::Task,
                &[
                    ("owner", "Organization/o1"),
                    ("status", "requested,accepted"),
                ],
            ),
            0,
        )
        .page
        .sql;
        // Candidates come from index rows; the version table is read only for the page.
        assert_eq!(
            owner_and_status.matches("resource_version").count(),
            1,
            "{owner_and_status}"
        );
        // Both codes in one lookup of the candidate's token rows.
        assert_eq!(
            owner_and_status.matches("FROM index_token").count(),
            1,
            "{owner_and_status}"
        );
        assert!(
            owner_and_status.contains(".code IN ($"),
            "{owner_and_status}"
        );
        // A condition on the version row itself (`_lastUpdated`) or an access restriction
        // needs the version row of every candidate.
        let dated = search(
            &query(
                ResourceType::Task,
                &[("owner", "Organization/o1"), ("_lastUpdated", "gt2026")],
            ),
            0,
        )
        .page
        .sql;
        assert!(
            dated.contains("JOIN resource_version r ON r.seq = a1.rid"),
            "{dated}"
        );
        let mut restricted = query(ResourceType::Task, &[("owner", "Organization/o1")]);
        restricted.restriction = Some(patient_restriction());
        let restricted = search(&restricted, 0).page.sql;
        assert!(
            restricted.matches("resource_version").count() > 1,
            "{restricted}"
        );
    }

    fn patient_restriction() -> Restriction {
        Restriction::Patients(vec!["p1".parse().unwrap()])
    }

    #[test]
    fn a_patient_restriction_drives_unless_a_filter_is_as_selective() {
        let mut q = query(
            ResourceType::CareTeam,
            &[("status", "active"), ("_total", "accurate")],
        );
        q.restriction = Some(patient_restriction());
        let sql = search(&q, 0);
        assert!(
            sql.page.sql.contains("r.seq IN (SELECT k"),
            "{}",
            sql.page.sql
        );
        assert!(sql.page.binds.contains(&Bind::Text("p1".into())));
        // The total counts under the same restriction.
        assert!(sql.total.unwrap().sql.contains("r.seq IN (SELECT k"));

        let mut q = query(ResourceType::CareTeam, &[("patient", "Patient/p1")]);
        q.restriction = Some(patient_restriction());
        let sql = search(&q, 0).page.sql;
        assert!(sql.contains("FROM index_reference a1 JOIN"), "{sql}");
        assert!(
            sql.contains("EXISTS (SELECT 1 FROM index_reference k"),
            "{sql}"
        );
    }

    #[test]
    fn directories_are_not_restricted_and_includes_check_each_target_type() {
        let mut q = query(ResourceType::Organization, &[]);
        q.restriction = Some(patient_restriction());
        assert!(!search(&q, 0).page.sql.contains("index_reference"));

        let spec = Include {
            source_type: ResourceType::CarePlan,
            param: "care-team",
            target_type: None,
            iterate: false,
        };
        let restriction = patient_restriction();
        assert_eq!(include(&spec, &[1], None).binds.len(), 2);
        let stmt = include(&spec, &[1], Some(&restriction));
        assert!(
            stmt.sql.contains("EXISTS (SELECT 1 FROM index_reference k"),
            "{}",
            stmt.sql
        );
        let spec = Include {
            source_type: ResourceType::CareTeam,
            param: "participant",
            target_type: None,
            iterate: false,
        };
        // Patients, related persons and directories: each group tested by its type.
        let stmt = include(&spec, &[1], Some(&restriction));
        assert!(stmt.sql.contains("t.resource_type IN ("), "{}", stmt.sql);
        assert!(stmt.sql.contains("t.id IN ("), "{}", stmt.sql);
    }

    #[test]
    fn prefixes_become_ranges() {
        assert_eq!(next_prefix("ab").as_deref(), Some("ac"));
        assert_eq!(next_prefix("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(next_prefix("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(next_prefix(""), None);
        assert_eq!(escape_like("a_b%c\\"), "a\\_b\\%c\\\\");
    }
}
