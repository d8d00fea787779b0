//! `skillsd import`: bringing skills that live elsewhere into a repository.
//!
//! * **Legacy database** (`--from-postgres URL --table NAME`): the rows of a table
//!   shaped like the seed's `Skill` model become one Markdown file each, and **one
//!   commit per skill** (author: the importer; date: the row's `updatedAt`).
//! * **A folder** (`import DIR`): exactly a push of that folder, in one commit: every
//!   file as it is (executable bits, binary files, symbolic links as links), accepted
//!   or refused as a whole by the push's checks; `--dry-run` prints `skillsd check`'s
//!   report for the folder.
//!
//! Either way the commits land through the push path itself ([`crate::receive::serve`]
//! fed with a pack in-process): the same checks, the same transaction, the same cache
//! and push record. A row that does not pass the repository's rules is reported and
//! left out (or, with `--strict`, nothing is imported); nothing is half-imported.

mod rows;

use crate::receive::in_process::{Scratch, push_in_process};
pub use rows::entry_of_row;

use crate::db::users::{Role, User};
use crate::receive;
use crate::skills::rules::Rules;
use crate::skills::{Problem, Status};
use gix::ObjectId;
use rows::{frontmatter_lines, table_query, text};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the source table: {0}")]
    Source(#[source] sqlx::Error),
    #[error("`{0}` is not a table name (letters, digits, `_`, optionally `schema.table`)")]
    TableName(String),
    #[error("git: {0}")]
    Git(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    InProcess(#[from] crate::receive::in_process::InProcessError),
    #[error("the repository's rules do not load:\n{0}")]
    Rules(String),
    #[error("cannot read {0}: {1}")]
    Read(std::path::PathBuf, #[source] std::io::Error),
    #[error("nothing was imported: {0}")]
    Refused(String),
    #[error(
        "nothing was imported: `{0}` is {1}, which git cannot store; remove it or move it out of the folder"
    )]
    Unstorable(String, &'static str),
}

fn git(e: impl std::error::Error + Send + Sync + 'static) -> ImportError {
    ImportError::Git(Box::new(e))
}

/// A commit's date (now when `None`).
type When = Option<chrono::DateTime<chrono::Utc>>;
/// A row or file left out, with why.
pub type Skipped = (String, Vec<Problem>);
/// One commit to make: its files, message and date.
type Planned<E> = (Vec<E>, String, When);

/// Which rows and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Statuses to import (upper case); empty = every row.
    pub statuses: Vec<String>,
    /// Refuse the whole import when any row or file does not pass.
    pub strict: bool,
    /// Print what would be written; write nothing.
    pub dry_run: bool,
    /// `Name <mail>` of the commits' author and committer.
    pub author: String,
}

/// One file to import, and when (for the commit date).
#[derive(Debug, Clone)]
pub struct Entry {
    /// Where the row came from (`row 12 (id abc)`) or the file's path.
    pub source: String,
    pub path: String,
    /// The file's text; for a row already written to the import's scratch
    /// repository ([`Entry::blob`]), only its frontmatter (for a dry run's listing).
    pub text: String,
    /// The blob, when it is written already.
    pub blob: Option<ObjectId>,
    pub time: Option<chrono::DateTime<chrono::Utc>>,
    pub message: String,
    /// How git stores it: a file, an executable file, a symbolic link.
    pub kind: gix::object::tree::EntryKind,
}

/// What an import did (or, for a dry run, would do).
#[derive(Debug, Default)]
pub struct Report {
    pub imported: Vec<Entry>,
    pub skipped: Vec<Skipped>,
    /// What the push said (`remote:` lines without the prefix).
    pub messages: String,
    pub commit: Option<String>,
    /// A folder's dry run: the skills checked and every problem, as `skillsd check`
    /// finds them.
    pub checked: Option<(usize, Vec<Problem>)>,
}

impl Report {
    /// The exit status: 1 when a dry run of a folder found errors (as `skillsd check`).
    pub fn exit_code(&self) -> i32 {
        match &self.checked {
            Some((_, problems)) if crate::skills::any_error(problems) => 1,
            _ => 0,
        }
    }
}

/// Every file of the collection in `dir` (not `.git`), as a push of that folder
/// brings it: each file's bytes as they are (binary ones too) with its executable bit,
/// each symbolic link as a link (its target the blob), written to `scratch` as they
/// are read; nothing left out. What git cannot store (a FIFO, a socket, a device) is
/// refused by name. `progress` hears of the number of files, then of each file read.
pub fn entries_of_dir(
    dir: &std::path::Path,
    scratch: &Scratch,
    progress: &dyn Fn(Progress),
) -> Result<Vec<Entry>, ImportError> {
    use gix::object::tree::EntryKind;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let mut found: Vec<(String, std::path::PathBuf, std::fs::FileType)> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let list = std::fs::read_dir(&d).map_err(|e| ImportError::Read(d.clone(), e))?;
        for item in list {
            let item = item.map_err(|e| ImportError::Read(d.clone(), e))?;
            let path = item.path();
            let ft = item
                .file_type()
                .map_err(|e| ImportError::Read(path.clone(), e))?;
            if ft.is_dir() {
                if item.file_name() != ".git" {
                    stack.push(path);
                }
                continue;
            }
            let rel = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            if !(ft.is_file() || ft.is_symlink()) {
                let what = if ft.is_fifo() {
                    "a FIFO"
                } else if ft.is_socket() {
                    "a socket"
                } else {
                    "a device"
                };
                return Err(ImportError::Unstorable(rel, what));
            }
            found.push((rel, path, ft));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    progress(Progress::Files(found.len() as u64));
    let mut entries = Vec::with_capacity(found.len());
    for (rel, path, ft) in found {
        let (bytes, kind) = if ft.is_symlink() {
            let target =
                std::fs::read_link(&path).map_err(|e| ImportError::Read(path.clone(), e))?;
            (
                target.as_os_str().as_encoded_bytes().to_vec(),
                EntryKind::Link,
            )
        } else {
            let bytes = std::fs::read(&path).map_err(|e| ImportError::Read(path.clone(), e))?;
            let mode = std::fs::metadata(&path)
                .map_err(|e| ImportError::Read(path.clone(), e))?
                .permissions()
                .mode();
            // As git records it: any executable bit.
            let kind = if mode & 0o111 != 0 {
                EntryKind::BlobExecutable
            } else {
                EntryKind::Blob
            };
            (bytes, kind)
        };
        let blob = scratch.write_bytes(&bytes)?;
        progress(Progress::Read);
        entries.push(Entry {
            source: rel.clone(),
            message: String::new(),
            path: rel,
            text: String::new(),
            blob: Some(blob),
            time: None,
            kind,
        });
    }
    Ok(entries)
}

/// What [`entries_of_dir`] reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// How many files there are.
    Files(u64),
    /// One more file read and written.
    Read,
}

/// The rules of `repo`'s default branch and the slugs its skills have (the built-in
/// rules and no slugs for an empty repository).
pub fn current(
    repo: &gix::Repository,
) -> Result<(std::sync::Arc<Rules>, std::collections::HashSet<String>), ImportError> {
    let branch = format!("refs/heads/{}", crate::repos::DEFAULT_BRANCH);
    let Some(tip) = crate::repos::ref_target(repo, &branch) else {
        return Ok((Rules::builtin(), Default::default()));
    };
    let (rules, files) = crate::cache::changes::skill_files(repo, tip).map_err(git)?;
    let slugs = files.keys().map(|path| rules.key_of(path)).collect();
    Ok((rules, slugs))
}

/// Commits `commits` (each a list of files) on top of the default branch of `repo` in a
/// scratch repository that borrows `repo`'s objects, then pushes them through the push
/// path. Returns the messages the push printed and the new tip, if it was accepted.
pub fn land(
    ctx: &receive::Context,
    commits: &[Planned<&Entry>],
    author: &str,
    scratch: Option<Scratch>,
) -> Result<(String, Option<String>), ImportError> {
    let branch = format!("refs/heads/{}", ctx.default_branch);
    let old = crate::repos::ref_target(&ctx.repo, &branch);
    let scratch = match scratch {
        Some(s) => s,
        None => Scratch::new(&ctx.repo)?,
    };
    let work = scratch.repo();
    let (name, email) = match author.split_once('<') {
        Some((n, rest)) => (
            n.trim().to_string(),
            rest.trim_end_matches('>').trim().to_string(),
        ),
        None => (author.trim().to_string(), String::new()),
    };
    let mut parent = old;
    let mut tree = match old {
        Some(c) => work
            .find_commit(c)
            .map_err(git)?
            .tree_id()
            .map_err(git)?
            .detach(),
        None => ObjectId::empty_tree(gix::hash::Kind::Sha1),
    };
    for (files, message, time) in commits {
        let mut editor = work.edit_tree(tree).map_err(git)?;
        for entry in files {
            let blob = match entry.blob {
                Some(blob) => blob,
                None => work
                    .write_blob(entry.text.as_bytes())
                    .map_err(git)?
                    .detach(),
            };
            editor
                .upsert(entry.path.as_str(), entry.kind, blob)
                .map_err(git)?;
        }
        tree = editor.write().map_err(git)?.detach();
        let when = time.unwrap_or_else(chrono::Utc::now);
        let signature = gix::actor::Signature {
            name: name.clone().into(),
            email: email.clone().into(),
            // A date before 1970 (`0001-01-01` from a legacy table) is one git's fsck
            // refuses: it is clamped to the epoch.
            time: gix::date::Time::new(commit_seconds(when), 0),
        };
        let commit = gix::objs::Commit {
            tree,
            parents: parent.into_iter().collect(),
            author: signature.clone(),
            committer: signature,
            encoding: None,
            message: message.clone().into(),
            extra_headers: Vec::new(),
        };
        parent = Some(work.write_object(&commit).map_err(git)?.detach());
    }
    let new = parent.ok_or_else(|| ImportError::Refused("nothing to commit".into()))?;
    let (ids, _) = crate::protocol::pack::objects_to_send(
        work,
        &[new],
        &old.into_iter().collect::<Vec<_>>(),
        None,
    )
    .map_err(git)?;
    let (messages, refused) =
        push_in_process(ctx, work, scratch.dir(), &branch, old, new, ids, &[])?;
    let accepted = refused.is_none();
    Ok((messages, accepted.then(|| new.to_string())))
}

/// A commit date git accepts for `when`: seconds since 1970, never negative.
fn commit_seconds(when: chrono::DateTime<chrono::Utc>) -> i64 {
    when.timestamp().max(0)
}

/// Where an import lands.
pub struct Target {
    pub pool: sqlx::PgPool,
    pub store: crate::repos::RepoStore,
    pub repo: String,
    /// The server's push policy and limits (from the settings).
    pub policy: crate::receive::pre_receive::Policy,
}

impl Target {
    /// This node's copy of the repository, current with the database.
    async fn open(&self) -> Result<gix::Repository, ImportError> {
        crate::storage::replica::refresh_async(&self.pool, &self.store, &self.repo)
            .await
            .map_err(git)?;
        let (_, repo) = self.store.open(&self.repo).map_err(git)?;
        Ok(repo)
    }

    /// Lands `commits` through the push path, off the async runtime.
    async fn land(
        &self,
        commits: Vec<Planned<Entry>>,
        author: String,
        scratch: Option<Scratch>,
    ) -> Result<(String, Option<String>), ImportError> {
        let repo = self.open().await?;
        let ctx = receive::Context {
            repo,
            repo_name: self.repo.clone(),
            default_branch: crate::repos::DEFAULT_BRANCH.to_string(),
            policy: crate::receive::pre_receive::Policy {
                pusher_is_admin: true,
                pusher: importer().name,
                pusher_role: "admin",
                ..self.policy.clone()
            },
            user: importer(),
            pool: self.pool.clone(),
            rt: tokio::runtime::Handle::current(),
            repos: self.store.clone(),
            cancel: Default::default(),
            web_url: None,
            merging: None,
        };
        tokio::task::spawn_blocking(move || {
            let _reading = crate::maintenance::read_guard(ctx.repo.path());
            let borrowed: Vec<Planned<&Entry>> = commits
                .iter()
                .map(|(files, m, t)| (files.iter().collect(), m.clone(), *t))
                .collect();
            land(&ctx, &borrowed, &author, scratch)
        })
        .await
        .map_err(git)?
    }
}

/// Imports the rows of a legacy table: one file and one commit per row that passes.
/// The rows are streamed from the source in the order of their commits (oldest
/// change first) and each is written as a blob at once: what the import holds is a
/// line per row (its path, blob id and frontmatter), never the table.
pub async fn import_table(
    target: &Target,
    url: &str,
    table: &str,
    options: &Options,
) -> Result<Report, ImportError> {
    let repo = target.open().await?;
    let (rules, mut taken) = current(&repo)?;
    let scratch = Scratch::new(&repo)?;
    drop(repo);
    let query = table_query(table)?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .map_err(ImportError::Source)?;
    let mut report = Report::default();
    // A cursor, read a hundred rows at a time: the client never holds more than a
    // batch, however fast the server sends.
    let mut conn = pool.acquire().await.map_err(ImportError::Source)?;
    let mut tx = sqlx::Connection::begin(&mut *conn)
        .await
        .map_err(ImportError::Source)?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DECLARE skillsd_import NO SCROLL CURSOR FOR {query}"
    )))
    .execute(&mut *tx)
    .await
    .map_err(ImportError::Source)?;
    let mut i = 0;
    loop {
        let batch: Vec<Value> = sqlx::query_scalar("FETCH 100 FROM skillsd_import")
            .fetch_all(&mut *tx)
            .await
            .map_err(ImportError::Source)?;
        if batch.is_empty() {
            break;
        }
        for row in batch {
            let wanted = options.statuses.is_empty()
                || text(&row, &["status"])
                    .is_some_and(|s| options.statuses.iter().any(|w| w.eq_ignore_ascii_case(&s)));
            if !wanted {
                continue;
            }
            match entry_of_row(&rules, &row, i, &mut taken) {
                Ok(mut entry) => {
                    if !options.dry_run {
                        entry.blob = Some(scratch.write(&entry.text)?);
                    }
                    // Only the frontmatter is kept (a dry run lists it).
                    entry.text = frontmatter_lines(&entry.text);
                    report.imported.push(entry);
                }
                Err(skipped) => report.skipped.push(skipped),
            }
            i += 1;
        }
    }
    drop(tx);
    drop(conn);
    pool.close().await;
    finish(
        target,
        report,
        options,
        |entries| {
            entries
                .into_iter()
                .map(|e| {
                    let (message, time) = (e.message.clone(), e.time);
                    (vec![e], message, time)
                })
                .collect()
        },
        Some(scratch),
    )
    .await
}

