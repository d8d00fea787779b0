//! The body of the `validate` fuzz target, shared with its stable harness
//! (tests/fuzz_validate.rs, which runs it over the seeds in `fuzz/seeds/validate/` and
//! their mutations without nightly): any bytes as a skill file and as another file of
//! a skill, under both layouts and under rules with `[policy]`, through every check a
//! push runs on content — frontmatter, hidden text, credentials (passwords in URLs
//! too), padding, instructions aimed at the agent, executables, script locations and
//! denied `allowed-tools`. The validator never panics, what it accepts is a
//! well-formed skill, every finding is located inside the file, and no secret is
//! shown. Returns the ids of the checks that found something (the harness asserts the seeds
//! reach each of them).

use skillsd::skills::Check;
use skillsd::skills::rules::{CONFIG_PATH, Rules, RulesSource};
use std::collections::BTreeSet;

struct Config(&'static str);
impl RulesSource for Config {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        Ok((path == CONFIG_PATH).then(|| self.0.as_bytes().to_vec()))
    }
}

/// The agent-skills layout with a policy that weighs everything it can.
pub const POLICY: &str = "layout = \"agent-skills\"\n\n[policy]\nexecutables = \"warn\"\nscripts_outside_scripts = \"deny\"\ndeny_tools = [\"Bash\", \"Bash(rm*)\"]\ntools = \"deny\"\n";

pub fn check(data: &[u8]) -> BTreeSet<&'static str> {
    let mut found = BTreeSet::new();
    let flat = Rules::builtin();
    match flat.validate("skills/fuzz/some-skill.md", data) {
        Ok(skill) => {
            assert_eq!(skill.slug, "some-skill");
            assert!(!skill.title.trim().is_empty());
            assert!(data.len() <= flat.max_file_bytes);
            found.extend(skill.warnings.iter().map(|p| p.check.id()));
        }
        Err(problems) => found.extend(problems.iter().map(|p| p.check.id())),
    }
    let agent =
        Rules::load(&Config("layout = \"agent-skills\"\n")).expect("agent-skills rules load");
    if let Ok(skill) = agent.validate("skills/some-skill/SKILL.md", data) {
        assert_eq!(skill.slug, "some-skill");
        assert!(skill.description.is_some_and(|d| !d.trim().is_empty()));
    }
    // With [policy]: the skill file's `allowed-tools`, and the file as an executable
    // script outside `scripts/`.
    let policed = Rules::load(&Config(POLICY)).expect("policy rules load");
    let path = "skills/some-skill/SKILL.md";
    let validated = policed.validate(path, data);
    if let (Ok(skill), Ok(text)) = (&validated, std::str::from_utf8(data)) {
        let denied =
            skillsd::skills::policy::tool_problems(&policed.policy, path, &skill.frontmatter, text);
        for p in &denied {
            assert_eq!(p.check, Check::DeniedTool);
            assert!(p.line.is_none_or(|l| l as usize <= text.lines().count()));
        }
        found.extend(denied.iter().map(|p| p.check.id()));
    }
    let folder = skillsd::skills::policy::skill_folder(&policed, "skills/some-skill/run.sh");
    assert_eq!(folder.as_deref(), Some("skills/some-skill/"));
    for executable in [false, true] {
        let weighed = skillsd::skills::policy::file_problems(
            &policed.policy,
            "skills/some-skill/run.sh",
            folder.as_deref(),
            executable,
            data,
        );
        if executable {
            assert!(weighed.iter().any(|p| p.check == Check::Executable));
            assert!(weighed.iter().any(|p| p.check == Check::ScriptLocation));
        }
        found.extend(weighed.iter().map(|p| p.check.id()));
    }
    // Any file of a skill: hidden text, credentials, padding and instructions aimed at
    // the agent, over the whole text; every finding located inside it, and no secret
    // shown in a message.
    let other = agent.validate_other("skills/some-skill/scripts/run.sh", data);
    if let Ok(text) = std::str::from_utf8(data) {
        let lines = text.split('\n').count() as u32;
        for p in &other {
            // Located on a line of the file (a finding about the whole file, such as
            // padding by ratio, has no line).
            assert!(
                p.line.is_none_or(|l| (1..=lines).contains(&l)),
                "{p:?} outside the file's {lines} lines"
            );
            if p.check != Check::Padding {
                assert!(p.line.is_some(), "{p:?} has no line");
            }
            assert!(p.column.is_none_or(|c| c >= 1));
            if p.check == Check::Secret {
                assert!(p.message.contains("fingerprint sha256:"));
                assert!(!secret_shown(text, &p.message), "{}", p.message);
            }
        }
    } else {
        assert!(other.is_empty());
    }
    found.extend(other.iter().map(|p| p.check.id()));
    // Every problem names the file it is about, and renders.
    if let Err(problems) = flat.validate("skills/x.md", data) {
        assert!(problems.iter().all(|p| p.path == "skills/x.md"));
        let _ = skillsd::skills::render_problems(&problems);
    }
    found
}

/// Does `message` quote a run of the text long enough to be a secret (24 characters
/// of token alphabet that the message did not make up itself)?
fn secret_shown(text: &str, message: &str) -> bool {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || "+/_-=:@.".contains(c)))
        .filter(|w| w.len() >= 24 && !w.starts_with("sha256:"))
        .any(|w| text.contains(w))
}
