-- ledex for Neovim 0.11 and later, in nvim-lspconfig's style: with editor-clients/neovim on the
-- runtimepath (any plugin manager), this is all a config needs:
--
--   vim.lsp.enable("ledex")
--
-- Neovim merges what you pass to vim.lsp.config("ledex", { ... }) over this table, e.g. the
-- interpreter ledex is installed in and the server's settings:
--
--   vim.lsp.config("ledex", {
--     cmd = { "/home/me/project/.venv/bin/python", "-m", "ledex", "serve" },
--     settings = { ledex = { model = "embedded:0.5b", python = "/home/me/project/.venv/bin/python" } },
--   })
--
-- The plugin's :LedexFix, :LedexRunTests, :LedexRestart and :checkhealth ledex work with it too;
-- require("ledex").setup() (Neovim 0.7 and later) is the other way in, with checked options.

-- The same roots as setup(): the nearest folder with a project file, else a .git folder. From
-- 0.11.3 the project files have equal priority (nested list); before, the first found wins.
local project_files = { "pyproject.toml", "setup.cfg", "setup.py", "pytest.ini", "tox.ini" }
local root_markers = vim.fn.has("nvim-0.11.3") == 1 and { project_files, ".git" }
  or vim.list_extend(vim.deepcopy(project_files), { ".git" })

---@type vim.lsp.Config
return {
  -- ledex from PATH; set cmd to { PYTHON, "-m", "ledex", "serve" } for a virtualenv's ledex.
  cmd = { "ledex", "serve" },
  filetypes = { "python" },
  root_markers = root_markers,
  -- Section `ledex`: model, python (runs the tests; default the project's .venv/bin/python, else
  -- python3), pytestArgs, candidates, rounds, timeout, modelTimeout, temperature, maxTokens,
  -- runOn, showUnverified, debounce. An empty dict, not {}: {} would be sent as a JSON array.
  settings = { ledex = vim.empty_dict() },
}
