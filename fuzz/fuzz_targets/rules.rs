//! Any bytes as `skillsd.toml` and as the schema it names: loading never panics, and
//! rules that load validate a skill without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skillsd::skills::rules::{Rules, RulesSource, CONFIG_PATH};

struct Files<'a> {
    config: &'a [u8],
    schema: &'a [u8],
}

impl RulesSource for Files<'_> {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(match path {
            CONFIG_PATH => Some(self.config.to_vec()),
            "s.json" => Some(self.schema.to_vec()),
            _ => None,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    // The input is `config \0 schema \0 skill`.
    let mut parts = data.splitn(3, |b| *b == 0);
    let config = parts.next().unwrap_or_default();
    let schema = parts.next().unwrap_or_default();
    let skill = parts.next().unwrap_or_default();
    if let Ok(rules) = Rules::load(&Files { config, schema }) {
        let _ = rules.validate("skills/a/SKILL.md", skill);
        let _ = rules.validate("skills/a.md", skill);
    }
});
