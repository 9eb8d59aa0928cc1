//! One script run: a fresh Lua 5.1 interpreter with Redis's API, the
//! script's `KEYS` and `ARGV`, its limits, and its reply.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use mlua::chunk::ChunkMode;
use mlua::debug::Debug;
use mlua::{
    Function, HookTriggers, Lua, LuaOptions, LuaString, MultiValue, StdLib, Table, Value, VmState,
};

use super::convert::{self, Resp};
use super::{Running, libs, sha1hex, shebang};
use crate::kv::KvError;
use crate::server::commands::{self, Class, lower};
use crate::server::db::Db;
use crate::server::executor::run_command;
use crate::server::resp::Reply;

/// Lua instructions a script may run: past them it stops with an error, at
/// the same instruction on every node (a clock would stop it at different
/// points on different nodes).
pub(crate) const INSTRUCTION_LIMIT: u64 = 100_000_000;
/// Bytes a script's interpreter may allocate; past them an allocation fails
/// (`not enough memory`), at the same point on every node.
pub(crate) const MEMORY_LIMIT: usize = 64 * 1024 * 1024;
/// The instruction hook runs every this many instructions.
const HOOK_EVERY: u32 = 10_000;

const PRELUDE: &str = include_str!("prelude.lua");

/// What runs: the script, its arguments, and what it may do.
#[derive(Debug)]
pub(crate) struct Invocation<'a> {
    pub(crate) body: &'a [u8],
    pub(crate) sha: &'a str,
    pub(crate) keys: &'a [Bytes],
    pub(crate) args: &'a [Bytes],
    /// Write commands are refused (`EVAL_RO`, `no-writes`).
    pub(crate) read_only: bool,
    /// It may publish (its operation is ordered among publications).
    pub(crate) publishes: bool,
    /// Its registration for `SCRIPT KILL`, when it can be killed.
    pub(crate) running: Option<Arc<Running>>,
}

/// How a run ended.
#[derive(Debug)]
pub(crate) struct Ran {
    pub(crate) reply: Reply,
    /// The script compiled (so it is cached).
    pub(crate) compiled: bool,
}

/// Why the hook stopped a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Killed,
    Limit,
}

/// What the instruction hook keeps between calls.
#[derive(Debug, Default)]
struct Meter {
    instructions: Cell<u64>,
    stop: Cell<Option<Stop>>,
    /// Where the script was when stopped.
    line: Cell<usize>,
    running: Option<Arc<Running>>,
}

/// Compiles `body` (`SCRIPT LOAD`): Redis's compile error, if any.
pub(crate) fn compile(body: &[u8]) -> Result<(), Reply> {
    let (_, skip) = shebang(body).map_err(Reply::err)?;
    let lua = interpreter().map_err(|err| Reply::err(format_args!("{err}")))?;
    match load_script(&lua, &body[skip..]) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(reply)) => Err(reply),
        Err(err) => Err(compile_error(&err)),
    }
}

fn compile_error(err: &mlua::Error) -> Reply {
    let message = match err {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    Reply::err(format_args!(
        "Error compiling script (new function): {message}"
    ))
}

fn interpreter() -> mlua::Result<Lua> {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::new(),
    )?;
    lua.set_memory_limit(MEMORY_LIMIT)?;
    Ok(lua)
}

/// Runs `invocation` against `db`.
///
/// # Errors
/// [`KvError`] when the store failed under one of the script's commands
/// (whatever the script did with the error, the operation fails).
pub(crate) fn run(db: &mut Db<'_>, invocation: &Invocation<'_>) -> Result<Ran, KvError> {
    let skip = match shebang(invocation.body) {
        Ok((_, skip)) => skip,
        Err(text) => {
            return Ok(Ran {
                reply: Reply::err(text),
                compiled: false,
            });
        }
    };
    let failed = RefCell::new(None);
    let meter = Rc::new(Meter {
        running: invocation.running.clone(),
        ..Meter::default()
    });
    let outcome = execute(db, invocation, skip, &failed, &meter);
    if let Some(err) = failed.into_inner() {
        return Err(err);
    }
    let sha = invocation.sha;
    let ran = |reply| Ran {
        reply,
        compiled: true,
    };
    Ok(match (meter.stop.get(), outcome) {
        (Some(stop), _) => ran(stopped(stop, sha, meter.line.get())),
        (None, Ok(ran)) => ran,
        (None, Err(mlua::Error::MemoryError(_))) => ran(Reply::err(format_args!(
            "Error running script {sha}, not enough memory"
        ))),
        (None, Err(err)) => ran(Reply::err(format_args!(
            "Error running script {sha}, {}",
            first_line(&err.to_string())
        ))),
    })
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(100)
        .collect()
}

