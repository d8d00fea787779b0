//! The commands of a push: `<old> <new> <ref>` lines with the client's capabilities,
//! then (optionally) push options.

use crate::protocol::pktline::{Pkt, PktReader, parse_oid};
use crate::protocol::{BadRequest, Result, Section};
use gix::ObjectId;
use std::io::Read;

/// One ref update the client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub old: ObjectId,
    pub new: ObjectId,
    pub name: String,
}

impl Command {
    pub fn is_delete(&self) -> bool {
        self.new.is_null()
    }
    pub fn is_create(&self) -> bool {
        self.old.is_null()
    }
    /// The branch name for `refs/heads/<branch>`.
    pub fn branch(&self) -> Option<&str> {
        self.name.strip_prefix("refs/heads/")
    }
}

/// Most ref updates one push may carry.
pub const MAX_COMMANDS: usize = 1000;
/// Most push options one push may send.
pub const MAX_PUSH_OPTIONS: usize = 100;

/// What the client sent before its pack.
#[derive(Debug, Default)]
pub struct Request {
    pub commands: Vec<Command>,
    pub capabilities: Vec<String>,
    pub push_options: Vec<String>,
}

impl Request {
    pub fn has(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c == cap)
    }
}

/// Reads the command list (and push options, when negotiated). `None` when the client
/// hung up or sent nothing to do.
pub fn read<R: Read>(input: &mut PktReader<R>) -> Result<Option<Request>> {
    let mut req = Request::default();
    loop {
        match input.read_pkt()? {
            Pkt::Eof => return Ok(None),
            Pkt::Flush => break,
            pkt @ Pkt::Data(_) => {
                let line = pkt.text().unwrap_or_default();
                let (line, caps) = match line.iter().position(|&b| b == 0) {
                    Some(i) => (&line[..i], Some(&line[i + 1..])),
                    None => (line, None),
                };
                if let Some(caps) = caps
                    && req.commands.is_empty()
                {
                    req.capabilities = String::from_utf8_lossy(caps)
                        .split_whitespace()
                        .map(str::to_string)
                        .collect();
                }
                if line.starts_with(b"shallow ") {
                    return Err(BadRequest::Shallow.into());
                }
                if line.len() < 83 || line[40] != b' ' || line[81] != b' ' {
                    return Err(BadRequest::CommandLine(line.into()).into());
                }
                let name = std::str::from_utf8(&line[82..])
                    .map_err(|_| BadRequest::RefNameNotUtf8)?
                    .to_string();
                req.commands.push(Command {
                    old: parse_oid(&line[..40])?,
                    new: parse_oid(&line[41..81])?,
                    name,
                });
                if req.commands.len() > MAX_COMMANDS {
                    return Err(BadRequest::TooManyCommands(MAX_COMMANDS).into());
                }
            }
            other => {
                return Err(BadRequest::Packet(Section::CommandList, other).into());
            }
        }
    }
    if req.commands.is_empty() {
        return Ok(None);
    }
    if req.has("push-options") {
        loop {
            match input.read_pkt()? {
                Pkt::Flush => break,
                Pkt::Eof => {
                    return Err(BadRequest::EndOfPushOptions.into());
                }
                pkt @ Pkt::Data(_) => {
                    let opt = String::from_utf8_lossy(pkt.text().unwrap_or_default()).into_owned();
                    if req.push_options.len() >= MAX_PUSH_OPTIONS {
                        return Err(BadRequest::TooManyPushOptions(MAX_PUSH_OPTIONS).into());
                    }
                    req.push_options.push(opt);
                }
                other => {
                    return Err(BadRequest::Packet(Section::PushOptions, other).into());
                }
            }
        }
    }
    Ok(Some(req))
}
