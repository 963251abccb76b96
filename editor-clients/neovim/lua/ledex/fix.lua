-- :LedexFix: ask the server for its "Explain and fix" quick-fix on the ledex diagnostic under the
-- cursor and apply it. The server answers in one of three ways, depending on what the client
-- says it supports: an action with the edit, an action to resolve (`codeAction/resolve` runs the
-- repair and fills in the edit), or a command (`ledex.explainAndFix`) that repairs and then sends
-- the edit back with `workspace/applyEdit`, which Neovim applies itself.
local lsp = require("ledex.lsp")
local messages = require("ledex.messages")

local M = {}

-- The ledex diagnostics on a (0-based) line, as the LSP diagnostics the server published.
local function diagnostics_on_line(bufnr, line, client)
  local found = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr, { lnum = line })) do
    if d.source == "ledex" then
      local original = d.user_data and d.user_data.lsp or {}
      if original.range then
        -- 0.10 and later keep the whole LSP diagnostic.
        table.insert(found, original)
      else
        -- 0.7 to 0.9 keep only a few fields: rebuild the rest (columns are bytes in Neovim and
        -- characters in the negotiated encoding in LSP).
        local function position(row, col)
          local ok, character = pcall(vim.lsp.util.character_offset, bufnr, row, col,
            client.offset_encoding)
          return { line = row, character = ok and character or col }
        end
        table.insert(found, {
          range = {
            start = position(d.lnum, d.col),
            ["end"] = position(d.end_lnum or d.lnum, d.end_col or d.col),
          },
          severity = d.severity,
          message = d.message,
          source = d.source,
          code = d.code or original.code,
          data = original.data,
        })
      end
    end
  end
  return found
end

local function describe(result)
  if type(result) ~= "table" then
    return nil
  end
  if result.message and result.message ~= "" then
    return result.message
  end
  return nil
end

local function execute(client, command, bufnr, done)
  local params = { command = command.command, arguments = command.arguments }
  lsp.request(client, "workspace/executeCommand", params, function(err, result)
    if err then
      messages.error(("%s failed: %s"):format(command.command, err.message or vim.inspect(err)))
      return done(false)
    end
    -- The edit arrived through workspace/applyEdit before this answer.
    if type(result) == "table" and result.applied == false then
      messages.warn(describe(result) or "no fix was applied")
      return done(false)
    end
    messages.info(describe(result) or "fix applied")
    done(true)
  end, bufnr)
end

local function apply(client, action, bufnr, done)
  if action.edit then
    vim.lsp.util.apply_workspace_edit(action.edit, client.offset_encoding)
  end
  local command = action.command
  if type(command) == "string" then -- a bare Command rather than a CodeAction
    command = action
  end
  if command then
    return execute(client, command, bufnr, done)
  end
  if action.edit then
    messages.info("fix applied to the buffer; :w saves it and runs the tests again")
    return done(true)
  end
  messages.warn(("the action \"%s\" carries no fix"):format(action.title))
  done(false)
end

local function resolve_and_apply(client, action, bufnr, done)
  lsp.request(client, "codeAction/resolve", action, function(err, resolved)
    if err then
      messages.error(("explain and fix failed: %s"):format(err.message or vim.inspect(err)))
      return done(false)
    end
    if not resolved or not (resolved.edit or resolved.command) then
      -- The server has said why (a window/showMessage) before answering.
      messages.warn("no verified fix was found for this test; see the message above")
      return done(false)
    end
    apply(client, resolved, bufnr, done)
  end, bufnr)
end

local function can_resolve(client)
  local caps = client.server_capabilities or {}
  local provider = caps.codeActionProvider
  return type(provider) == "table" and provider.resolveProvider == true
end

local function run(client, action, bufnr, done)
  messages.info(("%s: running the model and verifying its fix with the tests..."):format(
    action.title))
  if not action.edit and not action.command and can_resolve(client) then
    return resolve_and_apply(client, action, bufnr, done)
  end
  apply(client, action, bufnr, done)
end

-- The ledex actions worth offering: quick-fixes, the verified one (isPreferred) first, attempts
-- the server labels UNVERIFIED last.
local function ranked(actions)
  local fixes = vim.tbl_filter(function(action)
    return action.kind == nil or action.kind == "quickfix"
  end, actions or {})
  local function rank(action)
    if action.isPreferred then
      return 0
    end
    if (action.title or ""):find("UNVERIFIED", 1, true) then
      return 2
    end
    return 1
  end
  table.sort(fixes, function(a, b)
    return rank(a) < rank(b)
  end)
  return fixes
end

-- Fix the failing test whose diagnostic is on the cursor's line. `done(ok)` is called once the
-- fix is applied or has failed (the tests use it; users can ignore it).
function M.fix(done)
  done = done or function() end
  local bufnr = vim.api.nvim_get_current_buf()
  local client = lsp.clients(bufnr)[1]
  if not client then
    messages.error("the language server is not running for this buffer (it starts for Python "
      .. "files; see :checkhealth ledex)")
    return done(false)
  end
  local line = vim.api.nvim_win_get_cursor(0)[1] - 1
  local diagnostics = diagnostics_on_line(bufnr, line, client)
  if #diagnostics == 0 then
    messages.warn("no failing test on this line: put the cursor on a ledex diagnostic "
      .. "(:LedexRunTests runs the tests)")
    return done(false)
  end
  local text = vim.api.nvim_buf_get_lines(bufnr, line, line + 1, false)[1] or ""
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    range = {
      start = { line = line, character = 0 },
      ["end"] = { line = line, character = #text },
    },
    context = { diagnostics = diagnostics, only = { "quickfix" } },
  }
  lsp.request(client, "textDocument/codeAction", params, function(err, actions)
    if err then
      messages.error(("could not get the fixes: %s"):format(err.message or vim.inspect(err)))
      return done(false)
    end
    local fixes = ranked(actions)
    if #fixes == 0 then
      messages.warn("the server offers no fix here (the test may have passed since; "
        .. ":LedexRunTests runs the tests again)")
      return done(false)
    end
    if #fixes == 1 then
      return run(client, fixes[1], bufnr, done)
    end
    vim.ui.select(fixes, {
      prompt = "ledex: fix which test?",
      format_item = function(action)
        return action.title
      end,
    }, function(choice)
      if not choice then
        return done(false)
      end
      run(client, choice, bufnr, done)
    end)
  end, bufnr)
end

return M
