//! FHIR search grammar: query pairs plus the parameter registry become a typed
//! [`SearchQuery`], and resources become the [`IndexRow`]s a search matches against.
//!
//! This crate knows no SQL and does no IO: storage receives only the typed query and the
//! index rows, so a parameter is parsed once, here, with its definition in hand.

mod access;
mod cursor;
mod date;
mod index;
mod normalize;
mod query;
mod registry;
mod subset;

pub use access::{
    GUARDIAN_AGE_LIMIT, PatientLink, Relatives, Restriction, StaffScope, owner_only, patient_link,
    patient_link_via,
};
pub use cursor::{PageCursor, SortValue};
pub use date::{DateRange, parse_date_range};
pub use index::{IndexRow, IndexValue, ParamDefinition, index_rows, param_definitions, param_rows};
pub use normalize::normalize;
pub use query::{
    Condition, DEFAULT_COUNT, Filter, Handling, Include, MAX_COUNT, MAX_INCLUDE_DEPTH, Prefix,
    ReferenceTarget, SearchError, SearchQuery, SortField, SortKey, StringMatch, Summary,
    TokenSystem, Total, UriMatch,
};
pub use registry::{
    ElementPath, PARAPLY_DEFINITIONS, ParamKind, SearchParamDef, find, params_for, paraply_params,
    summary_elements,
};
pub use subset::subset;
