//! What `/mcp` answers, for one repository: the tools, the `skill://` resources, the
//! skills extension's methods and the change notifications. Everything is read from
//! [`crate::agents::Catalog::current`] (the published skills of the default branch),
//! so what an agent sees here is what the discovery index lists, byte for byte.

use super::uris::{self, FileUri};
use crate::agents::index::{File, Published, Skill};
use crate::agents::AgentsState;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetSkillRequestParams,
    GetSkillResult, Implementation, ListResourceTemplatesResult, ListResourcesResult,
    ListSkillsResult, ListToolsResult, PaginatedRequestParams, ReadResourceDirectoryRequestParams,
    ReadResourceDirectoryResult, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate, ServerCapabilities,
    ServerConfig, SkillFrontmatter, SkillResource, SkillResources, SubscriptionFilter, Tool,
    ToolAnnotations,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{json, Value};
use sqlx::Row;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Results `search_skills` gives at most.
pub const MAX_SEARCH_LIMIT: u64 = 50;
/// Results `search_skills` gives when not told.
pub const DEFAULT_SEARCH_LIMIT: u64 = 10;
/// Entries of `resources/list` per page.
pub const RESOURCES_PAGE: usize = 500;
/// Entries of `skills/list` per page.
pub const SKILLS_PAGE: usize = 200;
/// SEP-2640's limit of files per skill (`SKILL.md` included): a skill with more is
/// not served over MCP (the extension's servers SHOULD NOT serve it; no host has to
/// load it).
pub const MAX_SKILL_FILES: usize = 512;
/// SEP-2640's limit of bytes per skill (the sum of its files' sizes), 16 MiB.
pub const MAX_SKILL_BYTES: u64 = 16 * 1024 * 1024;

/// Why `skill` is not served over MCP: more files or bytes than SEP-2640 lets a
/// server serve; `None` when it is within both limits.
pub fn over_limits(skill: &Skill) -> Option<String> {
    let files = skill.files.len();
    let bytes: u64 = skill.files.iter().map(|f| f.size).sum();
    if files <= MAX_SKILL_FILES && bytes <= MAX_SKILL_BYTES {
        return None;
    }
    Some(format!(
        "the skill `{}` is not served over MCP: it has {files} files of {bytes} bytes in all, \
         and the skills extension (SEP-2640) allows at most {MAX_SKILL_FILES} files and \
         {MAX_SKILL_BYTES} bytes (16 MiB) per skill; it is still in the discovery index \
         and in git",
        skill.name
    ))
}

/// How often an open change stream's credential is looked at again when no change
/// comes (at each change it is looked at before the notification is sent).
pub const CREDENTIAL_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a change relay ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The session or stream ended, or the server stops.
    Gone,
    /// The credential it was opened with no longer signs its user in.
    Revoked,
}

/// The server of one MCP session (or, without sessions, of one request) for `repo`.
pub struct Handler {
    state: Arc<AgentsState>,
    repo: String,
    /// What the session or request was signed in with (signed-in mode): its change
    /// streams end when this no longer signs its user in (revoked, expired, the user
    /// removed or their role changed).
    credential: Option<crate::db::credentials::Credential>,
    /// Cancelled when the handler goes, that is when its session ends: the session's
    /// change notifier stops with it.
    gone: CancellationToken,
}

impl Drop for Handler {
    fn drop(&mut self) {
        self.gone.cancel();
    }
}

impl Handler {
    pub fn new(
        state: Arc<AgentsState>,
        repo: String,
        credential: Option<crate::db::credentials::Credential>,
    ) -> Handler {
        Handler {
            state,
            repo,
            credential,
            gone: CancellationToken::new(),
        }
    }

