use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

fn parse(input: &[u8]) -> (Result<Option<Command>, RespError>, usize) {
    let mut buf = BytesMut::from(input);
    let result = decode(&mut buf, &Limits::default());
    (result, buf.len())
}

fn args(list: &[&str]) -> Command {
    list.iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

fn encode_command(command: &[Bytes]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", command.len()).into_bytes();
    for arg in command {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
fn a_multibulk_command_is_parsed_and_consumed_exactly() {
    let (result, left) =
        parse(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva\r\nl\r\n*1\r\n$4\r\nPING\r\n");
    assert_eq!(result, Ok(Some(args(&["SET", "k", "va\r\nl"]))));
    assert_eq!(left, b"*1\r\n$4\r\nPING\r\n".len());
}

#[test]
fn every_prefix_of_a_command_waits_for_more() {
    let full = b"*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";
    for cut in 0..full.len() {
        let (result, left) = parse(&full[..cut]);
        assert_eq!(result, Ok(None), "prefix of {cut} bytes");
        assert_eq!(left, cut, "a partial command consumes nothing");
    }
    assert_eq!(parse(full).0, Ok(Some(args(&["GET", "0123456789"]))));
}

#[test]
fn inline_commands_split_on_spaces_and_honour_quotes() {
    assert_eq!(parse(b"PING\r\n").0, Ok(Some(args(&["PING"]))));
    assert_eq!(parse(b"set k  v\n").0, Ok(Some(args(&["set", "k", "v"]))));
    assert_eq!(
        parse(b"SET \"a key\" 'x y' \"q\\\"uote\"\r\n").0,
        Ok(Some(args(&["SET", "a key", "x y", "q\"uote"])))
    );
    assert_eq!(
        parse(b"SET \"open\r\n").0,
        Err(RespError::Inline("unbalanced quotes in request"))
    );
}

#[test]
fn malformed_requests_are_errors_not_waits_or_panics() {
    let cases: [(&[u8], RespError); 4] = [
        (b"*x\r\n", RespError::BadLength { what: "multibulk" }),
        (
            b"*1\r\n+PING\r\n",
            RespError::Unexpected {
                expected: '$',
                got: '+',
            },
        ),
        (b"*1\r\n$-5\r\n", RespError::BadLength { what: "bulk" }),
        (
            b"*1\r\n$2\r\nabcd\r\n",
            RespError::Unexpected {
                expected: '\r',
                got: 'c',
            },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            parse(input).0,
            Err(expected),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
    // A count beyond the limit is refused before anything is allocated.
    let limits = Limits {
        max_args: 8,
        max_bulk: 16,
        max_inline: 32,
        unauthenticated: false,
    };
    let mut huge = BytesMut::from(&b"*9999999999\r\n"[..]);
    assert_eq!(
        decode(&mut huge, &limits),
        Err(RespError::BadLength { what: "multibulk" })
    );
    let mut big_bulk = BytesMut::from(&b"*1\r\n$17\r\n"[..]);
    assert_eq!(
        decode(&mut big_bulk, &limits),
        Err(RespError::BadLength { what: "bulk" })
    );
    let mut many = BytesMut::from(&b"a b c d e f g h i\r\n"[..]);
    assert_eq!(
        decode(&mut many, &limits),
        Err(RespError::Inline("too many arguments in inline request"))
    );
    let mut long_line = BytesMut::from(&[b'a'; 40][..]);
    assert_eq!(
        decode(&mut long_line, &limits),
        Err(RespError::Inline("too big inline request"))
    );
    // A length line that never ends is not waited on forever.
    let mut endless = BytesMut::from(&b"*11111111111111111111111111111111111111"[..]);
    assert!(decode(&mut endless, &limits).is_err());
}

#[test]
fn replies_have_the_redis_wire_form() {
    let cases: Vec<(Reply, &[u8])> = vec![
        (Reply::Simple("OK"), b"+OK\r\n"),
        (Reply::err("bad\r\nthing"), b"-ERR bad  thing\r\n"),
        (Reply::Integer(-7), b":-7\r\n"),
        (Reply::bulk("hi"), b"$2\r\nhi\r\n"),
        (Reply::Bulk(None), b"$-1\r\n"),
        (Reply::Array(None), b"*-1\r\n"),
        (Reply::Array(Some(vec![])), b"*0\r\n"),
        (
            Reply::Array(Some(vec![
                Reply::bulk("a"),
                Reply::Integer(1),
                Reply::Bulk(None),
            ])),
            b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n",
        ),
    ];
    for (reply, wire) in cases {
        let mut out = BytesMut::new();
        reply.encode(&mut out);
        assert_eq!(&out[..], wire, "{reply:?}");
    }
}

#[test]
fn resp3_types_its_nulls_maps_and_verbatim_text_and_resp2_flattens_them() {
    let map = Reply::Map(vec![
        (Reply::bulk("proto"), Reply::Integer(3)),
        (Reply::bulk("x"), Reply::Bulk(None)),
    ]);
    let cases: [(Reply, &[u8], &[u8]); 5] = [
        (Reply::Bulk(None), b"$-1\r\n", b"_\r\n"),
        (Reply::Array(None), b"*-1\r\n", b"_\r\n"),
        (
            map,
            b"*4\r\n$5\r\nproto\r\n:3\r\n$1\r\nx\r\n$-1\r\n",
            b"%2\r\n$5\r\nproto\r\n:3\r\n$1\r\nx\r\n_\r\n",
        ),
        (
            Reply::Verbatim(Bytes::from_static(b"a:1\r\n")),
            b"$5\r\na:1\r\n\r\n",
            b"=9\r\ntxt:a:1\r\n\r\n",
        ),
        (
            Reply::Array(Some(vec![Reply::Integer(1), Reply::Bulk(None)])),
            b"*2\r\n:1\r\n$-1\r\n",
            b"*2\r\n:1\r\n_\r\n",
        ),
    ];
    for (reply, resp2, resp3) in cases {
        let mut out = BytesMut::new();
        reply.encode_as(&mut out, Protocol::Resp2);
        assert_eq!(&out[..], resp2, "{reply:?} in RESP2");
        let mut out = BytesMut::new();
        reply.encode_as(&mut out, Protocol::Resp3);
        assert_eq!(&out[..], resp3, "{reply:?} in RESP3");
    }
}

#[test]
fn resp3_sets_doubles_booleans_big_numbers_and_pushes_have_resp2_forms() {
    let cases: [(Reply, &[u8], &[u8]); 8] = [
        (
            Reply::Set(vec![Reply::Simple("write")]),
            b"*1\r\n+write\r\n",
            b"~1\r\n+write\r\n",
        ),
        (Reply::Double(1.5), b"$3\r\n1.5\r\n", b",1.5\r\n"),
        (Reply::Double(f64::INFINITY), b"$3\r\ninf\r\n", b",inf\r\n"),
        (Reply::Boolean(true), b":1\r\n", b"#t\r\n"),
        (Reply::Boolean(false), b":0\r\n", b"#f\r\n"),
        (
            Reply::BigNumber("123456789012345678901234567890".into()),
            b"$30\r\n123456789012345678901234567890\r\n",
            b"(123456789012345678901234567890\r\n",
        ),
        (
            Reply::Push(vec![Reply::bulk("message"), Reply::Integer(1)]),
            b"*2\r\n$7\r\nmessage\r\n:1\r\n",
            b">2\r\n$7\r\nmessage\r\n:1\r\n",
        ),
        (Reply::Null, b"$-1\r\n", b"_\r\n"),
    ];
    for (reply, resp2, resp3) in cases {
        assert_eq!(
            &reply.to_bytes(Protocol::Resp2)[..],
            resp2,
            "{reply:?} in RESP2"
        );
        assert_eq!(
            &reply.to_bytes(Protocol::Resp3)[..],
            resp3,
            "{reply:?} in RESP3"
        );
    }
    let raw = Reply::Array(Some(vec![Reply::Raw(Bytes::from_static(b":7\r\n"))]));
    assert_eq!(&raw.to_bytes(Protocol::Resp3)[..], b"*1\r\n:7\r\n");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Any sequence of commands, split at any points, parses back exactly.
    #[test]
    fn commands_round_trip_across_arbitrary_splits(
        commands in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..5), 1..6),
        cuts in prop::collection::vec(0usize..400, 0..6),
    ) {
        let commands: Vec<Command> = commands
            .into_iter()
            .map(|c| c.into_iter().map(Bytes::from).collect())
            .collect();
        let wire: Vec<u8> = commands.iter().flat_map(|c| encode_command(c)).collect();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(wire.len())).collect();
        cuts.push(wire.len());
        cuts.sort_unstable();
        let mut buf = BytesMut::new();
        let mut parsed = Vec::new();
        let mut fed = 0;
        for cut in cuts {
            buf.extend_from_slice(&wire[fed..cut]);
            fed = cut;
            while let Some(command) = decode(&mut buf, &Limits::default()).expect("valid input") {
                parsed.push(command);
            }
        }
        prop_assert_eq!(parsed, commands);
        prop_assert!(buf.is_empty());
    }

    /// Arbitrary bytes never panic, and a command is only returned when
    /// bytes were consumed (no busy loop on garbage).
    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut buf = BytesMut::from(&input[..]);
        let limits = Limits { max_args: 64, max_bulk: 64, max_inline: 128, unauthenticated: false };
        for _ in 0..=input.len() {
            let before = buf.len();
            match decode(&mut buf, &limits) {
                Ok(Some(_)) => prop_assert!(buf.len() < before),
                Ok(None) | Err(_) => break,
            }
        }
    }
}
