//! The MCP tools: their schemas, `search_skills` and the others, answered from the
//! published skills and the cache's search.

use super::*;

/// A tool's input schema from a JSON literal.
pub(super) fn schema(value: Value) -> Arc<rmcp::model::JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(Default::default()),
    }
}

pub(super) fn tools() -> Vec<Tool> {
    let read_only = ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .idempotent(true)
        .open_world(false);
    vec![
        Tool::new(
            "search_skills",
            "Search the published skills by words in their names, titles, descriptions, tags \
             and text, best matches first. Each hit has the skill's name, description, a \
             snippet of the matching text and the URI of its SKILL.md.",
            schema(json!({
                "type": "object",
                "properties": {
                    "query": {
                        "type": "string",
                        "description": "What to look for: words, \"a phrase\", -excluded, or OR",
                        "minLength": 1,
                        "maxLength": crate::cache::query::MAX_QUERY_CHARS,
                    },
                    "limit": {
                        "type": "integer",
                        "description": "How many hits at most",
                        "minimum": 1,
                        "maximum": MAX_SEARCH_LIMIT,
                        "default": DEFAULT_SEARCH_LIMIT,
                    },
                },
                "required": ["query"],
                "additionalProperties": false,
            })),
        )
        .with_annotations(read_only.clone()),
        Tool::new(
            "get_skill",
            "Get one published skill by name: its SKILL.md text and the list of its files \
             with their sha256 digests, sizes and resource URIs.",
            schema(json!({
                "type": "object",
                "properties": {
                    "name": {
                        "type": "string",
                        "description": "The skill's name (its folder's name)",
                        "minLength": 1,
                        "maxLength": 64,
                    },
                },
                "required": ["name"],
                "additionalProperties": false,
            })),
        )
        .with_annotations(read_only),
    ]
}

/// A tool's answer: `value` as structured content and as its JSON text.
pub(super) fn tool_answer(answer: &impl serde::Serialize) -> CallToolResult {
    let value = serde_json::to_value(answer).unwrap_or_default();
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(value);
    result
}

pub(super) fn tool_refusal(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

pub(super) fn database_error(e: sqlx::Error) -> McpError {
    tracing::error!(error = %e, "MCP: database error");
    McpError::internal_error("database unavailable", None)
}

/// A snippet of each skill's text around what `query` matched, matches in `**`.
pub(super) async fn snippets(
    pool: &sqlx::PgPool,
    repo: &str,
    query: &str,
    slugs: &[&str],
) -> sqlx::Result<std::collections::HashMap<String, String>> {
    if slugs.is_empty() {
        return Ok(Default::default());
    }
    let slugs: Vec<String> = slugs.iter().map(|s| s.to_string()).collect();
    let rows = sqlx::query!(
        r#"SELECT slug, ts_headline('simple', left(body, 20000), websearch_to_tsquery('simple', $2),
                 'MaxWords=30, MinWords=12, MaxFragments=2, FragmentDelimiter=" … ", StartSel=**, StopSel=**')
                 AS "snippet!"
         FROM skills WHERE repo = $1 AND status = 'PUBLISHED' AND slug = ANY($3)"#,
        repo,
        query,
        &slugs,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let snippet = r.snippet.split_whitespace().collect::<Vec<_>>().join(" ");
            (r.slug, snippet)
        })
        .collect())
}

