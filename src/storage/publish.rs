//! Changing a repository in the database, inside the caller's transaction: lock its
//! row (writers of one repository go one at a time, on every node), move refs by
//! compare-and-swap, and bump the generation with a `NOTIFY`. Nothing is visible to
//! any node before the caller commits, and all of it is visible after.

use super::{NOTIFY_CHANNEL, Result, StorageError};
use sqlx::PgConnection;

/// Locks `repo`'s row until the transaction ends; its current generation.
pub async fn lock(tx: &mut PgConnection, repo: &str) -> Result<i64> {
    sqlx::query_scalar!(
        "SELECT generation FROM git_repos WHERE name = $1 FOR UPDATE",
        repo
    )
    .fetch_optional(tx)
    .await?
    .ok_or_else(|| StorageError::NotInDatabase(repo.to_string()))
}

/// One ref's change: `old` is what the pusher saw (`None`: the ref must not exist),
/// `new` the value it gets with its peeled object (`None`: the ref is deleted).
pub struct RefChange<'a> {
    pub name: &'a str,
    pub old: Option<String>,
    pub new: Option<(String, Option<String>)>,
}

/// For each name in `names` (refs about to be created) that cannot exist beside a ref
/// `repo` has now — one differing only in case (a clone on macOS or Windows cannot
/// hold both), or one that is a folder of the other (`a` and `a/b`) — that name and
/// the ref in the way. Checked under the repository's lock, against the database:
/// the copy a push was checked against may be behind (another node's push, or one
/// that committed after this one's advertisement).
pub async fn conflicting_refs(
    tx: &mut PgConnection,
    repo: &str,
    names: &[&str],
) -> Result<Vec<(String, String)>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    Ok(sqlx::query!(
        r#"SELECT DISTINCT ON (c.name) c.name AS "name!", r.name AS "other"
         FROM unnest($2::text[]) AS c(name)
         JOIN git_refs r ON r.repo = $1 AND r.name <> c.name
          AND (lower(r.name) = lower(c.name)
               OR starts_with(r.name, c.name || '/')
               OR starts_with(c.name, r.name || '/'))
         ORDER BY c.name, r.name"#,
        repo,
        &names,
    )
    .fetch_all(tx)
    .await?
    .into_iter()
    .map(|r| (r.name, r.other))
    .collect())
}

/// Applies `change` if the ref still holds `old`; `false` when it moved (someone
/// else's push committed first): nothing changed then.
pub async fn compare_and_swap(
    tx: &mut PgConnection,
    repo: &str,
    change: &RefChange<'_>,
) -> Result<bool> {
    let done = match (&change.old, &change.new) {
        (None, Some((target, peeled))) => sqlx::query!(
            "INSERT INTO git_refs (repo, name, target, peeled) VALUES ($1, $2, $3, $4)
             ON CONFLICT (repo, name) DO NOTHING",
            repo,
            change.name,
            target,
            peeled.as_deref(),
        )
        .execute(tx)
        .await?
        .rows_affected(),
        (Some(old), Some((target, peeled))) => sqlx::query!(
            "UPDATE git_refs SET target = $3, peeled = $4
             WHERE repo = $1 AND name = $2 AND target = $5",
            repo,
            change.name,
            target,
            peeled.as_deref(),
            old,
        )
        .execute(tx)
        .await?
        .rows_affected(),
        (Some(old), None) => sqlx::query!(
            "DELETE FROM git_refs WHERE repo = $1 AND name = $2 AND target = $3",
            repo,
            change.name,
            old,
        )
        .execute(tx)
        .await?
        .rows_affected(),
        (None, None) => 0,
    };
    Ok(done == 1)
}

/// Deletes the ref `name` of `repo` whatever it holds (an admin removing a ref that
/// cannot be served; pushes cannot delete tags or the default branch), inside the
/// caller's transaction, which holds the repository's lock after it: the new
/// generation, `None` when there is no such ref (nothing changed then). The caller
/// tells the mirrors ([`crate::deliver::mirrors::wanted`]) in the same transaction.
pub async fn delete_ref(tx: &mut PgConnection, repo: &str, name: &str) -> Result<Option<i64>> {
    lock(tx, repo).await?;
    let n = sqlx::query!(
        "DELETE FROM git_refs WHERE repo = $1 AND name = $2",
        repo,
        name
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(bump(tx, repo).await?))
}

/// Marks a change of `repo`: the generation grows by one and every node is told
/// (`NOTIFY`, delivered at commit), in one statement. Returns the new generation.
pub async fn bump(tx: &mut PgConnection, repo: &str) -> Result<i64> {
    let bumped = sqlx::query!(
        r#"WITH g AS (
             UPDATE git_repos SET generation = generation + 1, updated_at = now()
             WHERE name = $1 RETURNING generation)
         SELECT g.generation AS "generation!", pg_notify($2, $1 || ' ' || g.generation || ' ' || $3)::text
         FROM g"#,
        repo,
        NOTIFY_CHANNEL,
        super::node_id(),
    )
    .fetch_one(tx)
    .await?;
    Ok(bumped.generation)
}
