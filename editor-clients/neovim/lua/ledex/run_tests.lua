-- :LedexRunTests: run the project's tests now (the server also runs them on open and save) and
-- say how they went; the failures arrive as diagnostics.
local lsp = require("ledex.lsp")
local messages = require("ledex.messages")

local M = {}

local function summary(results)
  local parts = {}
  for root_uri, counts in pairs(results or {}) do
    local text = ("%d passed, %d failed"):format(counts.passed or 0, counts.failed or 0)
    if (counts.collectionErrors or 0) > 0 then
      text = text .. (", %d collection errors"):format(counts.collectionErrors)
    end
    if counts.status and counts.status ~= "ok" then
      text = text .. (" (%s)"):format(counts.status)
    end
    table.insert(parts, ("%s: %s"):format(vim.uri_to_fname(root_uri), text))
  end
  table.sort(parts)
  return parts
end

function M.run(done)
  done = done or function() end
  local bufnr = vim.api.nvim_get_current_buf()
  local client = lsp.clients(bufnr)[1] or lsp.all_clients()[1]
  if not client then
    messages.error("the language server is not running (it starts for Python files; see "
      .. ":checkhealth ledex)")
    return done(nil)
  end
  local arguments = {}
  if #lsp.clients(bufnr) > 0 then
    arguments = { { uri = vim.uri_from_bufnr(bufnr) } }
  end
  messages.info("running the tests...")
  lsp.request(client, "workspace/executeCommand", {
    command = "ledex.runTests",
    arguments = arguments,
  }, function(err, results)
    if err then
      messages.error(("running the tests failed: %s"):format(err.message or vim.inspect(err)))
      return done(nil)
    end
    local parts = summary(results)
    if #parts == 0 then
      messages.warn("no tests were run (is this file in a workspace folder of the server?)")
    else
      messages.info(table.concat(parts, "; "))
    end
    done(results)
  end, bufnr)
end

return M
