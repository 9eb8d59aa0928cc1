//! Scripts against an in-memory keyspace: Redis 7.2's conversions, error
//! texts, sandbox and limits, and the same result from the same position.

use bytes::Bytes;

use super::*;
use crate::server::commands::tests::{Mem, T0, mem};
use crate::server::db::Db;
use crate::server::executor::run_command;

/// Runs `argv` as an operation at a position whose generator is `seed`.
fn run_seeded(m: &mut Mem, scripts: &Scripts, seed: u64, argv: &[&[u8]]) -> Reply {
    let argv: Vec<Bytes> = argv.iter().map(|a| Bytes::copy_from_slice(a)).collect();
    let mut db = Db::new(m, seed).with_scripts(scripts, false);
    run_command(&mut db, &argv).expect("the store does not fail")
}

/// `EVAL script numkeys keys... args...`.
fn eval(m: &mut Mem, script: &str, keys: &[&str], args: &[&str]) -> Reply {
    let numkeys = keys.len().to_string();
    let mut argv: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), numkeys.as_bytes()];
    argv.extend(keys.iter().map(|k| k.as_bytes()));
    argv.extend(args.iter().map(|a| a.as_bytes()));
    run_seeded(m, &Scripts::default(), 7, &argv)
}

fn run(m: &mut Mem, argv: &[&str]) -> Reply {
    let argv: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
    run_seeded(m, &Scripts::default(), 7, &argv)
}

fn bulk(text: &str) -> Reply {
    Reply::bulk(text.to_string())
}

fn error(reply: Reply) -> String {
    match reply {
        Reply::Error(text) => text,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Redis's suffix of a script's runtime error.
fn at(script: &str, line: u32) -> String {
    format!(
        " script: {}, on @user_script:{line}.",
        sha1hex(script.as_bytes())
    )
}

#[test]
fn lua_values_become_redis_replies() {
    let m = &mut mem();
    assert_eq!(eval(m, "return 1", &[], &[]), Reply::Integer(1));
    assert_eq!(eval(m, "return 3.99", &[], &[]), Reply::Integer(3));
    assert_eq!(eval(m, "return 'x'", &[], &[]), bulk("x"));
    assert_eq!(eval(m, "return true", &[], &[]), Reply::Integer(1));
    assert_eq!(eval(m, "return false", &[], &[]), Reply::Bulk(None));
    assert_eq!(eval(m, "return nil", &[], &[]), Reply::Null);
    assert_eq!(
        eval(m, "return {1, 'a', {2, nil, 3}, nil, 5}", &[], &[]),
        Reply::Array(Some(vec![
            Reply::Integer(1),
            bulk("a"),
            Reply::Array(Some(vec![Reply::Integer(2)])),
        ]))
    );
    assert_eq!(
        eval(m, "return redis.status_reply('FINE')", &[], &[]),
        Reply::Status("FINE".into())
    );
    assert_eq!(
        error(eval(m, "return redis.error_reply('MY err')", &[], &[])),
        "MY err"
    );
    assert_eq!(
        error(eval(m, "return redis.error_reply('oops')", &[], &[])),
        "ERR oops"
    );
    assert_eq!(
        error(eval(m, "return {err='My Error'}", &[], &[])),
        "My Error"
    );
    assert_eq!(
        eval(m, "redis.setresp(3) return {double=1.5}", &[], &[]),
        Reply::Double(1.5)
    );
    assert_eq!(
        eval(m, "redis.setresp(3) return false", &[], &[]),
        Reply::Boolean(false)
    );
    // A table that holds itself ends at the nesting limit, not in a crash.
    let looped = eval(m, "local t = {} t[1] = t return t", &[], &[]);
    assert!(matches!(looped, Reply::Array(Some(_))));
}

#[test]
fn redis_call_runs_commands_on_the_declared_keys() {
    let m = &mut mem();
    let script = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])";
    assert_eq!(eval(m, script, &["k"], &["v"]), bulk("v"));
    assert_eq!(run(m, &["GET", "k"]), bulk("v"));
    // Replies as Lua sees them: a status is {ok=...}, a nil false.
    let script = "local r = redis.call('SET', KEYS[1], 'w') \
                  local g = redis.call('GET', KEYS[2]) \
                  return {r.ok, tostring(g)}";
    assert_eq!(
        eval(m, script, &["k", "k2"], &[]),
        Reply::Array(Some(vec![bulk("OK"), bulk("false")]))
    );
    // Numbers are sent as Redis writes them.
    let script = "redis.call('SET', KEYS[1], 10) return redis.call('INCRBY', KEYS[1], 2.5e1)";
    assert_eq!(eval(m, script, &["n"], &[]), Reply::Integer(35));
    // The cluster time, the same on every node.
    let time = eval(m, "return redis.call('TIME')", &[], &[]);
    let seconds = (T0 / 1000).to_string();
    assert_eq!(time, Reply::Array(Some(vec![bulk(&seconds), bulk("0")])));
}

