//! OperationOutcome issues: the one shape every error takes on the wire.

use serde_json::{Value, json};

/// `OperationOutcome.issue.severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// `OperationOutcome.issue.code` (R4 value set `issue-type`), the codes Paraply uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    CodeInvalid,
    TooLong,
    Security,
    Login,
    Forbidden,
    NotSupported,
    Duplicate,
    MultipleMatches,
    NotFound,
    Deleted,
    Conflict,
    BusinessRule,
    Invariant,
    Processing,
    Exception,
    Transient,
    Informational,
}

impl IssueType {
    pub const fn as_str(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::CodeInvalid => "code-invalid",
            IssueType::TooLong => "too-long",
            IssueType::Security => "security",
            IssueType::Login => "login",
            IssueType::Forbidden => "forbidden",
            IssueType::NotSupported => "not-supported",
            IssueType::Duplicate => "duplicate",
            IssueType::MultipleMatches => "multiple-matches",
            IssueType::NotFound => "not-found",
            IssueType::Deleted => "deleted",
            IssueType::Conflict => "conflict",
            IssueType::BusinessRule => "business-rule",
            IssueType::Invariant => "invariant",
            IssueType::Processing => "processing",
            IssueType::Exception => "exception",
            IssueType::Transient => "transient",
            IssueType::Informational => "informational",
        }
    }
}

/// One issue: what went wrong, and where (a FHIRPath expression) when it is about an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueType,
    pub diagnostics: String,
    pub expression: Option<String>,
}

impl Issue {
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    pub fn information(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Information,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }
}

/// Builds the OperationOutcome resource for a list of issues.
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let issues: Vec<Value> = issues
        .iter()
        .map(|issue| {
            let mut entry = json!({
                "severity": issue.severity.as_str(),
                "code": issue.code.as_str(),
                "diagnostics": issue.diagnostics,
            });
            if let (Some(expression), Some(map)) = (&issue.expression, entry.as_object_mut()) {
                map.insert("expression".into(), json!([expression]));
            }
            entry
        })
        .collect();
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_carries_severity_code_text_and_expression() {
        let outcome = operation_outcome(&[
            Issue::error(IssueType::Required, "missing status").at("CarePlan.status")
        ]);
        assert_eq!(outcome["issue"][0]["severity"], "error");
        assert_eq!(outcome["issue"][0]["code"], "required");
        assert_eq!(outcome["issue"][0]["expression"][0], "CarePlan.status");
    }
}
