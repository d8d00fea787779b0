//! `git-upload-pack`: serves clones and fetches, in protocol v2 (`ls-refs`, `fetch`)
//! and protocol v0 (ref advertisement, want/have negotiation), shallow (`deepen…`)
//! and partial (`filter`) ones; wants may name any object an advertised ref reaches
//! ([`super::reach`]), as a partial clone's lazy fetches do.

use super::filter::Filter;
use super::pack::{Deepen, ShallowUpdate, objects_to_send_filtered, write_pack};
use super::pktline::{
    Pkt, PktReader, SideBand, SideBandMode, parse_oid, write_delim, write_err, write_flush,
    write_text,
};
use super::reach::check_wants;
use super::refs::RefList;
use super::{AGENT, BadRequest, ProtocolError, Result, Section};
use gix::ObjectId;
use std::collections::HashSet;
use std::io::{Read, Write};

/// Protocol versions a client may ask for (through `GIT_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V0,
    V2,
}

impl Version {
    /// From the `GIT_PROTOCOL` value, e.g. `version=2` (`:`-separated list).
    pub fn from_git_protocol(value: Option<&str>) -> Version {
        match value {
            Some(v) if v.split(':').any(|kv| kv == "version=2") => Version::V2,
            _ => Version::V0,
        }
    }
}

/// Serves one upload-pack session.
pub fn serve(
    repo: &gix::Repository,
    input: impl Read,
    out: &mut dyn Write,
    version: Version,
    user: &str,
) -> Result<()> {
    let mut input = PktReader::new(input);
    let result = match version {
        Version::V2 => serve_v2(repo, &mut input, out, user),
        Version::V0 => serve_v0(repo, &mut input, out, user),
    };
    if let Err(ProtocolError::Request(why)) = &result {
        // Best effort: tell the client why; it prints `remote error: ...`.
        let _ = write_err(out, &why.to_string());
        if version == Version::V0 {
            // A v0 client writes its want list and then `done` without reading in
            // between: were the session closed at once, that second write could
            // fail (a broken pipe) before git reads the reason. Read on until the
            // client hangs up, which git does on ERR (a silent one is cut off by
            // the session's minimum rate), at most a little.
            let _ = out.flush();
            let rest = input.into_inner().take(DRAIN_BYTES);
            let _ = std::io::copy(&mut { rest }, &mut std::io::sink());
        }
    }
    out.flush()?;
    result
}

/// The most a v0 session reads after refusing a request (see [`serve`]).
const DRAIN_BYTES: u64 = 64 * 1024;

const V0_CAPS: &str = "multi_ack_detailed side-band-64k side-band thin-pack ofs-delta shallow deepen-since deepen-not deepen-relative no-done no-progress include-tag filter allow-tip-sha1-in-want allow-reachable-sha1-in-want object-format=sha1";

fn serve_v0<R: Read>(
    repo: &gix::Repository,
    input: &mut PktReader<R>,
    out: &mut dyn Write,
    user: &str,
) -> Result<()> {
    let refs = RefList::read(repo)?;
    let mut caps = format!("{V0_CAPS} agent={AGENT}");
    if let Some(target) = &refs.head_target {
        caps = format!("{caps} symref=HEAD:{target}");
    }
    advertise_v0(&refs, &caps, out)?;
    out.flush()?;

    // What the request keeps (wants, shallows, common haves) counts in the process's
    // budget of held requests, like a v2 request's bytes, until the pack is sent.
    let mut held = REQUESTS.hold(user);
    let mut lines = 0usize;
    let Some(mut req) = read_wants_v0(input, &refs, &mut held, &mut lines)? else {
        return Ok(());
    };
    if req.wants.is_empty() {
        return Ok(());
    }
    check_wants(repo, &refs, &req.wants)?;
    let filter = req.filter.take().unwrap_or_default();
    // In v0, deepen-relative is a capability on the first want line.
    let relative = req.relative || req.has("deepen-relative");
    if let Some(d) = req.deepen.as_mut() {
        d.relative = relative;
        d.client_shallow = std::mem::take(&mut req.client_shallow);
        // The new shallow boundary goes out before negotiation.
        let (_, update) = objects_to_send_filtered(repo, &req.wants, &[], Some(d), &filter)?;
        write_shallow_update(out, &update)?;
        write_flush(out)?;
        out.flush()?;
    }
    let sideband = if req.has("side-band-64k") {
        SideBandMode::Large
    } else if req.has("side-band") {
        SideBandMode::Small
    } else {
        SideBandMode::None
    };
    let Some(commons) = negotiate_v0(repo, input, out, &req, &mut held, &mut lines)? else {
        return Ok(());
    };
    let mut sb = SideBand::new(out, sideband, req.has("no-progress"));
    let (ids, _) =
        objects_to_send_filtered(repo, &req.wants, &commons, req.deepen.as_ref(), &filter)?;
    send_pack(repo, &refs, ids, req.has("include-tag"), &mut sb)?;
    if sideband != SideBandMode::None {
        write_flush(sb.inner())?;
    }
    sb.flush()?;
    Ok(())
}

