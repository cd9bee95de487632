"""Lua transforms: a client's own format for the gateway's messages (docs/transforms.md).

A transform is a Lua 5.4 script (run by lupa) that defines `transform(msg)`: `msg` is the
message the gateway would send, as a table (the JSON decoded), and the function returns
a string (sent as it is), a table (sent as JSON) or nil (nothing is sent).

Every client with a transform gets its own Lua state, so nothing one client's script keeps
or breaks reaches another's. The state is a sandbox:
  - the script sees only a table of safe functions (string without `dump`, table, math,
    utf8, pairs, ipairs, next, select, type, tostring, tonumber, error, assert, pcall,
    xpcall, setmetatable, getmetatable, rawget, rawset, rawequal, rawlen): no io, os,
    require, load, loadstring, dofile, loadfile, debug, collectgarbage, package, print, and
    no `python` object (lupa's bridge is kept out of the script's environment);
  - a count hook, installed with debug.sethook before the script runs, stops a call
    after `max_instructions` Lua instructions (checked every 1,000) or `max_time` of CPU
    time; pcall inside the script cannot swallow that stop;
  - lupa's allocator limit (`max_memory`) bounds the state's memory.
A returned table is encoded to JSON in the state itself (`encode`, raw access only, within
the call's limits). A call that fails, breaks a limit or returns something else raises TransformError with
the reason; the hub then sends that client an error and the default format from then on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from ssmd.exceptions import ConfigError, TransformError

if TYPE_CHECKING:
    from ssmd.config.models.environment import Transform as TransformConfig

__all__ = ["REASONS", "Transform", "TransformSpec", "check", "load_spec"]

SLICE: Final = 1_000  # instructions between two runs of the count hook
MAX_OUTPUT: Final = 1 << 20  # bytes of one transformed message at most
REASONS: Final = ("error", "instructions", "time", "memory", "output", "load")

_INSTRUCTIONS: Final = "instruction limit exceeded"
_TIME: Final = "time limit exceeded"

# Runs in the fresh state's globals, where debug and os still exist: it keeps what it
# needs in locals, then removes the dangerous globals. Returns the loader.
_BOOT: Final = r"""
local sethook, clock, load, error, pairs, ipairs, type = debug.sethook, os.clock, load, error, pairs, ipairs, type
local pack, unpack, pcall, xpcall = table.pack, table.unpack, pcall, xpcall
local G = _G
local slices, max_slices, deadline, tripped = 0, 0, 0.0, false

local function hook()
  slices = slices + 1
  if tripped or slices > max_slices then
    tripped = tripped or "instruction limit exceeded"
    error(tripped, 0)
  end
  if clock() > deadline then
    tripped = "time limit exceeded"
    error(tripped, 0)
  end
end

-- pcall and xpcall that do not swallow a limit: once tripped, the error goes on up.
local function rethrow(r)
  if tripped then error(tripped, 0) end
  return unpack(r, 1, r.n)
end
local function safe_pcall(...) return rethrow(pack(pcall(...))) end
local function safe_xpcall(...) return rethrow(pack(xpcall(...))) end

local function sandbox()
  local env = {}
  for _, k in ipairs({"assert", "error", "ipairs", "next", "pairs", "select", "tonumber",
                      "tostring", "type", "rawequal", "rawget", "rawlen", "rawset",
                      "setmetatable", "getmetatable"}) do
    env[k] = G[k]
  end
  env.pcall, env.xpcall = safe_pcall, safe_xpcall
  for _, lib in ipairs({"string", "table", "math", "utf8"}) do
    local copy = {}
    for k, v in pairs(G[lib]) do copy[k] = v end
    env[lib] = copy
  end
  env.string.dump = nil
  local strings = G.getmetatable("")
  strings.__index, strings.__metatable = env.string, false
  env._G = env
  return env
end

local function arm(n, seconds)
  slices, max_slices, deadline, tripped = 0, n, clock() + seconds, false
end

-- JSON of a returned table: a table with keys 1..n is an array, any other an object
-- (string or number keys); raw access only, so no metamethod of the script's runs here.
local format, find, gsub, concat, mathtype, huge = string.format, string.find, string.gsub, table.concat, math.type, math.huge
local byte, rawlen, rawget, next, tostring, tonumber = string.byte, rawlen, rawget, next, tostring, tonumber
local ESCAPES = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
local function escape(c) return ESCAPES[c] or format("\\u%04x", byte(c)) end
local MAX_DEPTH = 32

local function encode(v, out, k, depth)
  local t = type(v)
  if t == "string" then
    if find(v, '[%c"\\]') then v = gsub(v, '[%c"\\]', escape) end
    out[k] = '"' .. v .. '"'
  elseif t == "number" then
    if mathtype(v) == "integer" then
      out[k] = format("%d", v)
    elseif v ~= v or v == huge or v == -huge then
      out[k] = "null"
    else
      local text = format("%.14g", v)
      if tonumber(text) ~= v then text = format("%.17g", v) end
      out[k] = text
    end
  elseif t == "boolean" then
    out[k] = v and "true" or "false"
  elseif t == "table" then
    if depth >= MAX_DEPTH then error("tables nested more than " .. MAX_DEPTH .. " deep", 0) end
    local n, count = rawlen(v), 0
    for _ in next, v do count = count + 1 end
    if n > 0 and count == n then
      out[k] = "["
      for i = 1, n do
        if i > 1 then k = k + 1; out[k] = "," end
        k = encode(rawget(v, i), out, k + 1, depth + 1)
      end
      k = k + 1; out[k] = "]"
    else
      out[k] = "{"
      local first = true
      for key, value in next, v do
        local kt = type(key)
        if kt ~= "string" and kt ~= "number" then
          error("a table key is a " .. kt .. "; keys must be strings or numbers", 0)
        end
        if not first then k = k + 1; out[k] = "," end
        first = false
        k = encode(tostring(key), out, k + 1, depth + 1)
        k = k + 1; out[k] = ":"
        k = encode(value, out, k + 1, depth + 1)
      end
      k = k + 1; out[k] = "}"
    end
  elseif v == nil then
    out[k] = "null"
  else
    error("a " .. t .. " cannot be sent", 0)
  end
  return k
