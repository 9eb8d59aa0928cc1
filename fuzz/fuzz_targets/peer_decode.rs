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

use certus::frame::{FrameKind, HEADER_LEN, MAGIC};
use certus::fuzzing::{MAX_PEER_BODY, peer_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peer_frame(data);
    if data.len() <= MAX_PEER_BODY {
        peer_frame(&framed(data));
    }
});

/// `body` behind a well-formed peer header.
fn framed(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("fuzz inputs are small");
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&MAGIC.to_be_bytes());
    frame.extend_from_slice(&FrameKind::Peer.current_version().to_be_bytes());
    frame.push(3); // kind: peer
    frame.push(0); // flags
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(body);
    let crc = crc32fast::hash(&frame);
    frame[12..16].copy_from_slice(&crc.to_be_bytes());
    frame
}
