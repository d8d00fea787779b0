//! Any bytes as what a push mirror's upstream answers: the ref advertisement, and the
//! report (with and without side-band). Reading never panics, and what it keeps is
//! within its bounds (an upstream is not trusted with the server's memory).
#![no_main]

use libfuzzer_sys::fuzz_target;
use skillsd::protocol::pktline::PktReader;
use skillsd::upstream::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(adv) = wire::read_advertisement(&mut PktReader::new(data)) {
        assert!(adv.refs.len() + adv.haves.len() <= 1_000_000);
    }
    for sideband in [true, false] {
        if let Ok(report) = wire::read_report(&mut PktReader::new(data), sideband) {
            assert!(report.messages.len() <= 16 * 1024 + 65520);
        }
    }
});
