//! An `exec` request's command line: which git service, on which repository.

/// A git service a client may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    UploadPack(String),
    ReceivePack(String),
}

/// Parses `git-upload-pack '/skills.git'` (also `git upload-pack`, double quotes, no quotes).
pub fn parse_command(command: &str) -> Option<Service> {
    let command = command.trim();
    let (program, rest) = command.split_once(char::is_whitespace)?;
    let (program, rest) = if program == "git" {
        let rest = rest.trim_start();
        let (sub, rest) = rest.split_once(char::is_whitespace)?;
        (format!("git-{sub}"), rest)
    } else {
        (program.to_string(), rest)
    };
    let path = unquote(rest.trim())?;
    match program.as_str() {
        "git-upload-pack" => Some(Service::UploadPack(path)),
        "git-receive-pack" => Some(Service::ReceivePack(path)),
        _ => None,
    }
}

/// Undoes git's `sq_quote`: `'a'\''b'` → `a'b`.
pub(super) fn unquote(s: &str) -> Option<String> {
    if !s.starts_with('\'') {
        if s.starts_with('"') && s.ends_with('"') && s.len() >= 2 {
            return Some(s[1..s.len() - 1].to_string());
        }
        return (!s.contains(char::is_whitespace)).then(|| s.to_string());
    }
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    loop {
        match chars.next()? {
            '\'' => {
                // Inside quotes until the next quote.
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => out.push(c),
                    }
                }
                match chars.next() {
                    None => return Some(out),
                    Some('\\') => out.push(chars.next()?),
                    Some(_) => return None,
                }
            }
            _ => return None,
        }
    }
}
