//! A guard between the client and the pack indexer: it reads the pack as it streams
//! past and refuses, before the indexer sees the bytes, anything that would make the
//! server allocate what the pusher chooses.
//!
//! gix's indexer trusts a pack's declared sizes: it zero-fills a delta's declared
//! result size before applying the delta, sizes its tables by the header's object
//! count, and while resolving deltas keeps every base alive that still has children
//! to resolve. So, entry by entry, this reader checks
//! * the header: `PACK`, version 2 or 3, an object count within the limit;
//! * each entry's declared size, and for a delta the base and result sizes in the
//!   delta's own header (its first inflated bytes), against
//!   [`PackLimits::max_object_bytes`];
//! * that an entry inflates to exactly the size it declares (a deflate stream that
//!   inflates to more — a "zip bomb" under a small declared size — is stopped at once);
//! * the depth of delta chains ([`PackLimits::max_delta_depth`]; exact here for
//!   offset deltas, and checked after indexing by [`check_delta_depths`] when the
//!   pack has deltas that name their base by id);
//! * the total size of the distinct objects deltas build on
//!   ([`PackLimits::max_delta_base_bytes`]): the most the indexer can hold at once.
//!
//! Each entry's deflate stream is inflated here once more to find where it ends
//! (packs carry no compressed lengths) into a small scratch buffer: memory stays
//! small whatever the pack holds (16 bytes per entry for the chain depths). The cost
//! is one extra inflate pass, small beside the indexer's own work (inflate, SHA-1,
//! delta resolution).
//!
//! A [`Tap`] may take a copy of what entries inflate to as they pass (within a budget
//! of bytes held at once): the push validates its files from it while the rest of the
//! pack streams in ([`super::arriving`]).

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Default largest object (blob, tree, commit, or a delta's result), inflated.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 32 * 1024 * 1024;
/// Default most objects in one pack.
pub const DEFAULT_MAX_OBJECTS: u32 = 2_000_000;
/// Default longest delta chain: git's own maximum `pack.depth`.
pub const DEFAULT_MAX_DELTA_DEPTH: u32 = 4095;
/// Default total size of the distinct objects a pack's deltas build on.
pub const DEFAULT_MAX_DELTA_BASE_BYTES: u64 = 192 * 1024 * 1024;

/// What a pack may declare (`SKILLSD_MAX_OBJECT_BYTES`, `SKILLSD_MAX_OBJECTS`,
/// `SKILLSD_MAX_DELTA_DEPTH`, `SKILLSD_MAX_DELTA_BASE_BYTES`: [`crate::config::Settings`]).
#[derive(Debug, Clone, Copy)]
pub struct PackLimits {
    pub max_object_bytes: u64,
    pub max_objects: u32,
    pub max_delta_depth: u32,
    pub max_delta_base_bytes: u64,
    /// The most bytes the objects of a pack may inflate to (whole objects' sizes and
    /// deltas' results together), as a multiple of the pack's bytes so far, above
    /// [`INFLATE_FLOOR`]; `None`: unbounded (a gc re-reading what pushes brought).
    /// What a pack inflates to is what indexing it costs in CPU: a small pack of many
    /// deltas that each copy a large base costs minutes (`SKILLSD_MAX_INFLATE_RATIO`).
    pub max_inflate_ratio: Option<u64>,
    /// Bytes the pack may inflate to whatever its size ([`INFLATE_FLOOR`] for a push; a
    /// gc gets one floor per pack it consolidates, see
    /// [`PackLimits::for_consolidating`]).
    pub inflate_floor: u64,
}

/// Bytes any pack may inflate to, whatever its size.
pub const INFLATE_FLOOR: u64 = 256 * 1024 * 1024;
/// What the pusher of a pack beyond its inflation budget can do (the end of the
/// refusal; a gc, refused for the same reason, says what the admin can do instead).
pub const INFLATE_HINT: &str =
    "; push in smaller parts, or ask an admin to raise SKILLSD_MAX_INFLATE_RATIO";
/// Default [`PackLimits::max_inflate_ratio`].
pub const DEFAULT_MAX_INFLATE_RATIO: u64 = 200;

impl Default for PackLimits {
    fn default() -> Self {
        PackLimits {
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            max_objects: DEFAULT_MAX_OBJECTS,
            max_delta_depth: DEFAULT_MAX_DELTA_DEPTH,
            max_delta_base_bytes: DEFAULT_MAX_DELTA_BASE_BYTES,
            max_inflate_ratio: Some(DEFAULT_MAX_INFLATE_RATIO),
            inflate_floor: INFLATE_FLOOR,
        }
    }
}

impl PackLimits {
    /// The limits of a gc consolidating `packs` packs into one: each pack came in under
    /// a push's budget (a floor plus the ratio times its bytes), so the consolidated
    /// pack gets the sum of them: one floor per pack, and the same ratio of the bytes
    /// (a consolidated pack reuses the deltas, so its size is about theirs together).
    /// A gc of what pushes brought is never refused; objects stored before the limits
    /// existed, or under larger ones, that would cost more are refused with the reason
    /// instead of costing minutes of CPU at every gc.
    pub fn for_consolidating(self, packs: usize) -> PackLimits {
        PackLimits {
            inflate_floor: self.inflate_floor.saturating_mul(packs.max(1) as u64),
            ..self
        }
    }
}

/// What the inspector found, readable after the indexer gave up or finished (the
/// indexer wraps an I/O error in its own words, so the reason is kept here).
#[derive(Debug, Default, Clone)]
pub struct Findings {
    /// Why the pack was refused, in words for the pusher.
    pub refusal: Option<String>,
    /// Deltas that name their base by object id (their chain depth is checked after
    /// indexing).
    pub ref_deltas: u32,
}

/// Where the reader is in the pack.
enum State {
    /// Collecting the 12-byte header.
    Header { buf: [u8; 12], have: usize },
    /// Parsing an entry's type-and-size header (and, for deltas, the base reference).
    EntryHeader { start: u64, bytes: Vec<u8> },
    /// Inside an entry's deflate stream.
    Body(Body),
    /// Every entry seen: the trailer and anything after pass untouched.
    Done,
}

/// The object a delta builds on.
#[derive(Debug, Clone, Copy)]
pub enum Base {
    /// The entry at this place among the pack's entries (`Inspector::entries`).
    Entry(usize),
    /// An object named by id (in the pack or, for a thin pack, in the repository).
    Id([u8; 20]),
}

struct Body {
    kind: u8,
    declared: u64,
    base: Option<Base>,
    inflater: flate2::Decompress,
    /// A delta's first inflated bytes: its base and result sizes.
    delta_head: Vec<u8>,
    delta_checked: bool,
    /// What the entry inflates to, for the tap (when it takes this entry).
    tapped: Option<(Vec<u8>, Held)>,
}

/// A copy of each entry as it is inflated, sent to whoever reads the other end while
/// the pack still streams (entries up to `max_object` bytes, while the copies not yet
/// dropped stay within `max_held` bytes; past that, entries pass untapped).
pub struct Tap {
    sender: std::sync::mpsc::Sender<Arrived>,
    held: Arc<AtomicUsize>,
    max_held: usize,
    max_object: u64,
}

/// What a tapped entry costs beside its bytes, counted against the budget.
const TAP_ENTRY_OVERHEAD: usize = 256;

/// One entry of the pack as it arrived: a whole object (`kind` 1 commit, 2 tree, 3
/// blob, 4 tag) or a delta (6, 7) on `base`, with what it inflates to.
pub struct Arrived {
    /// Its place among the pack's entries.
    pub index: u32,
    pub kind: u8,
    pub base: Option<Base>,
    pub data: Vec<u8>,
    /// Counts `data` against the tap's budget until it is dropped.
    pub held: Held,
}

/// Bytes counted against a tap's budget while this lives.
pub struct Held {
    bytes: usize,
    counter: Arc<AtomicUsize>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl Tap {
    /// A tap and its other end.
    pub fn new(max_held: usize, max_object: u64) -> (Tap, std::sync::mpsc::Receiver<Arrived>) {
        let (sender, receiver) = std::sync::mpsc::channel();
        let tap = Tap {
            sender,
            held: Arc::new(AtomicUsize::new(0)),
            max_held,
            max_object,
        };
        (tap, receiver)
    }

    /// Room for an entry of `size` bytes: its budget taken, or `None`. Each entry
    /// counts [`TAP_ENTRY_OVERHEAD`] bytes more (a pack of millions of empty entries
    /// is millions of messages).
    fn take(&self, size: u64) -> Option<(Vec<u8>, Held)> {
        if size > self.max_object {
            return None;
        }
        let bytes = size as usize + TAP_ENTRY_OVERHEAD;
        let before = self.held.fetch_add(bytes, Ordering::Relaxed);
        let held = Held {
            bytes,
            counter: self.held.clone(),
        };
        (before + bytes <= self.max_held).then(|| (Vec::with_capacity(size as usize), held))
    }
}

const OBJ_OFS_DELTA: u8 = 6;
const OBJ_REF_DELTA: u8 = 7;
/// In `Inspector::entries`, the bit that marks an entry counted as a delta base.
const COUNTED: u32 = 1 << 31;

/// The reader.
pub struct Inspector<R> {
    inner: R,
    limits: PackLimits,
    state: State,
    /// Bytes of the pack passed so far.
    pos: u64,
    objects: u32,
    seen: u32,
    /// Every entry's offset and delta depth (| [`COUNTED`]), in pack order.
    entries: Vec<(u64, u32)>,
    /// Objects named by id that deltas build on, counted once each.
    id_bases: HashSet<[u8; 20]>,
    base_bytes: u64,
    /// What the entries so far inflate to: whole objects and deltas' results.
    inflated: u64,
    scratch: Vec<u8>,
    findings: Arc<Mutex<Findings>>,
    tap: Option<Tap>,
}

impl<R: Read> Inspector<R> {
    pub fn new(inner: R, limits: PackLimits) -> Self {
        Inspector {
            inner,
            limits,
            state: State::Header {
                buf: [0; 12],
                have: 0,
            },
            pos: 0,
            objects: 0,
            seen: 0,
            entries: Vec::new(),
            id_bases: HashSet::new(),
            base_bytes: 0,
            inflated: 0,
            scratch: vec![0; 64 * 1024],
            findings: Arc::new(Mutex::new(Findings::default())),
            tap: None,
        }
    }

    /// The same inspector, sending a copy of each entry through `tap`.
    pub fn tapped(mut self, tap: Tap) -> Self {
        self.tap = Some(tap);
        self
    }

    /// What the inspector found (complete once the indexer is done with the reader).
    pub fn findings(&self) -> Arc<Mutex<Findings>> {
        self.findings.clone()
    }

    fn refuse(&mut self, why: String) -> io::Error {
        self.findings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .refusal = Some(why.clone());
        self.state = State::Done;
        io::Error::new(io::ErrorKind::InvalidData, why)
    }

    /// Parses `data` (bytes about to be handed on), advancing the state.
    fn inspect(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() {
            let before = data.len();
            data = self.step(data)?;
            self.pos += (before - data.len()) as u64;
            if matches!(self.state, State::Done) {
                break;
            }
        }
        Ok(())
    }

    /// One step of parsing; returns the bytes not yet consumed.
    fn step<'d>(&mut self, mut data: &'d [u8]) -> Result<&'d [u8], String> {
        match &mut self.state {
            State::Done => return Ok(&[]),
            State::Header { buf, have } => {
                let n = (12 - *have).min(data.len());
                buf[*have..*have + n].copy_from_slice(&data[..n]);
                *have += n;
                data = &data[n..];
                if *have == 12 {
                    let buf = *buf;
                    self.pack_header(&buf)?;
                }
            }
            State::EntryHeader { start, bytes } => {
                bytes.push(data[0]);
                data = &data[1..];
                let start = *start;
                let bytes = std::mem::take(bytes);
                match self.entry_header(start, &bytes)? {
                    Some(body) => self.state = State::Body(body),
                    None if bytes.len() > 40 => {
                        return Err(format!("entry {} has a malformed header", self.seen));
                    }
                    None => self.state = State::EntryHeader { start, bytes },
                }
            }
            State::Body(_) => data = self.body(data)?,
        }
        Ok(data)
    }

    fn pack_header(&mut self, buf: &[u8; 12]) -> Result<(), String> {
        if &buf[..4] != b"PACK" {
            return Err("the data sent is not a pack".into());
        }
        let version = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if version != 2 && version != 3 {
            return Err(format!("pack version {version} is not supported"));
        }
        let count = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        if count > self.limits.max_objects {
            return Err(format!(
                "the pack declares {count} objects, more than the limit of {}",
                self.limits.max_objects
            ));
        }
        self.objects = count;
        self.state = if count == 0 {
            State::Done
        } else {
            State::EntryHeader {
                start: 12,
                bytes: Vec::new(),
            }
        };
        Ok(())
    }

    /// Parses a complete entry header (`None`: more bytes needed).
    fn entry_header(&mut self, start: u64, bytes: &[u8]) -> Result<Option<Body>, String> {
        let index = self.seen;
        let limits = self.limits;
        let first = bytes[0];
        let kind = (first >> 4) & 0b111;
        let mut size = u64::from(first & 0x0f);
        let mut shift = 4u32;
        let mut i = 0;
        let mut byte = first;
        while byte & 0x80 != 0 {
            i += 1;
            let Some(&b) = bytes.get(i) else {
                return Ok(None);
            };
            if shift > 60 {
                return Err(format!("entry {index} declares an impossible size"));
            }
            size |= u64::from(b & 0x7f) << shift;
            shift += 7;
            byte = b;
        }
        let rest = &bytes[i + 1..];
        let (base, depth) = match kind {
            1..=4 => {
                if size > limits.max_object_bytes {
                    return Err(format!(
                        "an object of {size} bytes (entry {index}) is larger than the limit of {} bytes",
                        limits.max_object_bytes
                    ));
                }
                self.count_inflated(size, start)?;
                (None, 0)
            }
            OBJ_OFS_DELTA => match self.ofs_base(start, rest)? {
                Some((base, depth)) => (Some(Base::Entry(base)), depth),
                None => return Ok(None),
            },
            OBJ_REF_DELTA => {
                let Some(id) = rest.get(..20) else {
                    return Ok(None);
                };
                let id: [u8; 20] = id.try_into().expect("20 bytes");
                self.findings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .ref_deltas += 1;
                // The chain behind an id is only known once the pack is indexed.
                (Some(Base::Id(id)), 1)
            }
            other => return Err(format!("entry {index} has an invalid type {other}")),
        };
        // A delta is no larger than what it builds plus its instructions; its result
        // size is checked from its own header.
        if size
            > limits
                .max_object_bytes
                .saturating_mul(2)
                .saturating_add(1024)
        {
            return Err(format!(
                "a delta of {size} bytes (entry {index}) is larger than the limit of {} bytes",
                limits.max_object_bytes
            ));
        }
        self.entries.push((start, depth));
        let tapped = self.tap.as_ref().and_then(|t| t.take(size));
        Ok(Some(Body {
            kind,
            declared: size,
            base,
            inflater: flate2::Decompress::new(true),
            delta_head: Vec::new(),
            delta_checked: false,
            tapped,
        }))
    }

    /// An offset delta's base (its index among the entries) and the chain's depth
    /// through it, from the bytes after the entry's size (`None`: more bytes needed).
    fn ofs_base(&self, start: u64, rest: &[u8]) -> Result<Option<(usize, u32)>, String> {
        let index = self.seen;
        // The base's distance back: git's offset encoding (each continuation adds one
        // before shifting).
        let Some(end) = rest.iter().position(|b| b & 0x80 == 0) else {
            return Ok(None);
        };
        let mut distance = u64::from(rest[0] & 0x7f);
        for &b in &rest[1..=end] {
            if distance > (1 << 56) {
                return Err(format!("entry {index} names an impossible base offset"));
            }
            distance = ((distance + 1) << 7) | u64::from(b & 0x7f);
        }
        let found = start
            .checked_sub(distance)
            .filter(|_| distance > 0)
            .and_then(|o| self.entries.binary_search_by_key(&o, |e| e.0).ok());
        let Some(base) = found else {
            return Err(format!(
                "entry {index} is a delta whose base is not an entry of the pack"
            ));
        };
        let depth = (self.entries[base].1 & !COUNTED) + 1;
        if depth > self.limits.max_delta_depth {
            return Err(format!(
                "a delta chain is longer than the limit of {} (entry {index})",
                self.limits.max_delta_depth
            ));
        }
        Ok(Some((base, depth)))
    }

    /// Inflates what `data` holds of the current entry into the scratch buffer.
    fn body<'d>(&mut self, mut data: &'d [u8]) -> Result<&'d [u8], String> {
        let index = self.seen;
        let State::Body(body) = &mut self.state else {
            unreachable!("body() is called in the Body state")
        };
        let before_in = body.inflater.total_in();
        let before_out = body.inflater.total_out();
        let status = body
            .inflater
            .decompress(data, &mut self.scratch, flate2::FlushDecompress::None)
            .map_err(|e| format!("entry {index} is not valid deflate data: {e}"))?;
        let used = (body.inflater.total_in() - before_in) as usize;
        let produced = (body.inflater.total_out() - before_out) as usize;
        data = &data[used..];
        if body.inflater.total_out() > body.declared {
            return Err(format!(
                "entry {index} inflates to more than the {} bytes it declares",
                body.declared
            ));
        }
        if let Some((copy, _)) = &mut body.tapped {
            copy.extend_from_slice(&self.scratch[..produced]);
        }
        let is_delta = body.kind == OBJ_OFS_DELTA || body.kind == OBJ_REF_DELTA;
        if is_delta && !body.delta_checked {
            let take = produced.min(20usize.saturating_sub(body.delta_head.len()));
            body.delta_head.extend_from_slice(&self.scratch[..take]);
            if let Some((base_size, result_size)) = delta_sizes(&body.delta_head) {
                body.delta_checked = true;
                let base = body.base;
                self.check_delta(index, base, base_size, result_size)?;
            }
        }
        let State::Body(body) = &mut self.state else {
            unreachable!()
        };
        match status {
            flate2::Status::StreamEnd => {
                if body.inflater.total_out() != body.declared {
                    return Err(format!(
                        "entry {index} inflates to {} bytes but declares {}",
                        body.inflater.total_out(),
                        body.declared
                    ));
                }
                if is_delta && !body.delta_checked {
                    return Err(format!("entry {index} is a truncated delta"));
                }
                if let Some((data, held)) = body.tapped.take() {
                    let arrived = Arrived {
                        index,
                        kind: body.kind,
                        base: body.base,
                        data,
                        held,
                    };
                    if self
                        .tap
                        .as_ref()
                        .is_some_and(|t| t.sender.send(arrived).is_err())
                    {
                        self.tap = None; // nobody reads the other end any more
                    }
                }
                self.seen += 1;
                self.state = if self.seen == self.objects {
                    State::Done
                } else {
                    State::EntryHeader {
                        start: self.pos + used as u64,
                        bytes: Vec::new(),
                    }
                };
            }
            // With input left and room for output, inflating always progresses until
            // the stream ends.
            _ if used == 0 && produced == 0 && !data.is_empty() => {
                return Err(format!("entry {index} is not valid deflate data"));
            }
            _ => {}
        }
        Ok(data)
    }

    /// Counts `bytes` more of inflated objects, `at` bytes into the pack.
    fn count_inflated(&mut self, bytes: u64, at: u64) -> Result<(), String> {
        self.inflated = self.inflated.saturating_add(bytes);
        let Some(ratio) = self.limits.max_inflate_ratio else {
            return Ok(());
        };
        let allowed = self
            .limits
            .inflate_floor
            .saturating_add(ratio.saturating_mul(at));
        if self.inflated > allowed {
            return Err(format!(
                "the pack's objects inflate to more than {ratio} times its size ({} MiB from \
                 {} KiB so far): indexing it would cost minutes{INFLATE_HINT}",
                self.inflated >> 20,
                at >> 10
            ));
        }
        Ok(())
    }

    /// A delta's declared sizes, and the bases the pack's deltas build on in total.
    fn check_delta(
        &mut self,
        index: u32,
        base: Option<Base>,
        base_size: u64,
        result_size: u64,
    ) -> Result<(), String> {
        let max = self.limits.max_object_bytes;
        for (what, n) in [("base", base_size), ("result", result_size)] {
            if n > max {
                return Err(format!(
                    "a delta (entry {index}) declares a {what} of {n} bytes, more than the limit of {max} bytes"
                ));
            }
        }
        self.count_inflated(result_size, self.pos)?;
        let first_use = match base {
            Some(Base::Entry(i)) => {
                let fresh = self.entries[i].1 & COUNTED == 0;
                self.entries[i].1 |= COUNTED;
                fresh
            }
            Some(Base::Id(id)) => self.id_bases.insert(id),
            None => false,
        };
        if first_use {
            self.base_bytes += base_size;
            if self.base_bytes > self.limits.max_delta_base_bytes {
                return Err(format!(
                    "the pack's deltas build on more than {} MiB of objects (the limit); push in smaller parts",
                    self.limits.max_delta_base_bytes >> 20
                ));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Inspector<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self
            .findings
            .lock()
            .map(|f| f.refusal.is_some())
            .unwrap_or(true)
        {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "pack refused"));
        }
        let n = self.inner.read(buf)?;
        if let Err(why) = self.inspect(&buf[..n]) {
            return Err(self.refuse(why));
        }
        Ok(n)
    }
}

