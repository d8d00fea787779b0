//! The `skill://` resources: listed a page at a time, read, and each skill's files.

use super::*;

/// The offset a cursor names (`None`: the first page).
pub(super) fn offset(request: &Option<PaginatedRequestParams>) -> Result<usize, McpError> {
    match request.as_ref().and_then(|r| r.cursor.as_deref()) {
        None => Ok(0),
        Some(c) => c.parse::<usize>().map_err(|_| {
            McpError::invalid_params(format!("`{c}` is not a cursor of this list"), None)
        }),
    }
}

pub(super) fn next_cursor(offset: usize, taken: usize, total: usize) -> Option<String> {
    (offset + taken < total).then(|| (offset + taken).to_string())
}

/// The SEP-2640 entry of `skill`: its `SKILL.md` URI, its frontmatter as the cache
/// holds it, every file with digest and size.
pub(super) fn skill_entry(skill: &Skill) -> rmcp::model::Skill {
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

pub(super) fn file_resource(skill: &Skill, f: &File) -> Resource {
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
    pub(super) async fn list_resources_page(
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

    pub(super) async fn read(
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

    pub(super) async fn list_skills_page(
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

    pub(super) async fn skill_entry_of(
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
    pub(super) async fn directory(
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
