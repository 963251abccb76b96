-- The options of require("ledex").setup(): defaults, and a check of what the user passed, so that
-- a typo is reported at startup rather than showing up as a server that never starts.
local M = {}

M.defaults = {
  -- The command that runs the language server. Default: { python, "-m", "ledex", "serve" } when
  -- `python` is set, else { "ledex", "serve" } from PATH.
  cmd = nil,
  -- The interpreter ledex is installed in: it runs the server and, unless settings.python says
  -- otherwise, your tests (as in the VS Code extension).
  python = nil,
  -- The server's settings (section `ledex`): model, python (for the tests), pytestArgs,
  -- candidates, rounds, timeout, modelTimeout, temperature, maxTokens, runOn, showUnverified,
  -- debounce. The server checks them and reports what it ignores.
  settings = {},
  -- Files that mark a project's root; the nearest folder holding one wins, then a .git folder,
  -- then the file's own folder.
  root_markers = { "pyproject.toml", "setup.cfg", "setup.py", "pytest.ini", "tox.ini" },
  filetypes = { "python" },
  capabilities = nil, -- default: Neovim's own client capabilities
  on_attach = nil, -- function(client, bufnr)
}

local function is_list_of_strings(value)
  if type(value) ~= "table" or (next(value) ~= nil and #value == 0) then
    return false
  end
  for key, item in pairs(value) do
    if type(key) ~= "number" or type(item) ~= "string" or item == "" then
      return false
    end
  end
  return true
end

local function is_map(value)
  if type(value) ~= "table" then
    return false
  end
  for key in pairs(value) do
    if type(key) ~= "string" then
      return false
    end
  end
  return true
end

local checks = {
  cmd = { is_list_of_strings, "a non-empty list of strings, e.g. { \"ledex\", \"serve\" }" },
  python = {
    function(v)
      return type(v) == "string" and v ~= ""
    end,
    "the path of an interpreter, e.g. \"/home/me/project/.venv/bin/python\"",
  },
  settings = { is_map, "a table of the server's settings, e.g. { model = \"embedded\" }" },
  root_markers = { is_list_of_strings, "a list of file names" },
  filetypes = { is_list_of_strings, "a list of filetypes" },
  capabilities = { is_map, "a table of LSP client capabilities" },
  on_attach = {
    function(v)
      return type(v) == "function"
    end,
    "a function(client, bufnr)",
  },
}

local function known_options()
  local names = vim.tbl_keys(checks)
  table.sort(names)
  return table.concat(names, ", ")
end

-- The options merged over the defaults, or nil and a message naming what is wrong.
function M.resolve(user)
  if user == nil then
    user = {}
  end
  if type(user) ~= "table" then
    return nil, ("setup() takes a table of options, not a %s"):format(type(user))
  end
  for name, value in pairs(user) do
    local check = checks[name]
    if check == nil then
      return nil, ("unknown option `%s` (known: %s)"):format(tostring(name), known_options())
    end
    if not check[1](value) then
      return nil, ("option `%s` must be %s, got %s"):format(name, check[2], vim.inspect(value))
    end
  end
  if user.cmd and user.python then
    return nil, "give either `cmd` or `python`, not both (`python` builds the command)"
  end
  if type(user.cmd) == "table" and #user.cmd == 0 then
    return nil, "option `cmd` must not be empty"
  end
  local config = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), user)
  -- Lists are replaced, not merged index by index with the defaults.
  for _, name in ipairs({ "cmd", "root_markers", "filetypes" }) do
    if user[name] then
      config[name] = vim.deepcopy(user[name])
    end
  end
  if not config.cmd then
    config.cmd = config.python and { config.python, "-m", "ledex", "serve" } or { "ledex", "serve" }
  end
  return config
end

-- The `ledex` section as the server reads it. An empty Lua table would be sent as a JSON array,
-- which the server rejects as "settings must be an object".
function M.server_settings(config)
  local section = vim.empty_dict()
  for key, value in pairs(config.settings or {}) do
    section[key] = value
  end
  if section.python == nil and config.python then
    section.python = config.python
  end
  return section
end

-- The server as vim.lsp.enable("ledex") starts it (lsp/ledex.lua with the user's
-- vim.lsp.config("ledex", ...) merged over it), in setup()'s shape, for :checkhealth; nil when
-- it is not enabled that way, or its cmd is a function (nothing to check then).
function M.from_native()
  if not require("ledex.lsp").native_enabled() then
    return nil
  end
  local ok, native = pcall(function()
    return vim.lsp.config[require("ledex.lsp").NAME]
  end)
  if not ok or type(native) ~= "table" or not is_list_of_strings(native.cmd) then
    return nil
  end
  local settings = type(native.settings) == "table" and native.settings.ledex or nil
  return {
    cmd = native.cmd,
    settings = is_map(settings) and settings or {},
    filetypes = native.filetypes,
    root_markers = native.root_markers,
  }
end

-- The command that runs the ledex CLI (the server command without `serve`), for the health check.
function M.cli(config)
  local cmd = config.cmd
  if cmd[#cmd] == "serve" and #cmd > 1 then
    return vim.list_slice(cmd, 1, #cmd - 1)
  end
  return nil
end

return M
