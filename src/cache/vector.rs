//! A skill row's full-text vector, computed by skillsd instead of PostgreSQL when the
//! text is plain enough that the result is the same, byte for byte.
//!
//! The definition is the SQL function `skills_search_vector(title, description, tags,
//! body)` (migration 0002): `to_tsvector('simple', …)` of each part, weighted A, B, B and
//! C, concatenated. PostgreSQL's default text-search parser costs about 130 µs of one
//! core per 3 KB body, which made the vectors of a 100,000-skill reconcile cost 13 s of
//! CPU on their own, on the one backend a sync writes through. For text that is only
//! ASCII words between plain separators the parser's output is simple; computing it
//! here costs about a fifth of that (~28 µs), on the threads that read the files:
//!
//! - a word is a run of ASCII letters and digits, lower-cased; its position is one more
//!   than the previous word's, counted across the four parts in order;
//! - a hyphenated word of letters (`foo-bar`) is the whole word, then each part, each at
//!   its own position;
//! - whitespace and the separators listed in [`plain_separator`] are skipped.
//!
//! Anything else returns `None` and PostgreSQL computes the vector as before: non-ASCII
//! text, control characters, `/ @ & < \ ~ % + $ ^`, a `.` or `:` followed by anything
//! but whitespace or closing punctuation (hosts, file names, versions, URLs), a `-`
//! before a digit (signed numbers), a hyphenated word with a digit in it, a word
//! longer than [`MAX_WORD`] bytes, a word repeated more than [`MAX_OCCURRENCES`]
//! times, more than [`MAX_POSITION`] words. `tests/search_vector.rs` compares this
//! function with PostgreSQL's on generated text.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo};
use sqlx::Postgres;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Longest word kept (PostgreSQL's own limit is higher; longer words go to it).
pub const MAX_WORD: usize = 255;
/// Positions above this are clamped by PostgreSQL; such texts go to it.
pub const MAX_POSITION: u32 = 16_383;
/// PostgreSQL keeps at most 255 positions per word; a word seen more often goes to it.
pub const MAX_OCCURRENCES: usize = 255;

/// Weights of the four parts, as PostgreSQL stores them (A = 3 … D = 0).
const WEIGHT_A: u16 = 3;
const WEIGHT_B: u16 = 2;
const WEIGHT_C: u16 = 1;

/// A `tsvector` in PostgreSQL's binary wire format, ready to bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchVector {
    wire: Vec<u8>,
}

/// The vector `skills_search_vector(title, description, tags, body)` would compute, or
/// `None` when the text is not plain enough to be sure (PostgreSQL computes it then).
pub fn search_vector(
    title: &str,
    description: Option<&str>,
    tags: &[String],
    body: &str,
) -> Option<SearchVector> {
    let mut words = Words::default();
    words.add(title, WEIGHT_A)?;
    words.add(description.unwrap_or(""), WEIGHT_B)?;
    // `array_to_string(tags, ' ')`
    words.add(&tags.join(" "), WEIGHT_B)?;
    words.add(body, WEIGHT_C)?;
    words.finish()
}

/// Separators the parser skips without starting a token of its own, whatever follows.
fn plain_separator(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t'
            | b'\n'
            | b'\r'
            | b','
            | b';'
            | b'!'
            | b'?'
            | b'('
            | b')'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'"'
            | b'\''
            | b'*'
            | b'#'
            | b'`'
            | b'='
            | b'|'
            | b'>'
            | b'_'
    )
}

/// What may follow a `.` or `:` for it to be plain punctuation, not part of a host, a
/// file name, a version or a URL.
fn ends_a_sentence(next: u8) -> bool {
    matches!(
        next,
        b' ' | b'\t'
            | b'\n'
            | b'\r'
            | b','
            | b';'
            | b')'
            | b']'
            | b'}'
            | b'"'
            | b'\''
            | b'*'
            | b'`'
            | b'!'
            | b'?'
    )
}

/// The words of the parts added so far: each word's place in `lower` (the parts'
/// text, lower-cased) and weight. A word's position is its index + 1.
#[derive(Default)]
struct Words {
    lower: Vec<u8>,
    words: Vec<(u32, u16, u16)>,
}

