//! Partial clone: the `filter <spec>` a client sends with `git clone --filter=…`
//! (git's `list-objects-filter-options`), parsed into which trees and blobs a pack
//! leaves out.
//!
//! Supported: `blob:none`, `blob:limit=<n>[kmg]`, `tree:<depth>` and `combine:` of
//! them (an object is sent when every part accepts it). `sparse:oid=…` and
//! `object:type=…` are refused with a message that names what is supported; git
//! then prints it (`fatal: remote error: …`) and the clone stops.
//!
//! Objects a client names in `want` are always sent, whatever the filter (git's
//! semantics: a lazy fetch of a missing blob sends `filter blob:none` too).

use std::fmt;

/// Which trees and blobs a pack leaves out. `Filter::default()` leaves out nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// Blobs of this many bytes or more are left out (`blob:none` is 0, as in git:
    /// `blob:limit=n` keeps blobs *smaller* than n).
    pub blob_limit: Option<u64>,
    /// Trees and blobs at this depth or deeper are left out; a commit's root tree is
    /// at depth 0, the entries of the root tree at depth 1 (`tree:0` sends no trees).
    pub tree_depth: Option<u64>,
}

/// Why a filter spec is refused: the text git shows the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(String);

const SUPPORTED: &str =
    "this server supports blob:none, blob:limit=<n>[kmg], tree:<depth> and combine: of these";

impl Filter {
    /// Parses a filter spec as git sends it.
    pub fn parse(spec: &str) -> Result<Filter, FilterError> {
        match spec.strip_prefix("combine:") {
            Some(parts) => {
                if parts.is_empty() {
                    return Err(FilterError(format!(
                        "filter `{spec}`: combine: needs at least one filter"
                    )));
                }
                let mut filter = Filter::default();
                for part in parts.split('+') {
                    let decoded = percent_decode(part).map_err(|why| {
                        FilterError(format!("filter `{spec}`: {why} in `{part}`"))
                    })?;
                    if decoded.starts_with("combine:") {
                        return Err(FilterError(format!(
                            "filter `{spec}`: a combine: inside a combine: is not supported"
                        )));
                    }
                    filter = filter.and(Self::parse_one(&decoded)?);
                }
                Ok(filter)
            }
            None => Self::parse_one(spec),
        }
    }

    fn parse_one(spec: &str) -> Result<Filter, FilterError> {
        if spec == "blob:none" {
            return Ok(Filter {
                blob_limit: Some(0),
                tree_depth: None,
            });
        }
        if let Some(n) = spec.strip_prefix("blob:limit=") {
            return match parse_scaled(n) {
                Some(limit) => Ok(Filter {
                    blob_limit: Some(limit),
                    tree_depth: None,
                }),
                None => Err(FilterError(format!(
                    "filter `{spec}`: the limit must be a whole number of bytes, optionally with k, m or g"
                ))),
            };
        }
        if let Some(n) = spec.strip_prefix("tree:") {
            return match n.parse::<u64>() {
                Ok(depth) if n.bytes().all(|b| b.is_ascii_digit()) => Ok(Filter {
                    blob_limit: None,
                    tree_depth: Some(depth),
                }),
                _ => Err(FilterError(format!(
                    "filter `{spec}`: the depth must be a whole number"
                ))),
            };
        }
        let kind = spec.split([':', '=']).next().unwrap_or(spec);
        let known = ["sparse", "object", "blob", "tree"].contains(&kind);
        Err(FilterError(if known {
            format!("filter `{spec}` is not supported: {SUPPORTED}")
        } else {
            format!("unknown filter `{spec}`: {SUPPORTED}")
        }))
    }

    /// Both filters at once: an object passes when it passes both.
    pub fn and(self, other: Filter) -> Filter {
        fn min(a: Option<u64>, b: Option<u64>) -> Option<u64> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        Filter {
            blob_limit: min(self.blob_limit, other.blob_limit),
            tree_depth: min(self.tree_depth, other.tree_depth),
        }
    }

    /// Does the filter leave nothing out?
    pub fn is_none(&self) -> bool {
        *self == Filter::default()
    }

    /// May a tree (or blob) at `depth` be sent?
    pub fn depth_ok(&self, depth: u64) -> bool {
        self.tree_depth.is_none_or(|max| depth < max)
    }

    /// May every blob be left out whatever its size (`blob:none`, `blob:limit=0`)?
    pub fn no_blobs(&self) -> bool {
        self.blob_limit == Some(0)
    }