/// A script that touches a key it did not declare (or every key, or
/// publishes by a name its text does not show) marks its operation for
/// widening: the executor drops its effects and it runs again covering
/// every key, where the same script runs through.
#[test]
fn undeclared_keys_widen_the_operation() {
    let scripts = Scripts::default();
    let cases = [
        "redis.call('SET', KEYS[1], 'x') return redis.call('GET', 'other')",
        "redis.call('SET', KEYS[1], 'x') return #redis.call('KEYS', '*')",
        "return redis.call('PUB' .. 'LISH', 'news', 'x')",
    ];
    for script in cases {
        let argv: Vec<Bytes> = ["EVAL", script, "1", "k"]
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        let m = &mut mem();
        let mut db = Db::new(m, 1).with_scripts(&scripts, false);
        let reply = run_command(&mut db, &argv).unwrap();
        assert!(db.needs_widening(), "{script}: {reply:?}");
        let m = &mut mem();
        let mut db = Db::new(m, 1).with_scripts(&scripts, false).with_every_key();
        let reply = run_command(&mut db, &argv).unwrap();
        assert!(
            !db.needs_widening() && !reply.is_error(),
            "{script}: {reply:?}"
        );
    }
}

#[test]
fn command_errors_are_redis_texts() {
    let m = &mut mem();
    run(m, &["SET", "s", "text"]);
    let script = "return redis.call('INCR', KEYS[1])";
    assert_eq!(
        error(eval(m, script, &["s"], &[])),
        format!(
            "ERR value is not an integer or out of range{}",
            at(script, 1)
        )
    );
    let script = "return redis.call('LPUSH', KEYS[1], 'x')";
    assert_eq!(
        error(eval(m, script, &["s"], &[])),
        format!(
            "WRONGTYPE Operation against a key holding the wrong kind of value{}",
            at(script, 1)
        )
    );
    // pcall gives the text; redis.pcall the error table, returned as is.
    let script = "local ok, err = pcall(redis.call, 'INCR', KEYS[1]) return {tostring(ok), err}";
    assert_eq!(
        eval(m, script, &["s"], &[]),
        Reply::Array(Some(vec![
            bulk("false"),
            bulk("ERR value is not an integer or out of range")
        ]))
    );
    let script = "return redis.pcall('INCR', KEYS[1])";
    assert_eq!(
        error(eval(m, script, &["s"], &[])),
        "ERR value is not an integer or out of range"
    );
    let cases = [
        (
            "return redis.call('NOSUCH')",
            "Unknown Redis command called from script",
        ),
        (
            "return redis.call('GET')",
            "Wrong number of args calling Redis command from script",
        ),
        (
            "return redis.call()",
            "Please specify at least one argument for this redis lib call",
        ),
        (
            "return redis.call('GET', {})",
            "Lua redis lib command arguments must be strings or integers",
        ),
        (
            "return redis.call('MULTI')",
            "This Redis command is not allowed from script",
        ),
        (
            "return redis.call('EVAL', 'return 1', 0)",
            "This Redis command is not allowed from script",
        ),
    ];
    for (script, text) in cases {
        assert_eq!(
            error(eval(m, script, &[], &[])),
            format!("ERR {text}{}", at(script, 1))
        );
    }
}