/// Imports the files of an existing collection in `dir`, in one commit: exactly a
/// push of that folder onto the default branch. A dry run writes nothing and reports
/// what `skillsd check` finds in the folder under the rules the push would apply.
pub async fn import_dir(
    target: &Target,
    dir: &std::path::Path,
    options: &Options,
) -> Result<Report, ImportError> {
    let repo = target.open().await?;
    // The collection's own rules when it brings them, else the repository's.
    let rules = match Rules::load(&crate::skills::rules::DirSource { root: dir }) {
        Ok(rules) if dir.join(crate::skills::rules::CONFIG_PATH).is_file() => rules,
        Ok(_) => current(&repo)?.0,
        Err(p) => return Err(ImportError::Rules(crate::skills::render_problems(&p))),
    };
    if options.dry_run {
        let max_depth = target.policy.limits.max_tree_depth;
        let checked = crate::check::check_folder(dir, &rules, max_depth)
            .map_err(|e| ImportError::Read(dir.to_path_buf(), e))?;
        return Ok(Report {
            checked: Some(checked),
            ..Report::default()
        });
    }
    let scratch = Scratch::new(&repo)?;
    drop(repo);
    let bar = progress_bar();
    let imported = entries_of_dir(dir, &scratch, &|p| match p {
        Progress::Files(n) => {
            // Drawn once its length is known, and only on a terminal.
            bar.set_length(n);
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        Progress::Read => bar.inc(1),
    })?;
    bar.set_message("checking and storing them (a push)");
    // Every file read shows, however fast the push after it: the reads' last draw may
    // have been skipped by the bar's rate limit.
    bar.force_draw();
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    let report = Report {
        imported,
        ..Report::default()
    };
    let message = format!(
        "Import {}\n",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "a collection".into())
    );
    let result = finish(
        target,
        report,
        options,
        |entries| vec![(entries, message, None)],
        Some(scratch),
    )
    .await;
    bar.finish_and_clear();
    result
        .map_err(|e| match e {
            ImportError::Refused(text) => ImportError::Refused(for_a_folder(&text, dir)),
            other => other,
        })
        .map(|mut report| {
            report.messages = for_a_folder(&report.messages, dir);
            report
        })
}

