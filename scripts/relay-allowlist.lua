-- relay-allowlist.lua: let only known networks and peers reserve a slot on
-- this node's relay.
--
-- Hook: relay_reserve. A peer may reserve if it is in ALLOW_PEERS, or if
-- it connects from an address in ALLOW_NETS and holds fewer than
-- MAX_RESERVATIONS reservations already. Everyone else is refused.

-- Settings ------------------------------------------------------------------

-- Networks whose peers may use the relay (CIDR prefixes or single
-- addresses). The defaults are the private ranges: peers on your own LAN
-- or VPN.
local ALLOW_NETS = {
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "fc00::/7",
}

-- Peer ids that may reserve wherever they connect from.
local ALLOW_PEERS = {
  -- "12D3KooW...",
}

-- Reservations one peer may hold at once; 0 for no limit.
local MAX_RESERVATIONS = 2

-- ---------------------------------------------------------------------------

local function listedPeer(id)
  for _, allowed in ipairs(ALLOW_PEERS) do
    if id == allowed then
      return true
    end
  end
  return false
end

local function allowedNet(ip)
  for _, net in ipairs(ALLOW_NETS) do
    if avnode.cidr_match(net, ip) then
      return net
    end
  end
  return nil
end

return {
  relay_reserve = function(p)
    local who = avnode.short_peer(p.peer or "")
    if listedPeer(p.peer) then
      return { allow = true, reason = who .. " is on the peer allow list" }
    end
    local held = p.reservations or 0
    if MAX_RESERVATIONS > 0 and held >= MAX_RESERVATIONS then
      return { allow = false, reason = who .. " already holds " .. held .. " reservations" }
    end
    local net = allowedNet(p.ip or "")
    if net == nil then
      return { allow = false, reason = (p.ip or "no address") .. " is not in an allowed network" }
    end
    return { allow = true, reason = (p.ip or "") .. " is in " .. net }
  end,
}
