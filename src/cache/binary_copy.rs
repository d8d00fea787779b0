//! Rows in PostgreSQL's binary `COPY` format, for [`super::bulk`] loads.
//!
//! `COPY … FROM STDIN (FORMAT binary)` is PostgreSQL's fastest way in: no SQL to plan,
//! no arrays to unpack, rows inserted in batches. The format (PostgreSQL manual, "COPY",
//! "Binary Format"): a signature and two 32-bit words, then per row a 16-bit field
//! count and each field as a 32-bit length (-1 for NULL) followed by the value in the
//! type's binary send format; a 16-bit -1 ends the data.

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

/// The `text` type's oid, for array headers.
const TEXT_OID: i32 = 25;

/// A `COPY` data stream being built.
pub struct CopyBuffer {
    buf: Vec<u8>,
}

impl CopyBuffer {
    /// A stream with its header written.
    pub fn new() -> CopyBuffer {
        let mut buf = Vec::with_capacity(1 << 20);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
        buf.extend_from_slice(&0i32.to_be_bytes()); // no header extension
        CopyBuffer { buf }
    }

    /// Bytes buffered so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes buffered so far, to send; [`CopyBuffer::clear`] then makes room for
    /// more in the same memory.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets the bytes buffered so far (they were sent), keeping the memory.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Ends the stream.
    pub fn finish(&mut self) {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
    }

    /// Starts a row of `fields` fields.
    pub fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        let len = i32::try_from(bytes.len()).expect("a field under 2 GiB");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    pub fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    pub fn text(&mut self, s: &str) {
        self.field(s.as_bytes());
    }

    pub fn opt_text(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    pub fn opt_uuid(&mut self, id: Option<&Uuid>) {
        match id {
            Some(id) => self.uuid(id),
            None => self.null(),
        }
    }

    /// A value already in its type's binary form (a `tsvector`'s, say).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.field(bytes);
    }

    pub fn int4(&mut self, n: i32) {
        self.field(&n.to_be_bytes());
    }

    pub fn uuid(&mut self, id: &Uuid) {
        self.field(id.as_bytes());
    }

    /// `jsonb`: a format version byte, then the JSON text.
    pub fn jsonb(&mut self, json: &str) {
        let len = i32::try_from(json.len() + 1).expect("a field under 2 GiB");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.push(1);
        self.buf.extend_from_slice(json.as_bytes());
    }

    /// `timestamptz`: microseconds since 2000-01-01 00:00 UTC.
    pub fn timestamptz(&mut self, at: &DateTime<Utc>) {
        let epoch = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
        let micros = (*at - epoch).num_microseconds().unwrap_or(i64::MAX);
        self.field(&micros.to_be_bytes());
    }

    /// `text[]`: dimensions, a has-NULLs flag, the element type, each dimension's
    /// length and lower bound, then the elements as fields.
    pub fn text_array(&mut self, items: &[String]) {
        let size: usize = 12
            + if items.is_empty() { 0 } else { 8 }
            + items.iter().map(|s| 4 + s.len()).sum::<usize>();
        let len = i32::try_from(size).expect("a field under 2 GiB");
        self.buf.extend_from_slice(&len.to_be_bytes());
        let dims: i32 = if items.is_empty() { 0 } else { 1 };
        self.buf.extend_from_slice(&dims.to_be_bytes());
        self.buf.extend_from_slice(&0i32.to_be_bytes());
        self.buf.extend_from_slice(&TEXT_OID.to_be_bytes());
        if !items.is_empty() {
            let n = i32::try_from(items.len()).expect("under 2^31 items");
            self.buf.extend_from_slice(&n.to_be_bytes());
            self.buf.extend_from_slice(&1i32.to_be_bytes());
            for s in items {
                self.text(s);
            }
        }
    }
}

impl Default for CopyBuffer {
    fn default() -> Self {
        CopyBuffer::new()
    }
}
