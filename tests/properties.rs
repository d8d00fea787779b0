//! Property tests of the pure rules: slugs, paths, and that no input whatsoever makes
//! the frontmatter parser or the validator panic (a fuzzing-style check that runs in
//! CI).

use proptest::prelude::*;
use skillsd::skills::validate::{is_valid_slug, path_problems, validate_skill};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn slugs_are_exactly_lowercase_words_joined_by_single_hyphens(s in "[a-z0-9-]{0,30}") {
        let expected = !s.is_empty() && !s.starts_with('-') && !s.ends_with('-');
        prop_assert_eq!(is_valid_slug(&s), expected);
    }

    #[test]
    fn anything_outside_the_slug_alphabet_is_refused(s in "[a-z]{1,5}[^a-z0-9-][a-z]{0,5}") {
        prop_assert!(!is_valid_slug(&s));
    }

    #[test]
    fn a_bad_file_name_gets_a_valid_suggestion(name in "[A-Za-z0-9 _.]{1,20}") {
        let path = format!("skills/{name}.md");
        let text = "---\ntitle: x\n---\n";
        match validate_skill(&path, text.as_bytes()) {
            Ok(s) => prop_assert!(is_valid_slug(&s.slug)),
            Err(problems) => {
                let hint = problems[0].hint.clone().unwrap_or_default();
                let suggested = hint.split('`').nth(1).unwrap_or("").trim_end_matches(".md");
                prop_assert!(is_valid_slug(suggested), "hint {:?}", hint);
            }
        }
    }

    #[test]
    fn portable_paths_pass(parts in proptest::collection::vec("[a-z0-9][a-z0-9_-]{0,20}", 1..6)) {
        let path = format!("skills/{}.md", parts.join("/"));
        prop_assert!(path_problems("skills/", &path, false, false).is_empty(), "{}", path);
    }

    #[test]
    fn control_characters_in_paths_are_refused(a in "[a-z]{1,8}", c in 0u8..32, b in "[a-z]{1,8}") {
        let path = format!("skills/{a}{}{b}/x.md", c as char);
        prop_assert!(!path_problems("skills/", &path, false, false).is_empty());
    }

    #[test]
    fn the_validator_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = validate_skill("skills/x.md", &bytes);
    }

    #[test]
    fn the_validator_never_panics_on_yaml_like_text(
        body in "(---\n)?([a-z]{1,6}: ?[\\[\\]{}&*!|>'\"a-z0-9 ,:-]{0,30}\n){0,12}(---\n)?[a-z ]{0,20}"
    ) {
        let _ = validate_skill("skills/x.md", body.as_bytes());
    }
}
