-- A Lua transform for the ssmd gateway (docs/transforms.md): compact messages.
--
-- Trades become one short JSON object, books keep their best level per side, statuses
-- and replies pass unchanged, and errors keep their code only.
--
--   {"e":"T","s":"KXBTCD-26DEC0317-T118000","p":0.45,"q":10,"d":"b","t":1702540800000}
--   {"e":"B","s":"KXBTCD-26DEC0317-T118000","b":[0.44,100],"a":[0.46,150],"v":true,"t":...}

local sides = { buy = "b", sell = "s" }

local function top(levels)
  local best = levels[1]
  if best == nil then return nil end
  return { best[1], best[2] }
end

function transform(msg)
  local kind = msg.type
  if kind == "trade" then
    return string.format('{"e":"T","s":"%s","p":%s,"q":%s,"d":"%s","t":%d}',
      msg.ticker, msg.price, msg.size, sides[msg.side] or "-", msg.ts)
  elseif kind == "orderbook" then
    return { e = "B", s = msg.ticker, b = top(msg.bids), a = top(msg.asks), v = msg.valid, t = msg.ts }
  elseif kind == "error" then
    return { e = "E", code = msg.code }
  end
  return msg
end
