-- ledex for Neovim: starts `ledex serve` for Python buffers and adds :LedexFix, :LedexRunTests
-- and :LedexRestart; :checkhealth ledex checks the setup. Everything else (diagnostics, hover,
-- the quick-fix in vim.lsp.buf.code_action()) is plain LSP.
--
--   require("ledex").setup({ python = "/path/to/venv/bin/python", settings = { rounds = 2 } })
--
-- or, from Neovim 0.11, with the config in lsp/ledex.lua: vim.lsp.enable("ledex")
local config_mod = require("ledex.config")
local messages = require("ledex.messages")

local M = {}

-- The options of the last successful setup(), for :checkhealth and :LedexRestart.
M.config = nil

-- Also run at startup by plugin/ledex.lua, for configs that only call vim.lsp.enable("ledex").
function M.define_commands()
  vim.api.nvim_create_user_command("LedexFix", function()
    require("ledex.fix").fix()
  end, { desc = "ledex: explain and fix the failing test on the cursor's line" })
  vim.api.nvim_create_user_command("LedexRunTests", function()
    require("ledex.run_tests").run()
  end, { desc = "ledex: run the project's tests now" })
  vim.api.nvim_create_user_command("LedexRestart", function()
    M.restart()
  end, { desc = "ledex: restart the language server" })
end

-- Returns true when the server is set up to start (false, after saying why, if it cannot be).
function M.setup(options)
  local config, problem = config_mod.resolve(options)
  if not config then
    messages.error("setup(): " .. problem)
    return false
  end
  local lsp = require("ledex.lsp")
  if M.config then
    lsp.stop_all() -- setup() again: the new options replace the old clients
  end
  M.config = config
  M.define_commands()
  return lsp.enable(config)
end

function M.restart()
  local lsp = require("ledex.lsp")
  if not M.config then
    if lsp.native_enabled() then -- vim.lsp.enable("ledex") with lsp/ledex.lua
      lsp.stop_all()
      vim.lsp.enable(lsp.NAME)
      return true
    end
    messages.error("call require(\"ledex\").setup() (or, from Neovim 0.11, "
      .. "vim.lsp.enable(\"ledex\")) first")
    return false
  end
  lsp.stop_all()
  -- Both ways of enabling attach the Python buffers already open.
  return lsp.enable(M.config)
end

-- For scripts and mappings: the same as the commands, with a callback when done.
M.fix = function(done)
  return require("ledex.fix").fix(done)
end
M.run_tests = function(done)
  return require("ledex.run_tests").run(done)
end

return M
