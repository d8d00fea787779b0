use super::*;

fn skill(old: Option<Value>, new: Option<Value>) -> ChangeSkill {
    ChangeSkill {
        path: "skills/a/x.md".into(),
        slug: "x".into(),
        old_path: None,
        operation: "update".into(),
        title: Some("X".into()),
        description: None,
        status: None,
        frontmatter: new,
        body: Some("a\nb\n".into()),
        old_frontmatter: old,
        old_body: Some("a\n".into()),
        warnings: serde_json::json!([]),
    }
}

#[test]
fn fields_are_those_whose_values_differ() {
    let s = skill(
        Some(serde_json::json!({"title": "X", "tags": ["a"], "owner": "ops"})),
        Some(serde_json::json!({"title": "X", "tags": ["a", "b"], "category": "eng"})),
    );
    let f = fields(&s);
    let names: Vec<&str> = f.iter().map(|f| f.name).collect();
    assert_eq!(names, vec!["category", "owner", "tags"]);
    assert_eq!(f[0].old, None);
    assert_eq!(f[1].new, None);
    assert_eq!(f[2].new, Some(&serde_json::json!(["a", "b"])));
    // A new skill: every field is new.
    let s = skill(None, Some(serde_json::json!({"title": "X"})));
    assert_eq!(fields(&s).len(), 1);
}

#[test]
fn statuses_answered_from_changes() {
    assert_eq!(proposal_state(Some("IN_REVIEW")), Some("IN_REVIEW"));
    assert_eq!(proposal_state(Some("draft")), Some("DRAFT"));
    assert_eq!(proposal_state(Some("PUBLISHED")), None);
    assert_eq!(proposal_state(None), None);
}

#[test]
fn refusals_have_their_status() {
    assert_eq!(
        refusal_status(
            "you are the author of change 1: your own approval or rejection never counts; ask another reviewer"
        ),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        refusal_status("rita has read-only access (role: reader): only writers and admins review"),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        refusal_status("no change 9 in skills"),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        refusal_status(
            "change 1 is merged: it can no longer be approved; open a new change to go on"
        ),
        StatusCode::CONFLICT
    );
}

#[test]
fn removed_lines_come_before_added_ones_within_a_run() {
    use LineKind::*;
    let d = removed_first(vec![
        (Same, "a"),
        (Added, "B"),
        (Added, "C"),
        (Removed, "b"),
        (Same, "d"),
        (Added, "e"),
    ]);
    assert_eq!(
        d,
        vec![
            (Same, "a"),
            (Removed, "b"),
            (Added, "B"),
            (Added, "C"),
            (Same, "d"),
            (Added, "e")
        ]
    );
}

#[test]
fn long_unchanged_runs_are_folded_and_lines_escaped() {
    let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
    let new = "1\n2\n3\n4\n5\n6\n7\n8\n9\n<b>x</b>\n";
    let html = diff_markup("d", &crate::review::diff_lines(old, new)).into_string();
    assert!(html.contains("6 unchanged lines"), "{html}");
    assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
    assert!(html.contains("class=\"del\""), "{html}");
}
