//! Versions of the published skills (`skill_versions`): each publish that changes a
//! `PUBLISHED` skill's files records the skill's next version number with the digest
//! agents are served for its new content ([`crate::artifact`]: `sha256:` of a
//! lone `SKILL.md`, or of the folder's deterministic archive), the commit that holds
//! it, and who pushed it.
//!
//! The git side ([`between`], [`at`]) runs before the push's transaction (in
//! [`super::sync::Replay::prepare`]): which skills the commits touched — any file of a
//! skill's folder, not only its `SKILL.md` — and their digests at the new tip. The
//! database side ([`write`]) is one statement inside it, after the rows are written:
//! a skill gets a version when its row is `PUBLISHED`, is the file the digest was
//! made from, and its latest version has another digest (or it has none). So a push
//! that leaves a skill's files as they were records nothing for it, and a rename keeps
//! the skill's id, hence its numbering.
//!
//! Skills published before versions existed, or whose row a reconcile (not a push)
//! wrote, get theirs from [`super::sync::reconcile`], which every start runs: version
//! 1 at the content they have then ([`lacking`]). A reconcile into an empty table (a
//! bulk load) records the version 1 of each lone skill file with its row instead
//! ([`copy_first`]), and only the folders' archives after the rows; so does a push
//! for the new rows of its last commit that go in by `COPY` (they are new ids).

use super::changes::Row;
use super::{CacheError, Result};
use crate::artifact as index;
use crate::commit_tree::{self, TreeSource};
use crate::skills::rules::{self, Rules, SKILL_FILE};
use gix::ObjectId;
use gix::object::tree::diff::ChangeDetached;
use sqlx::PgConnection;
use std::collections::{BTreeSet, HashMap, HashSet};
use uuid::Uuid;

/// A skill's content at the tip of a publish: what its version would record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// The skill file's path at the tip.
    pub path: String,
    /// The skill file's blob: the cache row must be this file for a version to be
    /// recorded (a row the sync could not write keeps its old content).
    pub blob: ObjectId,
    pub digest: String,
    /// `skill-md` or `archive`.
    pub kind: &'static str,
}

/// Digests already made of files' bytes, by blob ([`crate::artifact::digest`]): a lone
/// skill file's version digest is that of its blob, which then need not be read again
/// (a reconcile has read and digested every file it writes).
pub type Digests = HashMap<ObjectId, String>;

/// Adds to `known` the digests the rows of `ops` made of the bytes they were read
/// from ([`Row::digest`]).
pub fn remember(known: &mut Digests, ops: &[super::changes::Op]) {
    known.extend(ops.iter().filter_map(|op| {
        let row = op.row()?;
        Some((row.blob, row.digest.clone()?))
    }));
}

/// The skills whose files differ between the trees of `from` (or nothing) and `to`,
/// with their content at `to`. Every skill of `to` when there is no `from` or the
/// rules files differ (the layout, the roots: every folder may have changed).
pub fn between(
    repo: &gix::Repository,
    from: Option<ObjectId>,
    to: ObjectId,
    known: &Digests,
) -> Result<Vec<Content>> {
    let new_tree = tree_of(repo, to)?;
    // Rules that do not load: the sync records the failure; no skill is published.
    let Ok(rules) = Rules::load(&TreeSource {
        tree: new_tree.clone(),
    }) else {
        return Ok(Vec::new());
    };
    let old_tree = match from {
        Some(c) => Some(tree_of(repo, c)?),
        None => None,
    };
    let same_rules = old_tree.as_ref().is_some_and(|old| {
        Rules::load(&TreeSource { tree: old.clone() }).is_ok_and(|old_rules| {
            commit_tree::fingerprint(old, &old_rules) == commit_tree::fingerprint(&new_tree, &rules)
        })
    });
    let paths: BTreeSet<String> = match (&old_tree, same_rules) {
        (Some(old), true) => touched(repo, old, &new_tree, &rules)?,
        _ => commit_tree::files_under(&new_tree, &rules)
            .map_err(CacheError::git)?
            .into_iter()
            .filter(|f| f.mode.is_blob() && rules.is_skill(&f.path))
            .map(|f| f.path)
            .collect(),
    };
    contents(repo, &new_tree, &rules, paths, known)
}

