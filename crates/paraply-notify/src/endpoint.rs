//! Where notifications may go. Subscribers name their endpoint, so without a rule anybody
//! who may create a Subscription could make the server call into its own network (SSRF):
//! only `https` to the configured hosts, and plain `http` to loopback only while the server
//! itself listens on loopback (development, tests, `paraply demo`). Checked on write and
//! again at delivery on the addresses the name resolves to, never following redirects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// The allowed endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// Host names (exact, lower case) `https` endpoints may name.
    pub allowed_hosts: Vec<String>,
    /// Whether `http` (and `https`) to loopback addresses is allowed: only when the server
    /// itself listens on loopback.
    pub loopback: bool,
}

impl EndpointPolicy {
    /// Whether `endpoint` may be named at all (on write).
    pub fn check_url(&self, endpoint: &Url) -> Result<(), String> {
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            return Err("an endpoint carries no credentials in its URL; use channel.header".into());
        }
        if endpoint.fragment().is_some() {
            return Err("an endpoint has no fragment".into());
        }
        let host = endpoint.host().ok_or("an endpoint names a host")?;
        if self.loopback && is_loopback_host(&host) {
            return match endpoint.scheme() {
                "http" | "https" => Ok(()),
                other => Err(format!("scheme '{other}' is not delivered to")),
            };
        }
        if endpoint.scheme() != "https" {
            return Err("notifications are only delivered over https".into());
        }
        let name = match &host {
            Host::Domain(name) => name.to_ascii_lowercase(),
            Host::Ipv4(ip) => ip.to_string(),
            Host::Ipv6(ip) => ip.to_string(),
        };
        if !self.allowed_hosts.contains(&name) {
            return Err(format!(
                "host '{name}' is not among the hosts this server delivers to ([subscriptions] allowed_hosts)"
            ));
        }
        Ok(())
    }

    /// Whether a resolved address may be called (at delivery).
    pub fn check_address(&self, address: IpAddr) -> Result<(), String> {
        if address.is_loopback() {
            return if self.loopback {
                Ok(())
            } else {
                Err(format!("{address} is a loopback address"))
            };
        }
        if forbidden(address) {
            return Err(format!(
                "{address} is a link-local, unspecified or metadata address"
            ));
        }
        Ok(())
    }
}

fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Link-local (where cloud metadata services answer, 169.254.169.254 and fd00:ec2::254
/// among them), unspecified and multicast addresses are never called.
fn forbidden(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(ip) => {
            ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_broadcast()
                // Alibaba Cloud's metadata service.
                || ip == Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(ip) => {
            ip.is_unspecified()
                || ip.is_multicast()
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| forbidden(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(loopback: bool) -> EndpointPolicy {
        EndpointPolicy {
            allowed_hosts: vec!["hooks.kommun-x.se".into()],
            loopback,
        }
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn https_to_an_allowed_host_only() {
        let policy = policy(false);
        assert!(
            policy
                .check_url(&url("https://hooks.kommun-x.se/fhir"))
                .is_ok()
        );
        assert!(
            policy
                .check_url(&url("https://HOOKS.kommun-x.se/x"))
                .is_ok()
        );
        assert!(
            policy
                .check_url(&url("http://hooks.kommun-x.se/fhir"))
                .is_err()
        );
        assert!(policy.check_url(&url("https://evil.example/fhir")).is_err());
        assert!(
            policy
                .check_url(&url("https://u:p@hooks.kommun-x.se/"))
                .is_err()
        );
        assert!(
            policy
                .check_url(&url("http://127.0.0.1:8080/hook"))
                .is_err()
        );
    }

    #[test]
    fn loopback_only_while_the_server_listens_on_loopback() {
        let policy = policy(true);
        assert!(policy.check_url(&url("http://127.0.0.1:8080/hook")).is_ok());
        assert!(policy.check_url(&url("http://localhost:8080/hook")).is_ok());
        assert!(policy.check_url(&url("http://[::1]:8080/hook")).is_ok());
        assert!(policy.check_url(&url("http://10.0.0.1/hook")).is_err());
        assert!(policy.check_address("127.0.0.1".parse().unwrap()).is_ok());
        assert!(
            self::policy(false)
                .check_address("127.0.0.1".parse().unwrap())
                .is_err()
        );
    }

    #[test]
    fn metadata_and_link_local_addresses_are_never_called() {
        let policy = policy(true);
        for address in [
            "169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "0.0.0.0",
            "::ffff:169.254.169.254",
            "100.100.100.200",
        ] {
            assert!(
                policy.check_address(address.parse().unwrap()).is_err(),
                "{address}"
            );
        }
        assert!(policy.check_address("192.0.2.10".parse().unwrap()).is_ok());
    }
}
