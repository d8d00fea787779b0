//! The client's half of receive-pack, protocol v0: the ref advertisement, the
//! commands, the report. What the upstream sends is bounded before it is held.

use super::UpstreamError;
use super::plan::Command;
use crate::protocol::pktline::{Pkt, PktReader, parse_oid, write_data, write_flush};
use gix::ObjectId;
use std::collections::HashMap;
use std::io::{Read, Write};

/// What the upstream advertised.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Advertisement {
    pub refs: HashMap<String, ObjectId>,
    /// `.have` lines: objects the upstream has besides its refs' (alternates).
    pub haves: Vec<ObjectId>,
    pub caps: Vec<String>,
}

impl Advertisement {
    pub fn has(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c == cap)
    }

    /// Every object id the upstream said it has.
    pub fn known(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.refs
            .values()
            .copied()
            .chain(self.haves.iter().copied())
    }
}

/// The most refs (and `.have` lines) an advertisement may hold: an upstream is not
/// trusted with this server's memory.
const MAX_ADVERTISED: usize = 1_000_000;
/// The most bytes of ref names an advertisement may hold, all refs together (a ref
/// name git would make is at most a few hundred bytes: 64 MiB is hundreds of
/// thousands of them, and bounds what 1,000,000 names of 60 KB would take).
const MAX_ADVERTISED_NAME_BYTES: usize = 64 << 20;
/// The longest ref name an advertisement may hold (git's own refs fit in 4 KiB:
/// `PATH_MAX` on Linux).
const MAX_REF_NAME_BYTES: usize = 4096;
/// The most bytes of report lines (one line per ref sent, plus the unpack status).
const MAX_REPORT_BYTES: usize = 16 << 20;

fn protocol(msg: impl Into<String>) -> UpstreamError {
    UpstreamError::Protocol(msg.into())
}

fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

/// Reads the ref advertisement up to its flush.
pub fn read_advertisement<R: Read>(
    input: &mut PktReader<R>,
) -> Result<Advertisement, UpstreamError> {
    let mut adv = Advertisement::default();
    let mut first = true;
    let mut name_bytes = 0usize;
    loop {
        let pkt = input.read_pkt()?;
        let line = match &pkt {
            Pkt::Flush => break,
            Pkt::Eof => {
                return Err(protocol(
                    "the upstream closed the connection before advertising its refs",
                ));
            }
            Pkt::Data(_) => pkt.text().unwrap_or_default(),
            other => {
                return Err(protocol(format!(
                    "unexpected {other:?} in the advertisement"
                )));
            }
        };
        if let Some(msg) = line.strip_prefix(b"ERR ") {
            return Err(UpstreamError::Upstream(text(msg)));
        }
        let line = if first {
            first = false;
            match line.iter().position(|b| *b == 0) {
                Some(nul) => {
                    adv.caps = text(&line[nul + 1..])
                        .split(' ')
                        .filter(|c| !c.is_empty())
                        .map(str::to_string)
                        .collect();
                    &line[..nul]
                }
                None => line,
            }
        } else {
            line
        };
        if line.starts_with(b"shallow ") {
            continue;
        }
        let (oid, name) = match line.iter().position(|b| *b == b' ') {
            Some(sp) if sp == 40 => (&line[..sp], &line[sp + 1..]),
            _ => {
                return Err(protocol(format!(
                    "invalid advertisement line `{}`",
                    text(line)
                )));
            }
        };
        let oid = parse_oid(oid)?;
        if name.len() > MAX_REF_NAME_BYTES {
            return Err(protocol(format!(
                "the upstream advertised a ref name of {} bytes, more than {MAX_REF_NAME_BYTES}",
                name.len()
            )));
        }
        name_bytes += name.len();
        if name_bytes > MAX_ADVERTISED_NAME_BYTES {
            return Err(protocol(format!(
                "the upstream advertised more than {} MiB of ref names",
                MAX_ADVERTISED_NAME_BYTES >> 20
            )));
        }
        if adv.refs.len() + adv.haves.len() >= MAX_ADVERTISED {
            return Err(protocol(format!(
                "the upstream advertised more than {MAX_ADVERTISED} refs"
            )));
        }
        match name {
            b"capabilities^{}" => {}
            b".have" => adv.haves.push(oid),
            n if n.ends_with(b"^{}") => {}
            n => {
                adv.refs.insert(text(n), oid);
            }
        }
    }
    if let Some(format) = adv
        .caps
        .iter()
        .find_map(|c| c.strip_prefix("object-format="))
        && format != "sha1"
    {
        return Err(protocol(format!(
            "the upstream uses object format {format}; only sha1 repositories can be mirrored"
        )));
    }
    Ok(adv)
}