/// The content at `commit` of the skills whose skill files are `paths` (those that
/// are skill files there); a lone file whose blob `known` holds is not read.
pub fn at(
    repo: &gix::Repository,
    commit: ObjectId,
    paths: BTreeSet<String>,
    known: &Digests,
) -> Result<Vec<Content>> {
    let tree = tree_of(repo, commit)?;
    let Ok(rules) = Rules::load(&TreeSource { tree: tree.clone() }) else {
        return Ok(Vec::new());
    };
    contents(repo, &tree, &rules, paths, known)
}

fn tree_of(repo: &gix::Repository, commit: ObjectId) -> Result<gix::Tree<'_>> {
    repo.find_commit(commit)
        .map_err(CacheError::git)?
        .tree()
        .map_err(CacheError::git)
}

/// Below this many skills, their contents are made on the calling thread.
const PARALLEL_FROM: usize = 512;

/// The content of each skill of `paths` in `tree`, in `paths`' order: the trees on the
/// way to their folders read once ([`commit_tree::files_of_skills`]), then each
/// skill's files read and digested, on every core (up to 8) when there are many (a
/// first push, an import, a rules change); a lone file whose digest `known` holds is
/// not read at all.
fn contents(
    repo: &gix::Repository,
    tree: &gix::Tree<'_>,
    rules: &Rules,
    paths: BTreeSet<String>,
    known: &Digests,
) -> Result<Vec<Content>> {
    let files = commit_tree::files_of_skills(tree, rules, &paths).map_err(CacheError::git)?;
    let mut groups = index::group_of(files, rules);
    let skills: Vec<(String, index::Members)> = paths
        .into_iter()
        .filter(|path| rules.is_skill(path))
        .filter_map(|path| {
            let group = groups.remove(&path)?;
            let members = index::members_of(rules, &path, &group);
            Some((path, members))
        })
        .collect();
    let digest = |repo: &gix::Repository, part: &[(String, index::Members)]| {
        part.iter()
            .map(|(path, members)| {
                let blob = members[0].1;
                if let ([_], Some(digest)) = (members.as_slice(), known.get(&blob)) {
                    return Ok(Content {
                        path: path.clone(),
                        blob,
                        digest: digest.clone(),
                        kind: index::Kind::SkillMd.as_str(),
                    });
                }
                let made = index::artifact(repo, members.clone()).map_err(CacheError::git)?;
                Ok(Content {
                    path: path.clone(),
                    blob,
                    digest: made.digest(),
                    kind: made.kind.as_str(),
                })
            })
            .collect::<Result<Vec<Content>>>()
    };
    let threads = crate::parallel::threads();
    if skills.len() < PARALLEL_FROM || threads < 2 {
        return digest(repo, &skills);
    }
    crate::parallel::in_order(
        &skills,
        skills.len().div_ceil(threads),
        PARALLEL_FROM,
        || repo.clone(),
        |repo, part| digest(repo, part),
    )
}