/// One progress bar on standard error, drawn only when that is a terminal.
fn progress_bar() -> indicatif::ProgressBar {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix}[{bar:30}] {pos}/{len} files {msg} {elapsed}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix("Importing ");
    bar.set_message("reading");
    bar
}

/// What the push said, for someone who imports a folder (not a clone): the push's
/// own progress lines left out, and the commands for a folder.
fn for_a_folder(messages: &str, dir: &std::path::Path) -> String {
    let dir = dir.display().to_string();
    let dry_run = format!("`skillsd import --dry-run {dir}` lists every problem, writing nothing.");
    messages
        .lines()
        .filter(|l| !l.starts_with("Checking skills:"))
        .map(|l| {
            if l == crate::skills::report::EVERY_PROBLEM_IN_A_CLONE
                || l.starts_with("Run `skillsd check` in your clone")
            {
                dry_run.clone()
            } else {
                l.replace(
                    "`skillsd check --suggest-config`",
                    &format!("`skillsd check --suggest-config {dir}`"),
                )
            }
        })
        .fold((String::new(), false), |(mut out, said), line| {
            // The two lines that name the dry run become one.
            let again = line == dry_run;
            if !(again && said) {
                out.push_str(&line);
                out.push('\n');
            }
            (out, said || again)
        })
        .0
}

