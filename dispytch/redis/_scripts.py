"""The Lua script that moves a group's due delayed copies into its retry stream.

Redis runs a script atomically: each due copy is appended to the retry stream, and its hash
and sorted-set member removed, in one step. A consumer killed at any moment leaves either
the copy still waiting (moved by the next run of any member of the group) or moved once,
never both and never neither.
"""

from __future__ import annotations

MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local copy = ARGV[3] .. member
  local fields = redis.call('HGETALL', copy)
  if #fields > 0 then
    redis.call('XADD', KEYS[2], '*', unpack(fields))
  end
  redis.call('DEL', copy)
  redis.call('ZREM', KEYS[1], member)
end
local following = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #following == 0 then
  return {#due, false}
end
return {#due, following[2]}
"""
