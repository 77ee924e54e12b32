-- mirror-public.lua: mirror names whose owners marked them public, up to a
-- size.
--
-- Hook: mirror (should this node keep a copy of this name). Names that are
-- not public, are too large, or fall outside ONLY or inside NEVER are
-- refused with a reason; the rest are mirrored.

-- Settings ------------------------------------------------------------------

-- Largest content to mirror, in bytes.
local MAX_BYTES = 2 * 1024 * 1024 * 1024 -- 2 GiB

-- If not empty, mirror only names matching one of these globs (see
-- avnode.match), e.g. { "*.avtr" } for avatars only.
local ONLY = {}

-- Never mirror names matching these globs.
local NEVER = {
  "*.spam",
}

-- ---------------------------------------------------------------------------

local function matchesAny(name, globs)
  for _, glob in ipairs(globs) do
    if avnode.match(name, glob) then
      return true
    end
  end
  return false
end

local function mib(bytes)
  return string.format("%.1f MiB", bytes / (1024 * 1024))
end

return {
  mirror = function(n)
    if not n.public then
      return { allow = false, reason = n.name .. " is not public" }
    end
    if matchesAny(n.name, NEVER) then
      return { allow = false, reason = n.name .. " is on the never-mirror list" }
    end
    if #ONLY > 0 and not matchesAny(n.name, ONLY) then
      return { allow = false, reason = n.name .. " is not among the names mirrored here" }
    end
    local size = n.size_bytes or 0
    if size > MAX_BYTES then
      return { allow = false, reason = n.name .. " is " .. mib(size) .. ", over the " .. mib(MAX_BYTES) .. " limit" }
    end
    return { allow = true, reason = n.name .. " is public, " .. mib(size) }
  end,
}
