//! Hashes and sets: replies and error texts as Redis 7.2 gives them, and
//! members that follow their key through expiry, renames and overwrites.

use super::*;

fn ints(values: &[i64]) -> Reply {
    Reply::Array(Some(values.iter().map(|v| Reply::Integer(*v)).collect()))
}

fn array_len(reply: &Reply) -> usize {
    match reply {
        Reply::Array(Some(items)) | Reply::Set(items) => items.len(),
        Reply::Pairs(pairs) => pairs.len(),
        other => panic!("expected an array, got {other:?}"),
    }
}

#[test]
fn hash_commands_answer_as_redis() {
    let m = &mut mem();
    assert_eq!(run(m, "HSET h a 1 b 2"), Reply::Integer(2));
    assert_eq!(run(m, "HSET h a 3 c 4"), Reply::Integer(1));
    assert_eq!(run(m, "HMSET h d 5"), Reply::ok());
    assert_eq!(
        error(run(m, "HSET h a")),
        "ERR wrong number of arguments for 'hset' command"
    );
    assert_eq!(
        error(run(m, "HMSET h a 1 b")),
        "ERR wrong number of arguments for 'hmset' command"
    );
    assert_eq!(run(m, "HGET h a"), bulk("3"));
    assert_eq!(run(m, "HGET h zz"), Reply::Bulk(None));
    assert_eq!(run(m, "HGET nohash a"), Reply::Bulk(None));
    assert_eq!(
        run(m, "HMGET h a zz b"),
        Reply::Array(Some(vec![bulk("3"), Reply::Bulk(None), bulk("2")]))
    );
    assert_eq!(run(m, "HLEN h"), Reply::Integer(4));
    assert_eq!(run(m, "HSTRLEN h a"), Reply::Integer(1));
    assert_eq!(run(m, "HEXISTS h zz"), Reply::Integer(0));
    assert_eq!(run(m, "HSETNX h a 9"), Reply::Integer(0));
    assert_eq!(run(m, "HSETNX h e 9"), Reply::Integer(1));
    assert_eq!(run(m, "HINCRBY h a 10"), Reply::Integer(13));
    assert_eq!(run(m, "HINCRBY h new -4"), Reply::Integer(-4));
    assert_eq!(
        error(run(m, "HINCRBY h a x")),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(run(m, "HSET h s abc"), Reply::Integer(1));
    assert_eq!(
        error(run(m, "HINCRBY h s 1")),
        "ERR hash value is not an integer"
    );
    assert_eq!(
        error(run(m, "HINCRBY h a 9223372036854775807")),
        "ERR increment or decrement would overflow"
    );
}

#[test]
fn hash_counters_and_bulk_reads_answer_as_redis() {
    let m = &mut mem();
    run(m, "HSET h a 13 b 2 c 4 d 5 e 9 new -4");
    run(m, "HSET h s abc");
    assert_eq!(run(m, "HINCRBYFLOAT h f 1.5"), bulk("1.5"));
    assert_eq!(run(m, "HINCRBYFLOAT h f 0.25"), bulk("1.75"));
    assert_eq!(
        error(run(m, "HINCRBYFLOAT h s 1")),
        "ERR hash value is not a float"
    );
    assert_eq!(
        error(run(m, "HINCRBYFLOAT h f inf")),
        "ERR value is NaN or Infinity"
    );
    assert_eq!(run(m, "HDEL h a b zz"), Reply::Integer(2));
    assert_eq!(run(m, "HKEYS nohash"), Reply::Array(Some(Vec::new())));
    assert_eq!(run(m, "HGETALL nohash"), Reply::Map(Vec::new()));
    let Reply::Map(all) = run(m, "HGETALL h") else {
        panic!("HGETALL is a map")
    };
    let fields: Vec<_> = all.iter().map(|(f, _)| f.clone()).collect();
    let mut sorted = fields.clone();
    sorted.sort_by_key(|f| format!("{f:?}"));
    sorted.dedup();
    assert_eq!(sorted.len(), 6, "{fields:?}");
    assert_eq!(run(m, "HDEL h c d e new s f"), Reply::Integer(6));
    assert_eq!(
        run(m, "EXISTS h"),
        Reply::Integer(0),
        "an emptied hash goes"
    );
    assert_eq!(run(m, "SET str v"), Reply::ok());
    for command in ["HGET str a", "HSET str a 1", "HLEN str", "HGETALL str"] {
        assert_eq!(
            error(run(m, command)),
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "{command}"
        );
    }
}

#[test]
fn random_fields_and_members_follow_the_count_rules() {
    let m = &mut mem();
    run(m, "HSET h a 1 b 2 c 3 d 4 e 5");
    run(m, "SADD s a b c d e");
    assert_eq!(array_len(&run(m, "HRANDFIELD h 3")), 3);
    assert_eq!(array_len(&run(m, "HRANDFIELD h 10")), 5);
    assert_eq!(
        array_len(&run(m, "HRANDFIELD h -10")),
        10,
        "repeats allowed"
    );
    assert_eq!(array_len(&run(m, "HRANDFIELD h 2 WITHVALUES")), 2);
    assert_eq!(run(m, "HRANDFIELD h 0"), Reply::Array(Some(Vec::new())));
    assert_eq!(run(m, "HRANDFIELD nohash"), Reply::Bulk(None));
    assert_eq!(
        error(run(m, "HRANDFIELD h 1 WITHSCORES")),
        "ERR syntax error"
    );
    assert_eq!(
        error(run(m, "HRANDFIELD h -9223372036854775808")),
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    );
    let Reply::Array(Some(picked)) = run(m, "SRANDMEMBER s 4") else {
        panic!("an array")
    };
    let mut distinct = picked.clone();
    distinct.sort_by_key(|r| format!("{r:?}"));
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "distinct members: {picked:?}");
    assert_eq!(array_len(&run(m, "SRANDMEMBER s -7")), 7);
    assert_eq!(run(m, "SRANDMEMBER nos"), Reply::Null);
    assert_eq!(array_len(&run(m, "SPOP s 2")), 2);
    assert_eq!(run(m, "SCARD s"), Reply::Integer(3));
    assert_eq!(
        error(run(m, "SPOP s -1")),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(array_len(&run(m, "SPOP s 10")), 3);
    assert_eq!(run(m, "EXISTS s"), Reply::Integer(0));
    assert_eq!(run(m, "SPOP s"), Reply::Null);
    assert_eq!(run(m, "SPOP s 1"), Reply::Set(Vec::new()));
}

#[test]
fn set_algebra_and_cardinality_answer_as_redis() {
    let m = &mut mem();
    run(m, "SADD a 1 2 3 4");
    run(m, "SADD b 3 4 5");
    assert_eq!(run(m, "SISMEMBER a 1"), Reply::Integer(1));
    assert_eq!(run(m, "SMISMEMBER a 1 9"), ints(&[1, 0]));
    assert_eq!(run(m, "SINTERCARD 2 a b"), Reply::Integer(2));
    assert_eq!(run(m, "SINTERCARD 2 a b LIMIT 1"), Reply::Integer(1));
    assert_eq!(run(m, "SINTERCARD 2 a none"), Reply::Integer(0));
    assert_eq!(
        error(run(m, "SINTERCARD 0 a")),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        error(run(m, "SINTERCARD 3 a b")),
        "ERR Number of keys can't be greater than number of args"
    );
    assert_eq!(
        error(run(m, "SINTERCARD 2 a b LIMIT -1")),
        "ERR LIMIT can't be negative"
    );
    assert_eq!(error(run(m, "SINTERCARD 1 a b")), "ERR syntax error");
    assert_eq!(run(m, "SDIFFSTORE d a b"), Reply::Integer(2));
    assert_eq!(run(m, "SMEMBERS d"), Reply::Set(vec![bulk("1"), bulk("2")]));
    assert_eq!(run(m, "SINTERSTORE d a missing"), Reply::Integer(0));
    assert_eq!(
        run(m, "EXISTS d"),
        Reply::Integer(0),
        "an empty result deletes"
    );
    assert_eq!(run(m, "SMOVE a b 1"), Reply::Integer(1));
    assert_eq!(run(m, "SMOVE a b 1"), Reply::Integer(0));
    assert_eq!(run(m, "SMOVE a a 2"), Reply::Integer(1));
    run(m, "SET str v");
    assert_eq!(
        error(run(m, "SMOVE a str 2")),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(run(m, "SMOVE missing str 2"), Reply::Integer(0));
    assert_eq!(
        error(run(m, "SUNION a str")),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
}

/// Every member a full `HSCAN` or `SSCAN` returns, and the calls it took.
fn scan_members(m: &mut Mem, command: &str, key: &str, options: &str) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let (mut found, mut calls) = (Vec::new(), 0);
    loop {
        calls += 1;
        let reply = run(m, &format!("{command} {key} {cursor} {options}"));
        let Reply::Array(Some(parts)) = reply else {
            panic!("a scan reply")
        };
        let (Reply::Bulk(Some(next)), Reply::Array(Some(items))) = (&parts[0], &parts[1]) else {
            panic!("cursor and items")
        };
        for item in items {
            if let Reply::Bulk(Some(item)) = item {
                found.push(String::from_utf8_lossy(item).into_owned());
            }
        }
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            return (found, calls);
        }
    }
}

#[test]
fn member_scans_return_every_member_once() {
    let m = &mut mem();
    for i in 0..100 {
        run(m, &format!("HSET h f{i} v{i}"));
        run(m, &format!("SADD s m{i}"));
    }
    let (mut fields, calls) = scan_members(m, "HSCAN", "h", "COUNT 10");
    assert!(calls > 5, "COUNT bounds each call: {calls}");
    assert_eq!(fields.len(), 200, "fields and values");
    fields.sort();
    fields.dedup();
    assert_eq!(fields.len(), 200);
    let (members, _) = scan_members(m, "SSCAN", "s", "COUNT 1000");
    assert_eq!(members.len(), 100);
    assert_eq!(run(m, "SSCAN s x"), Reply::err("invalid cursor"));
    assert_eq!(
        run(m, "SSCAN nos 0"),
        Reply::Array(Some(vec![bulk("0"), Reply::Array(Some(Vec::new()))]))
    );
    assert_eq!(
        error(run(m, "HSCAN h 0 TYPE string")),
        "ERR syntax error",
        "TYPE is the keyspace's"
    );
    let (matching, _) = scan_members(m, "SSCAN", "s", "MATCH m1* COUNT 1000");
    assert_eq!(matching.len(), 11);
}

#[test]
fn members_follow_their_key_through_expiry_renames_and_overwrites() {
    let m = &mut mem();
    run(m, "HSET h a 1 b 2");
    assert_eq!(run(m, "TYPE h"), Reply::Simple("hash"));
    assert_eq!(run(m, "EXPIRE h 10"), Reply::Integer(1));
    assert_eq!(run(m, "HGET h a"), bulk("1"), "EXPIRE keeps the fields");
    assert_eq!(run(m, "RENAME h g"), Reply::ok());
    assert_eq!(run(m, "HGET g b"), bulk("2"));
    assert_eq!(run(m, "TTL g"), Reply::Integer(10));
    assert_eq!(run(m, "COPY g c"), Reply::Integer(1));
    assert_eq!(run(m, "HDEL g a b"), Reply::Integer(2));
    assert_eq!(
        run(m, "HLEN c"),
        Reply::Integer(2),
        "COPY copies the fields"
    );
    m.now += 11_000;
    assert_eq!(run(m, "EXISTS c"), Reply::Integer(0));
    assert_eq!(run(m, "HSET c z 9"), Reply::Integer(1));
    assert_eq!(
        run(m, "HGETALL c"),
        Reply::Map(vec![(bulk("z"), bulk("9"))]),
        "an expired hash's fields do not come back"
    );
    assert_eq!(run(m, "SET c v"), Reply::ok());
    assert_eq!(
        error(run(m, "SADD c x")),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    run(m, "DEL c");
    assert!(
        m.map.keys().all(|k| k.first() != Some(&b'm')),
        "no member outlives its key"
    );
}

fn dbl(value: f64) -> Reply {
    Reply::Double(value)
}

fn bulks(items: &[&str]) -> Reply {
    Reply::Array(Some(items.iter().map(|i| bulk(i)).collect()))
}

#[test]
fn sorted_set_commands_answer_as_redis() {
    let m = &mut mem();
    assert_eq!(run(m, "ZADD z 1 a 2 b 3 c"), Reply::Integer(3));
    assert_eq!(run(m, "ZADD z CH 5 a 2 b 4 d"), Reply::Integer(2));
    assert_eq!(run(m, "ZADD z GT 1 a"), Reply::Integer(0));
    assert_eq!(run(m, "ZSCORE z a"), dbl(5.0));
    assert_eq!(run(m, "ZADD z INCR 1.5 a"), dbl(6.5));
    assert_eq!(run(m, "ZADD z NX INCR 1 a"), Reply::Null);
    assert_eq!(run(m, "ZADD missing XX 1 a"), Reply::Integer(0));
    assert_eq!(
        error(run(m, "ZADD z NX XX 1 a")),
        "ERR XX and NX options at the same time are not compatible"
    );
    assert_eq!(
        error(run(m, "ZADD z GT LT 1 a")),
        "ERR GT, LT, and/or NX options at the same time are not compatible"
    );
    assert_eq!(
        error(run(m, "ZADD z INCR 1 a 2 b")),
        "ERR INCR option supports a single increment-element pair"
    );
    assert_eq!(error(run(m, "ZADD z 1 a 2")), "ERR syntax error");
    assert_eq!(
        error(run(m, "ZADD z x a")),
        "ERR value is not a valid float"
    );
    assert_eq!(run(m, "ZADD z inf i"), Reply::Integer(1));
    assert_eq!(
        error(run(m, "ZINCRBY z -inf i")),
        "ERR resulting score is not a number (NaN)"
    );
    assert_eq!(run(m, "ZREM z i nothere"), Reply::Integer(1));
}

#[test]
fn sorted_set_ranges_answer_as_redis() {
    let m = &mut mem();
    run(m, "ZADD z 6.5 a 2 b 3 c 4 d");
    assert_eq!(run(m, "ZRANGE z 0 -1"), bulks(&["b", "c", "d", "a"]));
    assert_eq!(run(m, "ZREVRANGE z 0 1"), bulks(&["a", "d"]));
    assert_eq!(
        run(m, "ZRANGE z (2 4 BYSCORE WITHSCORES"),
        Reply::Pairs(vec![(bulk("c"), dbl(3.0)), (bulk("d"), dbl(4.0))])
    );
    assert_eq!(
        run(m, "ZRANGE z +inf -inf BYSCORE REV LIMIT 1 2"),
        bulks(&["d", "c"])
    );
    assert_eq!(run(m, "ZRANGEBYSCORE z -inf (3"), bulks(&["b"]));
    assert_eq!(run(m, "ZREVRANGEBYSCORE z 4 3"), bulks(&["d", "c"]));
    assert_eq!(run(m, "ZCOUNT z 3 +inf"), Reply::Integer(3));
    assert_eq!(run(m, "ZRANK z d"), Reply::Integer(2));
    assert_eq!(
        run(m, "ZREVRANK z d WITHSCORE"),
        Reply::Array(Some(vec![Reply::Integer(1), dbl(4.0)]))
    );
    assert_eq!(run(m, "ZRANK z nothere"), Reply::Null);
    assert_eq!(
        error(run(m, "ZRANGE z 0 1 LIMIT 0 1")),
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
    );
    assert_eq!(
        error(run(m, "ZRANGE z [a [b BYLEX WITHSCORES")),
        "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
    );
    assert_eq!(
        error(run(m, "ZRANGEBYSCORE z x 1")),
        "ERR min or max is not a float"
    );
    assert_eq!(
        error(run(m, "ZRANGEBYLEX z a b")),
        "ERR min or max not valid string range item"
    );
    assert_eq!(
        run(m, "ZMSCORE z a zz"),
        Reply::Array(Some(vec![dbl(6.5), Reply::Null]))
    );
    assert_eq!(run(m, "ZRANGESTORE dst z 1 2"), Reply::Integer(2));
    assert_eq!(run(m, "ZRANGE dst 0 -1"), bulks(&["c", "d"]));
    assert_eq!(
        run(m, "ZPOPMIN z"),
        Reply::Array(Some(vec![bulk("b"), dbl(2.0)]))
    );
    assert_eq!(
        run(m, "ZPOPMAX z 2"),
        Reply::Pairs(vec![(bulk("a"), dbl(6.5)), (bulk("d"), dbl(4.0))])
    );
    assert_eq!(run(m, "ZCARD z"), Reply::Integer(1));
    assert_eq!(run(m, "ZREMRANGEBYRANK z 0 -1"), Reply::Integer(1));
    assert_eq!(run(m, "EXISTS z"), Reply::Integer(0));
    assert_eq!(run(m, "TYPE dst"), Reply::Simple("zset"));
}

#[test]
fn lex_ranges_and_set_algebra_answer_as_redis() {
    let m = &mut mem();
    run(m, "ZADD lex 0 a 0 b 0 c 0 d 0 e");
    assert_eq!(run(m, "ZRANGEBYLEX lex [b (d"), bulks(&["b", "c"]));
    assert_eq!(run(m, "ZRANGEBYLEX lex - + LIMIT 3 5"), bulks(&["d", "e"]));
    assert_eq!(run(m, "ZREVRANGEBYLEX lex (d -"), bulks(&["c", "b", "a"]));
    assert_eq!(
        run(m, "ZRANGE lex [e (a BYLEX REV"),
        bulks(&["e", "d", "c", "b"])
    );
    assert_eq!(run(m, "ZLEXCOUNT lex (a [c"), Reply::Integer(2));
    assert_eq!(run(m, "ZREMRANGEBYLEX lex [d +"), Reply::Integer(2));
    assert_eq!(run(m, "ZRANGEBYLEX lex + -"), bulks(&[]));
    run(m, "ZADD s1 1 a 2 b");
    run(m, "ZADD s2 10 b 20 c");
    run(m, "SADD plain b c");
    assert_eq!(
        run(m, "ZUNIONSTORE u 2 s1 s2 WEIGHTS 1 2"),
        Reply::Integer(3)
    );
    assert_eq!(
        run(m, "ZRANGE u 0 -1 WITHSCORES"),
        Reply::Pairs(vec![
            (bulk("a"), dbl(1.0)),
            (bulk("b"), dbl(22.0)),
            (bulk("c"), dbl(40.0))
        ])
    );
    assert_eq!(
        run(m, "ZINTERSTORE i 3 s1 s2 plain AGGREGATE MAX"),
        Reply::Integer(1)
    );
    assert_eq!(
        run(m, "ZRANGE i 0 -1 WITHSCORES"),
        Reply::Pairs(vec![(bulk("b"), dbl(10.0))])
    );
    assert_eq!(
        error(run(m, "ZUNIONSTORE u 0 s1")),
        "ERR at least 1 input key is needed for 'zunionstore' command"
    );
    assert_eq!(error(run(m, "ZUNIONSTORE u 3 s1 s2")), "ERR syntax error");
    assert_eq!(
        error(run(m, "ZUNIONSTORE u 1 s1 WEIGHTS x")),
        "ERR weight value is not a float"
    );
    run(m, "SET str v");
    assert_eq!(
        error(run(m, "ZUNIONSTORE u 2 s1 str")),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    for i in 0..50 {
        run(m, &format!("ZADD big {i} m{i}"));
    }
    let (found, _) = scan_members(m, "ZSCAN", "big", "COUNT 7");
    assert_eq!(found.len(), 100, "members and scores");
}

#[test]
fn lists_answer_as_redis() {
    let m = &mut mem();
    assert_eq!(run(m, "RPUSH l a b c"), Reply::Integer(3));
    assert_eq!(run(m, "LPUSH l z"), Reply::Integer(4));
    assert_eq!(run(m, "LPUSHX nolist x"), Reply::Integer(0));
    assert_eq!(run(m, "LRANGE l 0 -1"), bulks(&["z", "a", "b", "c"]));
    assert_eq!(run(m, "LINDEX l -1"), bulk("c"));
    assert_eq!(run(m, "LSET l 1 A"), Reply::ok());
    assert_eq!(error(run(m, "LSET l 9 A")), "ERR index out of range");
    assert_eq!(error(run(m, "LSET nolist 0 A")), "ERR no such key");
    assert_eq!(run(m, "LINSERT l BEFORE b x"), Reply::Integer(5));
    assert_eq!(run(m, "LINSERT l AFTER nothere x"), Reply::Integer(-1));
    assert_eq!(run(m, "LPOS l x"), Reply::Integer(2));
    assert_eq!(run(m, "RPUSH l x"), Reply::Integer(6));
    assert_eq!(
        run(m, "LPOS l x RANK -1 COUNT 0"),
        Reply::Array(Some(vec![Reply::Integer(5), Reply::Integer(2)]))
    );
    assert!(error(run(m, "LPOS l x RANK 0")).starts_with("ERR RANK can't be zero"));
    assert_eq!(run(m, "LREM l -1 x"), Reply::Integer(1));
    assert_eq!(run(m, "LRANGE l 0 -1"), bulks(&["z", "A", "x", "b", "c"]));
    assert_eq!(run(m, "LTRIM l 1 -2"), Reply::ok());
    assert_eq!(run(m, "LRANGE l 0 -1"), bulks(&["A", "x", "b"]));
    assert_eq!(run(m, "LMOVE l other RIGHT LEFT"), bulk("b"));
    assert_eq!(run(m, "RPOPLPUSH l other"), bulk("x"));
    assert_eq!(run(m, "LRANGE other 0 -1"), bulks(&["x", "b"]));
    assert_eq!(run(m, "LPOP l 0"), Reply::Array(Some(Vec::new())));
    assert_eq!(run(m, "LPOP nolist 2"), Reply::Array(None));
    assert_eq!(
        run(m, "LMPOP 2 nolist other RIGHT COUNT 5"),
        Reply::Array(Some(vec![bulk("other"), bulks(&["b", "x"])]))
    );
    assert_eq!(run(m, "LMPOP 1 other LEFT"), Reply::Array(None));
    assert_eq!(
        error(run(m, "LMPOP 0 l LEFT")),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(error(run(m, "LMPOP 1 l MIDDLE")), "ERR syntax error");
    assert_eq!(
        error(run(m, "LMPOP 1 l LEFT COUNT 0")),
        "ERR count should be greater than 0"
    );
    assert_eq!(
        run(m, "BLPOP l nolist 0"),
        Reply::Array(Some(vec![bulk("l"), bulk("A")]))
    );
    assert_eq!(
        run(m, "BLPOP l 1"),
        Reply::Array(None),
        "one attempt, nil when empty"
    );
    assert_eq!(
        error(run(m, "BLPOP l x")),
        "ERR timeout is not a float or out of range"
    );
    assert_eq!(error(run(m, "BRPOP l -1")), "ERR timeout is negative");
}

#[test]
fn doubles_print_as_redis_prints_them() {
    use crate::server::resp::format_double;
    for (value, text) in [
        (1.5, "1.5"),
        (3.0, "3"),
        (-0.0, "-0"),
        (0.1, "0.1"),
        (1e300, "1e+300"),
        (1e-7, "1e-7"),
        (123456789.25, "123456789.25"),
        (1e20, "1e+20"),
        (4e18, "4000000000000000000"),
        (1.2345678901234566e25, "1.2345678901234566e+25"),
        (0.000123, "0.000123"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ] {
        assert_eq!(format_double(value), text, "{value:e}");
    }
}

#[test]
fn object_and_memory_describe_keys_as_redis_would_store_them() {
    let m = &mut mem();
    run(m, "SET n 12345");
    run(m, "SET short hello");
    run(m, &format!("SET long {}", "x".repeat(45)));
    run(m, "HSET h f v");
    run(m, "SADD ints 1 2 3");
    run(m, "SADD words a b");
    run(m, "ZADD z 1 a");
    run(m, "RPUSH l a b");
    for (key, encoding) in [
        ("n", "int"),
        ("short", "embstr"),
        ("long", "raw"),
        ("h", "listpack"),
        ("ints", "intset"),
        ("words", "listpack"),
        ("z", "listpack"),
        ("l", "listpack"),
    ] {
        assert_eq!(
            run(m, &format!("OBJECT ENCODING {key}")),
            bulk(encoding),
            "{key}"
        );
    }
    run(m, &format!("HSET h big {}", "v".repeat(65)));
    assert_eq!(run(m, "OBJECT ENCODING h"), bulk("hashtable"));
    for i in 0..130 {
        run(m, &format!("ZADD big {i} m{i}"));
    }
    assert_eq!(run(m, "OBJECT ENCODING big"), bulk("skiplist"));
    assert_eq!(run(m, "OBJECT ENCODING missing"), Reply::Null);
    assert_eq!(run(m, "OBJECT REFCOUNT n"), Reply::Integer(1));
    assert!(
        error(run(m, "OBJECT FREQ n")).starts_with("ERR An LFU maxmemory policy is not selected")
    );
    assert_eq!(
        error(run(m, "OBJECT ENCODING")),
        "ERR wrong number of arguments for 'object|encoding' command"
    );
    assert_eq!(
        error(run(m, "OBJECT NOPE k")),
        "ERR unknown subcommand 'NOPE'. Try OBJECT HELP."
    );
    let Reply::Array(Some(help)) = run(m, "OBJECT HELP") else {
        panic!("help is an array")
    };
    assert_eq!(help.last(), Some(&Reply::Simple("    Print this help.")));
    let Reply::Integer(small) = run(m, "MEMORY USAGE short") else {
        panic!("an integer")
    };
    let Reply::Integer(big) = run(m, "MEMORY USAGE big SAMPLES 0") else {
        panic!("an integer")
    };
    assert!(small > 5 && big > 130 * 10, "{small} {big}");
    assert_eq!(run(m, "MEMORY USAGE missing"), Reply::Null);
    assert_eq!(
        error(run(m, "MEMORY USAGE short SAMPLES -1")),
        "ERR syntax error"
    );
}
