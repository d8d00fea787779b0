//! Any bytes as the start of a push: pkt-lines, then the command list and push
//! options. Reading never panics, never allocates beyond the pkt-line it reads, and
//! what it accepts is within the protocol's bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skillsd::protocol::pktline::PktReader;
use skillsd::receive::commands::{self, MAX_COMMANDS};

fuzz_target!(|data: &[u8]| {
    let mut reader = PktReader::new(data);
    if let Ok(Some(request)) = commands::read(&mut reader) {
        assert!(!request.commands.is_empty());
        assert!(request.commands.len() <= MAX_COMMANDS);
        for c in &request.commands {
            assert!(!c.name.is_empty());
        }
    }
});
