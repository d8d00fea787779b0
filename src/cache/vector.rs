//! A skill row's full-text vector, computed by skillsd instead of PostgreSQL when the
//! text is plain enough that the result is the same, byte for byte.
//!
//! The definition is the SQL function `skills_search_vector(title, description, tags,
//! body)` (migration 0002): `to_tsvector('simple', …)` of each part, weighted A, B, B and
//! C, concatenated. PostgreSQL's default text-search parser costs about 130 µs of one
//! core per 3 KB body, which made the vectors of a 100,000-skill reconcile cost 13 s of
//! CPU on their own, on the one backend a sync writes through. For text that is only
//! ASCII words between plain separators the parser's output is simple; computing it
//! here costs about a sixth of that (~20 µs), on the threads that read the files:
//!
//! - a word is a run of ASCII letters and digits, lower-cased; its position is one more
//!   than the previous word's, counted across the four parts in order;
//! - a hyphenated word of letters (`foo-bar`) is the whole word, then each part, each at
//!   its own position;
//! - whitespace and the separators listed in [`CLASSES`] are skipped.
//!
//! Anything else returns `None` and PostgreSQL computes the vector as before: non-ASCII
//! text, control characters, `/ @ & < \ ~ % + $ ^`, a `.` or `:` followed by anything
//! but whitespace or closing punctuation (hosts, file names, versions, URLs), a `-`
//! before a digit (signed numbers), a hyphenated word with a digit in it, a word
//! longer than [`MAX_WORD`] bytes, a word repeated more than [`MAX_OCCURRENCES`]
//! times, more than [`MAX_POSITION`] words. `tests/search_vector.rs` compares this
//! function with PostgreSQL's on generated text.

use sqlx::Postgres;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo};

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

/// Whether skillsd's vectors are known to equal the database's (see [`verify`]).
static TRUSTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Is skillsd computing vectors itself (not left to PostgreSQL)?
pub fn in_use() -> bool {
    TRUSTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Texts whose vectors are compared with the database's before skillsd computes any
/// itself: upper-case `I` (a Turkish locale lowercases it to a dotless `ı`), other
/// capitals, digits, punctuation, hyphens — every rule of the plain-text subset.
const CANARY: &[(&str, &str, &str, &str)] = &[
    (
        "API Install",
        "IMPORTANT INDEX",
        "Iris",
        "Is it IT? In Istanbul, I insist.",
    ),
    (
        "Straight Quotes",
        "Version 2 of 10",
        "x-ray",
        "Hello, World. It's fine; (really)!",
    ),
    (
        "ABC def",
        "",
        "",
        "well-known, CamelCase and snake_case words: 42 items.",
    ),
];

/// Compares skillsd's vectors of [`CANARY`] with what the database's
/// `skills_search_vector` gives, and turns skillsd's own vectors off for this process
/// when any differs (a database locale whose lower-casing is not ASCII's, a changed
/// `simple` configuration, another PostgreSQL version): PostgreSQL computes them all
/// then. Returns whether skillsd's vectors are in use.
pub async fn verify(pool: &sqlx::PgPool) -> Result<bool, sqlx::Error> {
    let mut equal = true;
    for (title, description, tags, body) in CANARY {
        let tags: Vec<String> = tags.split_whitespace().map(str::to_string).collect();
        let description = (!description.is_empty()).then_some(*description);
        let Some(ours) = compute(title, description, &tags, body) else {
            continue;
        };
        let same: bool = sqlx::query_scalar(
            "SELECT $1::tsvector = skills_search_vector($2, $3, $4::text[], $5)",
        )
        .bind(&ours)
        .bind(title)
        .bind(description)
        .bind(&tags)
        .bind(body)
        .fetch_one(pool)
        .await?;
        equal &= same;
    }
    TRUSTED.store(equal, std::sync::atomic::Ordering::Relaxed);
    if equal {
        tracing::info!(
            "full-text vectors: computed by skillsd where the text is plain (checked equal to PostgreSQL's)"
        );
    } else {
        tracing::warn!(
            "full-text vectors: all left to PostgreSQL, whose text search differs from skillsd's on this database (its locale?)"
        );
    }
    Ok(equal)
}

/// The vector `skills_search_vector(title, description, tags, body)` would compute, or
/// `None` when the text is not plain enough to be sure, or when [`verify`] found the
/// database's text search different (PostgreSQL computes it then).
pub fn search_vector(
    title: &str,
    description: Option<&str>,
    tags: &[String],
    body: &str,
) -> Option<SearchVector> {
    if !in_use() {
        return None;
    }
    compute(title, description, tags, body)
}

fn compute(
    title: &str,
    description: Option<&str>,
    tags: &[String],
    body: &str,
) -> Option<SearchVector> {
    let tags_len = tags.iter().map(|t| t.len() + 1).sum::<usize>();
    let len = title.len() + description.map_or(0, str::len) + tags_len + body.len();
    let mut words = Words::with_capacity(len);
    words.add(title, WEIGHT_A)?;
    words.add(description.unwrap_or(""), WEIGHT_B)?;
    // `array_to_string(tags, ' ')`
    words.add(&tags.join(" "), WEIGHT_B)?;
    words.add(body, WEIGHT_C)?;
    words.finish()
}

/// A byte's classes: a word's letter or digit, a separator the parser skips without
/// starting a token of its own whatever follows ([`PLAIN`]), or something that may
/// follow a `.` or `:` for it to be plain punctuation, not part of a host, a file name,
/// a version or a URL ([`ENDS_A_SENTENCE`]).
const ALNUM: u8 = 1;
const PLAIN: u8 = 2;
const ENDS_A_SENTENCE: u8 = 4;

const CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        if (c as u8).is_ascii_alphanumeric() {
            t[c] = ALNUM;
        }
        c += 1;
    }
    mark(&mut t, b" \t\n\r,;!?()[]{}\"'*#`=|>_", PLAIN);
    mark(&mut t, b" \t\n\r,;)]}\"'*`!?", ENDS_A_SENTENCE);
    t
};