/// A v0 request: the wants with the client's capabilities (on the first want line),
/// shallows, deepen and filter lines.
#[derive(Default)]
struct V0Request {
    wants: Vec<ObjectId>,
    client_caps: Vec<String>,
    deepen: Option<Deepen>,
    client_shallow: Vec<ObjectId>,
    relative: bool,
    filter: Option<Filter>,
}

impl V0Request {
    fn has(&self, cap: &str) -> bool {
        self.client_caps.iter().any(|c| c == cap)
    }
}

/// The want list, up to its flush (`None`: the client left).
fn read_wants_v0<R: Read>(
    input: &mut PktReader<R>,
    refs: &RefList,
    held: &mut Held<'_>,
    lines: &mut usize,
) -> Result<Option<V0Request>> {
    let mut req = V0Request::default();
    loop {
        match input.read_pkt()? {
            Pkt::Eof => return Ok(None),
            Pkt::Flush => return Ok(Some(req)),
            pkt @ Pkt::Data(_) => {
                *lines += 1;
                too_many_lines(*lines)?;
                hold_line(held)?;
                let line = pkt.text().unwrap_or_default();
                if let Some(rest) = line.strip_prefix(b"want ") {
                    let (oid, caps) = rest.split_at(rest.len().min(40));
                    req.wants.push(parse_oid(oid)?);
                    if req.wants.len() == 1 {
                        req.client_caps = String::from_utf8_lossy(caps)
                            .split_whitespace()
                            .map(str::to_string)
                            .collect();
                    }
                } else if let Some(hex) = line.strip_prefix(b"shallow ") {
                    req.client_shallow.push(parse_oid(hex)?);
                } else if line.starts_with(b"deepen") {
                    parse_deepen(
                        &String::from_utf8_lossy(line),
                        refs,
                        &mut req.deepen,
                        &mut req.relative,
                    )?;
                } else if let Some(spec) = line.strip_prefix(b"filter ") {
                    parse_filter(&String::from_utf8_lossy(spec), &mut req.filter)?;
                } else {
                    return Err(BadRequest::Line(Section::WantList, line.into()).into());
                }
            }
            other => {
                return Err(BadRequest::Packet(Section::WantList, other).into());
            }
        }
    }
}

/// v0 negotiation: each `have` the repository holds is acknowledged as the client's
/// capabilities ask (multi_ack, multi_ack_detailed, no-done) until `done`, or until
/// ready; the common commits found (`None`: the client left).
fn negotiate_v0<R: Read>(
    repo: &gix::Repository,
    input: &mut PktReader<R>,
    out: &mut dyn Write,
    req: &V0Request,
    held: &mut Held<'_>,
    lines: &mut usize,
) -> Result<Option<Vec<ObjectId>>> {
    let multi_ack_detailed = req.has("multi_ack_detailed");
    let multi_ack = multi_ack_detailed || req.has("multi_ack");
    let no_done = req.has("no-done");
    let mut commons: Vec<ObjectId> = Vec::new();
    loop {
        match input.read_pkt()? {
            Pkt::Eof => return Ok(None),
            Pkt::Flush => {
                // With multi_ack_detailed, one common commit is enough to stop: the
                // pack is built from the commons found so far.
                let ready = multi_ack_detailed && !commons.is_empty();
                if let (true, Some(last)) = (ready, commons.last()) {
                    write_text(out, &format!("ACK {last} ready"))?;
                }
                if multi_ack || commons.is_empty() {
                    write_text(out, "NAK")?;
                }
                if let (true, true, Some(last)) = (ready, no_done, commons.last()) {
                    write_text(out, &format!("ACK {last}"))?;
                    return Ok(Some(commons));
                }
                out.flush()?;
            }
            pkt @ Pkt::Data(_) => {
                *lines += 1;
                too_many_lines(*lines)?;
                hold_line(held)?;
                let line = pkt.text().unwrap_or_default();
                if let Some(hex) = line.strip_prefix(b"have ") {
                    let oid = parse_oid(hex)?;
                    if is_common(repo, &oid) {
                        if multi_ack_detailed {
                            write_text(out, &format!("ACK {oid} common"))?;
                        } else if multi_ack {
                            write_text(out, &format!("ACK {oid} continue"))?;
                        } else if commons.is_empty() {
                            write_text(out, &format!("ACK {oid}"))?;
                        }
                        commons.push(oid);
                    }
                } else if line == b"done" {
                    match commons.last() {
                        Some(last) if multi_ack => write_text(out, &format!("ACK {last}"))?,
                        Some(_) => {}
                        None => write_text(out, "NAK")?,
                    }
                    return Ok(Some(commons));
                } else {
                    return Err(BadRequest::Line(Section::Negotiation, line.into()).into());
                }
            }
            other => {
                return Err(BadRequest::Packet(Section::Negotiation, other).into());
            }
        }
    }
}

