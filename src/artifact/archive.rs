//! A skill's folder as a `.tar.gz` whose bytes depend on the files alone, so that
//! every node (and every request) makes the same archive and the index's digest holds
//! wherever it is fetched: entries sorted by path (bytes), regular files only (no
//! folder entries: `tar` makes the folders), ustar headers with mtime 0, uid and gid
//! 0, no user or group names, mode `0644` or `0755` from git's executable bit; gzip
//! with mtime 0, no file name and a fixed compression level.
//!
//! A path longer than a ustar header holds (100 bytes of name, 155 of prefix) gets a
//! pax `path` record before its header, as POSIX `tar` reads it.

use std::io::Write;

/// One file of the archive: its path inside the skill's folder, whether git marks it
/// executable, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    pub path: &'a str,
    pub executable: bool,
    pub data: &'a [u8],
}

/// The gzip level: fixed, so the same input always compresses to the same bytes.
const LEVEL: u32 = 9;

/// The archive of `members` (in any order: they are sorted here). Paths must be
/// relative, `/`-separated, without `.` or `..` components (a git tree's paths are).
pub fn build(members: &[Member<'_>]) -> std::io::Result<Vec<u8>> {
    let mut sorted: Vec<&Member<'_>> = members.iter().collect();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    if sorted.windows(2).any(|w| w[0].path == w[1].path) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "two members with one path",
        ));
    }
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::new(LEVEL));
    let mut tar = tar::Builder::new(gz);
    for m in sorted {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(m.data.len() as u64);
        header.set_mode(if m.executable { 0o755 } else { 0o644 });
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_username("")?;
        header.set_groupname("")?;
        if header.set_path(m.path).is_err() {
            // Too long for ustar: a pax record carries the whole path, and the
            // header a shortened one that readers without pax still accept.
            append_pax_path(&mut tar, m.path)?;
            header.set_path(shortened(m.path))?;
        }
        header.set_cksum();
        tar.append(&header, m.data)?;
    }
    let gz = tar.into_inner()?;
    gz.finish()
}

/// A pax extended header (`x`) whose one record is `path`.
fn append_pax_path<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> std::io::Result<()> {
    let record = pax_record("path", path);
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_path("PaxHeader/path")?;
    header.set_size(record.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    tar.append(&header, record.as_slice())
}

/// `"<length> <key>=<value>\n"`, the length counting itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // space, `=`, newline
    let mut length = rest + 1;
    while length.to_string().len() + rest != length {
        length = length.to_string().len() + rest;
    }
    format!("{length} {key}={value}\n").into_bytes()
}

/// The last 100 bytes' worth of whole characters of `path`'s file name.
fn shortened(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut start = name.len().saturating_sub(100);
    while !name.is_char_boundary(start) {
        start += 1;
    }
    name[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn members() -> Vec<(String, bool, Vec<u8>)> {
        vec![
            ("SKILL.md".into(), false, b"---\nname: x\n---\n".to_vec()),
            (
                "scripts/run.sh".into(),
                true,
                b"#!/bin/sh\necho hi\n".to_vec(),
            ),
            ("references/guide.md".into(), false, b"# Guide\n".to_vec()),
            (
                format!("deep/{}/file.txt", "d".repeat(150)),
                false,
                b"x".to_vec(),
            ),
            (
                format!("long/{}.md", "n".repeat(200)),
                false,
                b"long".to_vec(),
            ),
        ]
    }

    fn as_members(v: &[(String, bool, Vec<u8>)]) -> Vec<Member<'_>> {
        v.iter()
            .map(|(p, x, d)| Member {
                path: p,
                executable: *x,
                data: d,
            })
            .collect()
    }

    /// The bytes are pinned across builds and versions of skillsd: a version's digest
    /// names them for good, so the tar layout, the gzip header, the level and the
    /// deflate engine (flate2's default) may not change. A different digest here means
    /// every published archive would get a new digest on upgrade.
    #[test]
    fn the_archive_of_fixed_files_has_a_fixed_digest() {
        let files = members();
        let bytes = build(&as_members(&files)).unwrap();
        assert_eq!(crate::artifact::digest(&bytes), PINNED);
    }

    const PINNED: &str = "sha256:d4938c8f645a6c9c9546b8686b08d2097aa28b725bddfecb251c59774ecf6dd7";

    #[test]
    fn the_same_files_in_any_order_give_the_same_bytes() {
        let files = members();
        let a = build(&as_members(&files)).unwrap();
        let b = build(&as_members(&files)).unwrap();
        let mut reversed = files.clone();
        reversed.reverse();
        let c = build(&as_members(&reversed)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        // gzip: no timestamp, "unknown" system.
        assert_eq!(&a[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&a[4..8], &[0, 0, 0, 0]);
        assert_eq!(a[9], 255);
        // One byte of one file changes the archive.
        let mut changed = files.clone();
        changed[0].2.push(b'\n');
        assert_ne!(a, build(&as_members(&changed)).unwrap());
        // So does an executable bit.
        let mut chmod = files.clone();
        chmod[2].1 = true;
        assert_ne!(a, build(&as_members(&chmod)).unwrap());
    }

    #[test]
    fn entries_are_sorted_with_fixed_owners_times_and_modes() {
        let files = members();
        let bytes = build(&as_members(&files)).unwrap();
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut tar_bytes)
            .unwrap();
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let h = entry.header().clone();
            assert_eq!(h.mtime().unwrap(), 0);
            assert_eq!(h.uid().unwrap(), 0);
            assert_eq!(h.gid().unwrap(), 0);
            assert_eq!(h.username_bytes(), Some(&b""[..]));
            assert_eq!(h.groupname_bytes(), Some(&b""[..]));
            assert!(h.entry_type().is_file());
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            let (_, x, d) = files.iter().find(|(p, _, _)| *p == path).unwrap();
            assert_eq!(&data, d, "{path}");
            assert_eq!(h.mode().unwrap(), if *x { 0o755 } else { 0o644 }, "{path}");
            seen.push(path);
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted);
        assert_eq!(seen.len(), files.len());
    }

    #[test]
    fn pax_records_count_their_own_length() {
        for value in ["a", &"b".repeat(5), &"c".repeat(93), &"d".repeat(994)] {
            let r = pax_record("path", value);
            let (n, _) = std::str::from_utf8(&r).unwrap().split_once(' ').unwrap();
            assert_eq!(n.parse::<usize>().unwrap(), r.len());
        }
        assert!(
            build(&[
                Member {
                    path: "a",
                    executable: false,
                    data: b"1"
                },
                Member {
                    path: "a",
                    executable: false,
                    data: b"2"
                }
            ])
            .is_err()
        );
    }
}
