//! Saving the form: the file composed and proposed as a change through
//! [`crate::edit::submit`]; on a refusal the form again, with the problems, a conflict's
//! difference, or why.

use super::*;

/// `draft` composed and submitted as `user`: 303 to the change's page, or the form
/// again with the problems, the conflict or the refusal.
pub(super) async fn propose(
    s: &HttpState,
    v: &Viewer,
    user: &User,
    repo: &str,
    mut draft: Draft,
    new: bool,
) -> Response {
    // The rules the file is composed and checked with: the tip's.
    let path_ok = edit::check_path(&draft.path);
    let opened = match edit::open_file(
        &s.pool,
        &s.repos,
        repo,
        BRANCH,
        path_ok.is_ok().then_some(draft.path.as_str()),
        None,
    )
    .await
    {
        Ok(o) => o,
        Err(e) => return edit_error_page(v, e),
    };
    let form = Posted {
        viewer: v,
        specs: specs(&opened),
        heading: heading(&draft, new),
        opened: &opened,
        new,
    };
    if let Err(why) = path_ok {
        return form.again(
            &draft,
            None,
            Some(Notice::Refused(why)),
            StatusCode::BAD_REQUEST,
        );
    }
    let content = draft.compose(&form.specs);
    if new && !opened.rules.is_skill(&draft.path) {
        let problems = check(&opened.rules, &draft.path, &content);
        return form.again(
            &draft,
            Some(problems),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    match edit::submit(&s.review, user, repo, change_request(&draft, new, &content)).await {
        Ok(done) => {
            tracing::info!(repo = %repo, change = done.change, user = %v.user, path = %draft.path, "a change proposed from the editor");
            Redirect::to(&format!("/changes/{}?repo={}", done.change, encode(repo))).into_response()
        }
        Err(EditError::Stale { path, .. }) if new && !path.is_empty() => {
            form.again(&draft, None, Some(Notice::Exists), StatusCode::CONFLICT)
        }
        Err(EditError::Stale { path, message, .. }) if path.is_empty() => form.again(
            &draft,
            None,
            Some(Notice::Refused(message)),
            StatusCode::CONFLICT,
        ),
        Err(EditError::Stale { .. }) => form.stale(s, repo, &mut draft, &content).await,
        Err(EditError::Invalid { problems, message }) if problems.is_empty() => form.again(
            &draft,
            None,
            Some(Notice::Refused(message)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(EditError::Invalid { problems, message }) => {
            let problems = problems
                .iter()
                .filter_map(|p| serde_json::to_value(p).ok())
                .collect();
            form.again(
                &draft,
                Some(problems),
                Some(Notice::Refused(format!(
                    "Not saved: {message}. Fix the problems listed and save again."
                ))),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
        Err(EditError::BadRequest(m)) => form.again(
            &draft,
            None,
            Some(Notice::Refused(m)),
            StatusCode::BAD_REQUEST,
        ),
        Err(e) => edit_error_page(v, e),
    }
}

/// The editor's heading: "New skill", or "Edit" and the skill's title (or path).
pub(super) fn heading(draft: &Draft, new: bool) -> String {
    if new {
        return "New skill".to_string();
    }
    let title = ["title", "name"]
        .iter()
        .find_map(|k| draft.values.get(*k).filter(|t| !t.trim().is_empty()));
    format!("Edit {}", title.unwrap_or(&draft.path))
}

/// The edit API's request for the file the editor composed: a change that creates or
/// updates it (from the sha it was opened at).
pub(super) fn change_request(draft: &Draft, new: bool, content: &str) -> ChangeRequest {
    use base64::Engine;
    ChangeRequest {
        title: Some(draft.summary.clone()).filter(|t| !t.is_empty()),
        message: Some(draft.message.clone()).filter(|m| !m.is_empty()),
        branch: None,
        change: None,
        draft: false,
        publish: false,
        files: vec![FileEdit {
            operation: if new {
                Operation::Create
            } else {
                Operation::Update
            },
            path: draft.path.clone(),
            from_path: None,
            content: Some(base64::engine::general_purpose::STANDARD.encode(content.as_bytes())),
            sha: (!new).then(|| draft.sha.clone()),
        }],
    }
}

/// The editor's form as it was posted, to show again.
pub(super) struct Posted<'a> {
    viewer: &'a Viewer,
    opened: &'a edit::Opened,
    specs: Vec<FieldSpec>,
    heading: String,
    new: bool,
}

impl Posted<'_> {
    /// The form again with `draft`, its problems and a notice.
    fn again(
        &self,
        draft: &Draft,
        problems: Option<Vec<Value>>,
        notice: Option<Notice>,
        status: StatusCode,
    ) -> Response {
        self.shown(draft, self.new, problems, notice, status)
    }

    /// The form with `draft`, as a new skill's (its path asked for) when `new`.
    fn shown(
        &self,
        draft: &Draft,
        new: bool,
        problems: Option<Vec<Value>>,
        notice: Option<Notice>,
        status: StatusCode,
    ) -> Response {
        render(
            View {
                viewer: self.viewer,
                repo: &self.opened.repo,
                rules: &self.opened.rules,
                specs: &self.specs,
                draft,
                new,
                heading: self.heading.clone(),
                problems,
                notice,
            },
            status,
        )
    }

    /// The file changed since it was opened: the form again, with what the user
    /// started from and what is there now, ready to save over it.
    async fn stale(&self, s: &HttpState, repo: &str, draft: &mut Draft, content: &str) -> Response {
        let fresh = match edit::open_file(
            &s.pool,
            &s.repos,
            repo,
            BRANCH,
            Some(&draft.path),
            Some(&draft.sha),
        )
        .await
        {
            Ok(o) => o,
            Err(e) => return edit_error_page(self.viewer, e),
        };
        let was = fresh.earlier.unwrap_or_default();
        let (sha, now) = match fresh.file {
            Some((sha, text)) => (sha, Some(text)),
            None => (String::new(), None),
        };
        draft.sha = sha;
        // A deleted file is proposed as a new one on the next save.
        let new_now = draft.sha.is_empty();
        let problems = check(&self.opened.rules, &draft.path, content);
        self.shown(
            draft,
            new_now && self.new,
            Some(problems),
            Some(Notice::Stale { was, now }),
            StatusCode::CONFLICT,
        )
    }
}
