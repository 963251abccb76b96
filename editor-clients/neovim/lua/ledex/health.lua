-- :checkhealth ledex: can the server start (its command, ledex importable in the interpreter),
-- is the model there, can the tests run, and which servers are running.
local config_mod = require("ledex.config")

local M = {}

-- vim.health.start/ok/... from 0.9; vim.health.report_* in 0.8; require("health") in 0.7.
local function reporter()
  local health = vim.health or require("health")
  return {
    start = health.start or health.report_start,
    ok = health.ok or health.report_ok,
    info = health.info or health.report_info,
    warn = health.warn or health.report_warn,
    error = health.error or health.report_error,
  }
end

local function run(cmd)
  local output = vim.fn.system(cmd)
  return vim.v.shell_error == 0, vim.trim(output or "")
end

local function last_line(text)
  local lines = vim.split(text, "\n", { trimempty = true })
  return lines[#lines] or text
end

local function check_command(h, config)
  local program = config.cmd[1]
  if vim.fn.executable(program) ~= 1 then
    local what = config.python and "the interpreter (option `python`)" or "the server command"
    h.error(("%s `%s` was not found"):format(what, program), {
      "Set `python` in require(\"ledex\").setup() to the interpreter ledex is installed in",
    })
    return false
  end
  h.ok(("server command: `%s` (%s)"):format(table.concat(config.cmd, " "), vim.fn.exepath(program)))
  return true
end

local function check_ledex(h, config, cli)
  if not cli then
    h.warn("the server command does not end in `serve`, so ledex's CLI cannot be checked")
    return false
  end
  local ok, output = run(vim.list_extend(vim.deepcopy(cli), { "--version" }))
  if not ok then
    local interpreter = config.python or cli[1]
    h.error(("ledex is not importable with `%s`: %s"):format(table.concat(cli, " "),
      last_line(output)), {
      ("Install it there: `%s -m pip install ledex` (from a checkout: `%s -m pip install -e .`)")
        :format(interpreter, interpreter),
      "or set `python` in require(\"ledex\").setup() to an interpreter that has it",
    })
    return false
  end
  h.ok(("%s is installed (`%s --version`)"):format(last_line(output), table.concat(cli, " ")))
  return true
end

local function check_tcp(h, url)
  local host, port = url:match("^%a+://([^/:]+):?(%d*)")
  if not host then
    h.warn(("cannot read a host from %s"):format(url))
    return
  end
  port = tonumber(port) or (url:match("^https") and 443 or 80)
  local addresses = vim.loop.getaddrinfo(host, tostring(port), { socktype = "stream" })
  if not addresses or #addresses == 0 then
    h.error(("the model server's host %s cannot be resolved"):format(host))
    return
  end
  local tcp = vim.loop.new_tcp()
  local result = nil
  tcp:connect(addresses[1].addr, port, function(err)
    result = err or true
  end)
  vim.wait(3000, function()
    return result ~= nil
  end, 20)
  if not tcp:is_closing() then
    tcp:close()
  end
  if result == true then
    h.ok(("the model server at %s accepts connections"):format(url))
  else
    h.error(("the model server at %s cannot be reached: %s"):format(url,
      tostring(result or "timed out")), { "Start it, or change the setting `model`" })
  end
end

local function check_model(h, config, cli, ledex_ok)
  local spec = (config.settings or {}).model or "embedded"
  -- `embedded+LORA` keeps its `+` in rest: the adapter of the default model, not a model file
  local kind, rest = spec:match("^(%a+):?(.*)$")
  if kind == "embedded" then
    local target, adapter = rest:match("^([^+]*)%+?(.*)$")
    if adapter ~= "" and vim.fn.filereadable(vim.fn.expand(adapter)) ~= 1 then
      h.error(("the LoRA adapter %s of model `%s` does not exist"):format(adapter, spec))
    end
    if target:find("/", 1, true) or target:match("%.gguf$") then
      if vim.fn.filereadable(vim.fn.expand(target)) == 1 then
        h.ok(("model `%s`: %s"):format(spec, target))
      else
        h.error(("model `%s`: %s does not exist"):format(spec, target))
      end
      return
    end
    if not ledex_ok then
      h.warn(("model `%s` not checked: ledex is not installed"):format(spec))
      return
    end
    -- the whole spec, so that what loading refuses (a second adapter on a shipped one) is refused
    local args = { "model", "path", spec }
    local ok, output = run(vim.list_extend(vim.deepcopy(cli), args))
    if ok then
      h.ok(("model `%s` is installed: %s"):format(spec, last_line(output)))
    elseif output:find("not installed", 1, true) then
      h.error(("model `%s`: %s"):format(spec, last_line(output)), {
        ("Install it: `%s model install%s`"):format(table.concat(cli, " "),
          target ~= "" and (" " .. target) or ""),
      })
    else -- a spec that cannot load: its message says why, there is nothing to install
      h.error(("model `%s`: %s"):format(spec, last_line(output)))
    end
  elseif kind == "openai" then
    check_tcp(h, (rest:gsub("#.*$", "")))
  elseif kind == "hf" or kind == "vllm" then
    h.info(("model `%s` is loaded by the server at the first repair (not checked here)")
      :format(spec))
  else
    h.error(("the setting `model` = `%s` is not a model spec"):format(spec), {
      "Use embedded, embedded:NAME, openai:URL#MODEL, hf:PATH or vllm:PATH",
    })
  end
end

local function check_tests_interpreter(h, config)
  local python = config_mod.server_settings(config).python
  if not python then
    h.info("the tests run with the project's .venv/bin/python if there is one, else python3 "
      .. "(option `python` or settings.python to choose)")
    return
  end
  if vim.fn.executable(python) ~= 1 then
    h.error(("the tests' interpreter `%s` (setting `python`) was not found"):format(python))
    return
  end
  local ok, output = run({ python, "-m", "pytest", "--version" })
  if ok then
    h.ok(("tests run with %s (%s)"):format(python, last_line(output)))
  else
    h.error(("pytest is not installed in %s: %s"):format(python, last_line(output)),
      { ("Install it: `%s -m pip install pytest`"):format(python) })
  end
end

local function check_clients(h)
  local clients = require("ledex.lsp").all_clients()
  if #clients == 0 then
    h.info("no ledex server is running (it starts with the first Python file of a project)")
  end
  for _, client in ipairs(clients) do
    h.ok(("server running for %s (client %d)"):format(client.config.root_dir or "?", client.id))
  end
end

function M.check()
  local h = reporter()
  h.start("ledex")
  h.info(("Neovim %s: %s"):format(tostring(vim.version().major) .. "." .. vim.version().minor,
    require("ledex.lsp").native_config_api() and "vim.lsp.config / vim.lsp.enable"
      or "vim.lsp.start_client"))
  local config = require("ledex").config
  if not config then
    config = config_mod.from_native()
    if config then
      h.info("configured by vim.lsp.enable(\"ledex\") (lsp/ledex.lua and vim.lsp.config)")
    else
      h.warn("neither require(\"ledex\").setup() nor vim.lsp.enable(\"ledex\") (Neovim 0.11+) "
        .. "has run: checking the defaults")
      config = config_mod.resolve({})
    end
  end
  local cli = config_mod.cli(config)
  local ledex_ok = check_command(h, config) and check_ledex(h, config, cli)
  check_model(h, config, cli, ledex_ok)
  check_tests_interpreter(h, config)
  check_clients(h)
end

return M