    /// The published skills of the repository now.
    async fn published(&self) -> Result<Arc<Published>, McpError> {
        let s = &self.state;
        match s.catalog.current(&s.pool, &s.repos, &self.repo).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(McpError::invalid_request(
                format!("no repository `{}`", self.repo),
                None,
            )),
            Err(e) => {
                tracing::error!(repo = %self.repo, error = %e, "MCP: published skills unavailable");
                Err(McpError::internal_error(
                    match e {
                        crate::agents::AgentsError::Database(_) => "database unavailable",
                        crate::agents::AgentsError::Git(_) => {
                            "the repository's skills cannot be read now"
                        }
                    },
                    None,
                ))
            }
        }
    }

    /// The bytes of a skill's file.
    async fn bytes(&self, published: &Published, f: &File) -> Result<axum::body::Bytes, McpError> {
        crate::agents::serve::file_bytes(&self.state.repos, &published.repo, f)
            .await
            .map_err(|e| {
                tracing::error!(repo = %published.repo, path = %f.path, error = %e, "MCP: cannot read a skill file");
                McpError::internal_error(e.public(), None)
            })
    }

    /// `result`, counted as an error of `method` when it is one (`/metrics`).
    fn tally<T>(&self, method: &str, result: Result<T, McpError>) -> Result<T, McpError> {
        if result.is_err() {
            self.state.mcp.counters.error(Some(method));
        }
        result
    }

    fn no_skill(&self, name: &str) -> String {
        format!(
            "no published skill `{name}` in repository `{}` (search_skills or skills/list name the ones there are)",
            self.repo
        )
    }

    /// Sends `notifications/resources/list_changed` through `send` each time the
    /// published skills of the repository change, until `until` is cancelled, the
    /// server stops, a send fails (the client is gone) or — with a `credential` — the
    /// credential no longer signs its user in: it is looked at before each
    /// notification and every [`CREDENTIAL_RECHECK`], so a revoked token's stream
    /// gets nothing more and ends.
    async fn relay_changes<F, Fut>(
        mut changes: broadcast::Receiver<String>,
        repo: String,
        until: CancellationToken,
        stop: CancellationToken,
        credential: Option<(sqlx::PgPool, crate::db::credentials::Credential)>,
        send: F,
    ) -> Ended
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let valid = || async {
            let Some((pool, credential)) = &credential else {
                return true;
            };
            match crate::db::credentials::still_valid(pool, credential).await {
                Ok(valid) => valid,
                Err(e) => {
                    // Not confirmed: ended, as the gate would refuse it now; the client
                    // reconnects through the gate.
                    tracing::warn!(error = %e, "MCP: cannot confirm a change stream's credential; ending it");
                    false
                }
            }
        };
        let mut recheck = tokio::time::interval_at(
            tokio::time::Instant::now() + CREDENTIAL_RECHECK,
            CREDENTIAL_RECHECK,
        );
        loop {
            let changed = tokio::select! {
                _ = until.cancelled() => return Ended::Gone,
                _ = stop.cancelled() => return Ended::Gone,
                _ = recheck.tick(), if credential.is_some() => {
                    if !valid().await {
                        return Ended::Revoked;
                    }
                    continue;
                }
                c = changes.recv() => c,
            };
            match changed {
                Ok(r) if r == repo => {}
                Ok(_) => continue,
                // Some were missed: one of them may have been this repository's.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Ended::Gone,
            }
            if !valid().await {
                return Ended::Revoked;
            }
            if !send().await {
                return Ended::Gone;
            }
        }
    }

    /// The pool and credential a change relay looks at (signed-in mode only).
    fn relay_credential(&self) -> Option<(sqlx::PgPool, crate::db::credentials::Credential)> {
        self.credential
            .clone()
            .map(|c| (self.state.pool.clone(), c))
    }
}

/// A tool's input schema from a JSON literal.
fn schema(value: Value) -> Arc<rmcp::model::JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(Default::default()),
    }
}

