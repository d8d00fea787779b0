//! The checks `git fsck --strict` makes of a single object, applied to every commit,
//! tree and tag a push brings (the connectivity walk calls them on each new object).
//!
//! gix parses objects leniently and has no fsck of object contents (`gix-fsck` checks
//! connectivity only), so these follow git's own `fsck.c` message by message, with
//! its message ids: an object git's `receive.fsckObjects` or `transfer.fsckObjects`
//! would refuse — as GitHub and most hosts set it, so a push mirror would fail for
//! ever — is refused here before any ref can name it. Strict mode: what git calls a
//! warning (`hasDotgit`, `zeroPaddedFilemode`, `nullSha1`, …) is an error too, as
//! `--strict` and `receive.fsckObjects` make it.
//!
//! What is checked:
//! * every header of a commit or tag ends before a NUL, and the header block ends
//!   (`nulInHeader`, `unterminatedHeader`); a commit holds no NUL at all
//!   (`nulInCommit`);
//! * a commit has one `tree`, well-formed `parent`s, one `author` and one `committer`
//!   (`missingTree`, `badTreeSha1`, `badParentSha1`, `missingAuthor`,
//!   `multipleAuthors`, `missingCommitter`);
//! * a tag has `object`, `type` (a real type), `tag` and, if any, a valid `tagger`
//!   (`missingObject`, `badObjectSha1`, `missingTypeEntry`, `badType`,
//!   `missingTagEntry`);
//! * every identity is `Name <email> seconds ±hhmm` (`missingNameBeforeEmail`,
//!   `badName`, `missingEmail`, `missingSpaceBeforeEmail`, `badEmail`,
//!   `missingSpaceBeforeDate`, `zeroPaddedDate`, `badDateOverflow`, `badDate`,
//!   `badTimezone`);
//! * a tree's entries have a known mode without zero padding, a name that is not
//!   empty, `.`, `..`, `.git` (in any spelling a case-insensitive, HFS+ or NTFS file
//!   system folds to it) nor holds a `/`, a non-null id, no duplicates, in git's
//!   order (`badFilemode`, `zeroPaddedFilemode`, `emptyName`, `hasDot`, `hasDotdot`,
//!   `hasDotgit`, `fullPathname`, `nullSha1`, `duplicateEntries`, `treeNotSorted`,
//!   `gitmodulesSymlink`).
//!
//! That an entry's mode agrees with the type of the object it names, and a tag's
//! `type` with its object, needs the object store: the connectivity walk checks those
//! ([`crate::receive::connectivity`]).

use gix::bstr::{BStr, ByteSlice};
use gix::object::Kind;

/// Why git's fsck would refuse an object: its message id and what it means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({id})")]
pub struct FsckError {
    /// git's message id (`badTimezone`), as `git fsck` and a host's refusal name it.
    pub id: &'static str,
    pub message: String,
}

fn fail<T>(id: &'static str, message: impl Into<String>) -> Result<T, FsckError> {
    Err(FsckError {
        id,
        message: message.into(),
    })
}

/// What a tree entry's mode says it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Blob,
    Tree,
    /// A submodule's commit: not ours to have.
    Commit,
}

/// One entry of a tree, as its bytes hold it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub kind: EntryKind,
    pub name: &'a [u8],
    pub id: gix::ObjectId,
}

/// The header block (up to the first empty line) holds no NUL and ends.
fn verify_headers(data: &[u8]) -> Result<&[u8], FsckError> {
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            0 => {
                return fail(
                    "nulInHeader",
                    format!("unterminated header: NUL at offset {i}"),
                );
            }
            b'\n' if data.get(i + 1) == Some(&b'\n') => return Ok(&data[..=i]),
            _ => {}
        }
        i += 1;
    }
    // No empty line: an object without a message, whose last header line ends.
    if data.last() == Some(&b'\n') {
        return Ok(data);
    }
    fail("unterminatedHeader", "unterminated header")
}

