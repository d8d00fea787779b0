use super::*;
use std::io::Write;

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn entry(kind: u8, size: u64, body: &[u8]) -> Vec<u8> {
    let mut out = entry_header(kind, size);
    out.extend_from_slice(body);
    out
}

fn pack(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut p = b"PACK".to_vec();
    p.extend_from_slice(&2u32.to_be_bytes());
    p.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        p.extend_from_slice(e);
    }
    p.extend_from_slice(&[0; 20]); // the trailer is the indexer's to check
    p
}

/// Reads `data` through the inspector in chunks of `chunk` bytes.
fn run(data: &[u8], limits: PackLimits, chunk: usize) -> Result<Vec<u8>, String> {
    struct Chunked<'a>(&'a [u8], usize);
    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let mut r = Inspector::new(Chunked(data, chunk), limits);
    let findings = r.findings();
    let mut out = Vec::new();
    match r.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(_) => Err(findings.lock().unwrap().refusal.clone().unwrap()),
    }
}

const SMALL: PackLimits = PackLimits {
    max_object_bytes: 1000,
    max_objects: 10,
    max_delta_depth: 3,
    max_delta_base_bytes: 2500,
    max_inflate_ratio: None,
    inflate_floor: INFLATE_FLOOR,
};

#[test]
fn a_good_pack_passes_whole_in_any_chunking() {
    let blob = b"hello world\n".repeat(20);
    let data = pack(&[
        entry(3, blob.len() as u64, &deflate(&blob)),
        entry(3, 0, &deflate(b"")),
    ]);
    for chunk in [1, 2, 7, 64, 100_000] {
        assert_eq!(run(&data, SMALL, chunk).unwrap(), data);
    }
}

#[test]
fn oversized_objects_are_refused_from_the_header() {
    // Declared 2 GiB, with only a few bytes sent: refused before inflating.
    let data = pack(&[entry(3, 2 << 30, &deflate(b"x"))]);
    let err = run(&data, SMALL, 3).unwrap_err();
    assert!(err.contains("larger than the limit of 1000 bytes"), "{err}");
}

#[test]
fn a_stream_inflating_past_its_declared_size_is_stopped() {
    let zeros = vec![0u8; 1_000_000];
    let data = pack(&[entry(3, 10, &deflate(&zeros))]);
    let err = run(&data, SMALL, 4096).unwrap_err();
    assert!(err.contains("inflates to more than the 10 bytes"), "{err}");
    let short = pack(&[entry(3, 20, &deflate(b"only ten.."))]);
    let err = run(&short, SMALL, 4096).unwrap_err();
    assert!(
        err.contains("inflates to 10 bytes but declares 20"),
        "{err}"
    );
}

