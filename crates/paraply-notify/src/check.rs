//! The check every Subscription write passes (a `paraply-core` resource check): what is
//! stored can be delivered, to an allowed endpoint, signed.

use std::sync::Arc;

use paraply_core::ResourceCheck;
use paraply_fhir::{Issue, IssueType, ResourceType};
use serde_json::{Map, Value};

use crate::endpoint::EndpointPolicy;
use crate::subscription::Subscription;

pub struct SubscriptionCheck {
    policy: Arc<EndpointPolicy>,
}

impl SubscriptionCheck {
    pub fn new(policy: Arc<EndpointPolicy>) -> Self {
        SubscriptionCheck { policy }
    }
}

impl ResourceCheck for SubscriptionCheck {
    fn check(&self, resource_type: ResourceType, resource: &mut Map<String, Value>) -> Vec<Issue> {
        if resource_type != ResourceType::Subscription {
            return Vec::new();
        }
        match Subscription::parse(resource) {
            Ok(subscription) => match self.policy.check_url(&subscription.endpoint) {
                Ok(()) => Vec::new(),
                Err(reason) => vec![
                    Issue::error(IssueType::BusinessRule, reason)
                        .at("Subscription.channel.endpoint"),
                ],
            },
            Err(refusals) => refusals
                .into_iter()
                .map(|refusal| {
                    Issue::error(IssueType::BusinessRule, refusal.message).at(refusal.expression)
                })
                .collect(),
        }
    }
}