    /// May a blob of `size` bytes be sent (its depth aside)?
    pub fn size_ok(&self, size: u64) -> bool {
        self.blob_limit.is_none_or(|limit| size < limit)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.blob_limit, self.tree_depth) {
            (None, None) => write!(f, "none"),
            (Some(0), None) => write!(f, "blob:none"),
            (Some(n), None) => write!(f, "blob:limit={n}"),
            (None, Some(d)) => write!(f, "tree:{d}"),
            (Some(n), Some(d)) => write!(f, "combine:blob:limit={n}+tree:{d}"),
        }
    }
}

/// `n`, `nk`, `nm` or `ng` (either case), as git's `git_parse_ulong` reads it.
fn parse_scaled(text: &str) -> Option<u64> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    if digits.is_empty() {
        return None;
    }
    let factor: u64 = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

/// `%XX` escapes of a `combine:` part.
fn percent_decode(text: &str) -> Result<String, &'static str> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a malformed %-escape")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if out.is_empty() {
        return Err("an empty filter");
    }
    String::from_utf8(out).map_err(|_| "an escape that is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::Filter;

    fn blob(n: u64) -> Filter {
        Filter {
            blob_limit: Some(n),
            tree_depth: None,
        }
    }

    #[test]
    fn the_specs_git_sends() {
        assert_eq!(Filter::parse("blob:none").unwrap(), blob(0));
        assert_eq!(Filter::parse("blob:limit=0").unwrap(), blob(0));
        assert_eq!(Filter::parse("blob:limit=1024").unwrap(), blob(1024));
        assert_eq!(Filter::parse("blob:limit=1k").unwrap(), blob(1024));
        assert_eq!(Filter::parse("blob:limit=2M").unwrap(), blob(2 << 20));
        assert_eq!(Filter::parse("blob:limit=1g").unwrap(), blob(1 << 30));
        assert_eq!(
            Filter::parse("tree:0").unwrap(),
            Filter {
                blob_limit: None,
                tree_depth: Some(0)
            }
        );
        // git sends two --filter options as one combine:, each part %-encoded.
        assert_eq!(
            Filter::parse("combine:blob%3Alimit%3D100+tree%3A3").unwrap(),
            Filter {
                blob_limit: Some(100),
                tree_depth: Some(3)
            }
        );
        assert_eq!(
            Filter::parse("combine:blob:limit=10+blob:none").unwrap(),
            blob(0)
        );
    }

    #[test]
    fn what_each_filter_keeps() {
        let f = Filter::parse("blob:limit=100").unwrap();
        assert!(
            f.size_ok(99) && !f.size_ok(100),
            "git keeps blobs smaller than n"
        );
        assert!(f.depth_ok(1_000));
        let t = Filter::parse("tree:1").unwrap();
        assert!(t.depth_ok(0) && !t.depth_ok(1));
        assert!(!Filter::parse("tree:0").unwrap().depth_ok(0));
        assert!(Filter::default().is_none() && Filter::default().size_ok(u64::MAX));
        assert!(Filter::parse("blob:none").unwrap().no_blobs());
    }

    #[test]
    fn bad_specs_are_refused_with_what_is_supported() {
        for (spec, says) in [
            ("blob:limit=", "whole number of bytes"),
            ("blob:limit=12q", "whole number of bytes"),
            ("blob:limit=-1", "whole number of bytes"),
            ("blob:limit=99999999999999999999g", "whole number of bytes"),
            ("tree:", "whole number"),
            ("tree:x", "whole number"),
            ("tree:+1", "whole number"),
            (
                "sparse:oid=main:.sparse",
                "is not supported: this server supports blob:none",
            ),
            ("object:type=blob", "is not supported"),
            ("blob:some", "is not supported"),
            ("frobnicate", "unknown filter `frobnicate`"),
            ("", "unknown filter"),
            ("combine:", "at least one"),
            ("combine:blob:none+", "an empty filter"),
            ("combine:blob%3", "malformed %-escape"),
            (
                "combine:combine%3Ablob%3Anone",
                "combine: inside a combine:",
            ),
            ("combine:blob:none+sparse:oid=x", "is not supported"),
        ] {
            let err = Filter::parse(spec).unwrap_err().to_string();
            assert!(err.contains(says), "{spec}: {err}");
        }
    }
}