/// What one kept v0 line costs in the budget of held requests: an object id in a
/// `Vec` and its share of the vector's spare room.
const V0_LINE_BYTES: usize = 2 * std::mem::size_of::<ObjectId>();

fn hold_line(held: &mut Held<'_>) -> Result<()> {
    Ok(held.grow(V0_LINE_BYTES).map_err(BadRequest::HeldWants)?)
}

/// A v0 request may not grow without bound either (the wants, shallows and common
/// haves are kept until the pack is sent).
fn too_many_lines(lines: usize) -> Result<()> {
    if lines > MAX_V0_LINES {
        return Err(BadRequest::TooManyLines(MAX_V0_LINES).into());
    }
    Ok(())
}

fn advertise_v0(refs: &RefList, caps: &str, out: &mut dyn Write) -> Result<()> {
    let mut lines: Vec<(ObjectId, String)> = Vec::new();
    if let Some(head) = refs.head_oid {
        lines.push((head, "HEAD".into()));
    }
    for r in &refs.refs {
        lines.push((r.oid, r.name.clone()));
        if let Some(p) = r.peeled {
            lines.push((p, format!("{}^{{}}", r.name)));
        }
    }
    if lines.is_empty() {
        write_text(
            out,
            &format!(
                "{} capabilities^{{}}\0{caps}",
                ObjectId::null(gix::hash::Kind::Sha1)
            ),
        )?;
    }
    for (i, (oid, name)) in lines.iter().enumerate() {
        if i == 0 {
            write_text(out, &format!("{oid} {name}\0{caps}"))?;
        } else {
            write_text(out, &format!("{oid} {name}"))?;
        }
    }
    write_flush(out)?;
    Ok(())
}

/// Largest protocol v2 request (its arguments as held in memory) and most want/have
/// lines of a v0 request: about 300,000 lines, far more than a real client sends.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
const MAX_V0_LINES: usize = 300_000;
/// The most bytes of v2 requests held at once, by everyone together and by one user:
/// many clients each sending a request just under [`MAX_REQUEST_BYTES`] and never
/// finishing it cannot make the server hold gigabytes.
pub const MAX_HELD_REQUEST_BYTES: usize = 256 * 1024 * 1024;
pub const MAX_HELD_REQUEST_BYTES_PER_USER: usize = 64 * 1024 * 1024;

/// Bytes of requests held now: in all, and per user.
pub struct RequestBudget {
    total: usize,
    per_user: usize,
    held: std::sync::Mutex<(std::collections::HashMap<String, usize>, usize)>,
}

/// The process's budget for fetch requests (v2 arguments, v0 wants and haves).
pub static REQUESTS: std::sync::LazyLock<RequestBudget> = std::sync::LazyLock::new(|| {
    RequestBudget::new(MAX_HELD_REQUEST_BYTES, MAX_HELD_REQUEST_BYTES_PER_USER)
});

impl RequestBudget {
    pub fn new(total: usize, per_user: usize) -> Self {
        RequestBudget {
            total,
            per_user,
            held: Default::default(),
        }
    }

    /// Bytes held now by everyone's requests.
    pub fn held_bytes(&self) -> usize {
        self.held.lock().map_or(0, |held| held.1)
    }

