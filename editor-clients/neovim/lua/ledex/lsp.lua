-- Starting `ledex serve` and talking to it, across Neovim versions: `vim.lsp.config` /
-- `vim.lsp.enable` from 0.11 on; before that (Debian's 0.7.2 included) one client per project
-- root, started with `vim.lsp.start_client` and attached on FileType.
local config_mod = require("ledex.config")
local messages = require("ledex.messages")
local root = require("ledex.root")

local M = {}

M.NAME = "ledex"

local function has(version)
  return vim.fn.has("nvim-" .. version) == 1
end

function M.native_config_api()
  return has("0.11") and vim.lsp.config ~= nil and vim.lsp.enable ~= nil
end

-- True when vim.lsp.enable("ledex") is in force (by the user, with lsp/ledex.lua, or by setup()).
function M.native_enabled()
  if not M.native_config_api() then
    return false
  end
  if vim.lsp.is_enabled then
    return vim.lsp.is_enabled(M.NAME)
  end
  return (vim.lsp._enabled_configs or {})[M.NAME] ~= nil -- 0.11.0 and 0.11.1
end

-- 0.11 turned the client's functions into methods (`client:request`) and deprecated the old
-- calls; 0.7 only has the old ones.
function M.request(client, method, params, handler, bufnr)
  if has("0.11") then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function stop(client)
  if has("0.11") then
    return client:stop()
  end
  return client.stop()
end

local function is_stopped(client)
  if has("0.11") then
    return client:is_stopped()
  end
  return client.is_stopped()
end

-- The ledex clients attached to a buffer.
function M.clients(bufnr)
  if vim.lsp.get_clients then
    return vim.lsp.get_clients({ bufnr = bufnr, name = M.NAME })
  end
  local found = {}
  for _, client in pairs(vim.lsp.buf_get_clients(bufnr)) do
    if client.name == M.NAME then
      table.insert(found, client)
    end
  end
  return found
end

function M.all_clients()
  if vim.lsp.get_clients then
    return vim.lsp.get_clients({ name = M.NAME })
  end
  return vim.tbl_filter(function(client)
    return client.name == M.NAME
  end, vim.lsp.get_active_clients())
end

local stopping = false -- set while we stop the clients ourselves: their exit is expected

-- Why the server exited, as precisely as we can tell without its stderr (which Neovim only puts
-- in the LSP log): a missing module is the usual reason, so ask the interpreter.
local function explain_exit(config, code)
  local cmd = table.concat(config.cmd, " ")
  local cli = config_mod.cli(config)
  local generic = ("the language server (`%s`) exited with code %d; run :checkhealth ledex, "
    .. "and see its log: %s"):format(cmd, code, vim.lsp.get_log_path())
  if not cli then
    return messages.error_once(generic)
  end
  local output = {}
  local collect = function(_, data)
    vim.list_extend(output, data or {})
  end
  local ok, job = pcall(vim.fn.jobstart, vim.list_extend(vim.deepcopy(cli), { "--version" }), {
    -- Buffered: all the output arrives before on_exit.
    stdout_buffered = true,
    stderr_buffered = true,
    on_stdout = collect,
    on_stderr = collect,
    on_exit = function(_, probe_code)
      if probe_code == 0 then
        return messages.error_once(generic)
      end
      -- "/path/python: No module named ledex" -> "No module named ledex"
      local lines = vim.split(vim.trim(table.concat(output, "\n")), "\n")
      local detail = (lines[#lines] or ""):gsub("^.-: ", "")
      local interpreter = config.python or cli[1]
      messages.error_once(
        ("the language server cannot start: ledex is not installed in %s (%s). Install it "
          .. "there: `%s -m pip install ledex` (from a checkout: `%s -m pip install -e .`), or "
          .. "set `python` in require(\"ledex\").setup() to an interpreter that has it.")
          :format(interpreter, detail, interpreter, interpreter)
      )
    end,
  })
  if not ok or job <= 0 then
    messages.error_once(generic)
  end
end

local function client_config(config, root_dir)
  local settings = config_mod.server_settings(config)
  return {
    name = M.NAME,
    cmd = config.cmd,
    root_dir = root_dir,
    init_options = { ledex = settings },
    settings = { ledex = settings },
    capabilities = config.capabilities,
    on_attach = config.on_attach,
    on_exit = function(code, signal)
      -- A clean `exit` after `shutdown` is code 0; anything else, unless we (or Neovim quitting)
      -- stopped it, is worth telling the user. Scheduled: this runs in a libuv callback, where
      -- most of Neovim's API is off limits.
      local expected = stopping
      vim.schedule(function()
        if expected or vim.v.exiting ~= vim.NIL then
          return
        end
        if code ~= 0 then
          explain_exit(config, code)
        elseif signal ~= 0 then
          messages.error_once(("the language server was killed by signal %d"):format(signal))
        end
      end)
    end,
  }
end

-- An executable we cannot find would make Neovim throw (0.7) or log and give up: say so plainly.
local function check_executable(config)
  local program = config.cmd[1]
  if vim.fn.executable(program) == 1 then
    return true
  end
  if config.python then
    messages.error(("the interpreter `%s` (option `python`) was not found or is not executable")
      :format(program))
  elseif program == "ledex" then
    messages.error("`ledex` is not on PATH: install ledex, or set `python` in "
      .. "require(\"ledex\").setup() to the interpreter it is installed in")
  else
    messages.error(("the server command `%s` (option `cmd`) was not found or is not executable")
      :format(program))
  end
  return false
end

-- --- Neovim 0.11 and later -------------------------------------------------------------------

local function enable_native(config)
  local base = client_config(config, nil)
  base.root_dir = function(bufnr, on_dir)
    local dir = root.for_buffer(bufnr, config.root_markers)
    if dir then
      on_dir(dir)
    end
  end
  base.filetypes = config.filetypes
  vim.lsp.config(M.NAME, base)
  vim.lsp.enable(M.NAME)
end

-- --- before 0.11 ------------------------------------------------------------------------------

local by_root = {} -- project root -> client id

local function alive(id)
  local client = id and vim.lsp.get_client_by_id(id)
  return client ~= nil and not is_stopped(client)
end

function M.attach(config, bufnr)
  local dir = root.for_buffer(bufnr, config.root_markers)
  if not dir then
    return
  end
  local id = by_root[dir]
  if not alive(id) then
    local ok, started = pcall(vim.lsp.start_client, client_config(config, dir))
    if not ok or not started then
      messages.error(("could not start the language server: %s"):format(tostring(started)))
      return
    end
    id = started
    by_root[dir] = id
  end
  vim.lsp.buf_attach_client(bufnr, id)
end

local group = nil

local function enable_legacy(config)
  group = vim.api.nvim_create_augroup("ledex", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = config.filetypes,
    callback = function(args)
      M.attach(config, args.buf)
    end,
  })
  -- Buffers opened before setup() (e.g. `nvim file.py` with a lazily loaded plugin).
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr)
      and vim.tbl_contains(config.filetypes, vim.bo[bufnr].filetype)
    then
      M.attach(config, bufnr)
    end
  end
end

-- Start the server for the configured filetypes; false if it cannot be started at all.
function M.enable(config)
  if not check_executable(config) then
    return false
  end
  if M.native_config_api() then
    enable_native(config)
  else
    enable_legacy(config)
  end
  return true
end

-- Stop every ledex client and forget them, e.g. before setup() runs again with new options.
function M.stop_all()
  stopping = true
  local clients = M.all_clients()
  for _, client in ipairs(clients) do
    stop(client)
  end
  vim.wait(3000, function()
    return vim.tbl_isempty(vim.tbl_filter(function(client)
      return not is_stopped(client)
    end, clients))
  end, 50)
  stopping = false
  by_root = {}
  messages.forget()
  if group then
    vim.api.nvim_del_augroup_by_id(group)
    group = nil
  end
  if M.native_config_api() then
    vim.lsp.enable(M.NAME, false)
  end
end

return M