#[test]
fn scripts_fail_with_redis_texts() {
    let m = &mut mem();
    let script = "error('boom')";
    assert_eq!(
        error(eval(m, script, &[], &[])),
        format!("ERR user_script:1: boom{}", at(script, 1))
    );
    let script = "local a = 1\nreturn undefined_name";
    assert_eq!(
        error(eval(m, script, &[], &[])),
        format!(
            "ERR Script attempted to access nonexistent global variable 'undefined_name'{}",
            at(script, 2)
        )
    );
    let script = "x = 5";
    assert_eq!(
        error(eval(m, script, &[], &[])),
        format!(
            "ERR user_script:1: Attempt to modify a readonly table{}",
            at(script, 1)
        )
    );
    let compile = error(eval(m, "return (", &[], &[]));
    assert!(
        compile.starts_with("ERR Error compiling script (new function): user_script:1:"),
        "{compile}"
    );
    assert_eq!(
        error(run(m, &["EVAL", "return 1", "2", "k"])),
        "ERR Number of keys can't be greater than number of args"
    );
    assert_eq!(
        error(run(m, &["EVAL", "return 1", "-1"])),
        "ERR Number of keys can't be negative"
    );
    assert_eq!(
        error(run(m, &["EVAL", "return 1", "x"])),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error(run(
            m,
            &["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"]
        )),
        "NOSCRIPT No matching script. Please use EVAL."
    );
    for bytecode in [
        "return loadstring(string.dump(function() end))",
        "return load('\\27Lua')",
    ] {
        assert_eq!(eval(m, bytecode, &[], &[]), Reply::Null, "{bytecode}");
    }
}

#[test]
fn read_only_scripts_refuse_writes() {
    let m = &mut mem();
    let script = "return redis.call('SET', KEYS[1], 'v')";
    assert_eq!(
        error(run(m, &["EVAL_RO", script, "1", "k"])),
        format!(
            "ERR Write commands are not allowed from read-only scripts.{}",
            at(script, 1)
        )
    );
    let script = "#!lua flags=no-writes\nreturn redis.call('SET', KEYS[1], 'v')";
    assert_eq!(
        error(eval(m, script, &["k"], &[])),
        format!(
            "ERR Write commands are not allowed from read-only scripts.{}",
            at(script, 2)
        )
    );
    assert_eq!(
        error(run(m, &["EVAL_RO", "#!lua\nreturn 1", "0"])),
        "ERR Can not execute a script with write flag using *_ro command."
    );
    assert_eq!(
        error(eval(m, "#!lua flags=bogus\nreturn 1", &[], &[])),
        "ERR Unexpected flag in script shebang: bogus"
    );
    assert_eq!(
        error(eval(m, "#!python\nreturn 1", &[], &[])),
        "ERR Unexpected engine in script shebang: #!python"
    );
    assert_eq!(
        run(m, &["EVAL_RO", "#!lua flags=no-writes\nreturn 7", "0"]),
        Reply::Integer(7)
    );
    assert_eq!(run(m, &["GET", "k"]), Reply::Bulk(None));
}

#[test]
fn a_run_away_script_stops_at_its_limits() {
    let m = &mut mem();
    let script = "local n = 0 while true do n = n + 1 end";
    let stopped = error(eval(m, script, &[], &[]));
    assert!(stopped.contains("exceeded the limit of"), "{stopped}");
    assert!(stopped.ends_with(&at(script, 1)), "{stopped}");
    // pcall does not hold a stopped script.
    let script = "while true do pcall(function() while true do end end) end";
    let stopped = error(eval(m, script, &[], &[]));
    assert!(stopped.contains("exceeded the limit of"), "{stopped}");
    let script = "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 64) .. i end";
    let stopped = error(eval(m, script, &[], &[]));
    assert!(stopped.contains("not enough memory"), "{stopped}");
}