/// The capabilities we ask for: only what the upstream offers.
pub fn request_caps(adv: &Advertisement) -> Vec<String> {
    let mut caps: Vec<String> = ["report-status", "side-band-64k", "ofs-delta", "quiet"]
        .into_iter()
        .filter(|c| adv.has(c))
        .map(str::to_string)
        .collect();
    if adv.caps.iter().any(|c| c.starts_with("agent=")) {
        caps.push(format!("agent={}", crate::protocol::AGENT));
    }
    caps
}

/// Writes the commands (`old new name`, the first with `\0caps`) and the flush.
pub fn write_commands(
    out: &mut dyn Write,
    commands: &[Command],
    caps: &[String],
) -> std::io::Result<()> {
    let zero = ObjectId::null(gix::hash::Kind::Sha1);
    for (i, c) in commands.iter().enumerate() {
        let mut line = format!(
            "{} {} {}",
            c.old.unwrap_or(zero),
            c.new.unwrap_or(zero),
            c.name
        )
        .into_bytes();
        if i == 0 {
            line.push(0);
            line.extend_from_slice(caps.join(" ").as_bytes());
        }
        line.push(b'\n');
        write_data(out, &line)?;
    }
    write_flush(out)
}

/// The upstream's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `Err`: the unpack error.
    pub unpack: Result<(), String>,
    /// Per ref: `Ok` or `Err(reason)`.
    pub refs: HashMap<String, Result<(), String>>,
    /// Side-band 2 (remote messages), for error texts.
    pub messages: String,
}

/// Longest collected side-band message text.
const MAX_MESSAGES: usize = 16 * 1024;

/// Reads the report: in side-band channel 1 when `sideband`, band 2 collected, band 3
/// fatal.
pub fn read_report<R: Read>(
    input: &mut PktReader<R>,
    sideband: bool,
) -> Result<Report, UpstreamError> {
    let mut messages = String::new();
    let lines = if sideband {
        let mut inner = Vec::new();
        loop {
            match input.read_pkt()? {
                Pkt::Flush | Pkt::Eof => break,
                Pkt::Data(d) => match d.split_first() {
                    Some((1, rest)) => {
                        if inner.len() + rest.len() > MAX_REPORT_BYTES {
                            return Err(protocol("the upstream's report is too long"));
                        }
                        inner.extend_from_slice(rest)
                    }
                    Some((2, rest)) => {
                        if messages.len() < MAX_MESSAGES {
                            messages.push_str(&String::from_utf8_lossy(rest));
                        }
                    }
                    Some((3, rest)) => {
                        return Err(UpstreamError::Upstream(text(rest).trim_end().to_string()));
                    }
                    _ => return Err(protocol("invalid side-band packet in the report")),
                },
                other => return Err(protocol(format!("unexpected {other:?} in the report"))),
            }
        }
        let mut reader = PktReader::new(&inner[..]);
        read_lines(&mut reader)?
    } else {
        read_lines(input)?
    };
    let mut report = Report {
        unpack: Ok(()),
        refs: HashMap::new(),
        messages,
    };
    let mut lines = lines.into_iter();
    match lines.next() {
        Some(l) if l == "unpack ok" => {}
        Some(l) if l.starts_with("unpack ") => report.unpack = Err(l["unpack ".len()..].into()),
        Some(l) => return Err(protocol(format!("unexpected report line `{l}`"))),
        None => {
            let said = report.messages.trim();
            return Err(if said.is_empty() {
                protocol("the upstream sent no report")
            } else {
                UpstreamError::Upstream(said.to_string())
            });
        }
    }
    for l in lines {
        if let Some(name) = l.strip_prefix("ok ") {
            report.refs.insert(name.to_string(), Ok(()));
        } else if let Some(rest) = l.strip_prefix("ng ") {
            let (name, reason) = rest.split_once(' ').unwrap_or((rest, "refused"));
            report
                .refs
                .insert(name.to_string(), Err(reason.to_string()));
        } else if l.starts_with("option ") {
            // report-status-v2 details (not asked for)
        } else {
            return Err(protocol(format!("unexpected report line `{l}`")));
        }
    }
    Ok(report)
}