    /// `/metrics`' lines: the bytes held now, and the budget.
    pub fn render_metrics(&self) -> String {
        format!(
            "# HELP skillsd_fetch_requests_held_bytes Bytes of fetch requests (v2 arguments, v0 wants and haves) held in memory now.\n\
             # TYPE skillsd_fetch_requests_held_bytes gauge\n\
             skillsd_fetch_requests_held_bytes {}\n\
             # HELP skillsd_fetch_requests_budget_bytes The most bytes of fetch requests held at once, in all and per user.\n\
             # TYPE skillsd_fetch_requests_budget_bytes gauge\n\
             skillsd_fetch_requests_budget_bytes{{scope=\"all\"}} {}\n\
             skillsd_fetch_requests_budget_bytes{{scope=\"user\"}} {}\n",
            self.held_bytes(),
            self.total,
            self.per_user
        )
    }

    /// A request's share, empty so far.
    pub fn hold<'a>(&'a self, user: &str) -> Held<'a> {
        Held {
            budget: self,
            user: user.to_string(),
            bytes: 0,
        }
    }
}

/// Why a request's bytes do not fit in the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error("internal error")]
    Poisoned,
    #[error("your requests in progress hold as much as one user may")]
    User,
    #[error("the server holds as many requests as it may")]
    Server,
}

/// One request's bytes in the budget; given back on drop.
pub struct Held<'a> {
    budget: &'a RequestBudget,
    user: String,
    bytes: usize,
}

impl Held<'_> {
    /// Counts `n` more bytes; an error when the user's or everyone's share is used up.
    pub fn grow(&mut self, n: usize) -> std::result::Result<(), Full> {
        let Ok(mut held) = self.budget.held.lock() else {
            return Err(Full::Poisoned);
        };
        let (per, total) = &mut *held;
        let mine = per.get(&self.user).copied().unwrap_or(0);
        if mine + n > self.budget.per_user {
            return Err(Full::User);
        }
        if *total + n > self.budget.total {
            return Err(Full::Server);
        }
        *per.entry(self.user.clone()).or_insert(0) += n;
        *total += n;
        self.bytes += n;
        Ok(())
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        if let Ok(mut held) = self.budget.held.lock() {
            let (per, total) = &mut *held;
            if let Some(n) = per.get_mut(&self.user) {
                *n = n.saturating_sub(self.bytes);
                if *n == 0 {
                    per.remove(&self.user);
                }
            }
            *total = total.saturating_sub(self.bytes);
        }
    }
}

fn serve_v2<R: Read>(
    repo: &gix::Repository,
    input: &mut PktReader<R>,
    out: &mut dyn Write,
    user: &str,
) -> Result<()> {
    write_text(out, "version 2")?;
    write_text(out, &format!("agent={AGENT}"))?;
    write_text(out, "ls-refs=unborn")?;
    write_text(out, "fetch=shallow wait-for-done filter")?;
    write_text(out, "server-option")?;
    write_text(out, "object-format=sha1")?;
    write_flush(out)?;
    out.flush()?;
    loop {
        let command = match input.read_pkt()? {
            Pkt::Eof => return Ok(()),
            Pkt::Flush => continue,
            pkt @ Pkt::Data(_) => {
                let line = String::from_utf8_lossy(pkt.text().unwrap_or_default()).into_owned();
                match line.strip_prefix("command=") {
                    Some(c) => c.to_string(),
                    None => {
                        return Err(BadRequest::NotACommand(line.into()).into());
                    }
                }
            }
            other => {
                return Err(BadRequest::NoCommand(other).into());
            }
        };
        // Capability lines, then (after a delimiter) arguments, then a flush.
        // The request is held whole (v2 is one request per command), so its size is
        // bounded: a client cannot make the server hold gigabytes of arguments.
        // Counted in the process's budget too, until the command is answered (this
        // is declared before `args`: dropped after them).
        let mut held = REQUESTS.hold(user);
        let mut args: Vec<String> = Vec::new();
        let mut in_args = false;
        let mut request_bytes = 0usize;
        loop {
            match input.read_pkt()? {
                Pkt::Delim => in_args = true,
                Pkt::Flush => break,
                Pkt::Eof => return Err(BadRequest::EndOfRequest.into()),
                pkt @ Pkt::Data(_) => {
                    let text = pkt.text().unwrap_or_default();
                    let cost = text.len() + std::mem::size_of::<String>();
                    request_bytes += cost;
                    if let Err(why) = held.grow(cost) {
                        return Err(BadRequest::HeldRequest(why).into());
                    }
                    if request_bytes > MAX_REQUEST_BYTES {
                        return Err(BadRequest::TooLarge {
                            command,
                            mib: MAX_REQUEST_BYTES >> 20,
                        }
                        .into());
                    }
                    if in_args {
                        args.push(String::from_utf8_lossy(text).into_owned());
                    }
                }
                Pkt::ResponseEnd => {
                    return Err(BadRequest::ResponseEnd.into());
                }
            }
        }
        match command.as_str() {
            "ls-refs" => ls_refs(repo, &args, out)?,
            "fetch" => fetch_v2(repo, &args, out)?,
            other => {
                return Err(BadRequest::UnknownCommand(other.to_string()).into());
            }
        }
        out.flush()?;
    }
}

