//! Any bytes as a skill file, under both layouts: the validator never panics, and what
//! it accepts is a well-formed skill.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skillsd::skills::rules::{Rules, RulesSource, CONFIG_PATH};

struct AgentSkills;
impl RulesSource for AgentSkills {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        Ok((path == CONFIG_PATH).then(|| b"layout = \"agent-skills\"\n".to_vec()))
    }
}

fuzz_target!(|data: &[u8]| {
    let flat = Rules::builtin();
    if let Ok(skill) = flat.validate("skills/fuzz/some-skill.md", data) {
        assert_eq!(skill.slug, "some-skill");
        assert!(!skill.title.trim().is_empty());
        assert!(data.len() <= flat.max_file_bytes);
    }
    let agent = Rules::load(&AgentSkills).expect("agent-skills rules load");
    if let Ok(skill) = agent.validate("skills/some-skill/SKILL.md", data) {
        assert_eq!(skill.slug, "some-skill");
        assert!(skill.description.is_some_and(|d| !d.trim().is_empty()));
    }
    // Any file of a skill: hidden text and credentials, over the whole text; every
    // finding located inside it, and no secret shown in a message.
    let other = agent.validate_other("skills/some-skill/scripts/run.sh", data);
    if let Ok(text) = std::str::from_utf8(data) {
        let lines = text.split('\n').count() as u32;
        for p in &other {
            assert!(p.line.is_some_and(|l| (1..=lines).contains(&l)));
            assert!(p.column.is_some_and(|c| c >= 1));
            if p.check == skillsd::skills::Check::Secret {
                assert!(p.message.contains("fingerprint sha256:"));
            }
        }
    } else {
        assert!(other.is_empty());
    }
    // Every problem names the file it is about.
    if let Err(problems) = flat.validate("skills/x.md", data) {
        assert!(problems.iter().all(|p| p.path == "skills/x.md"));
        let _ = skillsd::skills::render_problems(&problems);
    }
});
