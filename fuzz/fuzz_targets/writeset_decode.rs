//! Write-set decoding on arbitrary bytes: it never panics, and whatever it
//! accepts is a valid write-set that survives an encode/decode round trip.
//! (Byte equality is not required: postcard accepts over-long varints, and
//! every member decodes the same ordered bytes anyway.)
//!
//! Each input is tried twice: as a whole frame (header checks, checksum),
//! and as a body wrapped in a valid header with a correct checksum, so the
//! fuzzer reaches the body decoder and write-set validation without having
//! to forge a crc32.
//!
//! Run: `cargo +nightly fuzz run writeset_decode` (CI builds it on stable
//! with `cargo build --manifest-path fuzz/Cargo.toml`).

#![no_main]

use certus::frame::FrameKind;
use certus::fuzzing::framed;
use certus::writeset::WriteSet;
use libfuzzer_sys::fuzz_target;

/// Small enough that the length check before allocation is exercised.
const MAX_BYTES: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    check(data);
    check(&framed(FrameKind::WriteSet, data));
});

fn check(frame: &[u8]) {
    if let Ok(ws) = WriteSet::decode(frame, MAX_BYTES) {
        let again = ws.encode(MAX_BYTES).expect("a decoded write-set encodes");
        assert!(again.len() <= frame.len(), "re-encoding grew the frame");
        let round = WriteSet::decode(&again, MAX_BYTES).expect("an encoded write-set decodes");
        assert_eq!(round, ws);
    }
}
