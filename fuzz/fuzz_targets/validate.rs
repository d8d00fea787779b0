//! Any bytes as a skill file and as another file of a skill, through every check a
//! push runs on content ([`validate_check`], shared with the stable harness in
//! tests/fuzz_validate.rs).
#![no_main]

mod validate_check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = validate_check::check(data);
});