#[test]
fn the_same_position_gives_the_same_choices() {
    let script = "return {math.random(1000000), math.random(1000000), math.random()}";
    let argv: [&[u8]; 3] = [b"EVAL", script.as_bytes(), b"0"];
    let scripts = Scripts::default();
    let first = run_seeded(&mut mem(), &scripts, 42, &argv);
    assert_eq!(first, run_seeded(&mut mem(), &scripts, 42, &argv));
    assert_ne!(first, run_seeded(&mut mem(), &scripts, 43, &argv));
    let script = "math.randomseed(5) local a = math.random(100) \
                  math.randomseed(5) return a == math.random(100)";
    assert_eq!(eval(&mut mem(), script, &[], &[]), Reply::Integer(1));
}

#[test]
fn cjson_and_bit_are_there() {
    let m = &mut mem();
    let script = "return cjson.encode({1, 'a/b', {x = true}, 1.5, -2})";
    assert_eq!(
        eval(m, script, &[], &[]),
        bulk(r#"[1,"a\/b",{"x":true},1.5,-2]"#)
    );
    let script =
        "local t = cjson.decode(ARGV[1]) return {t.a[2], t.b, tostring(t.c == cjson.null)}";
    assert_eq!(
        eval(m, script, &[], &[r#"{"a":[1,"two"],"b":"x","c":null}"#]),
        Reply::Array(Some(vec![bulk("two"), bulk("x"), bulk("true")]))
    );
    let script = "return {bit.band(0xff, 0x0f), bit.bxor(5, 3), bit.lshift(1, 31), \
                  bit.tohex(255), bit.tohex(255, -4), bit.bnot(0), bit.rshift(-1, 28)}";
    assert_eq!(
        eval(m, script, &[], &[]),
        Reply::Array(Some(vec![
            Reply::Integer(15),
            Reply::Integer(6),
            Reply::Integer(-2_147_483_648),
            bulk("000000ff"),
            bulk("00FF"),
            Reply::Integer(-1),
            Reply::Integer(15),
        ]))
    );
    let sparse = error(eval(m, "return cjson.encode({[1000] = 1})", &[], &[]));
    assert!(sparse.contains("excessively sparse array"), "{sparse}");
}

#[test]
fn the_cache_serves_evalsha_and_script_load() {
    let m = &mut mem();
    let scripts = Scripts::default();
    let script = b"return ARGV[1]";
    let sha = sha1hex(script);
    assert_eq!(
        run_seeded(m, &scripts, 1, &[b"SCRIPT", b"LOAD", script]),
        bulk(&sha)
    );
    assert_eq!(
        scripts.get(sha.to_uppercase().as_bytes()),
        Some(Bytes::from_static(script))
    );
    assert_eq!(
        error(run_seeded(
            m,
            &scripts,
            1,
            &[b"SCRIPT", b"LOAD", b"return ("]
        ))
        .split(':')
        .next(),
        Some("ERR Error compiling script (new function)")
    );
    assert_eq!(
        run_seeded(m, &scripts, 1, &[b"SCRIPT", b"FLUSH"]),
        Reply::ok()
    );
    assert_eq!(scripts.get(sha.as_bytes()), None);
    run_seeded(m, &scripts, 1, &[b"EVAL", script, b"0", b"x"]);
    assert!(
        scripts.get(sha.as_bytes()).is_some(),
        "EVAL caches its script"
    );
    assert_eq!(
        error(run_seeded(m, &scripts, 1, &[b"SCRIPT", b"FLUSH", b"LATER"])),
        "ERR SCRIPT FLUSH only support SYNC|ASYNC option"
    );
    assert_eq!(
        error(scripts.kill()),
        "NOTBUSY No scripts in execution right now."
    );
    let _guard = scripts.start(false);
    assert!(error(scripts.kill()).starts_with("UNKILLABLE"));
}

#[test]
fn shebangs_parse_as_redis_reads_them() {
    assert_eq!(
        shebang(b"return 1"),
        Ok((
            Flags {
                compat: true,
                no_writes: false
            },
            0
        ))
    );
    assert_eq!(
        shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1"),
        Ok((
            Flags {
                compat: false,
                no_writes: true
            },
            31
        ))
    );
    assert_eq!(shebang(b"#!lua"), Err("Invalid script shebang".into()));
    assert_eq!(
        shebang(b"#!lua name=x\n"),
        Err("Unknown lua shebang option: name=x".into())
    );
}
