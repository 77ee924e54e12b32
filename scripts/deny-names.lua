-- deny-names.lua: refuse to store or accept name records whose name matches
-- a pattern list.
--
-- Hooks: store_record (may this node store the record) and accept_record
-- (may this node's resolver accept it). Records that are not name records
-- (no name field) and names that match no pattern get no opinion, so the
-- next script, then the node's own rules, decide.
--
-- Patterns are avnode.match globs: * matches any run of characters, dots
-- included, and ? one character; case does not matter. "*.spam" matches
-- "offers.spam" and "a.b.spam" but not "spam.avtr".

-- Settings ------------------------------------------------------------------

-- Names to refuse.
local DENY = {
  "*.spam",
  "casino-*.*",
}

-- Names to let through even when a DENY pattern matches them.
local EXCEPT = {
  "not.spam",
}

-- true: only refuse to store these names; still resolve them when asked.
local STORE_ONLY = false

-- ---------------------------------------------------------------------------

local function matching(name, patterns)
  for _, pattern in ipairs(patterns) do
    if avnode.match(name, pattern) then
      return pattern
    end
  end
  return nil
end

-- verdict refuses r if its name is denied, and has no opinion otherwise.
local function verdict(r)
  if r.name == nil or r.name == "" then
    return nil
  end
  local pattern = matching(r.name, DENY)
  if pattern == nil or matching(r.name, EXCEPT) then
    return nil
  end
  return { allow = false, reason = "name " .. r.name .. " matches the deny pattern " .. pattern }
end

return {
  store_record = verdict,
  accept_record = function(r)
    if STORE_ONLY then
      return nil
    end
    return verdict(r)
  end,
}
