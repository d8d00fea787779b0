//! What a push or a change tells webhooks: the events enqueued in the transaction that
//! makes them, each with its payload (GitHub's push shape: refs, commits, the skills it
//! changed).

use super::*;

/// One ref a push moved (`None`: created or deleted).
pub struct RefMove<'a> {
    pub name: &'a str,
    pub old: Option<ObjectId>,
    pub new: Option<ObjectId>,
}

/// An accepted push, as its webhooks are told of it.
pub struct PushEvent<'a> {
    pub repo: &'a str,
    pub push_id: Uuid,
    pub pusher: &'a str,
    pub default_branch: &'a str,
    /// The default branch's tip before the push (what a new branch is compared with).
    pub default_tip: Option<ObjectId>,
    pub refs: Vec<RefMove<'a>>,
}

/// Writes a delivery for every webhook of the repository that wants this push, inside
/// the push's transaction (`view` sees the pushed objects). Returns how many.
pub async fn enqueue(
    tx: &mut PgConnection,
    view: &gix::Repository,
    event: &PushEvent<'_>,
) -> Result<usize> {
    let hooks: Vec<(i64, Vec<String>)> = sqlx::query!(
        "SELECT id, events FROM webhooks WHERE repo = $1",
        event.repo
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.id, r.events))
    .collect();
    if hooks.is_empty() {
        return Ok(0);
    }
    let default_ref = format!("refs/heads/{}", event.default_branch);
    let (skills, skills_total) = skills_of(tx, event.push_id).await?;
    let mut rows: Vec<(i64, &str, String)> = Vec::new();
    for r in &event.refs {
        let on_default = r.name == default_ref;
        let body = payload(
            view,
            event,
            r,
            on_default.then_some((&skills, skills_total)),
        )?;
        let text = serde_json::to_string(&body).unwrap_or_default();
        for (id, events) in &hooks {
            if events.iter().any(|e| e == "push") {
                rows.push((*id, "push", text.clone()));
            }
            if on_default && skills_total > 0 && events.iter().any(|e| e == "skills") {
                rows.push((*id, "skills", text.clone()));
            }
        }
    }
    let n = rows.len();
    let mut ids = Vec::with_capacity(n);
    let mut hook_ids = Vec::with_capacity(n);
    let mut kinds: Vec<String> = Vec::with_capacity(n);
    let mut bodies = Vec::with_capacity(n);
    for (hook, kind, body) in rows {
        ids.push(Uuid::new_v4());
        hook_ids.push(hook);
        kinds.push(kind.to_string());
        bodies.push(body);
    }
    sqlx::query!(
        "INSERT INTO webhook_deliveries (id, webhook_id, event, push_id, payload)
         SELECT u.id, u.hook, u.event, $1, u.payload
         FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::text[]) AS u(id, hook, event, payload)",
        event.push_id,
        &ids,
        &hook_ids,
        &kinds,
        &bodies,
    )
    .execute(&mut *tx)
    .await?;
    if n > 0 {
        sqlx::query!("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    Ok(n)
}

/// Writes a `change` delivery for every webhook of the repository of the change whose
/// row is `change_id` (`action`: opened, updated, approved, rejected, marked ready,
/// merged, abandoned), in the caller's transaction, with the change as that
/// transaction sees it (its state after the action). Returns how many.
pub async fn enqueue_change(
    tx: &mut PgConnection,
    change_id: i64,
    action: &str,
    sender: &str,
) -> Result<usize> {
    struct Change {
        repo: String,
        number: i32,
        title: String,
        target: String,
        author: String,
        topic: Option<String>,
        state: String,
        patch_set: i32,
    }
    let change = sqlx::query_as!(
        Change,
        r#"SELECT c.repo, c.number, c.title, c.target, c.author, c.topic, c.state,
                coalesce((SELECT max(number) FROM change_patch_sets p WHERE p.change_id = c.id), 0)
                  AS "patch_set!"
         FROM changes c WHERE c.id = $1"#,
        change_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let hooks: Vec<i64> = sqlx::query_scalar!(
        "SELECT id FROM webhooks WHERE repo = $1 AND 'change' = ANY(events)",
        change.repo
    )
    .fetch_all(&mut *tx)
    .await?;
    if hooks.is_empty() {
        return Ok(0);
    }
    let body = serde_json::to_string(&body::ChangeEvent {
        action: action.replace(' ', "_"),
        change: body::Change {
            number: change.number,
            title: &change.title,
            target: &change.target,
            author: &change.author,
            topic: change.topic.as_deref(),
            state: &change.state,
            patch_set: change.patch_set,
            reference: format!("refs/changes/{}/head", change.number),
        },
        repository: body::Repository {
            name: &change.repo,
            full_name: None,
            default_branch: None,
        },
        sender: body::Sender { login: sender },
    })
    .unwrap_or_default();
    let ids: Vec<Uuid> = hooks.iter().map(|_| Uuid::new_v4()).collect();
    sqlx::query!(
        "INSERT INTO webhook_deliveries (id, webhook_id, event, payload)
         SELECT u.id, u.hook, 'change', $3 FROM unnest($1::uuid[], $2::bigint[]) AS u(id, hook)",
        &ids,
        &hooks,
        body,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
        .execute(&mut *tx)
        .await?;
    Ok(hooks.len())
}

/// The skills the push's cache sync wrote (its sync-log rows), and how many in all.
pub(super) async fn skills_of(
    tx: &mut PgConnection,
    push: Uuid,
) -> sqlx::Result<(Vec<body::Skill>, i64)> {
    let total: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM skill_sync_log WHERE push_id = $1"#,
        push
    )
    .fetch_one(&mut *tx)
    .await?;
    let rows = sqlx::query!(
        "SELECT skill_id, slug, path, operation, status, error, git_commit_sha
         FROM skill_sync_log WHERE push_id = $1 ORDER BY id LIMIT $2",
        push,
        MAX_SKILLS,
    )
    .fetch_all(&mut *tx)
    .await?;
    let skills = rows
        .into_iter()
        .map(|r| body::Skill {
            id: r.skill_id,
            slug: r.slug,
            path: r.path,
            operation: r.operation,
            status: r.status,
            error: r.error,
            commit: r.git_commit_sha,
        })
        .collect();
    Ok((skills, total))
}

/// The body of a push event for one ref.
pub(super) fn payload<'a>(
    view: &gix::Repository,
    event: &'a PushEvent<'_>,
    r: &'a RefMove<'_>,
    skills: Option<(&'a [body::Skill], i64)>,
) -> Result<body::Push<'a>> {
    let (commits, truncated) = match r.new {
        Some(new) => {
            // A new branch: the commits the default branch did not have.
            let hidden: Vec<ObjectId> = r.old.or(event.default_tip).into_iter().collect();
            commits(view, new, &hidden)?
        }
        None => (Vec::new(), false),
    };
    let head = match r.new {
        Some(new) => commit_json(view, peel(view, new)).ok(),
        None => None,
    };
    let (skills, skills_total) = skills.unwrap_or((&[], 0));
    Ok(body::Push {
        reference: r.name,
        before: r.old.map(|o| o.to_string()).unwrap_or_else(|| ZERO.into()),
        after: r.new.map(|o| o.to_string()).unwrap_or_else(|| ZERO.into()),
        created: r.old.is_none(),
        deleted: r.new.is_none(),
        repository: body::Repository {
            name: event.repo,
            full_name: Some(event.repo),
            default_branch: Some(event.default_branch),
        },
        pusher: body::Pusher { name: event.pusher },
        sender: body::Sender {
            login: event.pusher,
        },
        push_id: event.push_id,
        commits,
        commits_truncated: truncated,
        head_commit: head,
        skills,
        skills_total,
    })
}

/// An annotated tag's commit (the commit itself otherwise).
pub(super) fn peel(view: &gix::Repository, id: ObjectId) -> ObjectId {
    crate::storage::peeled(view, id).unwrap_or(id)
}

/// The commits reachable from `tip` and not from `hidden`: the newest
/// [`MAX_COMMITS`], oldest first; and whether there were more.
pub(super) fn commits(
    view: &gix::Repository,
    tip: ObjectId,
    hidden: &[ObjectId],
) -> Result<(Vec<body::Commit>, bool)> {
    let tip = peel(view, tip);
    if view.find_header(tip).ok().map(|h| h.kind()) != Some(gix::object::Kind::Commit) {
        return Ok((Vec::new(), false));
    }
    let walk = view
        .rev_walk([tip])
        .with_hidden(hidden.iter().copied())
        .all()
        .map_err(DeliverError::git)?;
    let mut out = Vec::new();
    let mut truncated = false;
    for info in walk {
        let info = info.map_err(DeliverError::git)?;
        if out.len() == MAX_COMMITS {
            truncated = true;
            break;
        }
        out.push(commit_json(view, info.id)?);
    }
    out.reverse();
    Ok((out, truncated))
}

pub(super) fn commit_json(view: &gix::Repository, id: ObjectId) -> Result<body::Commit> {
    let commit = view.find_commit(id).map_err(DeliverError::git)?;
    let c = commit.decode().map_err(DeliverError::git)?;
    let person = |s: gix::actor::SignatureRef<'_>| body::Person {
        name: s.name.to_string(),
        email: s.email.to_string(),
    };
    let author = c.author().map_err(DeliverError::git)?;
    let committer = c.committer().map_err(DeliverError::git)?;
    let time = author.time().map_err(DeliverError::git)?;
    let timestamp = chrono::FixedOffset::east_opt(time.offset)
        .and_then(|tz| DateTime::from_timestamp(time.seconds, 0).map(|t| t.with_timezone(&tz)))
        .map(|t| t.to_rfc3339());
    Ok(body::Commit {
        id: id.to_string(),
        tree_id: c.tree().to_string(),
        distinct: true,
        message: c.message.to_string(),
        timestamp,
        author: person(author),
        committer: person(committer),
    })
}
