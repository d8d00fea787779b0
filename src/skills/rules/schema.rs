//! The frontmatter schema: the built-in ones, a repository's own compiled within
//! bounds on its shape (size, references) so that a hostile schema costs little.

use super::{AGENT_SKILLS_SCHEMA, FLAT_SCHEMA, Layout, Schema};
use crate::skills::skill::{Check, Problem};

pub(super) fn builtin_schema(layout: Layout) -> Schema {
    let text = match layout {
        Layout::Flat => FLAT_SCHEMA,
        Layout::AgentSkills => AGENT_SKILLS_SCHEMA,
    };
    let document: serde_json::Value =
        serde_json::from_str(text).expect("the built-in schemas are valid JSON");
    let validator = compile(&document).expect("the built-in schemas compile");
    Schema {
        validator,
        document,
    }
}

/// Compiles a schema the repository supplies. Its shape is checked first
/// ([`check_schema_shape`]); the compiler then runs on a thread of its own with a large
/// stack, as jsonschema compiles some keywords (`unevaluatedProperties` through
/// `$ref`s) by recursion: a stack overflow cannot be caught and would end the server.
pub(super) fn compile(document: &serde_json::Value) -> Result<jsonschema::Validator, String> {
    check_schema_shape(document)?;
    let build = || {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(document)
            .map_err(|e| {
                let at = e.instance_path().as_str();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("at `{at}`: {e}")
                }
            })
    };
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("schema-compile".into())
            .stack_size(COMPILE_STACK_BYTES)
            .spawn_scoped(scope, build)
            .map_err(|e| format!("cannot compile the schema: {e}"))?
            .join()
            .map_err(|_| "the schema could not be compiled".to_string())?
    })
}

/// Stack of the thread that compiles a schema (virtual memory: only what is used is
/// resident).
const COMPILE_STACK_BYTES: usize = 64 * 1024 * 1024;
/// Most JSON values in a schema, `$ref`s in it, `$ref`s followed one after another,
/// and ways through its `$ref`s from the root (each is a validation path).
const MAX_SCHEMA_NODES: usize = 20_000;
const MAX_SCHEMA_REFS: usize = 1_000;
const MAX_REF_DEPTH: usize = 32;
const MAX_REF_PATHS: u64 = 10_000;

