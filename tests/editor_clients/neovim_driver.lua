-- Drives headless Neovim for tests/editor_clients/test_neovim.py, the way a user would: setup(),
-- open a file, wait for ledex's diagnostic, :LedexFix on its line, :write. Reads its parameters
-- from the JSON file named by $LEDEX_NVIM_PARAMS; writes what happened (every notification and
-- server message, and a verdict) to params.report, and exits with 0 only if the scenario
-- succeeded, so a failure shows up both in the exit status and in a readable report.
local params = vim.json.decode(table.concat(vim.fn.readfile(os.getenv("LEDEX_NVIM_PARAMS")), "\n"))
vim.opt.runtimepath:append(params.plugin)
vim.cmd("filetype on")

local report = { events = {}, verdict = nil }

local function save_report()
  vim.fn.writefile({ vim.json.encode(report) }, params.report)
end

local function note(kind, text)
  table.insert(report.events, { kind = kind, text = text, t = vim.loop.hrtime() / 1e9 })
  save_report()
end

-- Everything the plugin and the server tell the user ends up in the report.
vim.notify = function(message, level)
  note("notify:" .. tostring(level), message)
end
for _, method in ipairs({ "window/showMessage", "window/logMessage" }) do
  vim.lsp.handlers[method] = function(_, result)
    note(method, result and result.message or "")
  end
end
-- Which way the fix arrived: only the command path has the server send workspace/applyEdit.
local apply_edit = vim.lsp.handlers["workspace/applyEdit"]
vim.lsp.handlers["workspace/applyEdit"] = function(err, result, ctx, config)
  note("workspace/applyEdit", result and result.label or "")
  return apply_edit(err, result, ctx, config)
end

local function stop_clients()
  local clients = vim.lsp.get_clients and vim.lsp.get_clients() or vim.lsp.get_active_clients()
  for _, client in ipairs(clients) do
    if vim.fn.has("nvim-0.11") == 1 then
      client:stop()
    else
      client.stop()
    end
  end
  vim.wait(10000, function()
    return #(vim.lsp.get_clients and vim.lsp.get_clients() or vim.lsp.get_active_clients()) == 0
  end, 100)
end

local function finish(ok, why)
  report.verdict = { ok = ok, why = why }
  save_report()
  stop_clients()
  vim.cmd(ok and "qall!" or "cquit 1")
end

local function ledex_diagnostics(bufnr)
  return vim.tbl_filter(function(d)
    return d.source == "ledex"
  end, vim.diagnostic.get(bufnr))
end

-- The first warning or error the plugin gave after event number `count` (Neovim's own, like
-- "Client 1 quit with exit code 1", do not count: the plugin must explain).
local function errors_since(count)
  for i = count + 1, #report.events do
    local event = report.events[i]
    local serious = event.kind == "notify:" .. vim.log.levels.ERROR
      or event.kind == "notify:" .. vim.log.levels.WARN
    if serious and event.text:match("^ledex: ") then
      return event.text
    end
  end
  return nil
end

local options = params.setup or {}
if params.drop_resolve_support then
  -- A client without codeAction/resolve: the server answers with the ledex.explainAndFix command.
  -- vim.NIL (JSON null), not nil: from 0.11 on, Neovim merges these over its defaults, where a
  -- missing key would bring resolveSupport back.
  local capabilities = vim.lsp.protocol.make_client_capabilities()
  capabilities.textDocument.codeAction.resolveSupport = vim.NIL
  options.capabilities = capabilities
end

local scenarios = {}

-- How the user turns ledex on, after plugin/ledex.lua is sourced as startup sources it:
-- require("ledex").setup(options) (Neovim 0.7+), or, with params.enable, Neovim 0.11's own way:
-- lsp/ledex.lua found on the runtimepath, vim.lsp.config("ledex", params.config) for the user's
-- overrides, vim.lsp.enable("ledex"); the commands then come from plugin/ledex.lua alone.
local function turn_on()
  vim.cmd("runtime! plugin/ledex.lua")
  if not params.enable then
    return require("ledex").setup(options)
  end
  if params.config then
    vim.lsp.config("ledex", params.config)
  end
  vim.lsp.enable("ledex")
  local resolved = vim.lsp.config.ledex
  note("config", vim.json.encode({
    cmd = resolved.cmd,
    filetypes = resolved.filetypes,
    root_markers = resolved.root_markers,
    settings = resolved.settings,
  }))
  return true
end

