//! SMART on FHIR resource scopes (v2 and v1), parsed from the token's `scope` claim.

use std::fmt;
use std::str::FromStr;

use paraply_fhir::ResourceType;

/// The context a scope is granted in: `patient/`, `user/` or `system/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// Data about the patient in context.
    Patient,
    /// Data the user may see.
    User,
    /// Data the client may see on its own behalf.
    System,
}

/// One SMART v2 permission letter (`c`, `r`, `u`, `d`, `s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `c`: create.
    Create,
    /// `r`: read (and vread, history of one instance).
    Read,
    /// `u`: update (and patch).
    Update,
    /// `d`: delete.
    Delete,
    /// `s`: search.
    Search,
}

impl Permission {
    const ALL: [Permission; 5] = [
        Permission::Create,
        Permission::Read,
        Permission::Update,
        Permission::Delete,
        Permission::Search,
    ];

    const fn bit(self) -> u8 {
        match self {
            Permission::Create => 1,
            Permission::Read => 2,
            Permission::Update => 4,
            Permission::Delete => 8,
            Permission::Search => 16,
        }
    }

    const fn letter(self) -> char {
        match self {
            Permission::Create => 'c',
            Permission::Read => 'r',
            Permission::Update => 'u',
            Permission::Delete => 'd',
            Permission::Search => 's',
        }
    }
}

/// A non-empty set of [`Permission`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permissions(u8);

impl Permissions {
    /// Whether the set contains `permission`.
    pub fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    /// Parses a v2 string (`cruds` order, each letter at most once) or a v1 one
    /// (`read` = `rs`, `write` = `cud`, `*` = `cruds`).
    fn parse(text: &str) -> Option<Permissions> {
        let bits = match text {
            "read" => Permission::Read.bit() | Permission::Search.bit(),
            "write" => {
                Permission::Create.bit() | Permission::Update.bit() | Permission::Delete.bit()
            }
            "*" => 31,
            _ => {
                let mut bits = 0u8;
                let mut rest = Permission::ALL.iter();
                for c in text.chars() {
                    // Each letter must come after the previous one in `cruds` order.
                    let p = rest.by_ref().find(|p| p.letter() == c)?;
                    bits |= p.bit();
                }
                bits
            }
        };
        (bits != 0).then_some(Permissions(bits))
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letters: String = Permission::ALL
            .iter()
            .filter(|p| self.contains(**p))
            .map(|p| p.letter())
            .collect();
        write!(f, "Permissions({letters})")
    }
}

/// The resource part of a scope: one served type or `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeResource {
    /// `*`: every resource type.
    Any,
    /// One resource type.
    Type(ResourceType),
}

/// One SMART resource scope such as `patient/CarePlan.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SmartScope {
    /// `patient`, `user` or `system`.
    pub context: Context,
    /// The resource type, or any.
    pub resource: ScopeResource,
    /// What the scope permits.
    pub permissions: Permissions,
}

impl SmartScope {
    /// Whether this scope permits `permission` on `resource_type`, in `context` if given.
    pub fn allows(
        &self,
        context: Option<Context>,
        resource_type: ResourceType,
        permission: Permission,
    ) -> bool {
        context.is_none_or(|c| c == self.context)
            && match self.resource {
                ScopeResource::Any => true,
                ScopeResource::Type(t) => t == resource_type,
            }
            && self.permissions.contains(permission)
    }
}

/// Why a scope string is not a [`SmartScope`] Paraply understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAResourceScope;

impl FromStr for SmartScope {
    type Err = NotAResourceScope;

    /// Parses `{patient|user|system}/{Type|*}.{permissions}`. Granular v2 scopes with a query
    /// (`patient/Observation.rs?category=…`) are not understood and give `Err`: granting them
    /// without the restriction would grant too much.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (context, rest) = text.split_once('/').ok_or(NotAResourceScope)?;
        let context = match context {
            "patient" => Context::Patient,
            "user" => Context::User,
            "system" => Context::System,
            _ => return Err(NotAResourceScope),
        };
        let (resource, permissions) = rest.split_once('.').ok_or(NotAResourceScope)?;
        let resource = match resource {
            "*" => ScopeResource::Any,
            name => ScopeResource::Type(name.parse().map_err(|_| NotAResourceScope)?),
        };
        let permissions = Permissions::parse(permissions).ok_or(NotAResourceScope)?;
        Ok(SmartScope {
            context,
            resource,
            permissions,
        })
    }
}

/// The SMART resource scopes a token grants. Other scopes (`openid`, `fhirUser`,
/// `launch/patient`, `offline_access`, scopes for types Paraply does not serve) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    granted: Vec<SmartScope>,
}

impl Scopes {
    /// Parses a space-separated `scope` value.
    pub fn parse(scope: &str) -> Scopes {
        Scopes::from_iter(scope.split_ascii_whitespace())
    }

