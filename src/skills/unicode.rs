//! Characters that a reader does not see: format and control characters, Unicode
//! tag characters, bidi controls ("Trojan Source", CVE-2021-42574), zero-width and
//! other invisible characters, variation selectors. Used where a name must look like
//! what it is (ref names) and, later, for hidden text in skills.

/// Is `c` invisible, or does it change how the text around it is shown?
pub fn invisible(c: char) -> bool {
    matches!(c,
        '\u{0000}'..='\u{0008}' | '\u{000B}'..='\u{001F}' | '\u{007F}'..='\u{009F}'
        | '\u{00AD}'            // soft hyphen
        | '\u{034F}'            // combining grapheme joiner
        | '\u{061C}'            // Arabic letter mark
        | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
        | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' // Mongolian selectors and vowel separator
        | '\u{200B}'..='\u{200F}' // zero-width space, joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
        | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, bidi isolates
        | '\u{FE00}'..='\u{FE0F}' // variation selectors
        | '\u{FEFF}'            // zero-width no-break space (BOM)
        | '\u{FFF9}'..='\u{FFFB}' // interlinear annotations
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E007F}' // tag characters
        | '\u{E0100}'..='\u{E01EF}' // variation selectors supplement
    )
}

#[cfg(test)]
mod tests {
    use super::invisible;

    #[test]
    fn invisible_characters_are_known_and_letters_are_not() {
        for c in [
            '\u{200B}',
            '\u{202E}',
            '\u{2066}',
            '\u{E0041}',
            '\u{FEFF}',
            '\u{00AD}',
        ] {
            assert!(invisible(c), "{:?}", c);
        }
        for c in ['a', 'ı', 'İ', 'é', ' ', '\t', '\n', '-', '中'] {
            assert!(!invisible(c), "{:?}", c);
        }
    }
}
