//! pkt-line framing (decoding with `gix-packetline`) and the side-band writer.

use super::{BadRequest, Result};
use gix_packetline::PacketLineRef;
use gix_packetline::blocking_io::StreamingPeekableIter;
use std::io::{self, Read, Write};

/// Largest pkt-line payload (65520 minus the 4-byte length).
pub const MAX_DATA: usize = 65516;

/// One decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pkt {
    Data(Vec<u8>),
    Flush,
    Delim,
    ResponseEnd,
    /// The peer closed the stream at a packet boundary.
    Eof,
}

impl Pkt {
    /// The payload without its trailing newline, for text lines.
    pub fn text(&self) -> Option<&[u8]> {
        match self {
            Pkt::Data(d) => Some(d.strip_suffix(b"\n").unwrap_or(d)),
            _ => None,
        }
    }
}

/// Reads pkt-lines from a stream without reading past the current line, so the
/// inner reader can be taken back to read a pack that follows.
pub struct PktReader<R: Read> {
    inner: StreamingPeekableIter<R>,
}

impl<R: Read> PktReader<R> {
    pub fn new(read: R) -> Self {
        PktReader {
            inner: StreamingPeekableIter::new(read, &[], false),
        }
    }

    pub fn read_pkt(&mut self) -> Result<Pkt> {
        match self.inner.read_line() {
            None => Ok(Pkt::Eof),
            Some(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Pkt::Eof),
            Some(Err(e)) => Err(e.into()),
            Some(Ok(Err(e))) => Err(BadRequest::PktLine(e).into()),
            Some(Ok(Ok(line))) => Ok(match line {
                PacketLineRef::Data(d) => Pkt::Data(d.to_vec()),
                PacketLineRef::Flush => Pkt::Flush,
                PacketLineRef::Delimiter => Pkt::Delim,
                PacketLineRef::ResponseEnd => Pkt::ResponseEnd,
            }),
        }
    }

    pub fn into_inner(self) -> R {
        self.inner.into_inner()
    }
}

/// Writes one data pkt-line.
pub fn write_data(w: &mut dyn Write, data: &[u8]) -> io::Result<()> {
    debug_assert!(data.len() <= MAX_DATA);
    write!(w, "{:04x}", data.len() + 4)?;
    w.write_all(data)
}

/// Writes one text pkt-line, adding the newline. Text longer than a pkt-line holds is
/// cut (at a character boundary): the length prefix always has four digits.
pub fn write_text(w: &mut dyn Write, text: &str) -> io::Result<()> {
    let text = cut(text, MAX_DATA - 1);
    writeln!(w, "{:04x}{}", text.len() + 5, text)
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Longest error message sent to a client (they may quote what the client sent).
const MAX_ERR: usize = 1000;

pub fn write_flush(w: &mut dyn Write) -> io::Result<()> {
    w.write_all(b"0000")
}

pub fn write_delim(w: &mut dyn Write) -> io::Result<()> {
    w.write_all(b"0001")
}

/// A fatal error the client prints as `fatal: remote error: ...`.
pub fn write_err(w: &mut dyn Write, msg: &str) -> io::Result<()> {
    // Control characters a client put into what the message quotes are shown escaped
    // (no terminal escapes reach the pusher's screen), and the message is kept short.
    let clean: String = msg
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    write_text(w, &format!("ERR {}", cut(&clean, MAX_ERR)))
}

/// Which side-band the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideBandMode {
    None,
    /// `side-band`: packets of at most 1000 bytes.
    Small,
    /// `side-band-64k` (and protocol v2).
    Large,
}

/// Multiplexes pack data (band 1), progress (band 2) and errors (band 3) onto one stream.
pub struct SideBand<'a> {
    out: &'a mut dyn Write,
    mode: SideBandMode,
    quiet: bool,
    /// With [`SideBand::keep_transcript`]: every message sent (not progress).
    transcript: Option<String>,
}

impl<'a> SideBand<'a> {
    pub fn new(out: &'a mut dyn Write, mode: SideBandMode, quiet: bool) -> Self {
        SideBand {
            out,
            mode,
            quiet,
            transcript: None,
        }
    }

    /// Keeps the text of every [`SideBand::message`] sent from now on.
    pub fn keep_transcript(&mut self) {
        self.transcript.get_or_insert_with(String::new);
    }

    /// The messages sent since [`SideBand::keep_transcript`], as the client read them.
    pub fn transcript(&self) -> Option<&str> {
        self.transcript.as_deref()
    }