/// The reply of a script the hook stopped.
fn stopped(stop: Stop, sha: &str, line: usize) -> Reply {
    let what = match stop {
        Stop::Killed => "Script killed by user with SCRIPT KILL...".to_string(),
        Stop::Limit => format!(
            "Script exceeded the limit of {INSTRUCTION_LIMIT} Lua instructions and was stopped"
        ),
    };
    Reply::err(format_args!(
        "{what} script: {sha}, on @user_script:{line}."
    ))
}

/// Builds the interpreter and runs the script in it; engine failures go
/// to `failed`.
fn execute(
    db: &mut Db<'_>,
    invocation: &Invocation<'_>,
    skip: usize,
    failed: &RefCell<Option<KvError>>,
    meter: &Rc<Meter>,
) -> mlua::Result<Ran> {
    let lua = interpreter()?;
    let function = match load_script(&lua, &invocation.body[skip..])? {
        Ok(function) => function,
        Err(reply) => {
            return Ok(Ran {
                reply,
                compiled: false,
            });
        }
    };
    let resp = Cell::new(Resp::Two);
    let random = Cell::new(libs::Rand48::seeded(db.random()));
    let calls = RefCell::new(Calls {
        db,
        declared: invocation.keys.iter().cloned().collect(),
        read_only: invocation.read_only,
        publishes: invocation.publishes,
        failed,
        resp: &resp,
    });
    lua.scope(|scope| {
        let call = scope.create_function(|lua, args: MultiValue| {
            let reply = calls.borrow_mut().call(lua, &args)?;
            match error_of(&reply) {
                Some(text) => Err(mlua::Error::external(Raised(text))),
                None => Ok(reply),
            }
        })?;
        let pcall =
            scope.create_function(|lua, args: MultiValue| calls.borrow_mut().call(lua, &args))?;
        let rand = scope.create_function(|_, ()| {
            let mut generator = random.get();
            let value = generator.next_unit();
            random.set(generator);
            Ok(value)
        })?;
        let seed = scope.create_function(|_, value: f64| {
            random.set(libs::Rand48::seeded_with(value as i32));
            Ok(())
        })?;
        let setresp = scope.create_function(|_, value: f64| {
            resp.set(if value == 3.0 { Resp::Three } else { Resp::Two });
            Ok(())
        })?;
        let handler = error_handler(&lua)?;
        libs::install(&lua)?;
        let api = [call, pcall, rand, seed, setresp, handler.clone()];
        lua.load(prelude()?)
            .set_name("=redis")
            .set_mode(ChunkMode::Binary)
            .call::<()>((
                lua.create_sequence_from(api)?,
                strings(&lua, invocation.keys)?,
                strings(&lua, invocation.args)?,
                lua.create_sequence_from(plain_helpers(&lua)?)?,
            ))?;
        meter_instructions(&lua, meter.clone())?;
        let xpcall: Function = lua.globals().raw_get("xpcall")?;
        let (ok, value): (bool, Value) = xpcall.call((function, handler))?;
        lua.remove_global_hook();
        let reply = if ok {
            convert::lua_to_reply(&value, resp.get())
        } else {
            script_error(&value, invocation.sha)
        };
        Ok(Ran {
            reply,
            compiled: true,
        })
    })
}

/// What `redis.call` raises for a command's error: the text of Redis's
/// error table, which the error handler turns back into the table.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Raised(String);

/// The text of an error table (`{err=...}`), if `reply` is one.
fn error_of(reply: &Value) -> Option<String> {
    match reply {
        Value::Table(table) => match table.raw_get::<Value>("err") {
            Ok(Value::String(text)) => Some(text.to_string_lossy()),
            _ => None,
        },
        _ => None,
    }
}

/// An error value raised from Rust: whether it is a command's error table
/// raised by `redis.call` (its text is then the table's), and its text.
fn error_message(err: &Value) -> (bool, String) {
    let Value::Error(err) = err else {
        return (false, String::new());
    };
    let mut root: &mlua::Error = err;
    while let mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } =
        root
    {
        root = cause;
    }
    match root {
        mlua::Error::ExternalError(inner) => match inner.downcast_ref::<Raised>() {
            Some(Raised(text)) => (true, text.clone()),
            None => (false, inner.to_string()),
        },
        mlua::Error::RuntimeError(text) => (false, text.clone()),
        other => (false, other.to_string()),
    }
}

/// The prelude, compiled once: parsing it was most of a run's cost.
fn prelude() -> mlua::Result<&'static [u8]> {
    static COMPILED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    if let Some(compiled) = COMPILED.get() {
        return Ok(compiled);
    }
    let lua = interpreter()?;
    let function = lua
        .load(PRELUDE)
        .set_name("=redis")
        .set_mode(ChunkMode::Text)
        .into_function()?;
    Ok(COMPILED.get_or_init(|| function.dump(false)))
}