/// `data` starts with `field` followed by 40 hex digits and a newline: the rest.
fn hex_line<'a>(
    data: &'a [u8],
    field: &str,
    missing: &'static str,
    bad: &'static str,
    what: &str,
) -> Result<(gix::ObjectId, &'a [u8]), FsckError> {
    let Some(rest) = data.strip_prefix(field.as_bytes()) else {
        return fail(missing, format!("invalid format - expected '{field}' line"));
    };
    let id = rest
        .get(..40)
        .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
        .and_then(|h| gix::ObjectId::from_hex(h).ok());
    match (id, rest.get(40)) {
        (Some(id), Some(b'\n')) => Ok((id, &rest[41..])),
        _ => fail(
            bad,
            format!("invalid '{}' line format - bad {what}", field.trim_end()),
        ),
    }
}

/// One identity line's value (`Name <email> seconds ±hhmm\n`) at the start of
/// `data`: the rest after its newline.
fn ident(data: &[u8]) -> Result<&[u8], FsckError> {
    let end = data.find_byte(b'\n').unwrap_or(data.len());
    let rest = data.get(end + 1..).unwrap_or_default();
    // With its newline, so that the checks below see where it ends.
    let line = &data[..(end + 1).min(data.len())];
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    const WHAT: &str = "invalid author/committer line";
    if at(0) == b'<' {
        return fail(
            "missingNameBeforeEmail",
            format!("{WHAT} - missing space before email"),
        );
    }
    let stop = |from: usize| {
        from + line[from..]
            .iter()
            .position(|b| matches!(b, b'<' | b'>' | b'\n'))
            .unwrap_or(line.len() - from)
    };
    let mut p = stop(0);
    if at(p) == b'>' {
        return fail("badName", format!("{WHAT} - bad name"));
    }
    if at(p) != b'<' {
        return fail("missingEmail", format!("{WHAT} - missing email"));
    }
    if p == 0 || at(p - 1) != b' ' {
        return fail(
            "missingSpaceBeforeEmail",
            format!("{WHAT} - missing space before email"),
        );
    }
    p = stop(p + 1);
    if at(p) != b'>' {
        return fail("badEmail", format!("{WHAT} - bad email"));
    }
    p += 1;
    if at(p) != b' ' {
        return fail(
            "missingSpaceBeforeDate",
            format!("{WHAT} - missing space before date"),
        );
    }
    p += 1;
    if !at(p).is_ascii_digit() {
        return fail("badDate", format!("{WHAT} - bad date"));
    }
    if at(p) == b'0' && at(p + 1) != b' ' {
        return fail("zeroPaddedDate", format!("{WHAT} - zero-padded date"));
    }
    let digits = line[p..].iter().take_while(|b| b.is_ascii_digit()).count();
    // git reads the date as an unsigned number and refuses what a signed 64-bit
    // time cannot hold.
    let fits = std::str::from_utf8(&line[p..p + digits])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .is_some_and(|t| t < i64::MAX as u64);
    if !fits {
        return fail(
            "badDateOverflow",
            format!("{WHAT} - date causes integer overflow"),
        );
    }
    p += digits;
    if at(p) != b' ' {
        return fail("badDate", format!("{WHAT} - bad date"));
    }
    p += 1;
    if !matches!(at(p), b'+' | b'-')
        || !(1..=4).all(|i| at(p + i).is_ascii_digit())
        || at(p + 5) != b'\n'
    {
        return fail("badTimezone", format!("{WHAT} - bad time zone"));
    }
    Ok(rest)
}

/// A commit's bytes, as `git fsck --strict` checks them.
pub fn commit(data: &[u8]) -> Result<(), FsckError> {
    let headers = verify_headers(data)?;
    let (_, mut rest) = hex_line(headers, "tree ", "missingTree", "badTreeSha1", "tree sha1")?;
    while rest.starts_with(b"parent ") {
        (_, rest) = hex_line(
            rest,
            "parent ",
            "badParentSha1",
            "badParentSha1",
            "parent sha1",
        )?;
    }
    let mut authors = 0;
    while let Some(after) = rest.strip_prefix(b"author ") {
        authors += 1;
        rest = ident(after)?;
    }
    match authors {
        0 => return fail("missingAuthor", "invalid format - expected 'author' line"),
        1 => {}
        _ => {
            return fail(
                "multipleAuthors",
                "invalid format - multiple 'author' lines",
            );
        }
    }
    let Some(after) = rest.strip_prefix(b"committer ") else {
        return fail(
            "missingCommitter",
            "invalid format - expected 'committer' line",
        );
    };
    ident(after)?;
    if let Some(at) = data.find_byte(0) {
        return fail(
            "nulInCommit",
            format!("NUL byte in the commit object body at offset {at}"),
        );
    }
    // git ignores header lines it does not know, whatever their form; this server
    // reads commits with gix: one gix cannot read is refused here rather than failing
    // later, half way through storing the push.
    if gix::objs::CommitRef::from_bytes(data, gix::hash::Kind::Sha1).is_err() {
        return fail(
            "unreadableHeader",
            "a header line this server cannot read (every line before the message is `name value`)",
        );
    }
    Ok(())
}