    fn max_chunk(&self) -> usize {
        match self.mode {
            SideBandMode::Small => 1000 - 5,
            _ => 65520 - 5,
        }
    }

    fn band(&mut self, band: u8, mut data: &[u8]) -> io::Result<()> {
        let max = self.max_chunk();
        while !data.is_empty() {
            let n = data.len().min(max);
            write!(self.out, "{:04x}", n + 5)?;
            self.out.write_all(&[band])?;
            self.out.write_all(&data[..n])?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Band 1: the payload (pack or report).
    pub fn data(&mut self, data: &[u8]) -> io::Result<()> {
        match self.mode {
            SideBandMode::None => self.out.write_all(data),
            _ => self.band(1, data),
        }
    }

    /// Band 2: progress and messages, shown as `remote: ...`. Dropped without side-band
    /// or when the client asked for quiet.
    pub fn progress(&mut self, text: &str) -> io::Result<()> {
        if self.mode == SideBandMode::None || self.quiet {
            return Ok(());
        }
        self.band(2, text.as_bytes())
    }

    /// Band 2 even when quiet: messages the pusher must see (validation errors).
    pub fn message(&mut self, text: &str) -> io::Result<()> {
        if self.mode == SideBandMode::None {
            return Ok(());
        }
        if let Some(t) = &mut self.transcript {
            t.push_str(text);
        }
        self.band(2, text.as_bytes())
    }

    /// Band 3: a fatal error.
    pub fn fatal(&mut self, text: &str) -> io::Result<()> {
        match self.mode {
            SideBandMode::None => write_err(self.out, text),
            _ => self.band(3, text.as_bytes()),
        }
    }

    pub fn mode(&self) -> SideBandMode {
        self.mode
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn inner(&mut self) -> &mut dyn Write {
        self.out
    }
}

impl Write for SideBand<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.data(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Parses a 40-hex object id.
pub fn parse_oid(hex: &[u8]) -> Result<gix::ObjectId> {
    gix::ObjectId::from_hex(hex).map_err(|_| BadRequest::ObjectId(hex.into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_hostile_text_keeps_the_pkt_line_format() {
        let mut out = Vec::new();
        write_text(&mut out, &"é".repeat(40_000)).unwrap();
        let len = usize::from_str_radix(std::str::from_utf8(&out[..4]).unwrap(), 16).unwrap();
        assert_eq!(len, out.len());
        assert!(len <= MAX_DATA + 4);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
        let mut out = Vec::new();
        let echoed = format!("unknown fetch argument `\x1b[2J{}`", "a".repeat(65_000));
        write_err(&mut out, &echoed).unwrap();
        let text = std::str::from_utf8(&out[4..]).unwrap();
        assert!(
            text.starts_with("ERR unknown fetch argument `\\u{1b}[2J"),
            "{text:.60}"
        );
        assert!(out.len() <= MAX_ERR + 10);
        assert_eq!(
            usize::from_str_radix(std::str::from_utf8(&out[..4]).unwrap(), 16).unwrap(),
            out.len()
        );
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        write_text(&mut buf, "hello").unwrap();
        write_delim(&mut buf).unwrap();
        write_flush(&mut buf).unwrap();
        buf.extend_from_slice(b"PACK");
        assert_eq!(&buf[..10], b"000ahello\n");
        let mut r = PktReader::new(&buf[..]);
        assert_eq!(r.read_pkt().unwrap(), Pkt::Data(b"hello\n".to_vec()));
        assert_eq!(r.read_pkt().unwrap(), Pkt::Delim);
        assert_eq!(r.read_pkt().unwrap(), Pkt::Flush);
        let mut rest = Vec::new();
        r.into_inner().read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"PACK");
    }

    #[test]
    fn eof_and_garbage() {
        let mut r = PktReader::new(&b""[..]);
        assert_eq!(r.read_pkt().unwrap(), Pkt::Eof);
        let mut r = PktReader::new(&b"zzzzhello"[..]);
        assert!(r.read_pkt().is_err());
    }

    #[test]
    fn sideband_chunks() {
        let mut out = Vec::new();
        {
            let mut sb = SideBand::new(&mut out, SideBandMode::Small, false);
            sb.data(&vec![b'x'; 2000]).unwrap();
            sb.progress("hi\n").unwrap();
        }
        assert_eq!(&out[..5], b"03e8\x01");
        assert_eq!(out.len(), (995 + 5) * 2 + (10 + 5) + (3 + 5));
    }
}
