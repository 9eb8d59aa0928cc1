//! RESP request parsing on arbitrary bytes: it never panics, never returns
//! a command without consuming bytes, and a command it returns re-encodes
//! to bytes that parse back to the same command.
//!
//! Run: `cargo +nightly fuzz run resp_decode`.

#![no_main]

use bytes::{Bytes, BytesMut};
use certus::server::resp::{Limits, decode};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_args: 64,
    max_bulk: 4096,
    max_inline: 4096,
    unauthenticated: false,
};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match decode(&mut buf, &LIMITS) {
            Ok(Some(command)) => {
                assert!(buf.len() < before, "a command must consume bytes");
                round_trip(&command);
            }
            Ok(None) | Err(_) => break,
        }
    }
});

fn round_trip(command: &[Bytes]) {
    let mut wire = BytesMut::new();
    wire.extend_from_slice(format!("*{}\r\n", command.len()).as_bytes());
    for arg in command {
        wire.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        wire.extend_from_slice(arg);
        wire.extend_from_slice(b"\r\n");
    }
    let again = decode(&mut wire, &LIMITS).expect("re-encoded command parses");
    if command.is_empty() {
        return;
    }
    assert_eq!(again.as_deref(), Some(command));
    assert!(wire.is_empty());
}
