// Which Python runs `ledex serve`, and what to say when ledex is not importable there.
// Pure logic (no `vscode` import), unit-tested in test/interpreter.test.ts.

export type InterpreterSource = "setting" | "python-extension" | "default";

export interface Interpreter {
  /** The executable (a path or a name looked up on PATH). */
  python: string;
  source: InterpreterSource;
}

export const DEFAULT_PYTHON = "python3";

/** `ledex.python` if set, else the Python extension's selected interpreter, else `python3`. */
export function resolveInterpreter(
  setting: string | null | undefined,
  pythonExtension: string | null | undefined,
): Interpreter {
  const configured = (setting ?? "").trim();
  if (configured) {
    return { python: expandHome(configured), source: "setting" };
  }
  const selected = (pythonExtension ?? "").trim();
  if (selected) {
    return { python: selected, source: "python-extension" };
  }
  return { python: DEFAULT_PYTHON, source: "default" };
}

function expandHome(path: string): string {
  const home = process.env.HOME;
  if (home && (path === "~" || path.startsWith("~/"))) {
    return home + path.slice(1);
  }
  return path;
}

/** Where the interpreter came from, for messages. */
export function describeSource(interpreter: Interpreter): string {
  switch (interpreter.source) {
    case "setting":
      return "the setting `ledex.python`";
    case "python-extension":
      return "the interpreter selected in the Python extension";
    default:
      return `the default \`${DEFAULT_PYTHON}\` (set \`ledex.python\` to choose another)`;
  }
}

/** The server's command line. */
export function serverCommand(interpreter: Interpreter): { command: string; args: string[] } {
  return { command: interpreter.python, args: ["-m", "ledex", "serve"] };
}

/** Quote an argument for a POSIX shell when it needs it (for the install command shown). */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export function installCommand(interpreter: Interpreter): string {
  return `${shellQuote(interpreter.python)} -m pip install ledex`;
}

/** The script run with the interpreter before starting the server: prints ledex's version. */
export const PROBE_ARGS = [
  "-c",
  "import ledex, lsp_server.server; print(getattr(ledex, '__version__', 'unknown'))",
];

export interface ProbeResult {
  /** Exit code; null when the process could not start or was killed. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** A spawn error's code (`ENOENT`, `EACCES`) or message. */
  spawnError?: string;
  timedOut?: boolean;
}

export type ProbeVerdict =
  | { ok: true; version: string }
  | { ok: false; reason: "no-interpreter" | "not-installed" | "broken"; message: string };

/** What the probe's result means, with a message for the user. */
export function judgeProbe(interpreter: Interpreter, result: ProbeResult): ProbeVerdict {
  const where = describeSource(interpreter);
  if (result.spawnError !== undefined) {
    const missing = result.spawnError === "ENOENT";
    return {
      ok: false,
      reason: "no-interpreter",
      message: missing
        ? `ledex: the Python interpreter \`${interpreter.python}\` (from ${where}) was not found. ` +
          "Set `ledex.python` to the interpreter that has ledex installed."
        : `ledex: the Python interpreter \`${interpreter.python}\` (from ${where}) could not be run: ` +
          `${result.spawnError}.`,
    };
  }
  if (result.timedOut) {
    return {
      ok: false,
      reason: "broken",
      message: `ledex: \`${interpreter.python} -c "import ledex"\` did not finish in time.`,
    };
  }
  if (result.code === 0) {
    const version = result.stdout.trim().split(/\r?\n/).pop() || "unknown";
    return { ok: true, version };
  }
  const stderr = result.stderr.trim();
  const notInstalled = /No module named '?(ledex|lsp_server)'?/.test(stderr);
  if (notInstalled) {
    return {
      ok: false,
      reason: "not-installed",
      message:
        `ledex is not installed in \`${interpreter.python}\` (from ${where}). ` +
        `Install it with: ${installCommand(interpreter)}`,
    };
  }
  const last = stderr.split(/\r?\n/).filter(Boolean).pop() ?? `exit code ${result.code}`;
  return {
    ok: false,
    reason: "broken",
    message: `ledex cannot be imported in \`${interpreter.python}\` (from ${where}): ${last}`,
  };
}
