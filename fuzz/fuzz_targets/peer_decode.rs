//! The peer port's decoding on arbitrary bytes: a stranger's hello, terms
//! and requests, and the checks the node runs on each (hello refusal, terms
//! agreement, request admission), never panic.
//!
//! Each input is tried twice: as a whole frame (header checks, checksum),
//! and as a body behind a valid peer header with a correct checksum, so the
//! fuzzer reaches the decoders without having to forge a crc32.
//!
//! Run: `cargo +nightly fuzz run peer_decode` (CI builds it on stable with
//! `cargo build --manifest-path fuzz/Cargo.toml`).

#![no_main]

use certus::frame::FrameKind;
use certus::fuzzing::{MAX_PEER_BODY, framed, peer_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peer_frame(data);
    if data.len() <= MAX_PEER_BODY {
        peer_frame(&framed(FrameKind::Peer, data));
    }
});