impl Words {
    fn add(&mut self, text: &str, weight: u16) -> Option<()> {
        let base = self.lower.len();
        self.lower.extend_from_slice(text.as_bytes());
        self.lower[base..].make_ascii_lowercase();
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_alphanumeric() {
                let start = i;
                let mut end = i;
                loop {
                    while end < b.len() && b[end].is_ascii_alphanumeric() {
                        end += 1;
                    }
                    if end + 1 < b.len() && b[end] == b'-' && b[end + 1].is_ascii_alphanumeric() {
                        end += 1;
                        continue;
                    }
                    break;
                }
                self.word(base + start, base + end, weight)?;
                let word = &b[start..end];
                if word.contains(&b'-') {
                    if word.iter().any(u8::is_ascii_digit) {
                        return None;
                    }
                    // The whole hyphenated word, then each part.
                    let mut from = base + start;
                    for part in word.split(|&c| c == b'-') {
                        self.word(from, from + part.len(), weight)?;
                        from += part.len() + 1;
                    }
                }
                i = end;
                continue;
            }
            let next = b.get(i + 1).copied();
            let plain = plain_separator(c)
                || (matches!(c, b'.' | b':') && next.is_none_or(ends_a_sentence))
                || (c == b'-' && !next.is_some_and(|n| n.is_ascii_digit()));
            if !plain {
                return None;
            }
            i += 1;
        }
        Some(())
    }

    fn word(&mut self, start: usize, end: usize, weight: u16) -> Option<()> {
        if end - start > MAX_WORD || self.words.len() >= MAX_POSITION as usize {
            return None;
        }
        self.words
            .push((start as u32, (end - start) as u16, weight));
        Some(())
    }

    /// `tsvectorrecv`'s format: the number of lexemes, then each lexeme (sorted by
    /// bytes) NUL-terminated, its number of positions and the positions (weight in the
    /// top two bits), big-endian.
    fn finish(self) -> Option<SearchVector> {
        let text = |&(start, len, _): &(u32, u16, u16)| {
            &self.lower[start as usize..start as usize + len as usize]
        };
        // Each word's lexeme number, and each lexeme's first word and count.
        let mut number: HashMap<&[u8], u32, BuildHasherDefault<Fx>> =
            HashMap::with_capacity_and_hasher(self.words.len() / 2, Default::default());
        let mut lexemes: Vec<(&[u8], u32)> = Vec::new();
        let mut of_word = Vec::with_capacity(self.words.len());
        for w in &self.words {
            let lexeme = text(w);
            let n = *number.entry(lexeme).or_insert_with(|| {
                lexemes.push((lexeme, 0));
                lexemes.len() as u32 - 1
            });
            let count = &mut lexemes[n as usize].1;
            *count += 1;
            if *count as usize > MAX_OCCURRENCES {
                return None;
            }
            of_word.push(n);
        }
        // Positions grouped by lexeme, in order.
        let mut first = Vec::with_capacity(lexemes.len() + 1);
        let mut total = 0;
        for (_, count) in &lexemes {
            first.push(total);
            total += *count as usize;
        }
        first.push(total);
        let mut fill = first.clone();
        let mut positions = vec![0u16; total];
        for (i, (n, w)) in of_word.iter().zip(&self.words).enumerate() {
            positions[fill[*n as usize]] = (w.2 << 14) | (i as u16 + 1);
            fill[*n as usize] += 1;
        }
        let mut order: Vec<u32> = (0..lexemes.len() as u32).collect();
        order.sort_unstable_by_key(|&n| lexemes[n as usize].0);
        let size: usize = lexemes
            .iter()
            .map(|(l, c)| l.len() + 3 + 2 * *c as usize)
            .sum();
        let mut wire = Vec::with_capacity(4 + size);
        wire.extend_from_slice(&(lexemes.len() as i32).to_be_bytes());
        for n in order {
            let (lexeme, count) = lexemes[n as usize];
            wire.extend_from_slice(lexeme);
            wire.push(0);
            wire.extend_from_slice(&(count as u16).to_be_bytes());
            for p in &positions[first[n as usize]..first[n as usize + 1]] {
                wire.extend_from_slice(&p.to_be_bytes());
            }
        }
        Some(SearchVector { wire })
    }
}