/// A tag's bytes, as `git fsck --strict` checks them: the kind its `type` names.
pub fn tag(data: &[u8]) -> Result<(gix::ObjectId, Kind), FsckError> {
    let headers = verify_headers(data)?;
    let (target, rest) = hex_line(
        headers,
        "object ",
        "missingObject",
        "badObjectSha1",
        "'object' line",
    )?;
    let Some(rest) = rest.strip_prefix(b"type ") else {
        return fail("missingTypeEntry", "invalid format - expected 'type' line");
    };
    let Some(eol) = rest.find_byte(b'\n') else {
        return fail("badType", "invalid 'type' value");
    };
    let kind = match &rest[..eol] {
        b"commit" => Kind::Commit,
        b"tree" => Kind::Tree,
        b"blob" => Kind::Blob,
        b"tag" => Kind::Tag,
        _ => return fail("badType", "invalid 'type' value"),
    };
    let rest = &rest[eol + 1..];
    let Some(rest) = rest.strip_prefix(b"tag ") else {
        return fail("missingTagEntry", "invalid format - expected 'tag' line");
    };
    let Some(eol) = rest.find_byte(b'\n') else {
        return fail(
            "missingTagEntry",
            "invalid format - unterminated 'tag' line",
        );
    };
    let rest = &rest[eol + 1..];
    if let Some(after) = rest.strip_prefix(b"tagger ") {
        ident(after)?;
    }
    if gix::objs::TagRef::from_bytes(data, gix::hash::Kind::Sha1).is_err() {
        return fail(
            "unreadableHeader",
            "a header line this server cannot read (every line before the message is `name value`)",
        );
    }
    Ok((target, kind))
}

/// How two entries of one tree sort, as git sorts them (see [`sort_key`]).
pub fn order(a: &Entry<'_>, b: &Entry<'_>) -> std::cmp::Ordering {
    sort_key(a).cmp(sort_key(b))
}

/// Sorts as git sorts tree entries: a tree's name as if it ended in `/`.
fn sort_key<'a>(e: &Entry<'a>) -> impl Iterator<Item = u8> + 'a + use<'a> {
    e.name
        .iter()
        .copied()
        .chain((e.kind == EntryKind::Tree).then_some(b'/'))
}

/// One entry of a tree's bytes as they are: its mode, name and id.
struct Raw<'a> {
    mode: &'a [u8],
    name: &'a [u8],
    id: gix::ObjectId,
}

/// The first entry of a tree's bytes, and the bytes after it.
fn next_entry(rest: &[u8]) -> Option<(Raw<'_>, &[u8])> {
    let space = rest.find_byte(b' ')?;
    let nul = rest[space + 1..].find_byte(0)? + space + 1;
    let raw_id = rest.get(nul + 1..nul + 21)?;
    let raw = Raw {
        mode: &rest[..space],
        name: &rest[space + 1..nul],
        id: gix::ObjectId::from_bytes_or_panic(raw_id),
    };
    Some((raw, &rest[nul + 21..]))
}

/// What an entry's mode says it holds (`None`: a mode git does not write).
fn kind_of(mode: &[u8]) -> Option<EntryKind> {
    match mode {
        b"100644" | b"100755" | b"120000" => Some(EntryKind::Blob),
        b"40000" => Some(EntryKind::Tree),
        b"160000" => Some(EntryKind::Commit),
        _ => None,
    }
}

