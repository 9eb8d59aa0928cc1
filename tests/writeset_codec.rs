//! Write-set encoding: arbitrary write-sets round-trip, and damaged or
//! arbitrary bytes are rejected with an error, never a panic.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use bytes::Bytes;
use certus::frame::FrameError;
use certus::writeset::{Isolation, KeyKind, WriteSet, WriteSetBuilder};
use certus::{NodeId, Seqno, TxnId};
use proptest::prelude::*;

const MAX: usize = 1 << 20;

#[derive(Clone, Debug)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Insert(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Key(Vec<u8>, KeyKind),
    Read(Vec<u8>),
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (bytes(8), bytes(64)).prop_map(|(k, v)| Op::Put(k, v)),
        (bytes(8), bytes(64)).prop_map(|(k, v)| Op::Insert(k, v)),
        bytes(8).prop_map(Op::Delete),
        (bytes(8), prop::sample::select(KeyKind::ALL.to_vec()))
            .prop_map(|(k, kind)| Op::Key(k, kind)),
        bytes(8).prop_map(Op::Read),
    ]
}

fn write_set() -> impl Strategy<Value = WriteSet> {
    (
        any::<u64>(),
        any::<(u64, u64)>(),
        any::<u64>(),
        any::<bool>(),
        prop::collection::vec(op(), 0..30),
    )
        .prop_map(|(origin, (epoch, counter), read_view, serializable, ops)| {
            let isolation = if serializable {
                Isolation::Serializable
            } else {
                Isolation::Snapshot
            };
            let txn = TxnId::new(epoch, counter);
            let mut b =
                WriteSetBuilder::new(NodeId::new(origin), txn, Seqno::new(read_view), isolation);
            for op in ops {
                match op {
                    Op::Put(k, v) => b.put(Bytes::from(k), Bytes::from(v)),
                    Op::Insert(k, v) => b.insert(Bytes::from(k), Bytes::from(v)),
                    Op::Delete(k) => b.delete(Bytes::from(k)),
                    Op::Key(k, kind) => b.append_key(Bytes::from(k), kind),
                    Op::Read(k) => b.read(Bytes::from(k)),
                }
            }
            b.build()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn write_sets_round_trip(ws in write_set()) {
        let frame = ws.encode(MAX).unwrap();
        prop_assert_eq!(WriteSet::decode(&frame, MAX).unwrap(), ws);
    }

    #[test]
    fn damaged_frames_are_rejected(ws in write_set(), at in any::<prop::sample::Index>(), flip in 1..=255u8) {
        let mut frame = ws.encode(MAX).unwrap().to_vec();
        let at = at.index(frame.len());
        frame[at] ^= flip;
        prop_assert!(WriteSet::decode(&frame, MAX).is_err(), "a damaged byte at {} was accepted", at);
    }

    #[test]
    fn truncated_and_extended_frames_are_rejected(ws in write_set(), cut in any::<prop::sample::Index>(), extra in bytes(8)) {
        let frame = ws.encode(MAX).unwrap();
        let cut = cut.index(frame.len());
        prop_assert!(WriteSet::decode(&frame[..cut], MAX).is_err());
        if !extra.is_empty() {
            let mut long = frame.to_vec();
            long.extend_from_slice(&extra);
            let trailing = matches!(WriteSet::decode(&long, MAX), Err(FrameError::TrailingBytes { .. }));
            prop_assert!(trailing);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in bytes(256)) {
        let _ = WriteSet::decode(&input, MAX);
    }

    #[test]
    fn oversized_write_sets_are_refused_on_both_ends(ws in write_set()) {
        let frame = ws.encode(MAX).unwrap();
        let body = frame.len() - certus::frame::HEADER_LEN;
        if body > 0 {
            let small = body - 1;
            let encode_too_large = matches!(ws.encode(small), Err(FrameError::TooLarge { .. }));
            prop_assert!(encode_too_large);
            let decode_too_large = matches!(WriteSet::decode(&frame, small), Err(FrameError::TooLarge { .. }));
            prop_assert!(decode_too_large);
        }
    }
}
