//! What `/mcp` answers, for one repository: the tools, the `skill://` resources, the
//! skills extension's methods and the change notifications. Everything is read from
//! [`crate::agents::Catalog::current`] (the published skills of the default branch),
//! so what an agent sees here is what the discovery index lists, byte for byte.

use super::uris::{self, FileUri};
use crate::agents::AgentsState;
use crate::agents::index::{File, Published, Skill};
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
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

mod resources;
mod tools;

use tools::tools;

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