/// Compiles a script's text: the function, or Redis's compile error.
fn load_script(lua: &Lua, text: &[u8]) -> mlua::Result<Result<Function, Reply>> {
    let loaded = lua
        .load(text)
        .set_name("@user_script")
        .set_mode(ChunkMode::Text)
        .into_function();
    match loaded {
        Ok(function) => Ok(Ok(function)),
        Err(err @ mlua::Error::SyntaxError { .. }) => Ok(Err(compile_error(&err))),
        Err(err) => Err(err),
    }
}

/// The prelude's helpers that need no state of the run: `error_text`,
/// `error_message`, `sha1hex`, `log`, `acl_check`.
fn plain_helpers(lua: &Lua) -> mlua::Result<[Function; 5]> {
    Ok([
        lua.create_function(|_, text: LuaString| Ok(convert::error_text(&text.to_string_lossy())))?,
        lua.create_function(|_, err: Value| Ok(error_message(&err).1))?,
        lua.create_function(|_, text: Option<LuaString>| {
            Ok(sha1hex(
                &text.map(|t| t.as_bytes().to_vec()).unwrap_or_default(),
            ))
        })?,
        lua.create_function(|_, (level, text): (f64, LuaString)| {
            log(level, &text.to_string_lossy());
            Ok(())
        })?,
        lua.create_function(|_, args: MultiValue| Ok(acl_check(&args)))?,
    ])
}

/// A Lua array of `items`.
fn strings(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let table = lua.create_table_with_capacity(items.len(), 0)?;
    for (at, item) in items.iter().enumerate() {
        table.raw_set(at + 1, lua.create_string(item)?)?;
    }
    Ok(table)
}

/// Counts instructions, and stops the script at the limit or when killed.
fn meter_instructions(lua: &Lua, meter: Rc<Meter>) -> mlua::Result<()> {
    let triggers = HookTriggers::new().every_nth_instruction(HOOK_EVERY);
    lua.set_global_hook(triggers, hook(meter))
}

type Hook = Box<dyn Fn(&Lua, &Debug) -> mlua::Result<VmState>>;

fn hook(meter: Rc<Meter>) -> Hook {
    Box::new(move |lua, debug| {
        if let Some(line) = debug.current_line() {
            meter.line.set(line);
        }
        if meter.stop.get().is_none() {
            let used = meter.instructions.get() + u64::from(HOOK_EVERY);
            meter.instructions.set(used);
            let stop = if used > INSTRUCTION_LIMIT {
                Stop::Limit
            } else if meter.running.as_ref().is_some_and(|run| run.killed()) {
                Stop::Killed
            } else {
                return Ok(VmState::Continue);
            };
            meter.stop.set(Some(stop));
            // From now on at every line and instruction, so that a pcall
            // cannot catch the error and carry on (as Redis does).
            let every = HookTriggers::new().every_line().every_nth_instruction(1);
            lua.set_global_hook(every, hook(meter.clone()))?;
        }
        Err(mlua::Error::runtime("script stopped"))
    })
}

/// Redis's `__redis__err__handler`: the error as a table `{err=...}`, with
/// the script's source and line where it was raised (skipping frames of C
/// functions and of the API's own Lua, chunk `=redis`).
fn error_handler(lua: &Lua) -> mlua::Result<Function> {
    let tostring: Function = lua.globals().raw_get("tostring")?;
    lua.create_function(move |lua, err: Value| {
        let table = match err {
            Value::Table(table) => table,
            raised @ Value::Error(_) => {
                let (table_text, text) = error_message(&raised);
                let text = if table_text {
                    text
                } else {
                    format!("ERR {text}")
                };
                let table = lua.create_table()?;
                table.raw_set("err", text)?;
                table
            }
            other => {
                let text: LuaString = tostring.call(other)?;
                let table = lua.create_table()?;
                table.raw_set("err", format!("ERR {}", text.to_string_lossy()))?;
                table
            }
        };
        for level in 1..256 {
            let frame = lua.inspect_stack(level, |debug| {
                let source = debug.source();
                let lua_code = source.what != "C" && source.source.as_deref() != Some("=redis");
                let place = source.source.map(|s| s.to_string());
                (lua_code, place, debug.current_line())
            });
            match frame {
                None => break,
                Some((true, Some(source), line)) => {
                    table.raw_set("source", source)?;
                    table.raw_set("line", line.unwrap_or(0))?;
                    break;
                }
                Some(_) => {}
            }
        }
        Ok(table)
    })
}