function scenarios.fix()
  if not turn_on() then
    return finish(false, "setup() failed")
  end
  vim.cmd("edit " .. vim.fn.fnameescape(params.file))
  local bufnr = vim.api.nvim_get_current_buf()
  local seconds = params.timeout
  if not vim.wait(seconds * 1000, function()
    return #ledex_diagnostics(bufnr) > 0
  end, 100) then
    return finish(false, ("no ledex diagnostic in %s after %d s"):format(params.file, seconds))
  end
  local diagnostic = ledex_diagnostics(bufnr)[1]
  note("diagnostic", ("%d: %s"):format(diagnostic.lnum + 1, diagnostic.message))
  if params.run_tests_first then
    local count = #report.events
    vim.cmd("LedexRunTests")
    local said = nil
    vim.wait(seconds * 1000, function()
      for i = count + 1, #report.events do
        local event = report.events[i]
        if event.kind:match("^notify") and event.text:match("passed") then
          said = event.text
        end
      end
      return said ~= nil
    end, 100)
    note("run_tests", said or "no answer")
  end
  for _, client in ipairs(require("ledex.lsp").clients(bufnr)) do
    note("client", ("%s %s"):format(client.name, client.config.root_dir))
  end
  vim.api.nvim_win_set_cursor(0, { diagnostic.lnum + 1, 0 })
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  local before = #report.events
  vim.cmd("LedexFix")
  local problem = nil
  if not vim.wait(seconds * 1000, function()
    problem = errors_since(before)
    return problem ~= nil or vim.api.nvim_buf_get_changedtick(bufnr) ~= tick
  end, 100) then
    return finish(false, ("the buffer did not change within %d s of :LedexFix"):format(seconds))
  end
  if vim.api.nvim_buf_get_changedtick(bufnr) == tick then
    return finish(false, ":LedexFix reported a problem: " .. problem)
  end
  vim.cmd("write")
  -- Saving runs the tests again: the diagnostic goes once the fix really made them pass.
  if not vim.wait(seconds * 1000, function()
    return #ledex_diagnostics(bufnr) == 0
  end, 100) then
    return finish(false, "the ledex diagnostic was still there after saving the fix")
  end
  finish(true, "fixed")
end

-- The background repair: nobody asks, yet the quick-fix offered for the diagnostic becomes the
-- verified fix (the server repaired the new failure on its own after the test run).
function scenarios.prefetch()
  if not turn_on() then
    return finish(false, "setup() failed")
  end
  vim.cmd("edit " .. vim.fn.fnameescape(params.file))
  local bufnr = vim.api.nvim_get_current_buf()
  local seconds = params.timeout
  if not vim.wait(seconds * 1000, function()
    return #ledex_diagnostics(bufnr) > 0
  end, 100) then
    return finish(false, ("no ledex diagnostic in %s after %d s"):format(params.file, seconds))
  end
  local diagnostic = ledex_diagnostics(bufnr)[1]
  -- The server's diagnostic back in LSP form (0.7 keeps only some of its fields in user_data).
  local lsp = diagnostic.user_data and diagnostic.user_data.lsp or {}
  local lsp_diagnostic = {
    range = {
      start = { line = diagnostic.lnum, character = diagnostic.col },
      ["end"] = { line = diagnostic.end_lnum or diagnostic.lnum, character = diagnostic.end_col or diagnostic.col },
    },
    message = diagnostic.message,
    severity = diagnostic.severity,
    source = diagnostic.source,
    code = lsp.code or diagnostic.code,
    data = lsp.data,
  }
  local request = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    range = lsp_diagnostic.range,
    context = { diagnostics = { lsp_diagnostic }, only = { "quickfix" } },
  }
  local title = nil
  vim.wait(seconds * 1000, function()
    local answers = vim.lsp.buf_request_sync(bufnr, "textDocument/codeAction", request, 5000) or {}
    for _, answer in pairs(answers) do
      for _, action in ipairs(answer.result or {}) do
        if action.title:find("(verified fix for", 1, true) then
          title = action.title
        end
      end
    end
    return title ~= nil
  end, 200)
  if not title then
    return finish(false, ("no verified quick-fix within %d s"):format(seconds))
  end
  note("quickfix", title)
  finish(true, title)
end

function scenarios.health()
  turn_on()
  vim.cmd("checkhealth ledex")
  vim.cmd("write! " .. vim.fn.fnameescape(params.output))
  finish(true, "checked")
end

-- setup() with a bad interpreter: the user is told why, and Neovim carries on.
function scenarios.bad_interpreter()
  local started = require("ledex").setup(options)
  note("setup", tostring(started))
  if started then
    vim.cmd("edit " .. vim.fn.fnameescape(params.file))
    vim.wait(params.timeout * 1000, function()
      return errors_since(0) ~= nil
    end, 100)
  end
  local problem = errors_since(0)
  if not problem then
    return finish(false, "no error message")
  end
  -- Still a working editor: a command runs, and :LedexFix says why it cannot fix.
  vim.cmd("LedexFix")
  finish(true, problem)
end

-- Options that cannot work: each setup() call returns false and says why.
function scenarios.bad_options()
  for index, bad in ipairs(params.cases) do
    local before = #report.events
    local ok, result = pcall(require("ledex").setup, bad)
    note("case", ("%d: pcall=%s returned=%s"):format(index, tostring(ok), tostring(result)))
    if not ok or result ~= false or errors_since(before) == nil then
      return finish(false, ("case %d was not refused with a message"):format(index))
    end
  end
  finish(true, "all refused")
end

local scenario = scenarios[params.scenario]
if not scenario then
  note("driver", "unknown scenario " .. tostring(params.scenario))
  vim.cmd("cquit 2")
end
local ok, err = pcall(scenario)
if not ok then
  note("driver", "error: " .. tostring(err))
  report.verdict = { ok = false, why = tostring(err) }
  save_report()
  vim.cmd("cquit 1")
end