    /// Whether any granted scope permits `permission` on `resource_type`; with `Some(context)`
    /// only scopes of that context count.
    pub fn allows(
        &self,
        context: Option<Context>,
        resource_type: ResourceType,
        permission: Permission,
    ) -> bool {
        self.granted
            .iter()
            .any(|s| s.allows(context, resource_type, permission))
    }

    /// The understood scopes, in token order.
    pub fn iter(&self) -> impl Iterator<Item = &SmartScope> {
        self.granted.iter()
    }

    /// True if the token grants no SMART resource scope.
    pub fn is_empty(&self) -> bool {
        self.granted.is_empty()
    }
}

impl<'a> FromIterator<&'a str> for Scopes {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        Scopes {
            granted: iter.into_iter().filter_map(|s| s.parse().ok()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;
    use ResourceType::{CarePlan, CareTeam, Patient};

    fn scope(text: &str) -> Option<SmartScope> {
        text.parse().ok()
    }

    #[test]
    fn v2_scopes_parse_with_their_letters() {
        let s = scope("patient/CarePlan.rs").unwrap();
        assert_eq!(s.context, Context::Patient);
        assert_eq!(s.resource, ScopeResource::Type(CarePlan));
        assert_eq!(format!("{:?}", s.permissions), "Permissions(rs)");
        assert_eq!(
            format!("{:?}", scope("user/CareTeam.cruds").unwrap().permissions),
            "Permissions(cruds)"
        );
        let s = scope("system/*.rs").unwrap();
        assert_eq!(
            (s.context, s.resource),
            (Context::System, ScopeResource::Any)
        );
        assert_eq!(
            format!("{:?}", scope("user/Patient.cu").unwrap().permissions),
            "Permissions(cu)"
        );
    }

    #[test]
    fn v1_scopes_map_to_v2_permissions() {
        let p = |t: &str| format!("{:?}", scope(t).unwrap().permissions);
        assert_eq!(p("patient/CarePlan.read"), "Permissions(rs)");
        assert_eq!(p("patient/CarePlan.write"), "Permissions(cud)");
        assert_eq!(p("patient/CarePlan.*"), "Permissions(cruds)");
        assert_eq!(p("user/*.*"), "Permissions(cruds)");
    }

    #[test]
    fn malformed_or_foreign_scopes_are_not_resource_scopes() {
        for t in [
            "openid",
            "fhirUser",
            "launch/patient",
            "offline_access",
            "patient/CarePlan",               // no permissions
            "patient/CarePlan.",              // empty permissions
            "patient/CarePlan.sr",            // out of cruds order
            "patient/CarePlan.rr",            // repeated letter
            "patient/CarePlan.x",             // unknown letter
            "patient/careplan.rs",            // type names are case-sensitive
            "patient/Observation.rs",         // not served by Paraply
            "patient/CarePlan.rs?category=x", // granular scopes not understood
            "practitioner/CarePlan.rs",
            "Patient/CarePlan.rs",
        ] {
            assert_eq!(scope(t), None, "{t}");
        }
    }

    #[test]
    fn scope_claim_ignores_unknown_scopes() {
        let s = Scopes::parse(
            "openid fhirUser launch/patient offline_access patient/CarePlan.rs  user/CareTeam.cruds",
        );
        assert_eq!(s.iter().count(), 2);
        assert!(Scopes::parse("openid profile").is_empty());
        assert!(Scopes::parse("").is_empty());
    }

    #[test]
    fn allows_checks_context_type_and_permission() {
        let s = Scopes::parse("patient/CarePlan.rs user/CareTeam.cruds");
        assert!(s.allows(Some(Context::Patient), CarePlan, Read));
        assert!(s.allows(None, CarePlan, Search));
        assert!(!s.allows(Some(Context::Patient), CarePlan, Update));
        assert!(!s.allows(Some(Context::User), CarePlan, Read));
        assert!(!s.allows(None, Patient, Read));
        assert!(s.allows(Some(Context::User), CareTeam, Delete));
        assert!(!s.allows(Some(Context::System), CareTeam, Delete));

        let s = Scopes::parse("system/*.rs");
        for t in ResourceType::ALL {
            assert!(s.allows(Some(Context::System), *t, Read));
            assert!(s.allows(Some(Context::System), *t, Search));
            assert!(!s.allows(Some(Context::System), *t, Create));
        }
        assert!(!s.allows(Some(Context::Patient), CarePlan, Read));
    }

    #[test]
    fn v1_write_does_not_grant_read() {
        let s = Scopes::parse("patient/CarePlan.write");
        assert!(s.allows(None, CarePlan, Update));
        assert!(!s.allows(None, CarePlan, Read));
    }
}
