-- The project a buffer belongs to: the folder pytest would treat as the root. Written against
-- vim.loop rather than vim.fs, which Neovim 0.7 lacks.
local M = {}

local function exists(path)
  return vim.loop.fs_stat(path) ~= nil
end

local function parent(dir)
  local up = vim.fn.fnamemodify(dir, ":h")
  if up == dir then
    return nil
  end
  return up
end

local function nearest(start, markers)
  local dir = start
  while dir do
    for _, marker in ipairs(markers) do
      if exists(dir .. "/" .. marker) then
        return dir
      end
    end
    dir = parent(dir)
  end
  return nil
end

-- The root for a file path: the nearest folder with one of `markers`; else the nearest with a
-- .git (a project configured only by conftest.py files); else the file's own folder.
function M.for_path(path, markers)
  local start = vim.fn.fnamemodify(path, ":p:h")
  return nearest(start, markers) or nearest(start, { ".git" }) or start
end

-- The root for a buffer, or nil for a buffer that is not a file on disk (a scratch buffer, a
-- fugitive:// or other URL-like name) and so has nothing for pytest to run.
function M.for_buffer(bufnr, markers)
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == "" or name:match("^%a[%w+.-]*://") then
    return nil
  end
  if vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  return M.for_path(name, markers)
end

return M