fn tools() -> Vec<Tool> {
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
fn tool_answer(value: Value) -> CallToolResult {
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(value);
    result
}

fn tool_refusal(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

/// The offset a cursor names (`None`: the first page).
fn offset(request: &Option<PaginatedRequestParams>) -> Result<usize, McpError> {
    match request.as_ref().and_then(|r| r.cursor.as_deref()) {
        None => Ok(0),
        Some(c) => c.parse::<usize>().map_err(|_| {
            McpError::invalid_params(format!("`{c}` is not a cursor of this list"), None)
        }),
    }
}

fn next_cursor(offset: usize, taken: usize, total: usize) -> Option<String> {
    (offset + taken < total).then(|| (offset + taken).to_string())
}

/// The SEP-2640 entry of `skill`: its `SKILL.md` URI, its frontmatter as the cache
/// holds it, every file with digest and size.
fn skill_entry(skill: &Skill) -> rmcp::model::Skill {
    let mut frontmatter = SkillFrontmatter::new(skill.name.clone(), skill.description.clone());
    if let Value::Object(fields) = &skill.frontmatter {
        for (key, value) in fields {
            if key != "name" && key != "description" {
                frontmatter = frontmatter.with_field(key.clone(), value.clone());
            }
        }
    }
    let files = skill
        .files
        .iter()
        .map(|f| SkillResource::new(uris::file(&skill.name, &f.path), f.digest.clone(), f.size))
        .collect();
    rmcp::model::Skill::new(
        uris::file(&skill.name, crate::skills::rules::SKILL_FILE),
        frontmatter,
        SkillResources::Files(files),
    )
}

fn file_resource(skill: &Skill, f: &File) -> Resource {
    let mime = uris::mime_type(&f.path, f.utf8);
    if f.path == crate::skills::rules::SKILL_FILE {
        Resource::new(uris::file(&skill.name, &f.path), skill.name.clone())
            .with_title(format!("{} (SKILL.md)", skill.name))
            .with_description(skill.description.clone())
            .with_mime_type(mime)
            .with_size(f.size)
    } else {
        Resource::new(
            uris::file(&skill.name, &f.path),
            format!("{}/{}", skill.name, f.path),
        )
        .with_description(format!("A file of the skill `{}`", skill.name))
        .with_mime_type(mime)
        .with_size(f.size)
    }
}

impl Handler {
    async fn search_skills(
        &self,
        args: &rmcp::model::JsonObject,
    ) -> Result<CallToolResult, McpError> {
        let query = match args.get("query") {
            Some(Value::String(q)) if !q.trim().is_empty() => q.trim().to_string(),
            Some(Value::String(_)) | None => {
                return Ok(tool_refusal("`query` is required: the words to look for"))
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
                    )))
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
                let slug: String = r.get("slug");
                let rank: f32 = r.get("rank");
                published
                    .skills
                    .get(&slug)
                    .filter(|s| over_limits(s).is_none())
                    .map(|s| (s.clone(), rank))
            })
            .take(limit as usize)
            .collect();
        let slugs: Vec<&str> = hits.iter().map(|(s, _)| s.name.as_str()).collect();
        let snippets = snippets(&self.state.pool, &self.repo, &query, &slugs)
            .await
            .map_err(database_error)?;
        let found: Vec<Value> = hits
            .iter()
            .map(|(skill, rank)| {
                json!({
                    "name": skill.name,
                    "description": skill.description,
                    "snippet": snippets.get(&skill.name).cloned().unwrap_or_default(),
                    "uri": uris::file(&skill.name, crate::skills::rules::SKILL_FILE),
                    "rank": rank,
                })
            })
            .collect();
        Ok(tool_answer(json!({
            "repository": self.repo,
            "query": query,
            "hits": found,
        })))
    }

    async fn get_skill_tool(
        &self,
        args: &rmcp::model::JsonObject,
    ) -> Result<CallToolResult, McpError> {
        let name = match args.get("name") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            Some(Value::String(_)) | None => {
                return Ok(tool_refusal("`name` is required: the skill's name"))
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
        let files: Vec<Value> = skill
            .files
            .iter()
            .map(|f| {
                json!({
                    "path": f.path,
                    "uri": uris::file(&skill.name, &f.path),
                    "digest": f.digest,
                    "size": f.size,
                    "mimeType": uris::mime_type(&f.path, f.utf8),
                    "executable": f.executable,
                })
            })
            .collect();
        let value = json!({
            "repository": self.repo,
            "name": skill.name,
            "description": skill.description,
            "uri": uris::file(&skill.name, crate::skills::rules::SKILL_FILE),
            // The skill's current version (`/api/skills/NAME/versions`); absent when
            // none is recorded for this content yet.
            "version": (skill.version > 0).then_some(skill.version),
            "digest": skill.digest(),
            "skillMd": text,
            "files": files,
        });
        let listing =
            serde_json::to_string_pretty(&json!({ "files": value["files"] })).unwrap_or_default();
        let mut result =
            CallToolResult::success(vec![ContentBlock::text(text), ContentBlock::text(listing)]);
        result.structured_content = Some(value);
        Ok(result)
    }
}

