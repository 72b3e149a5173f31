//! The R4 invariants of a resource, checked by walking its JSON together with the generated
//! element tree (`r4.rs`): only elements present in the resource are visited.

use std::fmt::Write as _;
use std::sync::LazyLock;

use serde_json::Value;

use crate::ConstraintIssue;
use crate::fhirpath::{self, Context, Expr, Item};
use crate::r4;

/// One R4 invariant (a StructureDefinition `constraint` of severity `error`).
#[derive(Debug)]
pub(crate) struct Invariant {
    pub(crate) key: &'static str,
    pub(crate) human: &'static str,
    pub(crate) expression: &'static str,
    /// The element it is defined on, e.g. `CareTeam.participant` or `Period`.
    pub(crate) source: &'static str,
}

/// An element of a resource or data type: the invariants evaluated on each of its
/// instances, and the children that lead to more invariants.
#[derive(Debug)]
pub(crate) struct Node {
    /// Indexes into `r4::INVARIANTS`.
    pub(crate) invariants: &'static [usize],
    pub(crate) children: &'static [(&'static str, &'static Node)],
}

/// Every invariant's expression, parsed once on first use. A parse failure (an expression
/// outside the supported FHIRPath subset) leaves `None`: `tests::every_generated_invariant_parses`
/// keeps that from happening for the committed table.
static COMPILED: LazyLock<Vec<Option<Expr>>> = LazyLock::new(|| {
    r4::INVARIANTS
        .iter()
        .map(|invariant| fhirpath::parse(invariant.expression).ok())
        .collect()
});

pub(crate) fn check(resource_type: &str, resource: &Value) -> Vec<ConstraintIssue> {
    let mut issues = Vec::new();
    let Some(node) = r4::resource_node(resource_type) else {
        return issues;
    };
    let context = Context { root: resource };
    let mut path = resource_type.to_owned();
    walk(resource, node, &mut path, &context, &mut issues);
    issues
}

fn walk(
    value: &Value,
    node: &Node,
    path: &mut String,
    context: &Context,
    issues: &mut Vec<ConstraintIssue>,
) {
    let Value::Object(object) = value else {
        return;
    };
    let focus = [Item::Node(value)];
    for &index in node.invariants {
        let Some(expr) = &COMPILED[index] else {
            continue;
        };
        let result = fhirpath::evaluate(expr, &focus, context);
        // Only a definite `false` breaks an invariant: an unknown result (e.g. dates at
        // different precisions) is not a reason to refuse a write.
        if let [Item::Boolean(false)] = result.as_slice() {
            let invariant = &r4::INVARIANTS[index];
            issues.push(ConstraintIssue {
                key: invariant.key.to_owned(),
                expression: path.clone(),
                message: format!(
                    "{}: {} ({})",
                    invariant.key, invariant.human, invariant.source
                ),
            });
        }
    }
    for (name, child) in node.children {
        let Some(child_value) = object.get(*name) else {
            continue;
        };
        let length = path.len();
        path.push('.');
        path.push_str(name);
        match child_value {
            Value::Array(items) => {
                let element_length = path.len();
                for (index, item) in items.iter().enumerate() {
                    // Writing into a String cannot fail.
                    let _ = write!(path, "[{index}]");
                    walk(item, child, path, context, issues);
                    path.truncate(element_length);
                }
            }
            single => walk(single, child, path, context, issues),
        }
        path.truncate(length);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_invariant_parses() {
        for invariant in &r4::INVARIANTS {
            if let Err(error) = fhirpath::parse(invariant.expression) {
                panic!(
                    "{} does not parse ({error}): {}",
                    invariant.key, invariant.expression
                );
            }
        }
    }
}