/// Adds `class` to each of `bytes` in `table`.
const fn mark(table: &mut [u8; 256], bytes: &[u8], class: u8) {
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] |= class;
        i += 1;
    }
}

/// The words of the parts added so far: each word's place in `lower` (the parts'
/// text, lower-cased) and weight. A word's position is its index + 1.
struct Words {
    lower: Vec<u8>,
    words: Vec<(u32, u16, u16)>,
}

impl Words {
    /// Room for `len` bytes of text and its words (at most one per two bytes; prose
    /// has about one per six), and the eight bytes [`Words::finish`] reads past the end.
    fn with_capacity(len: usize) -> Words {
        Words {
            lower: Vec::with_capacity(len + 8),
            words: Vec::with_capacity(len / 5 + 8),
        }
    }

    fn add(&mut self, text: &str, weight: u16) -> Option<()> {
        let base = self.lower.len();
        self.lower.extend_from_slice(text.as_bytes());
        self.lower[base..].make_ascii_lowercase();
        let b = text.as_bytes();
        let class = |c: u8| CLASSES[c as usize];
        let mut i = 0;
        while i < b.len() {
            let c = class(b[i]);
            if c & ALNUM != 0 {
                let start = i;
                let mut end = i;
                let mut hyphens = false;
                loop {
                    while end < b.len() && class(b[end]) & ALNUM != 0 {
                        end += 1;
                    }
                    if end + 1 < b.len() && b[end] == b'-' && class(b[end + 1]) & ALNUM != 0 {
                        hyphens = true;
                        end += 1;
                        continue;
                    }
                    break;
                }
                self.word(base + start, base + end, weight)?;
                if hyphens {
                    let word = &b[start..end];
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
            if c & PLAIN == 0 {
                let next = b.get(i + 1).copied();
                let plain = (matches!(b[i], b'.' | b':')
                    && next.is_none_or(|n| class(n) & ENDS_A_SENTENCE != 0))
                    || (b[i] == b'-' && !next.is_some_and(|n| n.is_ascii_digit()));
                if !plain {
                    return None;
                }
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
    ///
    /// Words are told apart by their first eight bytes as an integer ([`prefix`]), and
    /// by their bytes only when they are longer: a small hash table finds each word's
    /// lexeme, the distinct lexemes are sorted, and each word's position is written
    /// straight into its lexeme's place in the output.
    fn finish(mut self) -> Option<SearchVector> {
        // Eight bytes past the last word, for `prefix` to read whole.
        self.lower.extend_from_slice(&[0; 8]);
        let lower = &self.lower;
        let text = |i: u32| {
            let (start, len, _) = self.words[i as usize];
            &lower[start as usize..start as usize + len as usize]
        };
        let n = self.words.len();
        let bits = (2 * n).max(16).next_power_of_two().trailing_zeros();
        let mut table = vec![0u32; 1 << bits];
        // Each lexeme: its prefix, its first word, its number of words.
        let mut lexemes: Vec<(u64, u32, u32)> = Vec::with_capacity(n);
        let mut of_word: Vec<u32> = Vec::with_capacity(n);
        for i in 0..n as u32 {
            let word = text(i);
            let key = prefix(lower, self.words[i as usize].0, word.len());
            let mut slot =
                (key ^ word.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits);
            let id = loop {
                match table[slot as usize] {
                    0 => {
                        lexemes.push((key, i, 0));
                        table[slot as usize] = lexemes.len() as u32;
                        break lexemes.len() - 1;
                    }
                    found => {
                        let (k, first, _) = lexemes[found as usize - 1];
                        let short = word.len() <= 8 && self.words[first as usize].1 <= 8;
                        if k == key && (short || text(first) == word) {
                            break found as usize - 1;
                        }
                        slot = (slot + 1) & ((1 << bits) - 1);
                    }
                }
            };
            lexemes[id].2 += 1;
            if lexemes[id].2 as usize > MAX_OCCURRENCES {
                return None;
            }
            of_word.push(id as u32);
        }
        // By prefix, then (lexemes that share their first eight bytes, which only
        // longer ones can) by bytes.
        let mut order: Vec<(u64, u32)> = lexemes
            .iter()
            .enumerate()
            .map(|(id, &(key, _, _))| (key, id as u32))
            .collect();
        order.sort_unstable();
        for run in order.chunk_by_mut(|a, b| a.0 == b.0) {
            if run.len() > 1 {
                run.sort_unstable_by(|a, b| {
                    text(lexemes[a.1 as usize].1).cmp(text(lexemes[b.1 as usize].1))
                });
            }
        }
        // Lay the lexemes out; `at[id]` is where the lexeme's next position goes.
        let size = 4 + lexemes
            .iter()
            .map(|&(_, first, count)| text(first).len() + 3 + 2 * count as usize)
            .sum::<usize>();
        let mut wire = Vec::with_capacity(size);
        wire.extend_from_slice(&(lexemes.len() as i32).to_be_bytes());
        let mut at = vec![0usize; lexemes.len()];
        for &(_, id) in &order {
            let (_, first, count) = lexemes[id as usize];
            wire.extend_from_slice(text(first));
            wire.push(0);
            wire.extend_from_slice(&(count as u16).to_be_bytes());
            at[id as usize] = wire.len();
            wire.resize(wire.len() + 2 * count as usize, 0);
        }
        for (i, &id) in of_word.iter().enumerate() {
            let weight = self.words[i].2;
            let place = &mut at[id as usize];
            wire[*place..*place + 2]
                .copy_from_slice(&((weight << 14) | (i as u16 + 1)).to_be_bytes());
            *place += 2;
        }
        Some(SearchVector { wire })
    }
}

/// The first eight bytes of the word at `start` in `lower` (which has eight bytes after
/// its last word) as a big-endian integer, those past its `len` zeroed: ordering these
/// orders the words by bytes, up to their eighth. One load, not a copy of `len` bytes
/// read back whole (a copy the processor cannot forward to the load).
fn prefix(lower: &[u8], start: u32, len: usize) -> u64 {
    let start = start as usize;
    let head = u64::from_be_bytes(lower[start..start + 8].try_into().expect("eight bytes"));
    if len >= 8 {
        head
    } else {
        head & !(u64::MAX >> (8 * len))
    }
}

impl SearchVector {
    /// The wire form, as `tsvectorrecv` reads it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.wire
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
    fn long_words_sharing_eight_bytes_are_in_byte_order() {
        let body = "abcdefghij abcdefghi abcdefgh abcdefghij abcdefgha abcdefghz abcdefgh";
        let v = search_vector("", None, &[], body).unwrap();
        let c = 1 << 14;
        assert_eq!(
            decode(&v),
            vec![
                ("abcdefgh".to_string(), vec![c | 3, c | 7]),
                ("abcdefgha".to_string(), vec![c | 5]),
                ("abcdefghi".to_string(), vec![c | 2]),
                ("abcdefghij".to_string(), vec![c | 1, c | 4]),
                ("abcdefghz".to_string(), vec![c | 6]),
            ]
        );
    }

    #[test]
    fn empty_text_is_an_empty_vector() {
        let v = search_vector("", None, &[], "").unwrap();
        assert!(decode(&v).is_empty());
    }
}