/// A fast hash for short keys (words), eight bytes at a time (the multiply-rotate of
/// rustc's FxHash). No need for SipHash's resistance to chosen input here: a word
/// repeated too often is refused before collisions could matter.
#[derive(Default)]
struct Fx(u64);

impl Fx {
    fn mix(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(last));
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }
}

impl sqlx::Type<Postgres> for SearchVector {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("tsvector")
    }
}

impl PgHasArrayType for SearchVector {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("_tsvector")
    }
}

impl sqlx::Encode<'_, Postgres> for SearchVector {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(&self.wire);
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lexemes and positions of a vector, decoded from its wire form.
    fn decode(v: &SearchVector) -> Vec<(String, Vec<u16>)> {
        let w = &v.wire;
        let n = i32::from_be_bytes(w[0..4].try_into().unwrap()) as usize;
        let mut at = 4;
        let mut out = Vec::new();
        for _ in 0..n {
            let end = at + w[at..].iter().position(|&b| b == 0).unwrap();
            let word = String::from_utf8(w[at..end].to_vec()).unwrap();
            at = end + 1;
            let k = u16::from_be_bytes([w[at], w[at + 1]]) as usize;
            at += 2;
            let pos = (0..k)
                .map(|i| u16::from_be_bytes([w[at + 2 * i], w[at + 2 * i + 1]]))
                .collect();
            at += 2 * k;
            out.push((word, pos));
        }
        assert_eq!(at, w.len());
        out
    }

    #[test]
    fn words_are_lower_cased_sorted_and_weighted_by_part() {
        let tags = vec!["api".to_string(), "Cache".to_string()];
        let v = search_vector(
            "Rotate keys",
            Some("When keys leak."),
            &tags,
            "Keys: rotate!",
        )
        .unwrap();
        let a = 3 << 14;
        let b = 2 << 14;
        let c = 1 << 14;
        assert_eq!(
            decode(&v),
            vec![
                ("api".to_string(), vec![b | 6]),
                ("cache".to_string(), vec![b | 7]),
                ("keys".to_string(), vec![a | 2, b | 4, c | 8]),
                ("leak".to_string(), vec![b | 5]),
                ("rotate".to_string(), vec![a | 1, c | 9]),
                ("when".to_string(), vec![b | 3]),
            ]
        );
    }

    #[test]
    fn hyphenated_words_come_whole_then_in_parts() {
        let v = search_vector("", None, &[], "foo-bar baz").unwrap();
        let c = 1 << 14;
        assert_eq!(
            decode(&v),
            vec![
                ("bar".to_string(), vec![c | 3]),
                ("baz".to_string(), vec![c | 4]),
                ("foo".to_string(), vec![c | 2]),
                ("foo-bar".to_string(), vec![c | 1]),
            ]
        );
    }

    #[test]
    fn text_postgresql_parses_differently_is_left_to_it() {
        for text in [
            "see https://example.com",
            "e.g. this",
            "version 1.2",
            "x -5",
            "ab-12",
            "k8s-node",
            "a/b",
            "me@example.com",
            "&amp;",
            "<b>bold</b>",
            "café",
            "tab\x0bvertical",
            "host:8080",
            "C++",
        ] {
            assert_eq!(search_vector("", None, &[], text), None, "{text:?}");
        }
        let long = "a".repeat(MAX_WORD + 1);
        assert_eq!(search_vector("", None, &[], &long), None);
        let many = "word ".repeat(MAX_OCCURRENCES + 1);
        assert_eq!(search_vector("", None, &[], &many), None);
        let enough = "word ".repeat(MAX_OCCURRENCES);
        assert!(search_vector("", None, &[], &enough).is_some());
    }

    #[test]
    fn empty_text_is_an_empty_vector() {
        let v = search_vector("", None, &[], "").unwrap();
        assert!(decode(&v).is_empty());
    }
}
