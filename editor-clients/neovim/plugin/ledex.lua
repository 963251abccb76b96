-- Sourced at startup (Neovim 0.7 and later): the commands, so that a config that only calls
-- vim.lsp.enable("ledex") (0.11, lsp/ledex.lua) has :LedexFix, :LedexRunTests and :LedexRestart
-- too. Cheap: the modules load when a command runs.
if vim.g.loaded_ledex then
  return
end
vim.g.loaded_ledex = true
require("ledex").define_commands()