/// The reply of a script that raised: Redis's text, with where.
fn script_error(err: &Value, sha: &str) -> Reply {
    let Value::Table(table) = err else {
        let text = match err {
            Value::String(text) => text.to_string_lossy(),
            _ => "execution failure".to_string(),
        };
        return Reply::err(format_args!(
            "Error running script {sha}, {}",
            first_line(&text)
        ));
    };
    let text = |name: &str| match table.raw_get::<Value>(name) {
        Ok(Value::String(s)) => Some(s.to_string_lossy()),
        Ok(Value::Integer(n)) => Some(n.to_string()),
        Ok(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let message = text("err").unwrap_or_else(|| "ERR unknown error".to_string());
    match (text("source"), text("line")) {
        (Some(source), Some(line)) => {
            Reply::Error(format!("{message} script: {sha}, on {source}:{line}."))
        }
        _ => Reply::Error(message),
    }
}

fn log(level: f64, text: &str) {
    match level as i64 {
        0 | 1 => tracing::debug!(target: "certus::script", "{text}"),
        2 => tracing::info!(target: "certus::script", "{text}"),
        _ => tracing::warn!(target: "certus::script", "{text}"),
    }
}

/// `redis.acl_check_cmd`: whether the command exists (`None` if not). The
/// script runs with its caller's permission to run `EVAL`; every command
/// inside it is allowed.
fn acl_check(args: &MultiValue) -> Option<bool> {
    let argv: Option<Vec<Bytes>> = args.iter().map(convert::argument).collect();
    let argv = argv?;
    commands::resolve(&argv).map(|spec| spec.accepts(argv.len()))
}

/// What `redis.call` needs: the database and the script's limits.
struct Calls<'c, 'db> {
    db: &'c mut Db<'db>,
    declared: HashSet<Bytes>,
    read_only: bool,
    publishes: bool,
    failed: &'c RefCell<Option<KvError>>,
    resp: &'c Cell<Resp>,
}

impl Calls<'_, '_> {
    /// `redis.pcall`: the command's reply, or an error table (never
    /// raises; `redis.call` raises the table).
    fn call(&mut self, lua: &Lua, args: &MultiValue) -> mlua::Result<Value> {
        if args.is_empty() {
            return convert::error_table(
                lua,
                "Please specify at least one argument for this redis lib call",
            );
        }
        let argv: Option<Vec<Bytes>> = args.iter().map(convert::argument).collect();
        let Some(argv) = argv else {
            return convert::error_table(
                lua,
                "Lua redis lib command arguments must be strings or integers",
            );
        };
        if let Err(text) = self.check(&argv) {
            return convert::error_table(lua, &text);
        }
        let reply = match self.special(&argv) {
            Some(reply) => reply,
            None => match run_command(self.db, &argv) {
                Ok(reply) => reply,
                Err(err) => {
                    *self.failed.borrow_mut() = Some(err);
                    return Err(mlua::Error::runtime("the store failed"));
                }
            },
        };
        convert::reply_to_lua(lua, reply, self.resp.get())
    }

    /// Whether a script may run `argv`; Redis's error text if not.
    fn check(&mut self, argv: &[Bytes]) -> Result<(), String> {
        let name = lower(&argv[0]);
        let spec = commands::resolve(argv)
            .ok_or_else(|| "Unknown Redis command called from script".to_string())?;
        if !spec.accepts(argv.len()) {
            return Err("Wrong number of args calling Redis command from script".into());
        }
        let allowed_session = matches!(name.as_str(), "time" | "ping" | "echo");
        let class = spec.class();
        if spec.has_flag("noscript") || (class == Class::Session && !allowed_session) {
            return Err("This Redis command is not allowed from script".into());
        }
        if self.read_only && matches!(class, Class::Write | Class::WriteAll) {
            return Err("Write commands are not allowed from read-only scripts.".into());
        }
        let undeclared = matches!(class, Class::ReadAll | Class::WriteAll)
            || spec.keys(argv).any(|key| !self.declared.contains(key))
            || (name == "publish" && !self.publishes);
        if undeclared && !self.db.any_key() {
            // The operation covers less than the script needs: every node
            // stops here alike, drops the operation's effects, and the
            // serving node submits it again covering every key.
            self.db.widen();
            return Err("Script touched a key it did not declare; it runs again".into());
        }
        Ok(())
    }

    /// The connection commands a script may run, answered here: `TIME` is
    /// the cluster time of the operation.
    fn special(&self, argv: &[Bytes]) -> Option<Reply> {
        match lower(&argv[0]).as_str() {
            "time" => {
                let now = self.db.now();
                let (seconds, micros) = (now / 1000, (now % 1000) * 1000);
                Some(Reply::Array(Some(vec![
                    Reply::bulk(seconds.to_string()),
                    Reply::bulk(micros.to_string()),
                ])))
            }
            "ping" => Some(match argv.get(1) {
                Some(text) => Reply::Bulk(Some(text.clone())),
                None => Reply::Simple("PONG"),
            }),
            "echo" => Some(Reply::Bulk(argv.get(1).cloned())),
            _ => None,
        }
    }
}
