//! The `[portal]` table of the settings file.

use std::time::Duration;

use openidconnect::{ClientId, ClientSecret, IssuerUrl, RedirectUrl};
use serde::Deserialize;
use url::Url;

use crate::error::PortalError;

/// How the portal logs users in.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalSettings {
    /// The OpenID provider, exactly as its discovery document names it (no trailing slash).
    pub issuer: String,
    /// The portal's client at the provider.
    pub client_id: String,
    /// Absent for a public client; PKCE protects the code either way.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The portal's public base URL, as browsers reach it; the redirect URI registered at the
    /// provider is `{public_url}/auth/callback`.
    pub public_url: String,
    /// Scopes requested, space-separated. The default lets a patient read their own data and
    /// answer, write and change what the portal offers (SMART v2; the access rules decide
    /// what each write may touch); `openid` is always requested.
    #[serde(default = "default_scopes")]
    pub scopes: String,
    /// How long a session lasts after the login, in minutes, whatever the user does.
    #[serde(default = "default_session_minutes")]
    pub session_lifetime_minutes: u32,
    /// Where the accessibility statement tells people to report a problem (an e-mail
    /// address or a phone number); without it, it points to their region.
    #[serde(default)]
    pub accessibility_contact: Option<String>,
}

fn default_scopes() -> String {
    "openid patient/*.cruds".into()
}

fn default_session_minutes() -> u32 {
    60
}

// Manual: the client secret must never reach a log.
impl std::fmt::Debug for PortalSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("public_url", &self.public_url)
            .field("scopes", &self.scopes)
            .field("session_lifetime_minutes", &self.session_lifetime_minutes)
            .finish_non_exhaustive()
    }
}

impl PortalSettings {
    /// Checks the settings, for a clear error at start-up rather than at the first login.
    pub fn validate(&self) -> Result<(), PortalError> {
        Config::from_settings(self).map(|_| ())
    }
}

/// The settings parsed once.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) issuer: IssuerUrl,
    pub(crate) client_id: ClientId,
    pub(crate) client_secret: Option<ClientSecret>,
    pub(crate) redirect: RedirectUrl,
    /// `scheme://host[:port]` of the public URL, what a same-site form post sends as `Origin`.
    pub(crate) origin: String,
    /// `Secure` cookies everywhere except plain-HTTP loopback (development and tests), where a
    /// browser would never send them back.
    pub(crate) secure_cookie: bool,
    /// Without `openid`, which the client library adds itself.
    pub(crate) scopes: Vec<String>,
    pub(crate) session_lifetime: Duration,
}

impl Config {
    pub(crate) fn from_settings(settings: &PortalSettings) -> Result<Config, PortalError> {
        let invalid = |what: &str| PortalError::Settings(format!("[portal] {what}"));
        let issuer =
            IssuerUrl::new(settings.issuer.clone()).map_err(|_| invalid("issuer is not a URL"))?;
        let public = Url::parse(settings.public_url.trim_end_matches('/'))
            .map_err(|_| invalid("public_url is not a URL"))?;
        let loopback = matches!(public.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        let secure_cookie = match public.scheme() {
            "https" => true,
            "http" if loopback => false,
            _ => {
                return Err(invalid(
                    "public_url must use https (plain http only on loopback)",
                ));
            }
        };
        let redirect = RedirectUrl::new(format!(
            "{}/auth/callback",
            public.as_str().trim_end_matches('/')
        ))
        .map_err(|_| invalid("public_url is not a URL"))?;
        if settings.client_id.is_empty() {
            return Err(invalid("client_id is empty"));
        }
        if settings.session_lifetime_minutes == 0 {
            return Err(invalid("session_lifetime_minutes must be at least 1"));
        }
        Ok(Config {
            issuer,
            client_id: ClientId::new(settings.client_id.clone()),
            client_secret: settings.client_secret.clone().map(ClientSecret::new),
            redirect,
            origin: public.origin().ascii_serialization(),
            secure_cookie,
            scopes: settings
                .scopes
                .split_whitespace()
                .filter(|scope| *scope != "openid")
                .map(str::to_owned)
                .collect(),
            session_lifetime: Duration::from_secs(
                u64::from(settings.session_lifetime_minutes) * 60,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PortalSettings, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_and_cookie_security() {
        let settings = parse(
            r#"issuer = "http://127.0.0.1:9001"
client_id = "paraply-portal"
public_url = "http://127.0.0.1:8080/""#,
        )
        .unwrap();
        let config = Config::from_settings(&settings).unwrap();
        assert_eq!(config.scopes, ["patient/*.cruds"]);
        assert_eq!(config.session_lifetime, Duration::from_secs(3600));
        assert!(!config.secure_cookie);
        assert_eq!(
            config.redirect.as_str(),
            "http://127.0.0.1:8080/auth/callback"
        );
        assert_eq!(config.origin, "http://127.0.0.1:8080");

        let https = PortalSettings {
            public_url: "https://portal.example.se".into(),
            ..settings.clone()
        };
        assert!(Config::from_settings(&https).unwrap().secure_cookie);
        let plain = PortalSettings {
            public_url: "http://portal.example.se".into(),
            ..settings
        };
        assert!(plain.validate().is_err());
    }

    #[test]
    fn unknown_keys_are_refused_and_secrets_not_printed() {
        assert!(
            parse("issuer = \"x\"\nclient_id = \"c\"\npublic_url = \"y\"\nscope = \"z\"").is_err()
        );
        let settings = parse(
            "issuer = \"x\"\nclient_id = \"c\"\nclient_secret = \"hemligt\"\npublic_url = \"y\"",
        )
        .unwrap();
        assert!(!format!("{settings:?}").contains("hemligt"));
    }
}