impl Handler {
    pub(super) async fn search_skills(
        &self,
        args: &rmcp::model::JsonObject,
    ) -> Result<CallToolResult, McpError> {
        let query = match args.get("query") {
            Some(Value::String(q)) if !q.trim().is_empty() => q.trim().to_string(),
            Some(Value::String(_)) | None => {
                return Ok(tool_refusal("`query` is required: the words to look for"));
            }
            Some(_) => return Ok(tool_refusal("`query` must be a string")),
        };
        if query.chars().count() > crate::cache::query::MAX_QUERY_CHARS {
            return Ok(tool_refusal(format!(
                "`query` is longer than {} characters",
                crate::cache::query::MAX_QUERY_CHARS
            )));
        }
        if query.chars().any(|c| c.is_control()) {
            return Ok(tool_refusal("`query` must not hold control characters"));
        }
        let limit = match args.get("limit") {
            None | Some(Value::Null) => DEFAULT_SEARCH_LIMIT,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=MAX_SEARCH_LIMIT).contains(&n) => n,
                _ => {
                    return Ok(tool_refusal(format!(
                        "`limit` must be a whole number from 1 to {MAX_SEARCH_LIMIT}"
                    )));
                }
            },
        };
        if let Some(other) = args.keys().find(|k| *k != "query" && *k != "limit") {
            return Ok(tool_refusal(format!(
                "search_skills takes `query` and `limit`, not `{other}`"
            )));
        }
        let published = self.published().await?;
        // The status pages' search, over the published rows; the ones the index
        // leaves out (no Agent Skills name or description) are skipped, so a few
        // more are asked for than wanted.
        let q = crate::cache::query::SkillsQuery {
            repo: Some(self.repo.clone()),
            q: Some(query.clone()),
            category: None,
            owner: None,
            status: Some("PUBLISHED".into()),
            tag: None,
            page: None,
            limit: Some(200),
        };
        let (_, rows) = crate::cache::query::search(&self.state.pool, &q)
            .await
            .map_err(database_error)?;
        let hits: Vec<(Arc<Skill>, f32)> = rows
            .iter()
            .filter_map(|r| {
                published
                    .skills
                    .get(&r.slug)
                    .filter(|s| over_limits(s).is_none())
                    .map(|s| (s.clone(), r.rank))
            })
            .take(limit as usize)
            .collect();
        let slugs: Vec<&str> = hits.iter().map(|(s, _)| s.name.as_str()).collect();
        let snippets = snippets(&self.state.pool, &self.repo, &query, &slugs)
            .await
            .map_err(database_error)?;
        let hits = hits
            .iter()
            .map(|(skill, rank)| Hit {
                name: &skill.name,
                description: &skill.description,
                snippet: snippets.get(&skill.name).cloned().unwrap_or_default(),
                uri: uris::file(&skill.name, crate::skills::rules::SKILL_FILE),
                rank: *rank,
            })
            .collect();
        Ok(tool_answer(&Found {
            repository: &self.repo,
            query: &query,
            hits,
        }))
    }

    pub(super) async fn get_skill_tool(
        &self,
        args: &rmcp::model::JsonObject,
    ) -> Result<CallToolResult, McpError> {
        let name = match args.get("name") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            Some(Value::String(_)) | None => {
                return Ok(tool_refusal("`name` is required: the skill's name"));
            }
            Some(_) => return Ok(tool_refusal("`name` must be a string")),
        };
        if let Some(other) = args.keys().find(|k| *k != "name") {
            return Ok(tool_refusal(format!(
                "get_skill takes `name`, not `{other}`"
            )));
        }
        let published = self.published().await?;
        let Some(skill) = published.skills.get(&name) else {
            return Ok(tool_refusal(self.no_skill(&name)));
        };
        if let Some(why) = over_limits(skill) {
            return Ok(tool_refusal(why));
        }
        let main = &skill.files[0];
        let bytes = self.bytes(&published, main).await?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let files: Vec<SkillFile> = skill
            .files
            .iter()
            .map(|f| SkillFile {
                path: &f.path,
                uri: uris::file(&skill.name, &f.path),
                digest: &f.digest,
                size: f.size,
                mime_type: uris::mime_type(&f.path, f.utf8),
                executable: f.executable,
            })
            .collect();
        let listing = serde_json::to_string_pretty(&Listing { files: &files }).unwrap_or_default();
        let answer = SkillAnswer {
            repository: &self.repo,
            name: &skill.name,
            description: &skill.description,
            uri: uris::file(&skill.name, crate::skills::rules::SKILL_FILE),
            version: (skill.version > 0).then_some(skill.version),
            digest: skill.digest(),
            skill_md: text.clone(),
            files,
        };
        let mut result =
            CallToolResult::success(vec![ContentBlock::text(text), ContentBlock::text(listing)]);
        result.structured_content = Some(serde_json::to_value(&answer).unwrap_or_default());
        Ok(result)
    }
}

/// `search_skills`' answer.
#[derive(serde::Serialize)]
struct Found<'a> {
    repository: &'a str,
    query: &'a str,
    hits: Vec<Hit<'a>>,
}

/// One skill `search_skills` found.
#[derive(serde::Serialize)]
struct Hit<'a> {
    name: &'a str,
    description: &'a str,
    snippet: String,
    uri: String,
    rank: f32,
}

/// `get_skill`'s answer: the skill, its `SKILL.md` and its files.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SkillAnswer<'a> {
    repository: &'a str,
    name: &'a str,
    description: &'a str,
    uri: String,
    /// The skill's current version (`/api/skills/NAME/versions`); absent (null) when
    /// none is recorded for this content yet.
    version: Option<i64>,
    digest: &'a str,
    skill_md: String,
    files: Vec<SkillFile<'a>>,
}

/// `get_skill`'s second text block: the files alone.
#[derive(serde::Serialize)]
struct Listing<'a, 'b> {
    files: &'b [SkillFile<'a>],
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SkillFile<'a> {
    path: &'a str,
    uri: String,
    digest: &'a str,
    size: u64,
    mime_type: &'static str,
    executable: bool,
}
