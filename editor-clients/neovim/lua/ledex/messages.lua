-- What the plugin tells the user, through vim.notify so that notification plugins (and tests)
-- see it. Every message starts with "ledex: ", as the server's own do.
local M = {}

local said = {}

local function send(level, text)
  local message = text:match("^ledex: ") and text or ("ledex: " .. text)
  vim.notify(message, level)
end

function M.info(text)
  send(vim.log.levels.INFO, text)
end

function M.warn(text)
  send(vim.log.levels.WARN, text)
end

function M.error(text)
  send(vim.log.levels.ERROR, text)
end

-- An error that would otherwise repeat for every Python buffer opened while the server cannot
-- start; `forget()` (a restart) lets it be said again.
function M.error_once(text)
  if not said[text] then
    said[text] = true
    M.error(text)
  end
end

function M.forget()
  said = {}
end

return M
