-- The Lua side of the scripting API, run in every fresh interpreter before
-- the script: Redis 7.2's `redis` table, `pcall`, `math.random` and the
-- error handler's place (script_lua.c, eval.c), written over a few plain
-- helpers from Rust that never raise (so every error a script sees is a Lua
-- value, as in Redis). Loaded under the chunk name `=redis`; the error
-- handler (Rust, it reads the stack) skips these frames to report the
-- script's own line.
local api, keys, argv, helpers = ...
local call, pcall_command, rand, seed, setresp, handler = unpack(api, 1, 6)
local error_text, error_message, sha1hex, log, acl_check = unpack(helpers, 1, 5)

local error, type, select, tostring, tonumber, unpack, setmetatable =
  error, type, select, tostring, tonumber, unpack, setmetatable
local floor, concat = math.floor, table.concat
dofile, loadfile, print = nil, nil, nil
__redis__err__handler = handler

local function raise(text)
  error({err = error_text(text)}, 0)
end

local redis = {}

-- Both C functions (Rust), as in Redis: `return redis.call(...)` is no
-- tail call, so an error names the script's line.
redis.call = call
redis.pcall = pcall_command

function redis.error_reply(...)
  local text = ...
  if select('#', ...) ~= 1 or type(text) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  if text:sub(1, 1) ~= '-' then
    text = '-' .. text
  end
  return {err = error_text(text)}
end

function redis.status_reply(...)
  local text = ...
  if select('#', ...) ~= 1 or type(text) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  return {ok = text}
end

function redis.sha1hex(...)
  if select('#', ...) ~= 1 then
    raise('wrong number of arguments')
  end
  local text = ...
  return sha1hex(type(text) == 'number' and tostring(text) or text)
end

function redis.log(...)
  local n = select('#', ...)
  if n < 2 then
    raise('redis.log() requires two arguments or more.')
  end
  local level = tonumber((...))
  if type((...)) ~= 'number' and level == nil then
    raise('First argument must be a number (log level).')
  end
  if level < 0 or level > 3 then
    raise('Invalid debug level.')
  end
  local parts = {}
  for at = 2, n do
    local part = select(at, ...)
    local kind = type(part)
    if kind == 'string' or kind == 'number' then
      parts[#parts + 1] = tostring(part)
    end
  end
  log(level, concat(parts, ' '))
end

function redis.setresp(...)
  if select('#', ...) ~= 1 then
    raise('redis.setresp() requires one argument.')
  end
  local resp = tonumber((...))
  if resp ~= 2 and resp ~= 3 then
    raise('RESP version must be 2 or 3.')
  end
  setresp(resp)
end

-- Every node runs the script itself, so there is nothing to choose.
function redis.set_repl(...)
  if select('#', ...) ~= 1 then
    raise('redis.set_repl() requires one argument.')
  end
  local flags = tonumber((...)) or 0
  if flags < 0 or flags > 3 or flags ~= floor(flags) then
    raise('Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.')
  end
end

function redis.replicate_commands()
  return true
end

function redis.breakpoint()
  return false
end

function redis.debug()
end

function redis.acl_check_cmd(...)
  if select('#', ...) == 0 then
    raise('Please specify at least one argument for this redis lib call')
  end
  local allowed = acl_check(...)
  if allowed == nil then
    raise('Invalid command passed to redis.acl_check_cmd()')
  end
  return allowed
end

redis.REDIS_VERSION = '7.2.4'
redis.REDIS_VERSION_NUM = 459268
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3

_G.redis = redis

-- Redis's pcall gives an error's text, not the table (nor the Rust error
-- redis.call raises).
local lua_pcall = pcall
local function pack(...)
  return {n = select('#', ...), ...}
end
pcall = function(f, ...)
  local result = pack(lua_pcall(f, ...))
  if not result[1] then
    local err = result[2]
    if type(err) == 'table' then
      local text = err.err
      if type(text) == 'string' then
        result[2] = text
      end
    elseif type(err) == 'userdata' then
      result[2] = error_message(err)
    end
  end
  return unpack(result, 1, result.n)
end

-- math.random as Redis's: its own rand48, the same on every platform,
-- here seeded from the operation's position.
local function checkint(value, at, name)
  local number = tonumber(value)
  if number == nil then
    local got = value == nil and 'no value' or type(value)
    error("bad argument #" .. at .. " to '" .. name .. "' (number expected, got " .. got .. ")", 0)
  end
  if number >= 0 then
    return floor(number)
  end
  return -floor(-number)
end

math.random = function(...)
  local r = rand()
  local n = select('#', ...)
  if n == 0 then
    return r
  elseif n == 1 then
    local upper = checkint((...), 1, 'random')
    if upper < 1 then
      error("bad argument #1 to 'random' (interval is empty)", 0)
    end
    return floor(r * upper) + 1
  elseif n == 2 then
    local a, b = ...
    local lower, upper = checkint(a, 1, 'random'), checkint(b, 2, 'random')
    if lower > upper then
      error("bad argument #2 to 'random' (interval is empty)", 0)
    end
    return floor(r * (upper - lower + 1)) + lower
  end
  error('wrong number of arguments', 0)
end

math.randomseed = function(value)
  seed(checkint(value, 1, 'randomseed'))
end

-- No precompiled chunks: Lua 5.1 does not verify bytecode.
local lua_loadstring = loadstring
loadstring = function(text, name)
  if type(text) == 'string' and text:byte(1) == 27 then
    return nil, 'bytecode loading is disabled'
  end
  return lua_loadstring(text, name)
end
load = function(source, name)
  if type(source) ~= 'function' then
    return loadstring(source, name)
  end
  local pieces = {}
  while true do
    local piece = source()
    if piece == nil or piece == '' then
      break
    end
    pieces[#pieces + 1] = piece
  end
  return loadstring(concat(pieces), name)
end

KEYS, ARGV = keys, argv

-- The globals are Redis 7's read-only table.
setmetatable(_G, {
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 0)
  end,
  __newindex = function()
    error('Attempt to modify a readonly table', 2)
  end,
})
