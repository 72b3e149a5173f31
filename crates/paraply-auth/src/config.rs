//! Trusted-issuer configuration, read by the server from its TOML file.

use std::time::Duration;

use serde::Deserialize;

/// One OpenID provider whose access tokens Paraply accepts (DOMAIN.md §7).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// The issuer identifier, compared byte for byte with the token's `iss` and with the
    /// discovery document's `issuer` (`http://127.0.0.1:4000` ≠ `http://localhost:4000/`).
    pub issuer: String,
    /// The `aud` this server expects in access tokens from this issuer (usually the FHIR base URL).
    pub audience: String,
    /// Whether the issuer logs in citizens (patients, relatives) or staff.
    pub kind: IssuerKind,
    /// For a staff issuer: the huvudman it speaks for, as a FHIR reference
    /// (`Organization/region-stockholm`). Copied into [`crate::Principal::Staff`].
    #[serde(default)]
    pub huvudman: Option<String>,
    /// Names of the claims that carry identities; defaults follow the Swedish specifications.
    #[serde(default)]
    pub claims: ClaimNames,
}

impl TrustedIssuer {
    /// An issuer with the default claim names and no huvudman.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, kind: IssuerKind) -> Self {
        TrustedIssuer {
            issuer: issuer.into(),
            audience: audience.into(),
            kind,
            huvudman: None,
            claims: ClaimNames::default(),
        }
    }

    /// The same issuer, speaking for `huvudman` (a FHIR reference such as `Organization/x`).
    pub fn with_huvudman(mut self, huvudman: impl Into<String>) -> Self {
        self.huvudman = Some(huvudman.into());
        self
    }
}

/// Who logs in through an issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssuerKind {
    /// Citizen eID: the token names a person by personnummer.
    Citizen,
    /// A region's or municipality's staff login: the token names an HSA-id and an assignment.
    Staff,
}

/// Claim names per issuer. Every field has a default, so `[issuer.claims]` may be partial.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimNames {
    /// Default `https://id.oidc.se/claim/personalIdentityNumber` (Swedish OIDC claims spec).
    pub personnummer: String,
    /// Default `urn:oid:1.2.752.29.6.2.1` (employeeHsaId).
    pub hsa_id: String,
    /// Default `http://sambi.se/attributes/1/healthCareUnitHsaId`.
    pub unit_hsa_id: String,
    /// Default `http://sambi.se/attributes/1/healthCareProviderHsaId`.
    pub care_provider_hsa_id: String,
    /// Default `roles`: an array of role codes (or one space-separated string).
    pub roles: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            personnummer: "https://id.oidc.se/claim/personalIdentityNumber".to_owned(),
            hsa_id: "urn:oid:1.2.752.29.6.2.1".to_owned(),
            unit_hsa_id: "http://sambi.se/attributes/1/healthCareUnitHsaId".to_owned(),
            care_provider_hsa_id: "http://sambi.se/attributes/1/healthCareProviderHsaId".to_owned(),
            roles: "roles".to_owned(),
        }
    }
}

/// Tuning of the [`crate::Authenticator`]; the defaults suit production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorOptions {
    /// Clock skew tolerated on `exp` and `nbf`. Default 30 s.
    pub leeway: Duration,
    /// An unknown `kid` makes the authenticator fetch an issuer's JWKS again, but at most once
    /// per this interval per issuer, so garbage tokens cannot make it hammer the issuer.
    /// Failed fetches count too. Default 30 s.
    pub min_jwks_refetch_interval: Duration,
    /// Timeout of each discovery or JWKS request. Default 10 s.
    pub fetch_timeout: Duration,
}

impl Default for AuthenticatorOptions {
    fn default() -> Self {
        AuthenticatorOptions {
            leeway: Duration::from_secs(30),
            min_jwks_refetch_interval: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        issuer: Vec<TrustedIssuer>,
    }

    #[test]
    fn toml_shape_with_defaults_and_overrides() {
        let text = r#"
            [[issuer]]
            issuer = "https://eid.example.se"
            audience = "https://paraply.example.se/fhir"
            kind = "citizen"

            [[issuer]]
            issuer = "https://idp.region.example.se"
            audience = "https://paraply.example.se/fhir"
            kind = "staff"
            huvudman = "Organization/region-stockholm"
            claims = { roles = "groups" }
        "#;
        let file: File = toml::from_str(text).unwrap();
        assert_eq!(file.issuer[0].kind, IssuerKind::Citizen);
        assert_eq!(file.issuer[0].claims, ClaimNames::default());
        assert_eq!(
            file.issuer[1].huvudman.as_deref(),
            Some("Organization/region-stockholm")
        );
        assert_eq!(file.issuer[1].claims.roles, "groups");
        assert_eq!(file.issuer[1].claims.hsa_id, "urn:oid:1.2.752.29.6.2.1");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = r#"
            [[issuer]]
            issuer = "https://eid.example.se"
            audiense = "typo"
            kind = "citizen"
        "#;
        assert!(toml::from_str::<File>(text).is_err());
        let text = r#"
            [[issuer]]
            issuer = "https://eid.example.se"
            audience = "x"
            kind = "citizen"
            claims = { personnumer = "typo" }
        "#;
        assert!(toml::from_str::<File>(text).is_err());
        let text = r#"
            [[issuer]]
            issuer = "https://eid.example.se"
            audience = "x"
            kind = "patient"
        "#;
        assert!(toml::from_str::<File>(text).is_err());
    }
}
