//! When a push's pack came: the first and the last byte read, from the start of the
//! stage that receives it. A client's `pack-objects` counts and compresses before it
//! sends anything, then writes the pack as it compresses each object: the push log's
//! `pack_first_byte_ms` is what the server waited for the client, `pack_last_byte_ms`
//! minus it how long the bytes took to come, and `pack_ms` minus `pack_last_byte_ms`
//! the indexing after them.

use std::io::Read;
use std::time::Instant;

/// When a pack's first and last bytes were read, in ms from the stage's start (both 0
/// when it read none).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Arrival {
    pub first_ms: u64,
    pub last_ms: u64,
}

/// A reader that notes the [`Arrival`] of the bytes it passes on (`None` until the
/// first).
pub(super) struct Timed<R> {
    inner: R,
    since: Instant,
    arrival: Option<Arrival>,
}

impl<R> Timed<R> {
    pub fn new(inner: R, since: Instant) -> Self {
        Timed {
            inner,
            since,
            arrival: None,
        }
    }

    pub fn arrival(&self) -> Arrival {
        self.arrival.unwrap_or_default()
    }
}

impl<R: Read> Read for Timed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            let ms = self.since.elapsed().as_millis() as u64;
            self.arrival
                .get_or_insert(Arrival {
                    first_ms: ms,
                    last_ms: ms,
                })
                .last_ms = ms;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A reader that sleeps before each chunk it gives.
    struct Slow(Vec<(Duration, &'static [u8])>);

    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let (wait, bytes) = self.0.remove(0);
            std::thread::sleep(wait);
            buf[..bytes.len()].copy_from_slice(bytes);
            Ok(bytes.len())
        }
    }

    #[test]
    fn the_first_and_last_bytes_are_timed_and_the_end_of_input_is_not() {
        let since = Instant::now();
        let mut r = Timed::new(
            Slow(vec![
                (Duration::from_millis(30), b"PACK"),
                (Duration::from_millis(30), b"more"),
                (Duration::from_millis(60), b""),
            ]),
            since,
        );
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        let total = since.elapsed().as_millis() as u64;
        assert_eq!(all, b"PACKmore");
        let a = r.arrival();
        assert!(a.first_ms >= 30, "{a:?}");
        assert!(a.last_ms >= a.first_ms + 30, "{a:?}");
        // The empty read at the end (60 ms later) moved neither.
        assert!(a.last_ms + 60 <= total, "{a:?}, {total} ms in all");
    }

    #[test]
    fn a_reader_that_gives_nothing_arrives_at_zero() {
        let mut r = Timed::new(std::io::empty(), Instant::now());
        assert_eq!(r.read(&mut [0; 8]).unwrap(), 0);
        assert_eq!(r.arrival(), Arrival::default());
    }
}
