use super::*;
use crate::skills::rules::{CONFIG_PATH, RulesSource};

struct Config(&'static str);
impl RulesSource for Config {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        Ok((path == CONFIG_PATH).then(|| self.0.as_bytes().to_vec()))
    }
}

fn files(paths: &[&str]) -> Vec<File> {
    paths
        .iter()
        .map(|p| File {
            path: p.to_string(),
            regular: true,
        })
        .collect()
}

fn checks(problems: &[Problem]) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = problems
        .iter()
        .map(|p| (p.path.clone(), p.check.id()))
        .collect();
    out.sort();
    out
}

const TREE: &[&str] = &[
    "skills/pdf/SKILL.md",
    "skills/pdf/forms/SKILL.md",
    "skills/document-skills/docx/SKILL.md",
    "skills/document-skills/xlsx/SKILL.md",
    "skills/document-skills/LICENSE.txt",
];

#[test]
fn a_skill_md_that_is_not_a_skill_is_always_named() {
    let rules = Rules::load(&Config("layout = \"agent-skills\"\n")).unwrap();
    let changed: Vec<String> = TREE.iter().map(|p| p.to_string()).collect();
    let problems = problems(&rules, &files(TREE), &changed);
    // Inside a skill, and below a folder that is no skill: nested either way; the
    // grouping folder is not also reported for its missing SKILL.md.
    assert_eq!(
        checks(&problems),
        vec![
            (
                "skills/document-skills/docx/SKILL.md".into(),
                "nested-skill"
            ),
            (
                "skills/document-skills/xlsx/SKILL.md".into(),
                "nested-skill"
            ),
            ("skills/pdf/forms/SKILL.md".into(), "nested-skill"),
        ]
    );
    let forms = problems
        .iter()
        .find(|p| p.path == "skills/pdf/forms/SKILL.md")
        .unwrap();
    assert!(
        forms
            .message
            .contains("inside the skill folder `skills/pdf/`")
    );
    assert!(
        forms
            .hint
            .as_deref()
            .unwrap()
            .contains("nested_skills = true")
    );

    let nested = Rules::load(&Config("layout = \"agent-skills\"\nnested_skills = true\n")).unwrap();
    let problems = super::problems(&nested, &files(TREE), &changed);
    // The license file sits in a folder without a SKILL.md of its own.
    assert_eq!(
        checks(&problems),
        vec![(
            "skills/document-skills/SKILL.md".into(),
            "missing-skill-file"
        )]
    );
    let relaxed = Rules::load(&Config(
            "layout = \"agent-skills\"\nnested_skills = true\n[levels]\nmissing-skill-file = \"warning\"\n",
        ))
        .unwrap();
    let problems = super::problems(&relaxed, &files(TREE), &changed);
    assert_eq!(problems[0].level, crate::skills::Level::Warning);
}