end

-- What Python gets of one call: ("s", text) to send, ("n") for nothing, ("o", why)
-- when the answer cannot be sent. A limit tripped while encoding goes on up.
local function answer(out)
  local t = type(out)
  if t == "string" then return "s", out end
  if out == nil then return "n" end
  if t ~= "table" then
    return "o", "transform returned a " .. t .. "; expected a string, a table or nil"
  end
  local parts = {}
  local ok, e = pcall(encode, out, parts, 1, 0)
  if tripped then error(tripped, 0) end
  if not ok then return "o", "the returned table is not JSON: " .. tostring(e) end
  return "s", concat(parts)
end

-- (run, false) or (nil, message): the script compiled and run once in its sandbox.
local function open(source, name, n, seconds)
  local env = sandbox()
  local chunk, err = load(source, "=" .. name, "t", env)
  if not chunk then return nil, err end
  sethook(hook, "", 1000)
  arm(n, seconds)
  local ok, e = pcall(chunk)
  if not ok then return nil, tostring(e) end
  local f = env.transform
  if type(f) ~= "function" then
    return nil, name .. ": the script defines no function transform(msg)"
  end
  local function run(msg)
    arm(n, seconds)
    return answer(f(msg))
  end
  return run, false
end

for _, k in ipairs({"debug", "io", "os", "require", "load", "loadstring", "dofile",
                    "loadfile", "package", "collectgarbage", "print", "python"}) do
  G[k] = nil
end
return open
"""


@dataclass(frozen=True)
class TransformSpec:
    name: str
    origin: str  # the script's path as shown in messages
    source: str = field(repr=False)
    max_instructions: int = 1_000_000
    max_memory: int = 16 << 20
    max_seconds: float = 0.01


def load_spec(name: str, cfg: TransformConfig, config_dir: Path, where: str) -> TransformSpec:
    """The script of transform `name` read from its file; ConfigError naming `where`
    (the file and field that declare it) when it cannot be read."""
    from ssmd.config.models.common import parse_duration

    path = Path(os.path.expanduser(cfg.script))
    if not path.is_absolute():
        path = config_dir / path
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{where}: cannot read the Lua script {path} ({type(exc).__name__}). Fix: create "
            "it, or give `script:` a path relative to the config dir or an absolute one"
        ) from None
    return TransformSpec(
        name=name,
        origin=cfg.script,
        source=source,
        max_instructions=cfg.max_instructions,
        max_memory=cfg.max_memory,
        max_seconds=parse_duration(cfg.max_time).total_seconds(),
    )


def check(spec: TransformSpec) -> str | None:
    """None when the script compiles, runs and defines transform(msg); else why not
    (Lua's message, which names the line: `transforms/x.lua:3: unexpected symbol...`)."""
    try:
        Transform(spec)
    except TransformError as exc:
        return str(exc)
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Transform:
    """One client's Lua state running one script."""

    def __init__(self, spec: TransformSpec) -> None:
        import lupa.lua54 as lua54

        self.spec = spec
        self._lupa = lua54
        self._lua = lua54.LuaRuntime(
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=False,
            max_memory=spec.max_memory,
        )
        opener = self._lua.execute(_BOOT)
        slices = max(1, spec.max_instructions // SLICE)
        try:
            run, err = opener(spec.source, spec.origin, slices, spec.max_seconds)
        except lua54.LuaMemoryError:
            raise TransformError("memory", f"{spec.origin}: memory limit exceeded") from None
        except lua54.LuaError as exc:
            raise TransformError("load", _first_line(exc)) from None
        if not run:
            raise TransformError("load", _first_line(Exception(err)))
        self._run = run
        self._table = self._lua.table_from

    def apply(self, message: str | bytes) -> bytes | None:
        """The client's rendering of one message (its JSON text); None: send nothing."""
        msg = orjson.loads(message)
        lua = self._lupa
        try:
            # ("s", text), ("n",) or ("o", why): the script's answer, a table encoded in Lua.
            kind, text = _pair(self._run(self._table(msg, recursive=True)))
        except lua.LuaMemoryError:
            raise TransformError("memory", "memory limit exceeded") from None
        except lua.LuaError as exc:
            first = _first_line(exc)
            if first.endswith(_INSTRUCTIONS):
                raise TransformError(
                    "instructions", f"instruction limit exceeded ({self.spec.max_instructions})"
                ) from None
            if first.endswith(_TIME):
                raise TransformError(
                    "time", f"time limit exceeded ({self.spec.max_seconds * 1000:g} ms)"
                ) from None
            raise TransformError("error", first) from None
        except UnicodeDecodeError:  # lupa decodes a returned Lua string as UTF-8
            raise TransformError("output", "the answer is not UTF-8 text") from None
        if kind == "n":
            return None
        if kind != "s":
            raise TransformError("output", str(text))
        data = str(text).encode()
        if len(data) > MAX_OUTPUT:
            raise TransformError("output", f"the message is over {MAX_OUTPUT} bytes")
        return data


def _pair(result: Any) -> tuple[Any, Any]:
    """A Lua call's results as two (lupa gives a tuple for several, the value for one)."""
    if isinstance(result, tuple):
        return result[0], result[1] if len(result) > 1 else None
    return result, None
