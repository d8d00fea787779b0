//! `skill://NAME/PATH`: the URIs of the published skills' files (SEP-2640's resource
//! mapping, one segment of skill path: the skill's name). Each segment is written
//! percent-encoded and read back through the index's own segment check, so a `.` or
//! `..` segment, an empty one (an absolute path), an encoded `/`, `\` or NUL, a query
//! or a fragment is refused before anything is looked up; and only the files the
//! index lists for a skill are ever served.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

pub const SCHEME: &str = "skill://";

/// What a path segment keeps encoded: what a URI cannot hold as it is, `/`, and `:`
/// (a namespaced skill's key, `alpha:review`, would read as a host and port in the
/// authority).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b':')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The URI of the file `path` (inside the skill's folder) of the skill `name`.
pub fn file(name: &str, path: &str) -> String {
    let mut uri = String::with_capacity(SCHEME.len() + name.len() + path.len() + 1);
    uri.push_str(SCHEME);
    uri.extend(utf8_percent_encode(name, SEGMENT));
    for segment in path.split('/') {
        uri.push('/');
        uri.extend(utf8_percent_encode(segment, SEGMENT));
    }
    uri
}

/// A file a `skill://` URI names.
#[derive(Debug, PartialEq, Eq)]
pub struct FileUri {
    pub name: String,
    pub path: String,
}

/// The skill and file `uri` names, or why it names none.
pub fn parse(uri: &str) -> Result<FileUri, String> {
    let rest = match uri.get(..SCHEME.len()) {
        Some(scheme) if scheme.eq_ignore_ascii_case(SCHEME) => &uri[SCHEME.len()..],
        _ => return Err("not a skill:// URI".into()),
    };
    if rest.contains(['?', '#']) {
        return Err("a skill file's URI has no query or fragment".into());
    }
    let mut segments = rest
        .split('/')
        .map(crate::agents::serve::segment)
        .collect::<Result<Vec<String>, String>>()?;
    if segments.len() < 2 {
        return Err("a skill file's URI is skill://NAME/PATH".into());
    }
    let name = segments.remove(0);
    Ok(FileUri {
        name,
        path: segments.join("/"),
    })
}

/// The skill and directory (inside the skill's folder; empty for the folder itself) a
/// directory URI names: `skill://NAME` or `skill://NAME/DIR`, written without a
/// trailing slash (SEP-2640's directory resources), or why it names none.
pub fn parse_directory(uri: &str) -> Result<FileUri, String> {
    let rest = match uri.get(..SCHEME.len()) {
        Some(scheme) if scheme.eq_ignore_ascii_case(SCHEME) => &uri[SCHEME.len()..],
        _ => return Err("not a skill:// URI".into()),
    };
    if rest.contains(['?', '#']) {
        return Err("a skill directory's URI has no query or fragment".into());
    }
    let mut segments = rest
        .split('/')
        .map(crate::agents::serve::segment)
        .collect::<Result<Vec<String>, String>>()?;
    let name = segments.remove(0);
    Ok(FileUri {
        name,
        path: segments.join("/"),
    })
}

/// The URI of the directory `path` (empty: the skill's folder) of the skill `name`.
pub fn directory(name: &str, path: &str) -> String {
    if path.is_empty() {
        let mut uri = String::from(SCHEME);
        uri.extend(utf8_percent_encode(name, SEGMENT));
        uri
    } else {
        file(name, path)
    }
}

/// The MIME type of a skill file: the HTTP side's content type without parameters.
pub fn mime_type(path: &str, utf8: bool) -> &'static str {
    let full = crate::agents::serve::content_type_of(path, utf8);
    match full.split_once(';') {
        Some((essence, _)) => essence,
        None => full,
    }
}

/// Standard base64 (RFC 4648, padded): the `blob` of a binary file.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_a_skill_and_a_file_in_its_folder() {
        assert_eq!(file("deploy", "SKILL.md"), "skill://deploy/SKILL.md");
        // A namespaced key: no host:port in the authority, and it reads back.
        let uri = file("alpha:review", "SKILL.md");
        assert_eq!(uri, "skill://alpha%3Areview/SKILL.md");
        assert_eq!(
            parse(&uri).unwrap(),
            FileUri {
                name: "alpha:review".into(),
                path: "SKILL.md".into()
            }
        );
        assert_eq!(
            file("deploy", "scripts/run.sh"),
            "skill://deploy/scripts/run.sh"
        );
        assert_eq!(
            file("deploy", "notes/a b#1.md"),
            "skill://deploy/notes/a%20b%231.md"
        );
        for path in ["SKILL.md", "scripts/run.sh", "notes/a b#1.md", "é/ü.txt"] {
            let uri = file("deploy", path);
            assert_eq!(
                parse(&uri),
                Ok(FileUri {
                    name: "deploy".into(),
                    path: path.into()
                }),
                "{uri}"
            );
        }
        assert_eq!(parse("SKILL://deploy/SKILL.md").unwrap().name, "deploy");
    }

    #[test]
    fn traversal_absolute_paths_and_other_schemes_are_refused() {
        for uri in [
            "skill://deploy/../secrets/SKILL.md",
            "skill://deploy/%2e%2e/x",
            "skill://deploy/%2E%2E/%2E%2E/etc/passwd",
            "skill://deploy/scripts/..%2F..%2Fx",
            "skill://deploy/..%5C..%5Cx",
            "skill://deploy/./SKILL.md",
            "skill://deploy//etc/passwd",
            "skill:///etc/passwd",
            "skill://../x",
            "skill://deploy/a%00b",
            "skill://deploy/SKILL.md?x=1",
            "skill://deploy/SKILL.md#top",
            "skill://deploy",
            "skill://deploy/",
            "file:///etc/passwd",
            "/etc/passwd",
            "skill:/deploy/SKILL.md",
            "skill://deploy/%ff.md",
        ] {
            assert!(parse(uri).is_err(), "{uri}");
        }
    }

    #[test]
    fn directory_uris_name_a_skill_folder_or_a_folder_in_it() {
        assert_eq!(directory("deploy", ""), "skill://deploy");
        assert_eq!(directory("deploy", "a b/c"), "skill://deploy/a%20b/c");
        for (name, path) in [("deploy", ""), ("deploy", "scripts"), ("deploy", "a b/c")] {
            assert_eq!(
                parse_directory(&directory(name, path)),
                Ok(FileUri {
                    name: name.into(),
                    path: path.into()
                })
            );
        }
        for uri in [
            "skill://deploy/",
            "skill://deploy/scripts/",
            "skill://deploy/..",
            "skill://deploy/%2e%2e",
            "skill://deploy/a%2Fb",
            "skill://..",
            "skill://",
            "skill:///x",
            "skill://deploy?x",
            "file:///etc",
        ] {
            assert!(parse_directory(uri).is_err(), "{uri}");
        }
    }

    #[test]
    fn base64_is_rfc4648() {
        for (raw, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn mime_types_follow_the_files_served_over_http() {
        assert_eq!(mime_type("SKILL.md", true), "text/markdown");
        assert_eq!(mime_type("data.json", true), "application/json");
        assert_eq!(mime_type("scripts/run.sh", true), "text/plain");
        assert_eq!(mime_type("logo.png", false), "application/octet-stream");
        assert_eq!(mime_type("x.md", false), "application/octet-stream");
    }
}