fn database_error(e: sqlx::Error) -> McpError {
    tracing::error!(error = %e, "MCP: database error");
    McpError::internal_error("database unavailable", None)
}

/// A snippet of each skill's text around what `query` matched, matches in `**`.
async fn snippets(
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
    async fn list_resources_page(
        &self,
        request: Option<PaginatedRequestParams>,
    ) -> Result<ListResourcesResult, McpError> {
        let start = offset(&request)?;
        let published = self.published().await?;
        let all: Vec<(&Arc<Skill>, &File)> = published
            .skills
            .values()
            .filter(|s| over_limits(s).is_none())
            .flat_map(|s| s.files.iter().map(move |f| (s, f)))
            .collect();
        let page: Vec<Resource> = all
            .iter()
            .skip(start)
            .take(RESOURCES_PAGE)
            .map(|(s, f)| file_resource(s, f))
            .collect();
        let mut result = ListResourcesResult::with_all_items(Vec::new());
        result.next_cursor = next_cursor(start, page.len(), all.len());
        result.resources = page;
        Ok(result)
    }

    async fn read(
        &self,
        request: ReadResourceRequestParams,
    ) -> Result<ReadResourceResult, McpError> {
        let FileUri { name, path } = uris::parse(&request.uri)
            .map_err(|why| McpError::invalid_params(format!("{}: {why}", request.uri), None))?;
        let published = self.published().await?;
        let Some(skill) = published.skills.get(&name) else {
            return Err(McpError::resource_not_found(self.no_skill(&name), None));
        };
        if let Some(why) = over_limits(skill) {
            return Err(McpError::invalid_params(why, None));
        }
        let Some(f) = skill.file(&path) else {
            return Err(McpError::resource_not_found(
                format!("the skill `{name}` has no file `{path}`"),
                None,
            ));
        };
        let bytes = self.bytes(&published, f).await?;
        let mime = uris::mime_type(&f.path, f.utf8);
        let contents = match std::str::from_utf8(&bytes) {
            Ok(text) => ResourceContents::text(text, request.uri.clone()).with_mime_type(mime),
            Err(_) => ResourceContents::blob(uris::base64(&bytes), request.uri.clone())
                .with_mime_type(mime),
        };
        Ok(ReadResourceResult::new(vec![contents]))
    }

    async fn list_skills_page(
        &self,
        request: Option<PaginatedRequestParams>,
    ) -> Result<ListSkillsResult, McpError> {
        let start = offset(&request)?;
        let published = self.published().await?;
        let served: Vec<&Arc<Skill>> = published
            .skills
            .values()
            .filter(|s| over_limits(s).is_none())
            .collect();
        let page: Vec<rmcp::model::Skill> = served
            .iter()
            .skip(start)
            .take(SKILLS_PAGE)
            .map(|s| skill_entry(s))
            .collect();
        let mut result = ListSkillsResult::with_all_items(Vec::new());
        result.next_cursor = next_cursor(start, page.len(), served.len());
        result.skills = page;
        Ok(result)
    }

    async fn skill_entry_of(
        &self,
        request: GetSkillRequestParams,
    ) -> Result<GetSkillResult, McpError> {
        let unknown =
            || McpError::invalid_params(format!("No skill is served at {}", request.uri), None);
        let FileUri { name, path } = uris::parse(&request.uri)
            .map_err(|why| McpError::invalid_params(format!("{}: {why}", request.uri), None))?;
        if path != crate::skills::rules::SKILL_FILE {
            return Err(unknown());
        }
        let published = self.published().await?;
        let Some(skill) = published.skills.get(&name) else {
            return Err(unknown());
        };
        if let Some(why) = over_limits(skill) {
            return Err(McpError::invalid_params(
                format!("No skill is served at {}: {why}", request.uri),
                None,
            ));
        }
        let entry = skill_entry(skill);
        if entry.uri != request.uri {
            return Err(McpError::invalid_params(
                format!(
                    "No skill is served at {}: its URI is {}",
                    request.uri, entry.uri
                ),
                None,
            ));
        }
        Ok(GetSkillResult::new(entry))
    }

    /// SEP-2640's `resources/directory/read`: the direct children of a skill's folder
    /// (`skill://NAME`) or of a folder in it (`skill://NAME/DIR`), files with the
    /// metadata `resources/list` gives them, folders as `inode/directory`; by name.
    async fn directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
    ) -> Result<ReadResourceDirectoryResult, McpError> {
        let uri = &request.uri;
        let FileUri { name, path } = uris::parse_directory(uri)
            .map_err(|why| McpError::invalid_params(format!("{uri}: {why}"), None))?;
        let start = match request.cursor.as_deref() {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| {
                McpError::invalid_params(format!("`{c}` is not a cursor of this directory"), None)
            })?,
        };
        let published = self.published().await?;
        let no_directory =
            || McpError::invalid_params(format!("No directory is served at {uri}"), None);
        let Some(skill) = published.skills.get(&name) else {
            return Err(no_directory());
        };
        if let Some(why) = over_limits(skill) {
            return Err(McpError::invalid_params(
                format!("No directory is served at {uri}: {why}"),
                None,
            ));
        }
        if skill.file(&path).is_some() {
            return Err(McpError::invalid_params(
                format!("{uri} is not a directory resource"),
                None,
            ));
        }
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        // Child name → its resource; a folder once, however many files it holds.
        let mut children: std::collections::BTreeMap<String, Resource> = Default::default();
        for f in &skill.files {
            let Some(rest) = f.path.strip_prefix(&prefix) else {
                continue;
            };
            match rest.split_once('/') {
                None => {
                    children.insert(rest.to_string(), file_resource(skill, f));
                }
                Some((folder, _)) => {
                    children.entry(folder.to_string()).or_insert_with(|| {
                        Resource::new(
                            uris::directory(&skill.name, &format!("{prefix}{folder}")),
                            folder.to_string(),
                        )
                        .with_mime_type(rmcp::model::DIRECTORY_MIME_TYPE)
                    });
                }
            }
        }
        // A folder exists when a file is in it; the skill's own folder always does.
        if children.is_empty() && !path.is_empty() {
            return Err(no_directory());
        }
        let total = children.len();
        let page: Vec<Resource> = children
            .into_values()
            .skip(start)
            .take(RESOURCES_PAGE)
            .collect();
        let mut result = ReadResourceDirectoryResult::with_all_items(Vec::new());
        result.next_cursor = next_cursor(start, page.len(), total);
        result.resources = page;
        Ok(result)
    }
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_list_changed()
            // SEP-2640: `skills/list`, `skills/get` and `resources/directory/read`.
            .enable_skills_with_directory_read()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("skillsd", env!("CARGO_PKG_VERSION")))
            .with_instructions(format!(
                "The published skills of the skillsd repository `{}` (the default branch, as \
                 its last accepted push left it). Find one with search_skills, read it with \
                 get_skill or as the resource skill://NAME/SKILL.md; its other files are \
                 skill://NAME/PATH. Every file's sha256 digest is in skills/list.",
                self.repo
            ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = request.arguments.unwrap_or_default();
        let result = match request.name.as_ref() {
            "search_skills" => self.search_skills(&args).await,
            "get_skill" => self.get_skill_tool(&args).await,
            other => Err(McpError::invalid_params(
                format!("no tool `{other}`: the tools are search_skills and get_skill"),
                None,
            )),
        };
        let result = self.tally("tools/call", result)?;
        if result.is_error == Some(true) {
            self.state.mcp.counters.error(Some("tools/call"));
        }
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let result = self.list_resources_page(request).await;
        self.tally("resources/list", result)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new("skill://{name}/SKILL.md", "skill")
                .with_title("A published skill's SKILL.md")
                .with_description("The instructions of the published skill NAME")
                .with_mime_type("text/markdown"),
            ResourceTemplate::new("skill://{name}/{+path}", "skill-file")
                .with_title("A file of a published skill")
                .with_description(
                    "The file PATH (inside the skill's folder) of the published skill NAME",
                ),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let result = self.read(request).await;
        self.tally("resources/read", result).map(Into::into)
    }

    async fn read_resource_directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceDirectoryResult, McpError> {
        let result = self.directory(request).await;
        self.tally("resources/directory/read", result)
    }

    async fn list_skills(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListSkillsResult, McpError> {
        let result = self.list_skills_page(request).await;
        self.tally("skills/list", result)
    }

    async fn get_skill(
        &self,
        request: GetSkillRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetSkillResult, McpError> {
        let result = self.skill_entry_of(request).await;
        self.tally("skills/get", result)
    }

    // Handshake-era sessions: a task per session sends `list_changed` on its stream.
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let mcp = &self.state.mcp;
        let changes = mcp.changes();
        let peer = context.peer;
        // The session, to close when its credential is revoked.
        let session: Option<rmcp::transport::streamable_http_server::session::SessionId> = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .map(Into::into);
        let relay = Self::relay_changes(
            changes,
            self.repo.clone(),
            self.gone.clone(),
            mcp.stopping(),
            self.relay_credential(),
            move || {
                let peer = peer.clone();
                async move { peer.notify_resource_list_changed().await.is_ok() }
            },
        );
        let state = self.state.clone();
        tokio::spawn(async move {
            if relay.await == Ended::Revoked {
                tracing::info!("MCP: a session's credential was revoked; closing the session");
                if let Some(id) = session {
                    use rmcp::transport::streamable_http_server::session::SessionManager;
                    if let Err(e) = state.mcp.sessions.close_session(&id).await {
                        tracing::debug!(error = %e, "closing a revoked MCP session");
                    }
                }
            }
        });
    }

    // 2026-07-28 (no sessions): `subscriptions/listen` streams.
    fn accepted_subscription_filter(
        &self,
        _requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(
            SubscriptionFilter::builder()
                .resources_list_changed()
                .build(),
        )
    }

    async fn listen(&self, subscription: SubscriptionContext) -> Result<(), McpError> {
        let mcp = &self.state.mcp;
        let Some(_place) = mcp.admit_listener() else {
            // Refused before rmcp acknowledged it, unless another came in between.
            return Err(McpError::internal_error(
                super::too_many_listeners(mcp.limits().max_sessions),
                None,
            ));
        };
        let ended = CancellationToken::new();
        let sink = subscription.sink().clone();
        let relay = Self::relay_changes(
            mcp.changes(),
            self.repo.clone(),
            ended.clone(),
            mcp.stopping(),
            self.relay_credential(),
            move || {
                let sink = sink.clone();
                async move { sink.notify_resource_list_changed().await.is_ok() }
            },
        );
        tokio::select! {
            _ = subscription.cancelled() => {}
            ended = relay => if ended == Ended::Revoked {
                tracing::info!("MCP: a change subscription's credential was revoked; ending it");
            }
        }
        ended.cancel();
        Ok(())
    }
}
