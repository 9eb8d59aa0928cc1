//! `EVAL`, `EVAL_RO`, `SCRIPT LOAD` and `SCRIPT FLUSH` (see
//! [`crate::server::scripting`]). `EVALSHA` reaches here only when the
//! serving node did not know the script (it sends a known one as `EVAL`),
//! so it answers `NOSCRIPT`, the same on every node.

use bytes::Bytes;

use super::{Handler, parse_i64, reply_on_err};
use crate::kv::KvError;
use crate::server::db::Db;
use crate::server::resp::Reply;
use crate::server::scripting::{self, lua};

pub(super) fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "eval" => |db, argv| eval(db, argv, false),
        "eval_ro" => |db, argv| eval(db, argv, true),
        "evalsha" | "evalsha_ro" => evalsha,
        "script|load" => load,
        "script|flush" => flush,
        _ => return None,
    })
}

/// Redis's reply to a script it does not have.
pub(crate) fn no_script() -> Reply {
    Reply::Error("NOSCRIPT No matching script. Please use EVAL.".into())
}

/// The number of keys of `EVAL script numkeys key... arg...`, checked.
pub(crate) fn numkeys(argv: &[Bytes]) -> Result<usize, Reply> {
    let numkeys = parse_i64(&argv[2])?;
    let most = i64::try_from(argv.len() - 3).unwrap_or(i64::MAX);
    if numkeys > most {
        return Err(Reply::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    usize::try_from(numkeys).map_err(|_| Reply::err("Number of keys can't be negative"))
}

fn evalsha(_: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    if argv[1].len() == 40 {
        reply_on_err!(numkeys(argv));
    }
    Ok(no_script())
}

fn eval(db: &mut Db<'_>, argv: &[Bytes], ro_command: bool) -> Result<Reply, KvError> {
    let numkeys = reply_on_err!(numkeys(argv));
    let body = &argv[1];
    let flags = match scripting::shebang(body) {
        Ok((flags, _)) => flags,
        Err(text) => return Ok(Reply::err(text)),
    };
    if ro_command && !flags.compat && !flags.no_writes {
        return Ok(Reply::err(
            "Can not execute a script with write flag using *_ro command.",
        ));
    }
    let sha = scripting::sha1hex(body);
    let scripts = db.scripts();
    let guard = scripts.map(|(scripts, local)| scripts.start(local));
    let invocation = lua::Invocation {
        body,
        sha: &sha,
        keys: &argv[3..3 + numkeys],
        args: &argv[3 + numkeys..],
        read_only: ro_command || flags.no_writes,
        publishes: scripting::may_publish(body),
        running: guard.as_ref().map(scripting::RunGuard::run),
    };
    let ran = lua::run(db, &invocation)?;
    if let (true, Some((scripts, _))) = (ran.compiled, scripts) {
        scripts.add(&sha, body);
    }
    Ok(ran.reply)
}

fn load(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let body = &argv[2];
    if let Err(reply) = lua::compile(body) {
        return Ok(reply);
    }
    let sha = scripting::sha1hex(body);
    if let Some((scripts, _)) = db.scripts() {
        scripts.add(&sha, body);
    }
    Ok(Reply::bulk(sha))
}

fn flush(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let mode_ok = match argv.get(2) {
        None => true,
        Some(mode) => {
            argv.len() == 3
                && (mode.eq_ignore_ascii_case(b"sync") || mode.eq_ignore_ascii_case(b"async"))
        }
    };
    if !mode_ok {
        return Ok(Reply::err("SCRIPT FLUSH only support SYNC|ASYNC option"));
    }
    if let Some((scripts, _)) = db.scripts() {
        scripts.flush();
    }
    Ok(Reply::ok())
}
