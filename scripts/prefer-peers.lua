-- prefer-peers.lua: try some peers first when fetching content or reaching
-- a name's hosts, then the rest by measured latency.
--
-- Hooks: order_providers (providers of a CID) and order_hosts (hosts of a
-- name). The order returned is a preference: the node drops ids that are
-- not candidates and keeps any candidate left out in its own order after
-- the listed ones.
--
-- The order is:
--   1. PREFERRED peers that are candidates, in the order listed here;
--   2. candidates that answer reliably (success_rate at least MIN_SUCCESS),
--      fastest first; a candidate never measured (no latency) comes after
--      the measured ones;
--   3. the unreliable ones, fastest first.

-- Settings ------------------------------------------------------------------

-- Peer ids to try first, most preferred first: your own machines, a mirror
-- you trust.
local PREFERRED = {
  -- "12D3KooW...",
}

-- Below this success rate (0 to 1) a candidate goes to the back.
local MIN_SUCCESS = 0.5

-- ---------------------------------------------------------------------------

local rank = {}
for i, id in ipairs(PREFERRED) do
  rank[id] = i
end

-- before says whether candidate a should be tried before candidate b.
local function before(a, b)
  if a.rank ~= b.rank then
    return a.rank < b.rank
  end
  if a.reliable ~= b.reliable then
    return a.reliable
  end
  if a.latency ~= b.latency then
    return a.latency < b.latency
  end
  return a.index < b.index -- keep the node's order between equals
end

local function order(c)
  local list = {}
  for i, cand in ipairs(c.candidates or {}) do
    local latency = cand.latency_ms
    if latency == nil or latency <= 0 then
      latency = math.huge
    end
    list[#list + 1] = {
      peer = cand.peer,
      rank = rank[cand.peer] or math.huge,
      reliable = (cand.success_rate or 1) >= MIN_SUCCESS,
      latency = latency,
      index = i,
    }
  end
  table.sort(list, before)
  local ids = {}
  for i, entry in ipairs(list) do
    ids[i] = entry.peer
  end
  return { order = ids, reason = "preferred peers, then reliable and fast ones" }
end

return {
  order_providers = order,
  order_hosts = order,
}
