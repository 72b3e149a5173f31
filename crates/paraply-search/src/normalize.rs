//! String normalization for search: case- and accent-insensitive (R4 search §2.1.1.2.2).

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower-cased, decomposed, with combining marks removed: `Ågren` → `agren`.
pub fn normalize(text: &str) -> String {
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swedish_letters_fold_to_ascii() {
        assert_eq!(normalize("Åsa Öberg-Ärlig"), "asa oberg-arlig");
        assert_eq!(normalize("José"), "jose");
    }
}
