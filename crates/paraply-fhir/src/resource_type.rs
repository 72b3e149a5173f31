//! The resource types Paraply serves, parsed once from the wire.

use std::fmt;
use std::str::FromStr;

macro_rules! resource_types {
    ($($variant:ident),+ $(,)?) => {
        /// A FHIR R4 resource type that Paraply stores and serves (DOMAIN.md §3).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ResourceType {
            $($variant),+
        }

        impl ResourceType {
            /// Every served type, in the order the CapabilityStatement lists them.
            pub const ALL: &'static [ResourceType] = &[$(ResourceType::$variant),+];

            /// The type's name as written in `resourceType` and in URLs.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ResourceType::$variant => stringify!($variant)),+
                }
            }
        }

        impl FromStr for ResourceType {
            type Err = UnknownResourceType;

            fn from_str(name: &str) -> Result<Self, Self::Err> {
                match name {
                    $(stringify!($variant) => Ok(ResourceType::$variant),)+
                    other => Err(UnknownResourceType(other.to_owned())),
                }
            }
        }
    };
}

resource_types!(
    Appointment,
    AppointmentResponse,
    AuditEvent,
    CarePlan,
    CareTeam,
    Communication,
    CommunicationRequest,
    Consent,
    DocumentReference,
    Encounter,
    Goal,
    Group,
    HealthcareService,
    Location,
    Organization,
    Patient,
    Practitioner,
    PractitionerRole,
    Provenance,
    RelatedPerson,
    Schedule,
    Slot,
    Subscription,
    Task,
);

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `resourceType` or URL segment that names no type Paraply serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource type '{0}' is not supported by this server")]
pub struct UnknownResourceType(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_name() {
        for t in ResourceType::ALL {
            assert_eq!(t.as_str().parse::<ResourceType>(), Ok(*t));
        }
        assert!("Observation".parse::<ResourceType>().is_err());
        assert!("careplan".parse::<ResourceType>().is_err());
    }
}