/// The entries of a tree that passed [`tree`] when it came (the repository's), read
/// without checking them again; `None` when the bytes do not read as a tree.
pub fn entries(data: &[u8]) -> Option<Vec<Entry<'_>>> {
    let mut entries = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (Raw { mode, name, id }, after) = next_entry(rest)?;
        entries.push(Entry {
            kind: kind_of(mode)?,
            name,
            id,
        });
        rest = after;
    }
    Some(entries)
}

/// A tree's bytes, as `git fsck --strict` checks them: its entries.
pub fn tree(data: &[u8]) -> Result<Vec<Entry<'_>>, FsckError> {
    let mut entries: Vec<Entry<'_>> = Vec::new();
    let mut rest = data;
    // foldhash, seeded per process: a push's tree of 10,000 entries is hashed in a
    // fraction of SipHash's time (the names are the pusher's: seeded, not fixed).
    let mut names: std::collections::HashSet<&[u8], foldhash::quality::RandomState> =
        Default::default();
    while !rest.is_empty() {
        let Some((Raw { mode, name, id }, after)) = next_entry(rest) else {
            return fail("badTree", "cannot be parsed as a tree");
        };
        rest = after;
        if mode.first() == Some(&b'0') {
            return fail("zeroPaddedFilemode", "contains zero-padded file modes");
        }
        let Some(kind) = kind_of(mode) else {
            return fail(
                "badFilemode",
                format!("contains bad file mode `{}`", mode.as_bstr()),
            );
        };
        let shown = name.as_bstr();
        match name {
            b"" => return fail("emptyName", "contains empty pathname"),
            b"." => return fail("hasDot", "contains '.'"),
            b".." => return fail("hasDotdot", "contains '..'"),
            _ if name.contains(&b'/') => {
                return fail(
                    "fullPathname",
                    format!("contains full pathnames (`{shown}`)"),
                );
            }
            _ => {}
        }
        let component_mode = (mode == b"120000").then_some(gix_validate_mode());
        if let Err(e) = gix::validate::path::component(
            BStr::new(name),
            component_mode,
            gix::validate::path::component::Options {
                // git's fsck refuses `.git` in every spelling a case-insensitive,
                // HFS+ or NTFS file system folds to it; Windows' other reserved names
                // are its own checkout's business.
                protect_windows: false,
                protect_hfs: true,
                protect_ntfs: true,
            },
        ) {
            use gix::validate::path::component::Error as E;
            match e {
                E::SymlinkedGitModules => {
                    return fail("gitmodulesSymlink", ".gitmodules is a symbolic link");
                }
                E::DotGitDir => {
                    return fail("hasDotgit", format!("contains '.git' (as `{shown}`)"));
                }
                _ => {}
            }
        }
        if id.is_null() {
            return fail(
                "nullSha1",
                format!("contains entries pointing to null sha1 (`{shown}`)"),
            );
        }
        if !names.insert(name) {
            return fail(
                "duplicateEntries",
                format!("contains duplicate file entries (`{shown}`)"),
            );
        }
        let entry = Entry { kind, name, id };
        if let Some(prev) = entries.last()
            && order(prev, &entry) != std::cmp::Ordering::Less
        {
            return fail("treeNotSorted", format!("not properly sorted (`{shown}`)"));
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn gix_validate_mode() -> gix::validate::path::component::Mode {
    gix::validate::path::component::Mode::Symlink
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

    fn commit_with(author: &str) -> Vec<u8> {
        format!("tree {TREE}\nauthor {author}\ncommitter A <a@x> 1700000000 +0000\n\nm\n")
            .into_bytes()
    }

    fn id_of(r: Result<(), FsckError>) -> &'static str {
        r.err().map_or("ok", |e| e.id)
    }

    #[test]
    fn commits_as_git_fsck_reads_them() {
        assert_eq!(
            id_of(commit(&commit_with("A <a@x> 1700000000 +0000"))),
            "ok"
        );
        assert_eq!(id_of(commit(&commit_with("A <a@x> 0 +0000"))), "ok");
        for (author, id) in [
            ("A <a@x> -5 +0000", "badDate"),
            ("A <a@x> 99999999999999999999 +0000", "badDateOverflow"),
            ("A <a@x> 9223372036854775807 +0000", "badDateOverflow"),
            ("A <a@x> 1700000000 +99999", "badTimezone"),
            ("A <a@x> 1700000000 0000", "badTimezone"),
            ("A <a@x>> 1700000000 +0000", "missingSpaceBeforeDate"),
            ("<a@x> 1700000000 +0000", "missingNameBeforeEmail"),
            ("A a@x> 1700000000 +0000", "badName"),
            ("A 1700000000 +0000", "missingEmail"),
            ("A<a@x> 1700000000 +0000", "missingSpaceBeforeEmail"),
            ("A <a@x 1700000000 +0000", "badEmail"),
            ("A <a@x> 01700000000 +0000", "zeroPaddedDate"),
            ("A <a@x> 1700000000", "badDate"),
        ] {
            assert_eq!(id_of(commit(&commit_with(author))), id, "{author}");
        }
        let nul = format!(
            "tree {TREE}\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\nx-h a\0b\n\nm\n"
        );
        assert_eq!(id_of(commit(nul.as_bytes())), "nulInHeader");
        let nul_body =
            format!("tree {TREE}\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n\nm\0\n");
        assert_eq!(id_of(commit(nul_body.as_bytes())), "nulInCommit");
        assert_eq!(id_of(commit(b"author A <a@x> 1 +0000\n")), "missingTree");
        assert_eq!(
            id_of(commit(format!("tree {TREE}x\n\n").as_bytes())),
            "badTreeSha1"
        );
        assert_eq!(
            id_of(commit(format!("tree {TREE}\nparent 12\n\n").as_bytes())),
            "badParentSha1"
        );
        assert_eq!(
            id_of(commit(
                format!("tree {TREE}\ncommitter A <a@x> 1 +0000\n\n").as_bytes()
            )),
            "missingAuthor"
        );
        let two = format!(
            "tree {TREE}\nauthor A <a@x> 1 +0000\nauthor B <b@x> 1 +0000\ncommitter A <a@x> 1 +0000\n\n"
        );
        assert_eq!(id_of(commit(two.as_bytes())), "multipleAuthors");
        assert_eq!(
            id_of(commit(
                format!("tree {TREE}\nauthor A <a@x> 1 +0000\n\n").as_bytes()
            )),
            "missingCommitter"
        );
        assert_eq!(
            id_of(commit(
                format!("tree {TREE}\nauthor A <a@x> 1 +0000").as_bytes()
            )),
            "unterminatedHeader"
        );
        // Extra headers (signatures, encodings) are fine.
        let signed = format!(
            "tree {TREE}\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\ngpgsig -----BEGIN SSH SIGNATURE-----\n abc\n -----END SSH SIGNATURE-----\n\nm\n"
        );
        assert_eq!(id_of(commit(signed.as_bytes())), "ok");
        // Found by the fuzzer: a header line git ignores and gix cannot read.
        let odd = include_bytes!("../../fuzz/seeds/fsck/commit-odd-header");
        assert!(gix::objs::CommitRef::from_bytes(odd, gix::hash::Kind::Sha1).is_err());
        assert_eq!(id_of(commit(odd)), "unreadableHeader");
    }

    #[test]
    fn tags_as_git_fsck_reads_them() {
        let good = format!("object {TREE}\ntype tree\ntag v1\ntagger A <a@x> 1 +0000\n\nm\n");
        assert_eq!(tag(good.as_bytes()).unwrap().1, Kind::Tree);
        let untagged = format!("object {TREE}\ntype commit\ntag v1\n\nm\n");
        assert_eq!(tag(untagged.as_bytes()).unwrap().1, Kind::Commit);
        for (text, id) in [
            ("type tree\ntag v1\n\n".to_string(), "missingObject"),
            (format!("object {TREE}\ntag v1\n\n"), "missingTypeEntry"),
            (format!("object {TREE}\ntype fish\ntag v1\n\n"), "badType"),
            (format!("object {TREE}\ntype tree\n\n"), "missingTagEntry"),
            (
                format!("object {TREE}\ntype tree\ntag v1\ntagger A <a@x> 1 +99999\n\n"),
                "badTimezone",
            ),
            (
                format!("object {TREE}\ntype tree\0\ntag v1\n\n"),
                "nulInHeader",
            ),
        ] {
            assert_eq!(
                tag(text.as_bytes()).err().map(|e| e.id),
                Some(id),
                "{text:?}"
            );
        }
    }

    fn raw_tree(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (mode, name)) in entries.iter().enumerate() {
            out.extend_from_slice(format!("{mode} {name}\0").as_bytes());
            let mut id = [0u8; 20];
            id[0] = i as u8 + 1;
            out.extend_from_slice(&id);
        }
        out
    }

    fn tree_id(entries: &[(&str, &str)]) -> &'static str {
        tree(&raw_tree(entries)).err().map_or("ok", |e| e.id)
    }

    #[test]
    fn a_checked_trees_entries_read_unchecked_are_what_the_check_read() {
        let bytes = raw_tree(&[
            ("100644", "a"),
            ("100755", "a.b"),
            ("40000", "b"),
            ("160000", "c"),
            ("120000", "d"),
        ]);
        let checked: Vec<_> = tree(&bytes)
            .unwrap()
            .into_iter()
            .map(|e| (e.kind, e.name, e.id))
            .collect();
        let read: Vec<_> = entries(&bytes)
            .unwrap()
            .into_iter()
            .map(|e| (e.kind, e.name, e.id))
            .collect();
        assert_eq!(read, checked);
        assert_eq!(read.len(), 5);
        // Bytes that do not read as a tree, or a mode git does not write: nothing.
        assert!(entries(b"100644 a\0short").is_none());
        assert!(entries(&raw_tree(&[("100664", "a")])).is_none());
        assert_eq!(entries(b"").map(|e| e.len()), Some(0));
    }

    #[test]
    fn trees_as_git_fsck_reads_them() {
        assert_eq!(
            tree_id(&[
                ("100644", "a"),
                ("40000", "b"),
                ("160000", "c"),
                ("120000", "d")
            ]),
            "ok"
        );
        // `a.b` sorts before the folder `a` (as `a/`), after a file `a`.
        assert_eq!(tree_id(&[("100644", "a.b"), ("40000", "a")]), "ok");
        assert_eq!(
            tree_id(&[("40000", "a"), ("100644", "a.b")]),
            "treeNotSorted"
        );
        assert_eq!(
            tree_id(&[("100644", "b"), ("100644", "a")]),
            "treeNotSorted"
        );
        assert_eq!(
            tree_id(&[("100644", "a"), ("100644", "a")]),
            "duplicateEntries"
        );
        assert_eq!(
            tree_id(&[("100644", "a"), ("100644", "a.b"), ("40000", "a")]),
            "duplicateEntries"
        );
        assert_eq!(tree_id(&[("100644", ".git")]), "hasDotgit");
        assert_eq!(tree_id(&[("40000", ".GIT")]), "hasDotgit");
        assert_eq!(tree_id(&[("40000", "git~1")]), "hasDotgit");
        assert_eq!(tree_id(&[("40000", ".git\u{200c}")]), "hasDotgit");
        assert_eq!(tree_id(&[("40000", ".")]), "hasDot");
        assert_eq!(tree_id(&[("40000", "..")]), "hasDotdot");
        assert_eq!(tree_id(&[("100644", "")]), "emptyName");
        assert_eq!(tree_id(&[("100644", "a/b")]), "fullPathname");
        assert_eq!(tree_id(&[("040000", "a")]), "zeroPaddedFilemode");
        assert_eq!(tree_id(&[("100664", "a")]), "badFilemode");
        assert_eq!(tree_id(&[("100600", "a")]), "badFilemode");
        assert_eq!(tree_id(&[("120000", ".gitmodules")]), "gitmodulesSymlink");
        let mut null = b"100644 a\0".to_vec();
        null.extend_from_slice(&[0u8; 20]);
        assert_eq!(tree(&null).err().map(|e| e.id), Some("nullSha1"));
        assert_eq!(
            tree(b"100644 a\0short").err().map(|e| e.id),
            Some("badTree")
        );
        assert_eq!(tree(b"100644").err().map(|e| e.id), Some("badTree"));
        // Names git allows: spaces, non-ASCII, `.gitignore`, `...`.
        assert_eq!(
            tree_id(&[
                ("100644", "..."),
                ("100644", ".gitignore"),
                ("100644", "caf\u{e9} x")
            ]),
            "ok"
        );
    }
}
