//! Packs built by hand, as an attacker would send them: any object, any declared
//! size, any delta, any lie in a header. Object ids and the trailer are computed with
//! gix's own hashing; nothing here goes through `git`.

use std::io::Write;

pub const BLOB: u8 = 3;
pub const TREE: u8 = 2;
pub const COMMIT: u8 = 1;
pub const TAG: u8 = 4;
pub const OFS_DELTA: u8 = 6;
pub const REF_DELTA: u8 = 7;

/// The id git gives an object of `kind` with `data`.
pub fn object_id(kind: u8, data: &[u8]) -> gix::ObjectId {
    let kind = match kind {
        BLOB => gix::object::Kind::Blob,
        TREE => gix::object::Kind::Tree,
        COMMIT => gix::object::Kind::Commit,
        TAG => gix::object::Kind::Tag,
        _ => panic!("not an object kind"),
    };
    gix::objs::compute_hash(gix::hash::Kind::Sha1, kind, data).unwrap()
}

pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `n` zero bytes, deflated without ever holding them (1 MiB at a time).
pub fn deflate_zeros(n: u64) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let chunk = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len() as u64) as usize;
        e.write_all(&chunk[..k]).unwrap();
        left -= k as u64;
    }
    e.finish().unwrap()
}

use skillsd::incoming::inspect::{entry_header, ofs_distance};

/// A delta header size (little-endian base 128).
pub fn delta_varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}

/// A delta instruction copying `len` (≤ 0xffffff) bytes at `offset` of the base.
pub fn copy_op(offset: u32, len: u32) -> Vec<u8> {
    let mut op = 0x80u8;
    let mut args = Vec::new();
    for i in 0..4 {
        let b = (offset >> (8 * i)) as u8;
        if b != 0 {
            op |= 1 << i;
            args.push(b);
        }
    }
    for i in 0..3 {
        let b = (len >> (8 * i)) as u8;
        if b != 0 {
            op |= 1 << (4 + i);
            args.push(b);
        }
    }
    let mut out = vec![op];
    out.extend(args);
    out
}

/// A pack being written.
#[derive(Default)]
pub struct Pack {
    body: Vec<u8>,
    count: u32,
    /// Lie about the object count in the header.
    pub declared_count: Option<u32>,
}

impl Pack {
    pub fn new() -> Pack {
        Pack::default()
    }

    /// Offset the next entry will have.
    pub fn next_offset(&self) -> u64 {
        12 + self.body.len() as u64
    }

    /// A whole object; returns its id.
    pub fn object(&mut self, kind: u8, data: &[u8]) -> gix::ObjectId {
        self.raw(kind, data.len() as u64, &deflate(data));
        object_id(kind, data)
    }

    /// Any entry: a declared size and deflated bytes, true or not.
    pub fn raw(&mut self, kind: u8, declared: u64, deflated: &[u8]) -> u64 {
        let offset = self.next_offset();
        self.body.extend(entry_header(kind, declared));
        self.body.extend_from_slice(deflated);
        self.count += 1;
        offset
    }

    /// A delta on the object with id `base` (in the pack or the repository).
    pub fn ref_delta(&mut self, base: gix::ObjectId, delta: &[u8]) -> u64 {
        let offset = self.next_offset();
        self.body
            .extend(entry_header(REF_DELTA, delta.len() as u64));
        self.body.extend_from_slice(base.as_bytes());
        self.body.extend(deflate(delta));
        self.count += 1;
        offset
    }

    /// A delta on the entry at `base_offset`.
    pub fn ofs_delta(&mut self, base_offset: u64, delta: &[u8]) -> u64 {
        let offset = self.next_offset();
        self.body
            .extend(entry_header(OFS_DELTA, delta.len() as u64));
        self.body.extend(ofs_distance(offset - base_offset));
        self.body.extend(deflate(delta));
        self.count += 1;
        offset
    }

    /// The pack with its header and SHA-1 trailer.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = b"PACK".to_vec();
        out.extend_from_slice(&2u32.to_be_bytes());
        out.extend_from_slice(&self.declared_count.unwrap_or(self.count).to_be_bytes());
        out.extend_from_slice(&self.body);
        let mut h = gix::hash::hasher(gix::hash::Kind::Sha1);
        h.update(&out);
        let digest = h.try_finalize().unwrap();
        out.extend_from_slice(digest.as_bytes());
        out
    }
}

/// A tree's bytes from entries `(mode, name, id)`, sorted as git sorts them.
pub fn tree(entries: &[(&str, &str, gix::ObjectId)]) -> Vec<u8> {
    let mut sorted: Vec<&(&str, &str, gix::ObjectId)> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        let key = |e: &(&str, &str, gix::ObjectId)| {
            let mut k = e.1.as_bytes().to_vec();
            if e.0 == "40000" {
                k.push(b'/');
            }
            k
        };
        key(a).cmp(&key(b))
    });
    let mut out = Vec::new();
    for (mode, name, id) in sorted {
        out.extend_from_slice(format!("{mode} {name}\0").as_bytes());
        out.extend_from_slice(id.as_bytes());
    }
    out
}

/// A commit's bytes.
pub fn commit(tree: gix::ObjectId, parent: Option<gix::ObjectId>, message: &[u8]) -> Vec<u8> {
    let mut out = format!("tree {tree}\n").into_bytes();
    if let Some(p) = parent {
        out.extend_from_slice(format!("parent {p}\n").as_bytes());
    }
    out.extend_from_slice(
        b"author Mallory <m@example.com> 1700000000 +0000\ncommitter Mallory <m@example.com> 1700000000 +0000\n\n",
    );
    out.extend_from_slice(message);
    out
}

/// An annotated tag's bytes.
pub fn tag(target: gix::ObjectId, kind: &str, name: &str) -> Vec<u8> {
    format!(
        "object {target}\ntype {kind}\ntag {name}\ntagger Mallory <m@example.com> 1700000000 +0000\n\nhostile\n"
    )
    .into_bytes()
}

/// A pkt-line.
pub fn pkt(s: &[u8]) -> Vec<u8> {
    let mut v = format!("{:04x}", s.len() + 4).into_bytes();
    v.extend_from_slice(s);
    v
}

/// The receive-pack request: commands (the first with capabilities), a flush, a pack.
pub fn push_request(commands: &[(String, String, String)], pack: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (old, new, name)) in commands.iter().enumerate() {
        if i == 0 {
            out.extend(pkt(format!(
                "{old} {new} {name}\0report-status side-band-64k\n"
            )
            .as_bytes()));
        } else {
            out.extend(pkt(format!("{old} {new} {name}\n").as_bytes()));
        }
    }
    out.extend_from_slice(b"0000");
    out.extend_from_slice(pack);
    out
}
