//! The commits a sync went through, kept in the `commits` table (author, committer,
//! times, message) so that a skill's history is a query, never a git command: the
//! sync log names the commit of each change, this table says who made it and why.

use super::{CacheError, Result};
use gix::ObjectId;
use sqlx::PgConnection;

/// Longest message kept (the rest is cut at a character boundary).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// One commit as the `commits` table holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitRow {
    pub sha: String,
    pub author_name: String,
    pub author_email: String,
    pub authored_at: chrono::DateTime<chrono::Utc>,
    pub committer_name: String,
    pub committer_email: String,
    pub committed_at: chrono::DateTime<chrono::Utc>,
    pub message: String,
    /// `valid`, `invalid` or `unsigned` ([`crate::signing::Signature::state`]).
    pub signature: String,
    /// The signing key's fingerprint, when signed with SSH.
    pub signing_key: Option<String>,
}

/// Text PostgreSQL can hold: valid UTF-8 (lossy), no NUL.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}")
}

fn time(seconds: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

/// Reads `id` from `repo`.
pub fn read(repo: &gix::Repository, id: ObjectId) -> Result<CommitRow> {
    let signature = crate::signing::inspect(repo, id).map_err(CacheError::git)?;
    let commit = repo.find_commit(id).map_err(CacheError::git)?;
    let decoded = commit.decode().map_err(CacheError::git)?;
    let author = decoded.author().map_err(CacheError::git)?;
    let committer = decoded.committer().map_err(CacheError::git)?;
    let mut message = text(decoded.message);
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    Ok(CommitRow {
        sha: id.to_string(),
        author_name: text(author.name),
        author_email: text(author.email),
        authored_at: time(author.seconds()),
        committer_name: text(committer.name),
        committer_email: text(committer.email),
        committed_at: time(committer.seconds()),
        message,
        signature: signature.state().to_string(),
        signing_key: signature.key().map(str::to_string),
    })
}

/// Writes `rows` of `repo_name` (one statement; commits already there are kept).
pub async fn insert(tx: &mut PgConnection, repo_name: &str, rows: &[CommitRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&CommitRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let times =
        |f: fn(&CommitRow) -> chrono::DateTime<chrono::Utc>| rows.iter().map(f).collect::<Vec<_>>();
    let keys: Vec<Option<&str>> = rows.iter().map(|r| r.signing_key.as_deref()).collect();
    sqlx::query!(
        "INSERT INTO commits (repo, sha, author_name, author_email, authored_at, committer_name,
                              committer_email, committed_at, message, signature, signing_key,
                              signed_by)
         SELECT $1, u.sha, u.an, u.ae, u.at, u.cn, u.ce, u.ct, u.msg, u.sig, u.key,
                (SELECT us.name FROM ssh_keys k JOIN users us ON us.id = k.user_id
                 WHERE u.sig = 'valid' AND k.fingerprint = u.key)
         FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                     $7::text[], $8::timestamptz[], $9::text[], $10::text[], $11::text[])
              AS u(sha, an, ae, at, cn, ce, ct, msg, sig, key)
         ON CONFLICT (repo, sha) DO NOTHING",
        repo_name,
        &col(|r| &r.sha) as &[&str],
        &col(|r| &r.author_name) as &[&str],
        &col(|r| &r.author_email) as &[&str],
        &times(|r| r.authored_at),
        &col(|r| &r.committer_name) as &[&str],
        &col(|r| &r.committer_email) as &[&str],
        &times(|r| r.committed_at),
        &col(|r| &r.message) as &[&str],
        &col(|r| &r.signature) as &[&str],
        &keys as &[Option<&str>],
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// One change of a skill's history: the operation, the commit that made it, and who
/// made that commit and why (absent for commits synced before the table existed).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub operation: String,
    pub path: Option<String>,
    pub commit: Option<String>,
    pub synced_at: chrono::DateTime<chrono::Utc>,
    pub synced_by: String,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub authored_at: Option<chrono::DateTime<chrono::Utc>>,
    pub committer_name: Option<String>,
    pub committed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub message: Option<String>,
    /// `verified` (an SSH signature that verifies, by a key of `signed_by`'s),
    /// `unverified` (signed, but invalid or by a key nobody registered), `unsigned`;
    /// absent for commits synced before this was recorded.
    pub signature: Option<String>,
    pub signed_by: Option<String>,
    pub signing_key: Option<String>,
}

/// Every change the cache made to skill `skill_id` (through renames: the id stays),
/// newest first, at most `limit`.
pub async fn history(
    pool: &sqlx::PgPool,
    skill_id: uuid::Uuid,
    limit: i64,
) -> sqlx::Result<Vec<Change>> {
    // The commit's columns come through a LEFT JOIN: absent for changes made before
    // commits were recorded.
    let rows = sqlx::query!(
        r#"SELECT l.operation, l.path, l.git_commit_sha, l.started_at, l.synced_by,
                c.author_name AS "author_name?", c.author_email AS "author_email?",
                c.authored_at AS "authored_at?", c.committer_name AS "committer_name?",
                c.committed_at AS "committed_at?", c.message AS "message?",
                c.signature AS "signature?", c.signed_by AS "signed_by?",
                c.signing_key AS "signing_key?"
         FROM skill_sync_log l
         LEFT JOIN commits c ON c.repo = l.repo AND c.sha = l.git_commit_sha
         WHERE l.skill_id = $1 AND l.status = 'success'
         ORDER BY l.id DESC LIMIT $2"#,
        skill_id,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Change {
            signature: r.signature.map(|s| match (s.as_str(), &r.signed_by) {
                ("valid", Some(_)) => "verified".to_string(),
                ("unsigned", _) => "unsigned".to_string(),
                _ => "unverified".to_string(),
            }),
            operation: r.operation,
            path: r.path,
            commit: r.git_commit_sha,
            synced_at: r.started_at,
            synced_by: r.synced_by,
            author_name: r.author_name,
            author_email: r.author_email,
            authored_at: r.authored_at,
            committer_name: r.committer_name,
            committed_at: r.committed_at,
            signed_by: r.signed_by,
            signing_key: r.signing_key,
            message: r.message,
        })
        .collect())
}
