// The settings the server reads (section `ledex`, lsp_server/settings.py) and how the extension
// hands them over. Pure logic (no `vscode` import), unit-tested in test/settings.test.ts; a pytest
// test checks package.json's `contributes.configuration` against the server's own table.
import type { Interpreter } from "./interpreter";

export const SECTION = "ledex";

/** The server's keys (camelCase, as in package.json). The server warns about any other key. */
export const SERVER_KEYS = [
  "model",
  "python",
  "pytestArgs",
  "candidates",
  "rounds",
  "timeout",
  "modelTimeout",
  "temperature",
  "maxTokens",
  "runOn",
  "showUnverified",
  "debounce",
  "prefetch",
  "cache",
] as const;

export type ServerKey = (typeof SERVER_KEYS)[number];
export type ServerSettings = Partial<Record<ServerKey, unknown>>;

/**
 * The `ledex` object sent to the server (initializationOptions, didChangeConfiguration, the
 * answer to workspace/configuration): only the server's keys (the section also holds the
 * extension's own, like `trace`), unset values left out, and `python` set to the interpreter
 * the server runs with when it came from the Python extension, so the tests run in the
 * environment the user selected. (With the `python3` fallback it stays unset: the server then
 * uses the workspace's `.venv`, else python3.)
 */
export function serverSettings(
  section: Record<string, unknown> | null | undefined,
  interpreter?: Interpreter,
): ServerSettings {
  const result: ServerSettings = {};
  for (const key of SERVER_KEYS) {
    const value = section?.[key];
    if (value !== undefined && value !== null && !(key === "python" && value === "")) {
      result[key] = value;
    }
  }
  if (result.python === undefined && interpreter && interpreter.source !== "default") {
    result.python = interpreter.python;
  }
  return result;
}

/** Does a settings change need a server restart (a different interpreter runs the server)? */
export function needsRestart(before: Interpreter, after: Interpreter): boolean {
  return before.python !== after.python;
}

/** When does saving/opening a file start a test run (setting `runOn`)? */
export function runsOn(section: Record<string, unknown> | null | undefined): Set<string> {
  const value = section?.runOn;
  const items = typeof value === "string" ? [value] : Array.isArray(value) ? value : null;
  return new Set(items ?? ["save", "open", "command"]);
}
