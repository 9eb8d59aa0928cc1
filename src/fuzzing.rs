//! Entry points for the fuzz targets in `fuzz/`: what a stranger's bytes
//! reach on the peer port, decoded and judged as the node does. Not part
//! of the API.

use crate::frame::{self, FrameKind};

/// The largest peer frame body the targets accept, so the length check
/// before allocation is exercised.
pub const MAX_PEER_BODY: usize = 1 << 16;

/// `body` behind a well-formed header of `kind` with a correct checksum,
/// so a fuzzer reaches a body decoder without having to forge a crc32.
///
/// # Panics
/// When `body` is longer than 4 GiB (fuzz inputs are small).
#[must_use]
pub fn framed(kind: FrameKind, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("fuzz inputs are small");
    let mut frame = Vec::with_capacity(frame::HEADER_LEN + body.len());
    frame.extend_from_slice(&frame::MAGIC.to_be_bytes());
    frame.extend_from_slice(&kind.current_version().to_be_bytes());
    frame.extend_from_slice(&[kind.code(), 0]); // no flags
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(body);
    let crc = crc32fast::hash(&frame);
    frame[12..16].copy_from_slice(&crc.to_be_bytes());
    frame
}

/// Treats `frame` as one peer frame: header and checksum checks, then the
/// body as every handshake frame and as a request, each judged as the
/// node judges it (hello refusal, terms agreement, request admission).
/// Never panics, whatever the bytes.
pub fn peer_frame(frame: &[u8]) {
    let Ok((header, body)) = frame::decode(frame, MAX_PEER_BODY) else {
        return;
    };
    if header.kind != FrameKind::Peer {
        return;
    }
    crate::net::judge_handshake(body);
    crate::order::judge_request(body);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::net::Tagged;

    fn framed(body: &[u8]) -> Vec<u8> {
        super::framed(FrameKind::Peer, body)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// What the fuzz target checks, on the proptest runner: arbitrary
        /// bodies and mutated real requests never panic.
        #[test]
        fn arbitrary_peer_frames_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            flip in any::<usize>(),
        ) {
            peer_frame(&body);
            peer_frame(&framed(&body));
            let request = Tagged { id: 7, body: body.clone() };
            let mut real = frame::encode(FrameKind::Peer, &request, MAX_PEER_BODY).expect("encode").to_vec();
            let at = frame::HEADER_LEN + flip % (real.len() - frame::HEADER_LEN);
            real[at] ^= 0x5a;
            let body = real[frame::HEADER_LEN..].to_vec();
            peer_frame(&framed(&body));
        }
    }
}
