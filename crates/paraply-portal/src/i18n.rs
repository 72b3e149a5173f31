//! The portal's words: Swedish (the default), English and easy-to-read Swedish (lättläst),
//! each a Fluent message file in `messages/`, compiled in.
//!
//! Only the part of Fluent the portal needs is read — one `key = value` message per line,
//! `{ $name }` placeables, `#` comments — so no Fluent runtime (and its ICU data) is
//! compiled in for it. A test checks that every file has exactly the same keys, so a missing
//! word is a failed build, never a blank on a page.

use std::collections::HashMap;
use std::sync::LazyLock;

/// A language the portal speaks, chosen per browser session (cookie).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    Sv,
    En,
    Lattlast,
}

impl Language {
    pub const ALL: [Language; 3] = [Language::Sv, Language::En, Language::Lattlast];

    /// The value of the language cookie and of the language form.
    pub fn code(self) -> &'static str {
        match self {
            Language::Sv => "sv",
            Language::En => "en",
            Language::Lattlast => "lattlast",
        }
    }

    pub fn from_code(code: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The page's `lang`: easy-to-read Swedish is Swedish.
    pub fn html_lang(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Sv | Language::Lattlast => "sv",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Language::Sv => include_str!("../messages/sv.ftl"),
            Language::En => include_str!("../messages/en.ftl"),
            Language::Lattlast => include_str!("../messages/lattlast.ftl"),
        }
    }

    /// The message `key`. A key missing from the files (prevented by the tests) falls back
    /// to Swedish, then to nothing, so a page still renders.
    pub fn t(self, key: &str) -> &'static str {
        let found = CATALOGS[self as usize]
            .get(key)
            .or_else(|| CATALOGS[Language::Sv as usize].get(key));
        match found {
            Some(text) => text,
            None => {
                tracing::error!(key, language = self.code(), "portal message missing");
                ""
            }
        }
    }

    /// The message `key` with its `{ $name }` placeables filled in.
    pub fn t_with(self, key: &str, args: &[(&str, &str)]) -> String {
        let mut text = self.t(key).to_owned();
        for (name, value) in args {
            text = text.replace(&format!("{{ ${name} }}"), value);
        }
        text
    }
}

static CATALOGS: LazyLock<[HashMap<&'static str, &'static str>; 3]> = LazyLock::new(|| {
    Language::ALL.map(|language| {
        messages(language.source())
            .into_iter()
            .collect::<HashMap<_, _>>()
    })
});

/// The `(key, value)` pairs of a message file, in file order.
fn messages(source: &'static str) -> Vec<(&'static str, &'static str)> {
    source
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once(" = "))
        .map(|(key, value)| (key.trim(), value.trim()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn keys(language: Language) -> BTreeSet<&'static str> {
        messages(language.source())
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn every_language_has_every_key_once() {
        let swedish = keys(Language::Sv);
        assert!(swedish.len() > 150, "{}", swedish.len());
        for language in Language::ALL {
            let found = messages(language.source());
            assert_eq!(
                found.len(),
                keys(language).len(),
                "{language:?} has a key twice"
            );
            let these = keys(language);
            assert_eq!(
                these.difference(&swedish).collect::<Vec<_>>(),
                Vec::<&&str>::new(),
                "{language:?} has keys Swedish lacks"
            );
            assert_eq!(
                swedish.difference(&these).collect::<Vec<_>>(),
                Vec::<&&str>::new(),
                "{language:?} lacks keys"
            );
            for (key, value) in found {
                assert!(!value.is_empty(), "{language:?} {key} is empty");
            }
        }
    }

    #[test]
    fn every_line_is_a_message_or_a_comment() {
        for language in Language::ALL {
            for line in language.source().lines() {
                assert!(
                    line.is_empty() || line.starts_with('#') || line.contains(" = "),
                    "{language:?}: {line}"
                );
            }
        }
    }

    #[test]
    fn placeables_are_the_same_in_every_language() {
        let placeables = |text: &str| -> BTreeSet<String> {
            text.split("{ $")
                .skip(1)
                .filter_map(|rest| rest.split_once(" }").map(|(name, _)| name.to_owned()))
                .collect()
        };
        for (key, swedish) in messages(Language::Sv.source()) {
            for language in [Language::En, Language::Lattlast] {
                assert_eq!(
                    placeables(language.t(key)),
                    placeables(swedish),
                    "{language:?} {key}"
                );
            }
        }
    }

    #[test]
    fn values_fill_placeables() {
        assert_eq!(
            Language::En.t_with("start-for", &[("name", "Tolvan")]),
            "Plan for Tolvan"
        );
        assert_eq!(Language::Sv.t("nav-start"), "Min plan");
    }
}