/// Refuses a schema whose `$ref`s would make compiling or validating it explode: a
/// chain of thousands (recursion in the compiler), branches that multiply
/// (`{"oneOf": [{"$ref": "#/$defs/a1"}, {"$ref": "#/$defs/a1"}]}` repeated: the
/// validator walks every way through, 2^n), or a `$ref` that leads back to itself.
/// Walked with explicit stacks.
pub fn check_schema_shape(document: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    // Every `$ref` to a place in this document: (where it is, where it points).
    let mut refs: Vec<(String, String)> = Vec::new();
    let mut nodes = 0usize;
    let mut stack = vec![(document, String::new())];
    while let Some((value, at)) = stack.pop() {
        nodes += 1;
        if nodes > MAX_SCHEMA_NODES {
            return Err(format!(
                "the schema has more than {MAX_SCHEMA_NODES} values; keep it smaller"
            ));
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if (key == "$ref" || key == "$dynamicRef")
                        && let Some(target) = child.as_str().and_then(local_pointer)
                    {
                        refs.push((at.clone(), target));
                    }
                    stack.push((
                        child,
                        format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")),
                    ));
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    stack.push((child, format!("{at}/{i}")));
                }
            }
            _ => {}
        }
    }
    if refs.len() > MAX_SCHEMA_REFS {
        return Err(format!(
            "the schema has {} `$ref`s, more than {MAX_SCHEMA_REFS}",
            refs.len()
        ));
    }
    // The `$ref` targets found under a place (itself included).
    let under = |place: &str| -> Vec<String> {
        refs.iter()
            .filter(|(at, _)| at == place || at.starts_with(&format!("{place}/")))
            .map(|(_, target)| target.clone())
            .collect()
    };
    // Ways through the `$ref`s from each place, depth first with an explicit stack.
    let mut ways: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut on_path: Vec<String> = Vec::new();
    // (place, its targets, next target, ways so far)
    let mut frames: Vec<(String, Vec<String>, usize, u64)> = vec![(String::new(), under(""), 0, 1)];
    on_path.push(String::new());
    while let Some(frame) = frames.last_mut() {
        if frame.2 == frame.1.len() {
            let (place, _, _, total) = frames.pop().expect("a frame");
            on_path.pop();
            ways.insert(place, total);
            if let Some(parent) = frames.last_mut() {
                parent.3 = parent.3.saturating_add(total);
                if parent.3 > MAX_REF_PATHS {
                    return Err(format!(
                        "the schema's `$ref`s branch into more than {MAX_REF_PATHS} ways to check a value; validating would take too long"
                    ));
                }
            }
            continue;
        }
        let target = frame.1[frame.2].clone();
        frame.2 += 1;
        if let Some(w) = ways.get(&target) {
            frame.3 = frame.3.saturating_add(*w);
            if frame.3 > MAX_REF_PATHS {
                return Err(format!(
                    "the schema's `$ref`s branch into more than {MAX_REF_PATHS} ways to check a value; validating would take too long"
                ));
            }
            continue;
        }
        if on_path
            .iter()
            .any(|p| *p == target || p.starts_with(&format!("{target}/")))
        {
            return Err(format!(
                "`$ref` `#{target}` leads back to itself; recursive schemas are not supported"
            ));
        }
        if frames.len() > MAX_REF_DEPTH {
            return Err(format!(
                "the schema's `$ref`s are chained more than {MAX_REF_DEPTH} deep"
            ));
        }
        on_path.push(target.clone());
        let targets = under(&target);
        frames.push((target, targets, 0, 1));
    }
    Ok(())
}

/// The JSON pointer of a `$ref` to this document (`#` or `#/...`), else `None`.
fn local_pointer(reference: &str) -> Option<String> {
    let fragment = reference.strip_prefix('#')?;
    (fragment.is_empty() || fragment.starts_with('/')).then(|| fragment.to_string())
}

pub(super) fn load_schema(path: &str, bytes: &[u8], problems: &mut Vec<Problem>) -> Option<Schema> {
    let document: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            problems.push(
                Problem::new(
                    Check::Rules,
                    path,
                    format!("the schema is not valid JSON: {e}"),
                )
                .at(e.line().max(1) as u32, Some(e.column().max(1) as u32))
                .hint("fix the JSON syntax"),
            );
            return None;
        }
    };
    if let Some(declared) = document.get("$schema") {
        let ok = declared.as_str().is_some_and(|s| {
            s.trim_end_matches('#') == "https://json-schema.org/draft/2020-12/schema"
        });
        if !ok {
            problems.push(
                Problem::new(
                    Check::Rules,
                    path,
                    format!("`$schema` is {declared}, not draft 2020-12"),
                )
                .field("$schema")
                .hint("set \"$schema\": \"https://json-schema.org/draft/2020-12/schema\""),
            );
            return None;
        }
    }
    if !document.is_object() && !document.is_boolean() {
        problems.push(
            Problem::new(Check::Rules, path, "the schema must be a JSON object")
                .hint("start from rules/flat.schema.json in the skills template"),
        );
        return None;
    }
    match compile(&document) {
        Ok(validator) => Some(Schema {
            validator,
            document,
        }),
        Err(e) => {
            problems.push(
                Problem::new(
                    Check::Rules,
                    path,
                    format!("the schema is not a valid JSON Schema: {e}"),
                )
                .hint("check it against draft 2020-12; remote `$ref`s are not fetched"),
            );
            None
        }
    }
}