fn read_lines<R: Read>(input: &mut PktReader<R>) -> Result<Vec<String>, UpstreamError> {
    let mut lines = Vec::new();
    let mut bytes = 0;
    loop {
        match input.read_pkt()? {
            Pkt::Flush | Pkt::Eof => return Ok(lines),
            pkt @ Pkt::Data(_) => {
                let line = text(pkt.text().unwrap_or_default());
                bytes += line.len();
                if bytes > MAX_REPORT_BYTES {
                    return Err(protocol("the upstream's report is too long"));
                }
                if let Some(msg) = line.strip_prefix("ERR ") {
                    return Err(UpstreamError::Upstream(msg.to_string()));
                }
                lines.push(line);
            }
            other => return Err(protocol(format!("unexpected {other:?} in the report"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::pktline::write_text;

    fn pkts(lines: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for l in lines {
            if l.is_empty() {
                write_flush(&mut out).unwrap();
            } else {
                write_data(&mut out, l).unwrap();
            }
        }
        out
    }

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn advertisement() {
        let first = format!(
            "{A} refs/heads/main\0report-status delete-refs side-band-64k quiet ofs-delta agent=git/2.47 object-format=sha1\n"
        );
        let second = format!("{B} refs/tags/v1\n");
        let have = format!("{B} .have\n");
        let buf = pkts(&[first.as_bytes(), second.as_bytes(), have.as_bytes(), b""]);
        let adv = read_advertisement(&mut PktReader::new(&buf[..])).unwrap();
        assert_eq!(adv.refs.len(), 2);
        assert_eq!(adv.refs["refs/heads/main"].to_string(), A);
        assert_eq!(adv.haves.len(), 1);
        assert!(adv.has("delete-refs") && adv.has("side-band-64k"));
        let caps = request_caps(&adv);
        assert_eq!(
            &caps[..4],
            &["report-status", "side-band-64k", "ofs-delta", "quiet"]
        );
        assert!(caps[4].starts_with("agent=skillsd/"));

        let empty = format!(
            "{} capabilities^{{}}\0report-status delete-refs\n",
            "0".repeat(40)
        );
        let buf = pkts(&[empty.as_bytes(), b""]);
        let adv = read_advertisement(&mut PktReader::new(&buf[..])).unwrap();
        assert!(adv.refs.is_empty() && adv.haves.is_empty());
        assert_eq!(request_caps(&adv), vec!["report-status".to_string()]);

        let buf = pkts(&[b"ERR access denied\n"]);
        match read_advertisement(&mut PktReader::new(&buf[..])) {
            Err(UpstreamError::Upstream(m)) => assert_eq!(m, "access denied"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_advertisement(&mut PktReader::new(&b""[..])),
            Err(UpstreamError::Protocol(_))
        ));
        let sha256 = format!("{A} refs/heads/main\0object-format=sha256\n");
        let buf = pkts(&[sha256.as_bytes(), b""]);
        assert!(read_advertisement(&mut PktReader::new(&buf[..])).is_err());
    }

    #[test]
    fn commands() {
        let a = ObjectId::from_hex(A.as_bytes()).unwrap();
        let cmds = vec![
            Command {
                name: "refs/heads/main".into(),
                old: None,
                new: Some(a),
            },
            Command {
                name: "refs/heads/old".into(),
                old: Some(a),
                new: None,
            },
        ];
        let mut out = Vec::new();
        write_commands(&mut out, &cmds, &["report-status".into(), "quiet".into()]).unwrap();
        let zero = "0".repeat(40);
        let expected = pkts(&[
            format!("{zero} {A} refs/heads/main\0report-status quiet\n").as_bytes(),
            format!("{A} {zero} refs/heads/old\n").as_bytes(),
            b"",
        ]);
        assert_eq!(out, expected);
    }

    #[test]
    fn an_advertisement_is_bounded_in_bytes_not_only_in_refs() {
        // 18,000 refs of 4 KB names: 72 MB of names, far under the ref count.
        let mut adv = Vec::new();
        let long = "n".repeat(4_000);
        for i in 0..18_000 {
            let line = format!("{A} refs/heads/{long}{i}\n");
            write_data(&mut adv, line.as_bytes()).unwrap();
        }
        write_flush(&mut adv).unwrap();
        let e = read_advertisement(&mut PktReader::new(&adv[..])).unwrap_err();
        assert!(e.to_string().contains("MiB of ref names"), "{e}");
        // One name longer than any git makes.
        let mut adv = Vec::new();
        write_data(
            &mut adv,
            format!("{A} refs/heads/{}\n", "x".repeat(5000)).as_bytes(),
        )
        .unwrap();
        write_flush(&mut adv).unwrap();
        let e = read_advertisement(&mut PktReader::new(&adv[..])).unwrap_err();
        assert!(e.to_string().contains("ref name of"), "{e}");
    }

    #[test]
    fn a_report_that_never_ends_is_cut_off() {
        // Band 1 data beyond the bound, in 65515-byte packets (the side-band maximum).
        let chunk = vec![b'x'; 65515];
        let mut outer = Vec::new();
        let mut sent = 0;
        while sent <= MAX_REPORT_BYTES {
            let mut pkt = vec![1u8];
            pkt.extend_from_slice(&chunk[1..]);
            write_data(&mut outer, &pkt).unwrap();
            sent += pkt.len() - 1;
        }
        let e = read_report(&mut PktReader::new(&outer[..]), true).unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
        // The same without side-band: many lines.
        let mut plain = Vec::new();
        let line = "ok refs/heads/".to_string() + &"y".repeat(60000);
        for _ in 0..=(MAX_REPORT_BYTES / 60000) {
            write_text(&mut plain, &line).unwrap();
        }
        let e = read_report(&mut PktReader::new(&plain[..]), false).unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
    }

    #[test]
    fn reports() {
        let mut inner = Vec::new();
        write_text(&mut inner, "unpack ok").unwrap();
        write_text(&mut inner, "ok refs/heads/main").unwrap();
        write_text(&mut inner, "ng refs/heads/x non-fast-forward").unwrap();
        write_flush(&mut inner).unwrap();
        let mut outer = Vec::new();
        let mut band2 = b"\x02remote: hello\n".to_vec();
        write_data(&mut outer, &band2).unwrap();
        let mut band1 = vec![1u8];
        band1.extend_from_slice(&inner);
        write_data(&mut outer, &band1).unwrap();
        write_flush(&mut outer).unwrap();
        let r = read_report(&mut PktReader::new(&outer[..]), true).unwrap();
        assert_eq!(r.unpack, Ok(()));
        assert_eq!(r.refs["refs/heads/main"], Ok(()));
        assert_eq!(r.refs["refs/heads/x"], Err("non-fast-forward".to_string()));
        assert_eq!(r.messages, "remote: hello\n");
        // Without side-band.
        let r = read_report(&mut PktReader::new(&inner[..]), false).unwrap();
        assert_eq!(r.refs.len(), 2);
        // Band 3: fatal.
        band2[0] = 3;
        let mut outer = Vec::new();
        write_data(&mut outer, &band2).unwrap();
        assert!(matches!(
            read_report(&mut PktReader::new(&outer[..]), true),
            Err(UpstreamError::Upstream(m)) if m == "remote: hello"
        ));
        // An unpack error.
        let mut inner = Vec::new();
        write_text(&mut inner, "unpack index-pack abnormal exit").unwrap();
        write_text(&mut inner, "ng refs/heads/main unpacker error").unwrap();
        write_flush(&mut inner).unwrap();
        let r = read_report(&mut PktReader::new(&inner[..]), false).unwrap();
        assert_eq!(r.unpack, Err("index-pack abnormal exit".to_string()));
    }
}