async fn finish(
    target: &Target,
    mut report: Report,
    options: &Options,
    commits: impl FnOnce(Vec<Entry>) -> Vec<Planned<Entry>>,
    scratch: Option<Scratch>,
) -> Result<Report, ImportError> {
    if options.strict && !report.skipped.is_empty() {
        return Err(ImportError::Refused(format!(
            "{} rows or files do not pass the rules (--strict):\n{}",
            report.skipped.len(),
            report
                .skipped
                .iter()
                .map(|(what, p)| format!("{what}:\n{}", crate::skills::render_problems(p)))
                .collect::<Vec<_>>()
                .join("")
        )));
    }
    if options.dry_run || report.imported.is_empty() {
        return Ok(report);
    }
    let (messages, commit) = target
        .land(
            commits(report.imported.clone()),
            options.author.clone(),
            scratch,
        )
        .await?;
    if commit.is_none() {
        return Err(ImportError::Refused(format!(
            "the push was refused:\n{messages}"
        )));
    }
    report.messages = messages;
    report.commit = commit;
    Ok(report)
}

/// The importer as the push record names it.
pub fn importer() -> User {
    User {
        name: "import".to_string(),
        role: Role::Admin,
        key_fingerprint: None,
    }
}

/// Prints `report` for people: what was (or would be) imported, and every row or file
/// left out with its problems.
pub fn print(report: &Report, dry_run: bool, out: &mut dyn std::io::Write) {
    // A folder's dry run: `skillsd check`'s report, every problem listed.
    if let Some((count, problems)) = &report.checked {
        let _ = write!(out, "{}", crate::check::report(*count, problems, true));
        return;
    }
    // A folder's files are not listed one by one (a collection has thousands): the
    // counts say what came, by kind.
    let files = report.imported.iter().filter(|e| e.source == e.path);
    let (mut links, mut executables) = (0, 0);
    for e in files {
        match e.kind {
            gix::object::tree::EntryKind::Link => links += 1,
            gix::object::tree::EntryKind::BlobExecutable => executables += 1,
            _ => {}
        }
    }
    for e in report.imported.iter().filter(|e| e.source != e.path) {
        let _ = writeln!(
            out,
            "{} {} <- {}",
            if dry_run { "would write" } else { "wrote" },
            e.path,
            e.source
        );
        if dry_run {
            for line in e.text.lines().take_while(|l| !l.is_empty()) {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    for (what, problems) in &report.skipped {
        let _ = writeln!(out, "skipped {what}:");
        for line in crate::skills::render_problems(problems).lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    if !report.messages.trim().is_empty() {
        for line in report.messages.lines().filter(|l| !l.trim().is_empty()) {
            let _ = writeln!(out, "remote: {line}");
        }
    }
    let kinds = match (executables, links) {
        (0, 0) => String::new(),
        (e, 0) => format!(" ({e} executable)"),
        (0, l) => format!(" ({l} symbolic link{})", if l == 1 { "" } else { "s" }),
        (e, l) => format!(
            " ({e} executable, {l} symbolic link{})",
            if l == 1 { "" } else { "s" }
        ),
    };
    let _ = writeln!(
        out,
        "{} {} file{}{kinds}, skipped {}{}",
        if dry_run { "would import" } else { "imported" },
        report.imported.len(),
        if report.imported.len() == 1 { "" } else { "s" },
        report.skipped.len(),
        report
            .commit
            .as_deref()
            .map(|c| format!("; main at {}", &c[..7.min(c.len())]))
            .unwrap_or_default()
    );
}

/// The statuses to import from `--status` (`PUBLISHED` by default; `all` for every row).
pub fn statuses(given: &[String]) -> Vec<String> {
    if given.iter().any(|s| s.eq_ignore_ascii_case("all")) {
        return Vec::new();
    }
    if given.is_empty() {
        return vec![Status::Published.as_str().to_string()];
    }
    given
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_becomes_a_valid_flat_skill_and_duplicates_or_untitled_rows_are_skipped() {
        let rules = Rules::builtin();
        let mut taken = Default::default();
        let row = json!({"id": "c1", "title": "Café: \"quotes\" & colons", "content": "# Body\n",
                         "category": "ops", "tags": ["a", "b: c"], "status": "PUBLISHED",
                         "ownerId": "u1", "updatedAt": "2024-03-04T05:06:07.123"});
        let e = entry_of_row(&rules, &row, 0, &mut taken).unwrap();
        assert_eq!(e.path, "skills/cafe-quotes-colons.md");
        let skill = rules.validate(&e.path, e.text.as_bytes()).unwrap();
        assert_eq!(skill.title, "Café: \"quotes\" & colons");
        assert_eq!(skill.tags, vec!["a", "b: c"]);
        assert_eq!(skill.owner.as_deref(), Some("u1"));
        assert_eq!(skill.body, "# Body\n");
        assert_eq!(skill.frontmatter["legacy-id"], "c1");
        assert_eq!(
            e.time.unwrap().to_rfc3339(),
            "2024-03-04T05:06:07.123+00:00"
        );
        let again = entry_of_row(&rules, &row, 1, &mut taken).unwrap_err();
        assert!(again.1[0].message.contains("already used"), "{again:?}");
        let untitled = entry_of_row(&rules, &json!({"id": 3}), 2, &mut taken).unwrap_err();
        assert_eq!(untitled.0, "row 3 (id 3)");
        let readme =
            entry_of_row(&rules, &json!({"id": 4, "title": "README"}), 3, &mut taken).unwrap_err();
        assert!(
            readme.1[0]
                .message
                .contains("README files are documentation"),
            "{readme:?}"
        );
        assert!(!taken.contains("readme"), "a skipped row keeps no slug");
    }

    #[test]
    fn commit_dates_before_1970_are_clamped_to_the_epoch() {
        let old = chrono::DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(commit_seconds(old), 0);
        let now = chrono::Utc::now();
        assert_eq!(commit_seconds(now), now.timestamp());
    }

    #[test]
    fn statuses_default_to_published() {
        assert_eq!(statuses(&[]), vec!["PUBLISHED"]);
        assert!(statuses(&["all".into()]).is_empty());
        assert_eq!(
            statuses(&["draft,published".into()]),
            vec!["DRAFT", "PUBLISHED"]
        );
    }
}