fn ls_refs(repo: &gix::Repository, args: &[String], out: &mut dyn Write) -> Result<()> {
    let refs = RefList::read(repo)?;
    let symrefs = args.iter().any(|a| a == "symrefs");
    let peel = args.iter().any(|a| a == "peel");
    let unborn = args.iter().any(|a| a == "unborn");
    let prefixes: Vec<&str> = args
        .iter()
        .filter_map(|a| a.strip_prefix("ref-prefix "))
        .collect();
    let wanted = |name: &str| prefixes.is_empty() || prefixes.iter().any(|p| name.starts_with(p));
    if wanted("HEAD") {
        match (refs.head_oid, &refs.head_target) {
            (Some(oid), Some(target)) if symrefs => {
                write_text(out, &format!("{oid} HEAD symref-target:{target}"))?
            }
            (Some(oid), _) => write_text(out, &format!("{oid} HEAD"))?,
            (None, Some(target)) if unborn => {
                let line = if symrefs {
                    format!("unborn HEAD symref-target:{target}")
                } else {
                    "unborn HEAD".to_string()
                };
                write_text(out, &line)?
            }
            _ => {}
        }
    }
    for r in refs.refs.iter().filter(|r| wanted(&r.name)) {
        match r.peeled {
            Some(p) if peel => write_text(out, &format!("{} {} peeled:{p}", r.oid, r.name))?,
            _ => write_text(out, &format!("{} {}", r.oid, r.name))?,
        }
    }
    write_flush(out)?;
    Ok(())
}

fn fetch_v2(repo: &gix::Repository, args: &[String], out: &mut dyn Write) -> Result<()> {
    let refs = RefList::read(repo)?;
    let mut wants = Vec::new();
    let mut haves = Vec::new();
    let mut done = false;
    let mut no_progress = false;
    let mut include_tag = false;
    let mut wait_for_done = false;
    let mut deepen: Option<Deepen> = None;
    let mut client_shallow = Vec::new();
    let mut relative = false;
    let mut filter: Option<Filter> = None;
    for arg in args {
        if let Some(hex) = arg.strip_prefix("want ") {
            wants.push(parse_oid(hex.as_bytes())?);
        } else if let Some(hex) = arg.strip_prefix("have ") {
            haves.push(parse_oid(hex.as_bytes())?);
        } else if arg == "done" {
            done = true;
        } else if arg == "no-progress" {
            no_progress = true;
        } else if arg == "include-tag" {
            include_tag = true;
        } else if arg == "wait-for-done" {
            wait_for_done = true;
        } else if arg == "thin-pack" || arg == "ofs-delta" {
            // We send complete packs; both are optional for the server.
        } else if let Some(hex) = arg.strip_prefix("shallow ") {
            client_shallow.push(parse_oid(hex.as_bytes())?);
        } else if arg.starts_with("deepen") {
            parse_deepen(arg, &refs, &mut deepen, &mut relative)?;
        } else if let Some(spec) = arg.strip_prefix("filter ") {
            parse_filter(spec, &mut filter)?;
        } else {
            return Err(BadRequest::UnknownFetchArgument(arg.to_string()).into());
        }
    }
    check_wants(repo, &refs, &wants)?;
    let commons: Vec<ObjectId> = haves.into_iter().filter(|h| is_common(repo, h)).collect();
    if !done {
        write_text(out, "acknowledgments")?;
        if commons.is_empty() {
            write_text(out, "NAK")?;
        }
        for c in &commons {
            write_text(out, &format!("ACK {c}"))?;
        }
        // Without `done`, the pack only follows once a common commit is known, and never
        // when the client asked to wait for its `done`.
        if commons.is_empty() || wait_for_done {
            write_flush(out)?;
            return Ok(());
        }
        write_text(out, "ready")?;
        write_delim(out)?;
    }
    if let Some(d) = deepen.as_mut() {
        d.relative = relative;
        d.client_shallow = client_shallow;
    }
    let filter = filter.unwrap_or_default();
    let (ids, update) = objects_to_send_filtered(repo, &wants, &commons, deepen.as_ref(), &filter)?;
    if deepen.is_some() {
        write_text(out, "shallow-info")?;
        write_shallow_update(out, &update)?;
        write_delim(out)?;
    }
    write_text(out, "packfile")?;
    let mut sb = SideBand::new(out, SideBandMode::Large, no_progress);
    send_pack(repo, &refs, ids, include_tag, &mut sb)?;
    write_flush(sb.inner())?;
    Ok(())
}

