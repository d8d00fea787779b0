//! Reading the cache as people and agents search it: the skills of a repository,
//! ranked by relevance and filtered, one page at a time. Shared by the pages
//! (`/skills`), the JSON API (`GET /api/skills`) and MCP's `search_skills`.

use serde::Deserialize;

/// The repository a `?repo=` names (`skills.git`, `/skills` … name `skills`); `None`
/// when absent or blank; `Err` when it cannot be a repository's name.
pub fn repo_param(v: &Option<String>) -> Result<Option<String>, String> {
    match given(v) {
        None => Ok(None),
        Some(r) => crate::repos::RepoStore::canonical_name(r)
            .map(Some)
            .map_err(|_| "no such repository".to_string()),
    }
}

/// Rows per page when the query names no limit.
pub const DEFAULT_LIMIT: i64 = 50;

/// A value that is absent or blank is not given.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

#[derive(Deserialize, Default)]
pub struct SkillsQuery {
    pub repo: Option<String>,
    pub q: Option<String>,
    pub category: Option<String>,
    pub owner: Option<String>,
    pub status: Option<String>,
    pub tag: Option<String>,
    pub page: Option<i64>,
    /// Rows per page (the API's; the page shows 50): 1 to 200.
    pub limit: Option<i64>,
}

/// The last page anyone may ask for (deeper pages are refused, not computed).
pub const MAX_PAGE: i64 = 100_000;
/// The longest search text or filter value.
pub const MAX_QUERY_CHARS: usize = 1000;

impl SkillsQuery {
    /// What is wrong with this query, if anything (a page out of range, a value too
    /// long): answered with 400, never sent to the database.
    pub fn problem(&self) -> Option<String> {
        if let Some(page) = self.page
            && !(1..=MAX_PAGE).contains(&page)
        {
            return Some(format!("page must be between 1 and {MAX_PAGE}"));
        }
        if let Some(limit) = self.limit
            && !(1..=200).contains(&limit)
        {
            return Some("limit must be between 1 and 200".into());
        }
        for (name, value) in self.texts() {
            if value
                .as_deref()
                .is_some_and(|v| v.chars().count() > MAX_QUERY_CHARS)
            {
                return Some(format!(
                    "{name} is longer than {MAX_QUERY_CHARS} characters"
                ));
            }
        }
        None
    }

    /// The text values of the query, by name.
    pub fn texts(&self) -> [(&'static str, &Option<String>); 6] {
        [
            ("repo", &self.repo),
            ("q", &self.q),
            ("category", &self.category),
            ("owner", &self.owner),
            ("status", &self.status),
            ("tag", &self.tag),
        ]
    }
}

/// One skill as the search finds it: a row of `/skills`, an entry of `GET /api/skills`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Found {
    pub id: uuid::Uuid,
    pub slug: String,
    pub path: String,
    pub title: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    pub status: String,
    pub sync_status: String,
    /// How many warnings its checks found.
    pub warnings: i32,
    /// Its relevance to `q` (0 without one).
    pub rank: f32,
    /// How many skills match in all (every row says it).
    #[serde(skip)]
    pub total: i64,
}

/// The skills `q` asks for (search ranked by relevance, then filters, one page) and
/// how many match in all. Shared by `/skills` and `GET /api/skills`.
pub async fn search(
    pool: &sqlx::PgPool,
    q: &SkillsQuery,
) -> Result<(i64, Vec<Found>), sqlx::Error> {
    let repo = given(&q.repo).unwrap_or(crate::repos::DEFAULT_REPO);
    let page_no = q.page.unwrap_or(1).clamp(1, MAX_PAGE);
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, 200);
    let rows = sqlx::query_as!(
        Found,
        r#"SELECT id, slug, path, title, description, category, owner, status, tags, sync_status,
                jsonb_array_length(warnings) AS "warnings!", count(*) OVER () AS "total!",
                CASE WHEN $2::text IS NULL THEN 0::real
                     ELSE ts_rank(search, websearch_to_tsquery('simple', $2)) END AS "rank!"
         FROM skills
         WHERE repo = $1
           AND ($2::text IS NULL OR search @@ websearch_to_tsquery('simple', $2))
           AND ($3::text IS NULL OR category = $3)
           AND ($4::text IS NULL OR owner = $4)
           AND ($5::text IS NULL OR status = $5)
           AND ($6::text IS NULL OR $6 = ANY (tags))
         ORDER BY "rank!" DESC, title, slug
         LIMIT $7 OFFSET $8"#,
        repo,
        given(&q.q),
        given(&q.category),
        given(&q.owner),
        given(&q.status),
        given(&q.tag),
        limit,
        (page_no - 1) * limit,
    )
    .fetch_all(pool)
    .await?;
    let total = rows.first().map_or(0, |r| r.total);
    Ok((total, rows))
}