#[test]
fn delta_result_sizes_are_checked() {
    // base size 5, result size 16 GiB: the delta bomb.
    let mut delta = vec![5u8];
    let mut n: u64 = 16 << 30;
    while n >= 0x80 {
        delta.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    delta.push(n as u8);
    delta.extend_from_slice(&[0x90, 0x00]); // one copy instruction
    let mut e = entry(OBJ_REF_DELTA, delta.len() as u64, &[]);
    e.extend_from_slice(&[0xab; 20]);
    e.extend_from_slice(&deflate(&delta));
    for chunk in [1, 3, 1000] {
        let err = run(&pack(std::slice::from_ref(&e)), SMALL, chunk).unwrap_err();
        assert!(
            err.contains("declares a result of 17179869184 bytes"),
            "{err}"
        );
    }
}

/// An offset delta `distance` bytes after its base, with the delta bytes given.
fn ofs_delta_of(distance: u64, delta: &[u8]) -> Vec<u8> {
    let mut e = entry(OBJ_OFS_DELTA, delta.len() as u64, &ofs_distance(distance));
    e.extend_from_slice(&deflate(delta));
    e
}

/// An offset delta `distance` bytes after its base: copy `n` bytes of a base of
/// `base` bytes.
fn ofs_delta(distance: u64, base: u8, n: u8) -> Vec<u8> {
    ofs_delta_of(distance, &[base, n, 0x90, n])
}

/// A chain: a blob, then `n` deltas each on the entry before it.
fn chain(n: usize) -> Vec<Vec<u8>> {
    let mut entries = vec![entry(3, 10, &deflate(b"0123456789"))];
    for _ in 0..n {
        let prev = entries.last().unwrap().len() as u64;
        entries.push(ofs_delta(prev, 10, 10));
    }
    entries
}

#[test]
fn delta_chains_are_limited() {
    assert!(run(&pack(&chain(3)), SMALL, 5).is_ok());
    let err = run(&pack(&chain(4)), SMALL, 5).unwrap_err();
    assert!(
        err.contains("delta chain is longer than the limit of 3 (entry 4)"),
        "{err}"
    );
    // A base that is not an entry: refused, not looked up.
    let mut entries = chain(1);
    entries[1] = ofs_delta(3, 10, 10);
    let err = run(&pack(&entries), SMALL, 5).unwrap_err();
    assert!(err.contains("base is not an entry"), "{err}");
}

#[test]
fn bases_are_counted_once_against_the_budget() {
    // Many deltas on one base count it once.
    let base = b"x".repeat(900);
    let mut entries = vec![entry(3, 900, &deflate(&base))];
    let mut from_base = entries[0].len() as u64;
    for _ in 0..5 {
        // base 900, result 10
        let d = ofs_delta_of(from_base, &[0x84, 0x07, 10, 0x90, 10]);
        from_base += d.len() as u64;
        entries.push(d);
    }
    assert!(run(&pack(&entries), SMALL, 7).is_ok());
    // Distinct bases by id add up: 3 x 900 > 2500.
    let mut by_id = Vec::new();
    for i in 0..3u8 {
        let delta = [0x84, 0x07, 10, 0x90, 10];
        let mut e = entry(OBJ_REF_DELTA, delta.len() as u64, &[]);
        e.extend_from_slice(&[i; 20]);
        e.extend_from_slice(&deflate(&delta));
        by_id.push(e);
    }
    let err = run(&pack(&by_id), SMALL, 7).unwrap_err();
    assert!(err.contains("build on more than"), "{err}");
}

#[test]
fn what_a_pack_inflates_to_is_bounded_by_its_size() {
    // Many deltas, each a few bytes, each declaring a large result.
    let limits = PackLimits {
        max_object_bytes: 64 << 20,
        max_objects: 100_000,
        max_delta_depth: 10,
        max_delta_base_bytes: 64 << 20,
        max_inflate_ratio: Some(200),
        inflate_floor: INFLATE_FLOOR,
    };
    let base = entry(3, 4, &deflate(b"base"));
    let mut entries = vec![base.clone()];
    let mut offset = 12 + base.len() as u64;
    let result = 32u64 << 20;
    for _ in 0..20 {
        let mut delta = varint_bytes(4);
        delta.extend(varint_bytes(result));
        let e = ofs_delta_of(offset - 12, &delta);
        offset += e.len() as u64;
        entries.push(e);
    }
    let err = run(&pack(&entries), limits, 4096).unwrap_err();
    assert!(
        err.contains("inflate to more than 200 times its size"),
        "{err}"
    );
    // Without the bound (a gc), the same declarations pass the inspector.
    let open = PackLimits {
        max_inflate_ratio: None,
        ..limits
    };
    let out = run(&pack(&entries), open, 4096);
    assert!(
        out.as_ref()
            .err()
            .is_none_or(|e| !e.contains("inflate to more")),
        "{out:?}"
    );
}

fn varint_bytes(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}

#[test]
fn headers_are_checked() {
    assert!(
        run(b"JUNKJUNKJUNKJUNK", SMALL, 5)
            .unwrap_err()
            .contains("not a pack")
    );
    let mut many = b"PACK".to_vec();
    many.extend_from_slice(&2u32.to_be_bytes());
    many.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(
        run(&many, SMALL, 5)
            .unwrap_err()
            .contains("declares 4294967295 objects")
    );
    let bad_type = pack(&[entry(5, 1, &deflate(b"x"))]);
    assert!(
        run(&bad_type, SMALL, 5)
            .unwrap_err()
            .contains("invalid type 5")
    );
}

#[test]
fn a_tap_copies_each_entry_within_its_budget_and_gives_it_back_when_dropped() {
    let blobs: Vec<Vec<u8>> = (0..6u8).map(|i| vec![b'a' + i; 100]).collect();
    let data = pack(
        &blobs
            .iter()
            .map(|b| entry(3, b.len() as u64, &deflate(b)))
            .collect::<Vec<_>>(),
    );
    // Room for three entries at once (each counts its bytes and the overhead).
    let (tap, arrivals) = Tap::new(3 * (100 + TAP_ENTRY_OVERHEAD), 1000);
    let held = tap.held.clone();
    let mut r = Inspector::new(&data[..], SMALL).tapped(tap);
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out, data, "the bytes pass untouched");
    drop(r);
    // Nobody read while the pack passed: the first three were copied, the rest not.
    let got: Vec<Arrived> = arrivals.iter().collect();
    assert_eq!(
        got.iter().map(|a| a.index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    for a in &got {
        assert_eq!((a.kind, &a.data), (3, &blobs[a.index as usize]));
        assert!(a.base.is_none());
    }
    assert_eq!(held.load(Ordering::Relaxed), 3 * (100 + TAP_ENTRY_OVERHEAD));
    drop(got);
    assert_eq!(
        held.load(Ordering::Relaxed),
        0,
        "dropped copies give their room back"
    );
}