/// A pack entry's type-and-size header as git writes it (what the inspector reads):
/// for building packs in tests and fuzz targets.
pub fn entry_header(kind: u8, size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut first = (kind << 4) | (size & 0x0f) as u8;
    let mut rest = size >> 4;
    if rest > 0 {
        first |= 0x80;
    }
    out.push(first);
    while rest > 0 {
        let mut b = (rest & 0x7f) as u8;
        rest >>= 7;
        if rest > 0 {
            b |= 0x80;
        }
        out.push(b);
    }
    out
}

/// An offset delta's distance back to its base, in git's encoding.
pub fn ofs_distance(mut distance: u64) -> Vec<u8> {
    let mut out = vec![(distance & 0x7f) as u8];
    distance >>= 7;
    while distance > 0 {
        distance -= 1;
        out.insert(0, 0x80 | (distance & 0x7f) as u8);
        distance >>= 7;
    }
    out
}

/// A delta header's base and result sizes, once enough of it is there.
fn delta_sizes(head: &[u8]) -> Option<(u64, u64)> {
    let (base, used) = varint(head)?;
    let (result, _) = varint(&head[used..])?;
    Some((base, result))
}

/// A delta header's little-endian base-128 size (`None`: incomplete or too long),
/// and the bytes it took.
pub(super) fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The exact depth of every delta chain of the indexed pack(s) in `pack_dir`, for
/// packs with deltas naming their base by id. Each entry's chain is followed through
/// entry headers only (nothing is inflated), once: depths are remembered.
pub fn check_delta_depths(pack_dir: &Path, max_depth: u32) -> Result<(), String> {
    let dir = std::fs::read_dir(pack_dir).map_err(|e| e.to_string())?;
    for entry in dir {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_none_or(|x| x != "idx") {
            continue;
        }
        let bundle =
            gix_pack::Bundle::at(&path, gix::hash::Kind::Sha1).map_err(|e| e.to_string())?;
        let mut depths: HashMap<u64, u32> = HashMap::new();
        for e in bundle.index.iter() {
            let mut chain = Vec::new();
            let mut offset = e.pack_offset;
            // Up the chain to an entry of known depth, or a whole object.
            let mut depth = loop {
                if let Some(d) = depths.get(&offset) {
                    break *d;
                }
                let entry = bundle.pack.entry(offset).map_err(|e| e.to_string())?;
                let base = match entry.header {
                    gix_pack::data::entry::Header::OfsDelta { base_distance } => {
                        entry.base_pack_offset(base_distance)
                    }
                    gix_pack::data::entry::Header::RefDelta { base_id } => {
                        match bundle.index.lookup(base_id.as_ref()) {
                            Some(i) => bundle.index.pack_offset_at_index(i),
                            None => {
                                chain.push(offset);
                                break 0; // a base outside the pack
                            }
                        }
                    }
                    _ => break 0,
                };
                chain.push(offset);
                if chain.len() as u32 > max_depth {
                    return Err(format!(
                        "a delta chain is longer than the limit of {max_depth}"
                    ));
                }
                offset = base;
            };
            // Down again, remembering each depth.
            while let Some(o) = chain.pop() {
                depth += 1;
                if depth > max_depth {
                    return Err(format!(
                        "a delta chain is longer than the limit of {max_depth}"
                    ));
                }
                depths.insert(o, depth);
            }
            depths.entry(e.pack_offset).or_insert(depth);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