/// A `have` counts when we have that commit.
fn is_common(repo: &gix::Repository, oid: &ObjectId) -> bool {
    matches!(repo.find_header(*oid), Ok(h) if h.kind() == gix::object::Kind::Commit)
}

fn send_pack(
    repo: &gix::Repository,
    refs: &RefList,
    mut ids: Vec<ObjectId>,
    include_tag: bool,
    sb: &mut SideBand<'_>,
) -> Result<()> {
    if include_tag {
        let set: HashSet<ObjectId> = ids.iter().copied().collect();
        for r in &refs.refs {
            if let Some(p) = r.peeled
                && set.contains(&p)
                && !set.contains(&r.oid)
            {
                ids.push(r.oid);
            }
        }
    }
    sb.progress(&format!("Enumerating objects: {}, done.\n", ids.len()))?;
    write_pack(repo, ids, sb)?;
    Ok(())
}

fn write_shallow_update(out: &mut dyn Write, update: &ShallowUpdate) -> Result<()> {
    for c in &update.shallow {
        write_text(out, &format!("shallow {c}"))?;
    }
    for c in &update.unshallow {
        write_text(out, &format!("unshallow {c}"))?;
    }
    Ok(())
}

/// One `filter <spec>` line; a request has at most one (git sends several
/// `--filter` options as one `combine:`).
fn parse_filter(spec: &str, filter: &mut Option<Filter>) -> Result<()> {
    if filter.is_some() {
        return Err(BadRequest::TwoFilters.into());
    }
    let parsed = Filter::parse(spec.trim_end_matches('\n')).map_err(BadRequest::Filter)?;
    *filter = Some(parsed);
    Ok(())
}

/// One `deepen`, `deepen-relative`, `deepen-since` or `deepen-not` line.
fn parse_deepen(
    line: &str,
    refs: &RefList,
    deepen: &mut Option<Deepen>,
    relative: &mut bool,
) -> Result<()> {
    let d = deepen.get_or_insert_with(Deepen::default);
    if let Some(n) = line.strip_prefix("deepen ") {
        d.depth = Some(parse_depth(n.as_bytes())?);
    } else if line == "deepen-relative" {
        *relative = true;
    } else if let Some(ts) = line.strip_prefix("deepen-since ") {
        d.since = Some(
            ts.trim()
                .parse()
                .map_err(|_| BadRequest::DeepenSince(ts.to_string()))?,
        );
    } else if let Some(name) = line.strip_prefix("deepen-not ") {
        let name = name.trim();
        let found = [
            name.to_string(),
            format!("refs/{name}"),
            format!("refs/tags/{name}"),
            format!("refs/heads/{name}"),
        ]
        .into_iter()
        .find_map(|n| refs.get(&n).map(|r| r.peeled.unwrap_or(r.oid)));
        match found {
            Some(oid) => d.not.push(oid),
            None => {
                return Err(BadRequest::DeepenNot(name.to_string()).into());
            }
        }
    } else {
        return Err(BadRequest::UnknownArgument(line.to_string()).into());
    }
    Ok(())
}

fn parse_depth(n: &[u8]) -> Result<u32> {
    std::str::from_utf8(n)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&d| d > 0)
        .ok_or_else(|| BadRequest::Depth(n.into()).into())
}

#[cfg(test)]
mod budget_tests {
    use super::RequestBudget;

    #[test]
    fn held_requests_are_bounded_per_user_and_in_all_and_given_back() {
        let b = RequestBudget::new(100, 60);
        let mut a1 = b.hold("alice");
        a1.grow(50).unwrap();
        let mut a2 = b.hold("alice");
        assert!(a2.grow(20).is_err(), "alice's share is 60");
        let mut bob = b.hold("bob");
        bob.grow(45).unwrap();
        let mut carol = b.hold("carol");
        assert!(carol.grow(10).is_err(), "100 in all");
        drop(a1);
        a2.grow(20).unwrap();
        carol.grow(10).unwrap();
    }
}