/// The skill files of `new` whose skill a change between the trees touches: for each
/// added, changed or deleted file under the roots, every skill file of `new` in the
/// folders above it (a nested skill's parent too: its folder's files changed) —
/// in the flat layout, the file itself.
fn touched(
    repo: &gix::Repository,
    old: &gix::Tree<'_>,
    new: &gix::Tree<'_>,
    rules: &Rules,
) -> Result<BTreeSet<String>> {
    let mut opts = gix::diff::Options::default().with_rewrites(None);
    opts.track_path();
    let changes = commit_tree::diff(repo, old, new, opts).map_err(CacheError::git)?;
    // Each changed file (not folder): its path, and whether it is a file of `new`.
    let changes: Vec<(String, bool)> = changes
        .into_iter()
        .filter_map(|change| {
            let (location, mode, gone) = match change {
                ChangeDetached::Deletion {
                    location,
                    entry_mode,
                    ..
                } => (location, entry_mode, true),
                ChangeDetached::Addition {
                    location,
                    entry_mode,
                    ..
                }
                | ChangeDetached::Modification {
                    location,
                    entry_mode,
                    ..
                }
                | ChangeDetached::Rewrite {
                    location,
                    entry_mode,
                    ..
                } => (location, entry_mode, false),
            };
            (!mode.is_tree()).then(|| (location.to_string(), !gone && mode.is_blob()))
        })
        .collect();
    // What the diff itself says of a path (in `new`, as a file, or deleted): a push's
    // skill files are mostly among its changes, and looking each up in `new` would
    // read the folder's tree again every time (thousands of entries each).
    let mut exists: HashMap<String, bool> = changes
        .iter()
        .filter(|(path, _)| rules.is_skill(path))
        .cloned()
        .collect();
    let mut is_skill_file = |path: &str| -> bool {
        if let Some(known) = exists.get(path) {
            return *known;
        }
        let found = rules.is_skill(path)
            && new
                .lookup_entry(path.split('/').map(str::as_bytes))
                .ok()
                .flatten()
                .is_some_and(|e| e.mode().is_blob());
        exists.insert(path.to_string(), found);
        found
    };
    let mut out = BTreeSet::new();
    for (location, _) in changes {
        let Some(root) = rules.root_of(&location) else {
            continue;
        };
        match rules.layout {
            rules::Layout::Flat => {
                if is_skill_file(&location) {
                    out.insert(location);
                }
            }
            rules::Layout::AgentSkills => {
                // Each folder between the root and the file: `root/a/`, `root/a/b/`, ...
                let rest = &location[root.len()..];
                for (end, _) in rest.match_indices('/') {
                    let candidate = format!("{root}{}/{SKILL_FILE}", &rest[..end]);
                    if is_skill_file(&candidate) {
                        out.insert(candidate);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Who and what a set of versions is recorded for.
pub struct Publish<'a> {
    pub repo: &'a str,
    /// The default branch's commit the publish brought the cache to.
    pub commit: &'a str,
    /// The pusher (or the merger); `None` when no push published it.
    pub pushed_by: Option<&'a str>,
    pub push_id: Option<Uuid>,
}

/// Records the next version of each skill in `contents` whose cached row is
/// `PUBLISHED`, is the file the content was read from, and whose latest version has
/// another digest (or that has none): one statement. Returns (slug, version) of each
/// version recorded.
pub async fn write(
    tx: &mut PgConnection,
    publish: &Publish<'_>,
    contents: &[Content],
) -> sqlx::Result<Vec<(String, i32)>> {
    let mut recorded = Vec::new();
    for batch in contents.chunks(2000) {
        let mut path = Vec::with_capacity(batch.len());
        let mut blob = Vec::with_capacity(batch.len());
        let mut digest = Vec::with_capacity(batch.len());
        let mut kind = Vec::with_capacity(batch.len());
        for c in batch {
            path.push(c.path.as_str());
            blob.push(c.blob.to_string());
            digest.push(c.digest.as_str());
            kind.push(c.kind);
        }
        // Each row is looked up by its (repo, path) key, one probe per path, in a
        // subquery the planner cannot flatten: joined plainly, and with the table's
        // statistics not yet updated after a big push (autovacuum analyzes a minute
        // later), the planner scanned every PUBLISHED row once per path (937 ms for
        // 1,000 new skills onto 10,000; 14 ms this way).
        let rows = sqlx::query!(
            r#"INSERT INTO skill_versions (skill_id, repo, version, digest, kind, path, slug,
                                         commit_sha, pushed_by, push_id)
             SELECT s.id, s.repo, COALESCE(l.version, 0) + 1, u.digest, u.kind, s.path, s.slug,
                    $2, $3, $4
             FROM unnest($5::text[], $6::text[], $7::text[], $8::text[]) AS u(path, blob, digest, kind)
             CROSS JOIN LATERAL (SELECT s.id, s.repo, s.path, s.slug, s.blob_sha, s.status
                                 FROM skills s WHERE s.repo = $1 AND s.path = u.path LIMIT 1) s
             LEFT JOIN LATERAL (SELECT v.version, v.digest FROM skill_versions v
                                WHERE v.skill_id = s.id ORDER BY v.version DESC LIMIT 1) l ON true
             WHERE s.blob_sha = u.blob AND s.status = 'PUBLISHED'
               AND l.digest IS DISTINCT FROM u.digest
             RETURNING slug, version"#,
            publish.repo,
            publish.commit,
            publish.pushed_by,
            publish.push_id,
            &path as &[&str],
            &blob as &[String],
            &digest as &[&str],
            &kind as &[&str],
        )
        .fetch_all(&mut *tx)
        .await?;
        recorded.extend(rows.into_iter().map(|r| (r.slug, r.version)));
    }
    if !recorded.is_empty() {
        tracing::debug!(repo = %publish.repo, commit = %publish.commit, versions = recorded.len(), "skill versions recorded");
    }
    Ok(recorded)
}

/// A skill row a `COPY` has just created (a bulk load's, [`super::bulk`], or a push's
/// many new rows) whose file is its skill alone: its version 1 is that file's digest.
pub struct First<'a> {
    pub skill_id: Uuid,
    pub path: &'a str,
    pub slug: &'a str,
    pub digest: &'a str,
}

/// Whether a `COPY` records `row`'s version 1 with it ([`copy_first`]): a
/// `PUBLISHED` skill whose file is its skill alone (one of `alone`), with the digest of
/// the bytes it was read from.
pub fn first_with_row(alone: &HashSet<String>, row: &Row) -> bool {
    row.digest.is_some()
        && row.skill.status == crate::skills::Status::Published
        && alone.contains(&row.skill.path)
}

/// Records version 1 of skills a `COPY` has just created, by `COPY`, in the same
/// transaction and batch as their rows: every row has a new id, so no version, and
/// the rows are `PUBLISHED` and the files their digests were made from (the caller
/// passes only those; a push, only its last commit's, whose files are the tip's). It
/// is what [`write`] would record for them after the rows: for a bulk load one
/// statement on one core with skillsd idle (1.1–1.7 s for 100,000), here PostgreSQL
/// writes them while skillsd reads the next batch; for a push of 1,000 new skills
/// 11 ms instead of the statement's 16 (its lookup of every path).
pub async fn copy_first(
    tx: &mut PgConnection,
    publish: &Publish<'_>,
    firsts: &[First<'_>],
) -> sqlx::Result<()> {
    if firsts.is_empty() {
        return Ok(());
    }
    const COLUMNS: i16 = 10;
    let mut copy = tx
        .copy_in_raw(
            "COPY skill_versions (skill_id, repo, version, digest, kind, path, slug, commit_sha,
                                  pushed_by, push_id)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut buf = super::binary_copy::CopyBuffer::new();
    for f in firsts {
        buf.row(COLUMNS);
        buf.uuid(&f.skill_id);
        buf.text(publish.repo);
        buf.int4(1);
        buf.text(f.digest);
        buf.text(index::Kind::SkillMd.as_str());
        buf.text(f.path);
        buf.text(f.slug);
        buf.text(publish.commit);
        buf.opt_text(publish.pushed_by);
        buf.opt_uuid(publish.push_id.as_ref());
    }
    buf.finish();
    copy.send(buf.bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// The skill files of `repo`'s `PUBLISHED` rows that have no version yet.
pub async fn lacking(tx: &mut PgConnection, repo: &str) -> sqlx::Result<BTreeSet<String>> {
    let paths: Vec<String> = sqlx::query_scalar!(
        "SELECT s.path FROM skills s
         WHERE s.repo = $1 AND s.status = 'PUBLISHED'
           AND NOT EXISTS (SELECT 1 FROM skill_versions v WHERE v.skill_id = s.id)",
        repo
    )
    .fetch_all(tx)
    .await?;
    Ok(paths.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_repo::{commit, repository};

    const NESTED: &str = "layout = \"agent-skills\"\nroots = [\"skills\"]\nnested_skills = true\n";

    fn skill(name: &str) -> String {
        format!("---\nname: {name}\ndescription: It.\n---\n# {name}\n")
    }

    fn paths(contents: &[Content]) -> Vec<&str> {
        contents.iter().map(|c| c.path.as_str()).collect()
    }

    /// Each skill's content from a lookup of its own (`artifact::skill_members`, as
    /// the agents' index reads one skill): what [`contents`] must give for many.
    fn alone(
        repo: &gix::Repository,
        tree: &gix::Tree<'_>,
        rules: &Rules,
        paths: &BTreeSet<String>,
    ) -> Vec<Content> {
        paths
            .iter()
            .filter_map(|path| {
                let members = index::skill_members(tree, rules, path).unwrap()?;
                let blob = members[0].1;
                let made = index::artifact(repo, members).unwrap();
                Some(Content {
                    path: path.clone(),
                    blob,
                    digest: made.digest(),
                    kind: made.kind.as_str(),
                })
            })
            .collect()
    }

    /// `files` committed into `repo`: the commit's tree and its rules.
    fn committed<'r>(
        repo: &'r gix::Repository,
        files: &[(String, String)],
    ) -> (gix::Tree<'r>, std::sync::Arc<Rules>) {
        let listed: Vec<(&str, Option<&str>)> = files
            .iter()
            .map(|(p, c)| (p.as_str(), Some(c.as_str())))
            .collect();
        let tip = commit(repo, None, &listed);
        let tree = tree_of(repo, tip).unwrap();
        let rules = Rules::load(&TreeSource { tree: tree.clone() }).unwrap();
        (tree, rules)
    }

    #[test]
    fn many_skills_are_read_on_every_core_to_the_contents_each_has_alone() {
        let (_dir, repo) = repository();
        let skills: Vec<(String, String)> = (0..PARALLEL_FROM + 7)
            .map(|i| {
                (
                    format!("skills/s{i:04}/SKILL.md"),
                    skill(&format!("s{i:04}")),
                )
            })
            .collect();
        let mut files: Vec<(&str, Option<&str>)> = vec![("skillsd.toml", Some(NESTED))];
        files.extend(skills.iter().map(|(p, c)| (p.as_str(), Some(c.as_str()))));
        let tip = commit(&repo, None, &files);
        let tree = tree_of(&repo, tip).unwrap();
        let rules = Rules::load(&TreeSource { tree: tree.clone() }).unwrap();
        let paths: BTreeSet<String> = skills.iter().map(|(p, _)| p.clone()).collect();
        let parallel = contents(&repo, &tree, &rules, paths.clone(), &Digests::new()).unwrap();
        assert_eq!(parallel.len(), PARALLEL_FROM + 7);
        assert_eq!(parallel, alone(&repo, &tree, &rules, &paths));
    }

    #[test]
    fn skills_read_together_have_the_contents_each_has_alone() {
        let (_dir, repo) = repository();
        let mut files: Vec<(String, String)> = vec![("skillsd.toml".into(), NESTED.into())];
        for i in 0..70 {
            files.push((
                format!("skills/s{i:03}/SKILL.md"),
                skill(&format!("s{i:03}")),
            ));
            if i % 3 == 0 {
                files.push((
                    format!("skills/s{i:03}/ref/notes.md"),
                    format!("notes {i}\n"),
                ));
            }
            if i % 7 == 0 {
                // A nested skill: its files are its own, not its parent's.
                files.push((format!("skills/s{i:03}/inner/SKILL.md"), skill("inner")));
                files.push((format!("skills/s{i:03}/inner/run.sh"), "echo\n".into()));
            }
        }
        files.push(("skills/not-a-skill.md".into(), "text\n".into()));
        files.push(("docs/SKILL.md".into(), skill("outside")));
        let (tree, rules) = committed(&repo, &files);
        let mut asked: BTreeSet<String> = files
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| p.ends_with("SKILL.md"))
            .collect();
        asked.insert("skills/missing/SKILL.md".into());
        asked.insert("skills/not-a-skill.md".into());
        let together = contents(&repo, &tree, &rules, asked.clone(), &Digests::new()).unwrap();
        // 70 skills, 10 nested ones; not the missing one, the file that is no skill,
        // nor the one outside the roots.
        assert_eq!(together.len(), 80);
        assert_eq!(together, alone(&repo, &tree, &rules, &asked));
        assert!(together.iter().any(|c| c.kind == "archive"));
        // A parent asked without its nested skill, and a nested one without its parent.
        let some = BTreeSet::from([
            "skills/s007/SKILL.md".to_string(),
            "skills/s014/inner/SKILL.md".to_string(),
        ]);
        let two = contents(&repo, &tree, &rules, some.clone(), &Digests::new()).unwrap();
        assert_eq!(
            paths(&two),
            ["skills/s007/SKILL.md", "skills/s014/inner/SKILL.md"]
        );
        assert_eq!(two, alone(&repo, &tree, &rules, &some));
    }

    #[test]
    fn flat_skills_in_folders_read_together_have_the_contents_each_has_alone() {
        let (_dir, repo) = repository();
        let flat = "layout = \"flat\"\nroots = [\"skills\"]\n";
        let mut files: Vec<(String, String)> = vec![("skillsd.toml".into(), flat.into())];
        for i in 0..40 {
            let folder = ["backend", "frontend", "ops"][i % 3];
            files.push((
                format!("skills/{folder}/s{i:02}.md"),
                skill(&format!("s{i:02}")),
            ));
        }
        files.push(("skills/backend/notes.txt".into(), "not a skill\n".into()));
        files.push(("skills/top.md".into(), skill("top")));
        let (tree, rules) = committed(&repo, &files);
        let mut asked: BTreeSet<String> = files
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| p.ends_with(".md") && !p.contains("s1"))
            .collect();
        asked.insert("skills/backend/notes.txt".into());
        asked.insert("skills/ops/gone.md".into());
        let together = contents(&repo, &tree, &rules, asked.clone(), &Digests::new()).unwrap();
        assert_eq!(together.len(), 31);
        assert_eq!(together, alone(&repo, &tree, &rules, &asked));
        assert!(together.iter().all(|c| c.kind == "skill-md"));
    }

    #[test]
    fn a_lone_file_s_known_digest_is_taken_and_a_folder_s_archive_is_made() {
        let (_dir, repo) = repository();
        let files: Vec<(String, String)> = vec![
            ("skillsd.toml".into(), NESTED.into()),
            ("skills/lone/SKILL.md".into(), skill("lone")),
            ("skills/other/SKILL.md".into(), skill("other")),
            ("skills/folder/SKILL.md".into(), skill("folder")),
            ("skills/folder/run.sh".into(), "echo\n".into()),
        ];
        let (tree, rules) = committed(&repo, &files);
        let asked: BTreeSet<String> = files
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| p.ends_with("SKILL.md"))
            .collect();
        let read = contents(&repo, &tree, &rules, asked.clone(), &Digests::new()).unwrap();
        let blob = |path: &str| read.iter().find(|c| c.path == path).unwrap().blob;
        // The digests a reconcile made of the bytes it read equal the ones read here.
        let made: Digests = read.iter().map(|c| (c.blob, c.digest.clone())).collect();
        assert_eq!(
            contents(&repo, &tree, &rules, asked.clone(), &made).unwrap(),
            read
        );
        // Taken as given for a lone file (so it is not read: a wrong one comes back),
        // never for a folder's SKILL.md, whose digest is its archive's.
        let given = "sha256:".to_string() + &"0".repeat(64);
        let known: Digests = [
            (blob("skills/lone/SKILL.md"), given.clone()),
            (blob("skills/folder/SKILL.md"), given.clone()),
        ]
        .into();
        let taken = contents(&repo, &tree, &rules, asked, &known).unwrap();
        let digest_of = |path: &str| {
            let c = taken.iter().find(|c| c.path == path).unwrap();
            (c.digest.clone(), c.kind)
        };
        assert_eq!(
            digest_of("skills/lone/SKILL.md"),
            (given.clone(), "skill-md")
        );
        let other = read
            .iter()
            .find(|c| c.path == "skills/other/SKILL.md")
            .unwrap();
        assert_eq!(digest_of("skills/other/SKILL.md").0, other.digest);
        let (folder, kind) = digest_of("skills/folder/SKILL.md");
        assert_eq!(kind, "archive");
        assert_ne!(folder, given);
    }
    #[test]
    fn the_skills_a_change_touches_are_the_folders_above_its_files() {
        let (_dir, repo) = repository();
        let (a, b, c) = (skill("a"), skill("b"), skill("c"));
        let first = commit(
            &repo,
            None,
            &[
                ("skillsd.toml", Some(NESTED)),
                ("skills/a/SKILL.md", Some(&a)),
                ("skills/a/run.sh", Some("echo\n")),
                ("skills/a/b/SKILL.md", Some(&b)),
                ("skills/c/SKILL.md", Some(&c)),
            ],
        );
        // No base: every skill.
        let all = between(&repo, None, first, &Digests::new()).unwrap();
        assert_eq!(
            paths(&all),
            [
                "skills/a/SKILL.md",
                "skills/a/b/SKILL.md",
                "skills/c/SKILL.md"
            ]
        );
        // A file of a's folder: a alone; its digest changes.
        let second = commit(&repo, Some(first), &[("skills/a/run.sh", Some("echo 2\n"))]);
        let touched = between(&repo, Some(first), second, &Digests::new()).unwrap();
        assert_eq!(paths(&touched), ["skills/a/SKILL.md"]);
        assert_ne!(touched[0].digest, all[0].digest);
        // A nested skill's file: it and the skill around it.
        let third = commit(
            &repo,
            Some(second),
            &[("skills/a/b/notes.md", Some("# n\n"))],
        );
        assert_eq!(
            paths(&between(&repo, Some(second), third, &Digests::new()).unwrap()),
            ["skills/a/SKILL.md", "skills/a/b/SKILL.md"]
        );
        // Files outside the skills, a README under the root, a deleted skill: none.
        let fourth = commit(
            &repo,
            Some(third),
            &[
                ("README.md", Some("# r\n")),
                ("skills/README.md", Some("# s\n")),
                ("skills/c/SKILL.md", None),
            ],
        );
        assert!(
            between(&repo, Some(third), fourth, &Digests::new())
                .unwrap()
                .is_empty()
        );
        // Other rules: every skill again.
        let fifth = commit(
            &repo,
            Some(fourth),
            &[(
                "skillsd.toml",
                Some("layout = \"agent-skills\"\nroots = [\"skills\"]\n"),
            )],
        );
        assert_eq!(
            paths(&between(&repo, Some(fourth), fifth, &Digests::new()).unwrap()),
            ["skills/a/SKILL.md"]
        );
    }
}
