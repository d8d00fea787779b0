//! A file on a branch's tip as an editor opens it, with the rules it is checked by.

use super::*;

/// A file on a branch's tip as an editor opens it.
pub struct Opened {
    /// The repository's canonical name.
    pub repo: String,
    /// The rules of the branch's tip (the built-in ones when it has none, or they do
    /// not load: the commit's own check then says why).
    pub rules: std::sync::Arc<crate::skills::rules::Rules>,
    /// The file at the tip: (blob id, text); `None` when there is none.
    pub file: Option<(String, String)>,
    /// The text of the blob asked for as `earlier` (what an editor started from), when
    /// the repository has it.
    pub earlier: Option<String>,
    /// The text of the schema file the rules name (`None`: the built-in schema), for
    /// the order its properties are written in.
    pub schema_text: Option<String>,
}

/// Reads `path` (if any) on `branch` of `repo` with the tip's rules, and the blob
/// `earlier` (if any): what the editor pages show. A file that is not UTF-8 text is
/// refused (binary files are pushed with git).
pub async fn open_file(
    pool: &sqlx::PgPool,
    repos: &crate::repos::RepoStore,
    repo: &str,
    branch: &str,
    path: Option<&str>,
    earlier: Option<&str>,
) -> Result<Opened, EditError> {
    if let Some(p) = path {
        check_path(p).map_err(EditError::BadRequest)?;
    }
    let earlier = match earlier.map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) => Some(ObjectId::from_hex(e.as_bytes()).map_err(|_| {
            EditError::BadRequest(format!("`{e}` is not a blob id (40 hex digits)"))
        })?),
        None => None,
    };
    let (name, copy) = crate::storage::replica::open(pool, repos, repo, false)
        .await
        .map_err(|e| EditError::NotFound(format!("no repository `{repo}`: {e}")))?;
    let branch_ref = format!("refs/heads/{branch}");
    let path = path.map(str::to_string);
    let repo_name = name.clone();
    tokio::task::spawn_blocking(move || {
        let _reading = crate::maintenance::read_guard(copy.path());
        let text = |id: ObjectId, what: &str| -> Result<String, EditError> {
            let data = copy.find_object(id).map_err(git_error)?.detach().data;
            String::from_utf8(data).map_err(|_| {
                EditError::BadRequest(format!(
                    "`{what}` is not UTF-8 text: it is edited with git, not here"
                ))
            })
        };
        let tree = match crate::repos::ref_target(&copy, &branch_ref) {
            Some(tip) => Some(
                copy.find_commit(tip)
                    .map_err(git_error)?
                    .tree()
                    .map_err(git_error)?,
            ),
            None => None,
        };
        let rules = match &tree {
            Some(tree) => crate::skills::rules::Rules::load(&crate::commit_tree::TreeSource {
                tree: tree.clone(),
            })
            .unwrap_or_else(|_| crate::skills::rules::Rules::builtin()),
            None => crate::skills::rules::Rules::builtin(),
        };
        let file = match (&tree, &path) {
            (Some(tree), Some(p)) => match tree
                .lookup_entry(p.split('/').map(str::as_bytes))
                .map_err(git_error)?
            {
                Some(entry) if entry.mode().is_blob() => {
                    let id = entry.object_id();
                    Some((id.to_string(), text(id, p)?))
                }
                Some(_) => {
                    return Err(EditError::BadRequest(format!(
                        "`{p}` is not a regular file (a folder, a symbolic link or a submodule)"
                    )));
                }
                None => None,
            },
            _ => None,
        };
        let schema_text = match (&tree, &rules.schema_path) {
            (Some(tree), Some(p)) => tree
                .lookup_entry(p.split('/').map(str::as_bytes))
                .ok()
                .flatten()
                .and_then(|e| e.object().ok())
                .and_then(|o| String::from_utf8(o.detach().data).ok()),
            _ => None,
        };
        let earlier = match earlier {
            Some(id)
                if copy
                    .find_header(id)
                    .is_ok_and(|h| h.kind() == gix::object::Kind::Blob) =>
            {
                Some(text(id, &id.to_string())?)
            }
            _ => None,
        };
        Ok(Opened {
            repo: repo_name,
            rules,
            file,
            earlier,
            schema_text,
        })
    })
    .await
    .map_err(|e| EditError::Unavailable(format!("reading failed: {e}")))?
}