#[test]
fn skill_md_files_in_a_flat_repository_or_outside_the_roots() {
    let flat = Rules::builtin();
    let changed = vec!["skills/pdf/SKILL.md".to_string()];
    let problems = problems(&flat, &files(&["skills/pdf/SKILL.md"]), &changed);
    assert_eq!(
        checks(&problems),
        vec![("skills/pdf/SKILL.md".into(), "layout-mismatch")]
    );
    assert!(
        problems[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("layout = \"agent-skills\"")
    );
    // The folder's other files' flat-layout problems are noise next to it.
    let tree = files(&[
        "skills/pdf/SKILL.md",
        "skills/pdf/ref/forms.md",
        "skills/ops/x.md",
    ]);
    let noisy = vec![
        problems[0].clone(),
        Problem::new(
            Check::Frontmatter,
            "skills/pdf/ref/forms.md",
            "no frontmatter",
        ),
        Problem::new(Check::Frontmatter, "skills/ops/x.md", "no frontmatter"),
    ];
    let kept: Vec<String> = quiet_under_skill_folders(&flat, &tree, noisy.clone())
        .into_iter()
        .map(|p| p.path)
        .collect();
    assert_eq!(kept, vec!["skills/pdf/SKILL.md", "skills/ops/x.md"]);
    let relaxed = Rules::load(&Config("[levels]\nlayout-mismatch = \"warning\"\n")).unwrap();
    assert_eq!(quiet_under_skill_folders(&relaxed, &tree, noisy).len(), 3);
    let strays = vec![
        "plugins/git/skills/commit/SKILL.md".to_string(),
        "README.md".to_string(),
    ];
    assert_eq!(
        checks(&stray_skill_files(&flat, &strays)),
        vec![(
            "plugins/git/skills/commit/SKILL.md".into(),
            "layout-mismatch"
        )]
    );
    let agent = Rules::load(&Config("layout = \"agent-skills\"\n")).unwrap();
    let problems = stray_skill_files(&agent, &strays);
    assert_eq!(
        checks(&problems),
        vec![(
            "plugins/git/skills/commit/SKILL.md".into(),
            "skill-outside-roots"
        )]
    );
    assert!(
        problems[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("add \"plugins/git/skills\" to `roots`")
    );
}

#[test]
fn a_symlinked_skill_md_is_called_a_symlink_not_a_missing_file() {
    let rules = Rules::load(&Config("layout = \"agent-skills\"\n")).unwrap();
    let mut tree = files(&["skills/alpha/SKILL.md", "skills/beta/notes.md"]);
    tree.push(File {
        path: "skills/beta/SKILL.md".into(),
        regular: false,
    });
    let changed: Vec<String> = tree.iter().map(|f| f.path.clone()).collect();
    let found = problems(&rules, &tree, &changed);
    assert!(
        found.iter().all(|p| p.check != Check::MissingSkillFile),
        "{found:?}"
    );
    // The path check names it, as what it is.
    let link =
        crate::skills::validate::path_problems("skills/", "skills/beta/SKILL.md", true, false);
    assert_eq!(link[0].check, Check::Symlink);
    assert_eq!(
        link[0].message,
        "SKILL.md is a symbolic link, and symbolic links are not allowed under skills/, so `skills/beta/` is not a skill"
    );
    assert!(link[0].hint.as_deref().unwrap().contains(
        "`cp --remove-destination \"$(readlink -f skills/beta/SKILL.md)\" skills/beta/SKILL.md`"
    ));
}

#[test]
fn a_folder_whose_name_is_no_skill_name_is_not_told_to_become_one() {
    let rules = Rules::load(&Config(
        "layout = \"agent-skills\"\nroots = [\"plugins/*\"]\n",
    ))
    .unwrap();
    let tree = files(&[
        "plugins/git/commit/SKILL.md",
        "plugins/git/.claude-plugin/plugin.json",
        "plugins/git/_lib/util.py",
        "plugins/git/helpers/run.sh",
    ]);
    let changed: Vec<String> = tree.iter().map(|f| f.path.clone()).collect();
    let found = problems(&rules, &tree, &changed);
    let hint = |path: &str| {
        found
            .iter()
            .find(|p| p.path == path && p.check == Check::MissingSkillFile)
            .and_then(|p| p.hint.clone())
            .unwrap_or_else(|| panic!("{path}: {found:?}"))
    };
    for folder in [".claude-plugin", "_lib"] {
        let h = hint(&format!("plugins/git/{folder}/SKILL.md"));
        assert!(!h.contains("name: "), "{h}");
        assert!(
            h.starts_with(&format!(
                "`{folder}` is not a valid skill name, so this folder cannot be a skill"
            )),
            "{h}"
        );
        assert!(h.contains("skillsd check --suggest-config"), "{h}");
    }
    assert_eq!(
        hint("plugins/git/helpers/SKILL.md"),
        "add plugins/git/helpers/SKILL.md with `name: helpers` and a `description`, or move the other files out"
    );
}

#[test]
fn renames_are_suggested_only_to_free_valid_names() {
    let rules = Rules::load(&Config("layout = \"agent-skills\"\n")).unwrap();
    let text = "---\nname: lib\ndescription: Shared.\n---\n";
    let found = rules
        .validate("skills/_lib/SKILL.md", text.as_bytes())
        .unwrap_err();
    let format = found.iter().find(|p| p.check == Check::SlugFormat).unwrap();
    assert_eq!(format.rename_target(), Some("skills/lib/"));
    // `skills/lib/` is free: the hint stands. Taken: the next free name, said so.
    let free = free_renames(&files(&["skills/_lib/SKILL.md"]), found.clone());
    let h = free
        .iter()
        .find(|p| p.check == Check::SlugFormat)
        .unwrap()
        .hint
        .clone()
        .unwrap();
    assert_eq!(
        h,
        "a skill's folder is its name: rename the folder to `lib` and set `name: lib`"
    );
    let tree = files(&[
        "skills/_lib/SKILL.md",
        "skills/lib/SKILL.md",
        "skills/Lib-2/x.md",
    ]);
    let taken = free_renames(&tree, found);
    let p = taken.iter().find(|p| p.check == Check::SlugFormat).unwrap();
    assert_eq!(
        p.hint.as_deref(),
        Some(
            "a skill's folder is its name: rename the folder to `lib-3` and set `name: lib-3` (`lib` is taken)"
        )
    );
    // `name-mismatch`: the folder keeps its name when the other is taken.
    let found = rules
        .validate(
            "skills/pdf-tools/SKILL.md",
            b"---\nname: pdf\ndescription: PDFs.\n---\n",
        )
        .unwrap_err();
    let tree = files(&["skills/pdf-tools/SKILL.md", "skills/pdf/SKILL.md"]);
    let fixed = free_renames(&tree, found);
    assert_eq!(
        fixed[0].hint.as_deref(),
        Some(
            "the name is the folder's name: set `name: pdf-tools` (a folder `pdf` is there already)"
        )
    );
    // Flat: a file name.
    let flat = Rules::builtin();
    let found = flat
        .validate("skills/ops/Bad_Name.md", b"---\ntitle: Bad\n---\n")
        .unwrap_err();
    let tree = files(&["skills/ops/Bad_Name.md", "skills/ops/bad-name.md"]);
    let fixed = free_renames(&tree, found);
    assert!(
        fixed[0]
            .hint
            .as_deref()
            .unwrap()
            .ends_with("rename the file to `bad-name-2.md` (`bad-name.md` is taken)"),
        "{fixed:?}"
    );
    // Two folders that would take one name get two.
    let a = rules
        .validate(
            "skills/_x/SKILL.md",
            b"---\nname: x\ndescription: D.\n---\n",
        )
        .unwrap_err();
    let b = rules
        .validate(
            "skills/x_/SKILL.md",
            b"---\nname: x\ndescription: D.\n---\n",
        )
        .unwrap_err();
    let both: Vec<Problem> = a
        .into_iter()
        .chain(b)
        .filter(|p| p.check == Check::SlugFormat)
        .collect();
    let fixed = free_renames(&files(&["skills/_x/SKILL.md", "skills/x_/SKILL.md"]), both);
    assert_eq!(fixed[0].rename_target(), Some("skills/x/"));
    assert_eq!(fixed[1].rename_target(), Some("skills/x-2/"));
}

#[test]
fn roots_outside_are_suggested_as_one_pattern() {
    let agent = Rules::load(&Config("layout = \"agent-skills\"\n")).unwrap();
    let strays: Vec<String> = (0..37)
        .map(|i| format!("plugins/p{i}/skills/s{i}/SKILL.md"))
        .collect();
    let found = stray_skill_files(&agent, &strays);
    assert_eq!(found.len(), 37);
    for p in &found {
        assert!(
            p.hint
                .as_deref()
                .unwrap()
                .contains("add \"plugins/*/skills\" to `roots`"),
            "{p:?}"
        );
    }
}

/// Every prefix of every path folded on its own, as the index folded them before
/// [`Prefixes`]: (folded, prefix), paths over the length limit left out.
fn each_prefix_folded(paths: &[&str]) -> std::collections::BTreeSet<(String, String)> {
    let mut out = std::collections::BTreeSet::new();
    for path in paths
        .iter()
        .filter(|p| p.len() <= crate::skills::skill::MAX_PATH_BYTES)
    {
        let mut end = 0;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            end += part.len();
            let prefix = &path[..end];
            out.insert((prefix.to_lowercase(), prefix.to_string()));
            end += 1;
        }
    }
    out
}

#[test]
fn a_folders_prefixes_are_folded_once_for_its_files_and_as_each_on_its_own() {
    let long = format!("skills/{}.md", "x".repeat(300));
    let paths: Vec<&str> = vec![
        "README.md",
        "skills/Data/a.md",
        "skills/Data/B.md",
        "skills/data/c.md",
        "skills/Data/Deep/d.md",
        "skills/Data/e.md",
        "skills/Ünï/f.md",
        "skills/Ünï/g.md",
        "skills/Data/Ä.md",
        "skills/Data/h.md",
        "skills//empty/i.md",
        "/lead/j.md",
        "skills/Data/",
        &long,
        "skills/Data/k.md",
        "top.md",
    ];
    let mut seen = std::collections::BTreeSet::new();
    let mut calls = 0;
    let mut prefixes = Prefixes::default();
    for path in &paths {
        prefixes.fold(path, &mut |folded, prefix| {
            calls += 1;
            seen.insert((folded.to_string(), prefix.to_string()));
        });
    }
    assert_eq!(seen, each_prefix_folded(&paths));
    // `skills` and `skills/Data` handed out once for the run a.md, B.md (and again
    // when the folder comes back after others), not for each file.
    let mut once = 0;
    let mut prefixes = Prefixes::default();
    for path in ["skills/Data/a.md", "skills/Data/b.md", "skills/Data/c.md"] {
        prefixes.fold(path, &mut |_, _| once += 1);
    }
    assert_eq!(once, 2 + 3, "two folder prefixes once, then each file");
    assert!(calls < 40, "{calls} calls");
}
