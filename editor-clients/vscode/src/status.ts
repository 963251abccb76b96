// The status bar item's state: starting / idle / running tests / repairing / error / stopped.
// Pure logic (no `vscode` import), unit-tested in test/status.test.ts.

export type Phase = "starting" | "idle" | "running-tests" | "repairing" | "error" | "stopped";

export interface View {
  phase: Phase;
  /** Status bar text, with a codicon. */
  text: string;
  tooltip: string;
  /** Highlight as an error (statusBarItem.errorBackground). */
  error: boolean;
}

/** What a $/progress `begin` title is about (the server titles repairs "ledex: explain and fix"). */
export function progressKind(title: string): "repair" | "tests" | "other" {
  const lower = title.toLowerCase();
  if (lower.includes("fix")) return "repair";
  if (lower.includes("test")) return "tests";
  return "other";
}

/** The server's log line at the end of a test run: "<root>: 3 passed, 1 failed ... (python)". */
const RUN_SUMMARY = /: (\d+) passed, (\d+) failed(?:, (\d+) collection errors)?/;
/** The end of a test run's $/progress: "3 passed, 1 failed, 2 collection error(s) in 1.2s". */
const TEST_PROGRESS_END = /^(\d+) passed, (\d+) failed(?:, (\d+) collection error)?/;
const RUN_FAILED = /the tests of .* could not run|running the tests of .* failed/;

export type LogEvent =
  | { kind: "tests-finished"; passed: number; failed: number; errors: number }
  | { kind: "tests-failed"; message: string }
  | null;

export function parseLogLine(line: string): LogEvent {
  const summary = RUN_SUMMARY.exec(line);
  if (summary) {
    return {
      kind: "tests-finished",
      passed: Number(summary[1]),
      failed: Number(summary[2]),
      errors: Number(summary[3] ?? 0),
    };
  }
  if (RUN_FAILED.test(line)) {
    return { kind: "tests-failed", message: line.replace(/^ledex: /, "") };
  }
  return null;
}

export class StatusModel {
  private serverState: "starting" | "running" | "stopped" | "error" = "stopped";
  private repairs = new Map<string, string>(); // progress token -> message
  private testRuns = 0; // test runs we expect to finish (guessed from saves, before the server says)
  private testTokens = new Set<string>(); // test runs the server reports with $/progress
  private lastError: string | undefined;
  private lastRun: { passed: number; failed: number; errors: number } | undefined;
  private version: string | undefined;
  private listeners: Array<(view: View) => void> = [];

  onChange(listener: (view: View) => void): void {
    this.listeners.push(listener);
  }

  private changed(): void {
    const view = this.view();
    for (const listener of this.listeners) listener(view);
  }

  serverStarting(): void {
    this.serverState = "starting";
    this.repairs.clear();
    this.testRuns = 0;
    this.testTokens.clear();
    this.changed();
  }

  serverReady(version?: string): void {
    this.serverState = "running";
    this.version = version;
    this.lastError = undefined;
    this.changed();
  }

  serverStopped(): void {
    this.serverState = "stopped";
    this.repairs.clear();
    this.testRuns = 0;
    this.testTokens.clear();
    this.changed();
  }

  /** The server could not start, crashed for good, or said something went wrong. */
  serverError(message: string, fatal: boolean): void {
    if (fatal) {
      this.serverState = "error";
      this.repairs.clear();
      this.testRuns = 0;
    }
    this.lastError = message;
    this.changed();
  }

  /** A test run was asked for (a save, an open, the Run Tests command). */
  testsRequested(): void {
    this.testRuns = Math.min(this.testRuns + 1, 3);
    this.changed();
  }

  testsFinished(result?: { passed: number; failed: number; errors: number }): void {
    this.testRuns = 0; // runs are debounced and coalesced: one result answers them all
    if (result) {
      this.lastRun = result;
      this.lastError = undefined;
    }
    this.changed();
  }

  testsFailed(message: string): void {
    this.testRuns = 0;
    this.lastError = message;
    this.changed();
  }

  progressBegin(token: string, title: string, message?: string): void {
    const kind = progressKind(title);
    if (kind === "repair") {
      this.repairs.set(token, message ?? "");
    } else if (kind === "tests") {
      this.testTokens.add(token);
    }
    this.changed();
  }

  progressReport(token: string, message?: string): void {
    if (this.repairs.has(token) && message) {
      this.repairs.set(token, message);
      this.changed();
    }
  }

  progressEnd(token: string, message?: string): void {
    if (this.testTokens.delete(token)) {
      // the server's word on the run: "3 passed, 1 failed[, 2 collection error(s)] in 1.2s"
      const counts = TEST_PROGRESS_END.exec(message ?? "");
      if (counts) {
        this.testsFinished({ passed: Number(counts[1]), failed: Number(counts[2]), errors: Number(counts[3] ?? 0) });
      } else if (this.testTokens.size === 0) {
        this.testRuns = 0; // cancelled: a newer run follows
        this.changed();
      }
      return;
    }
    if (this.repairs.delete(token)) {
      if (message && message.startsWith("failed")) {
        this.lastError = `explain and fix ${message}`;
      }
      this.changed();
    }
  }

  /** Forget the last error (the user looked at it, or asked again). */
  clearError(): void {
    this.lastError = undefined;
    this.changed();
  }

  phase(): Phase {
    if (this.serverState === "error") return "error";
    if (this.serverState === "stopped") return "stopped";
    if (this.serverState === "starting") return "starting";
    if (this.repairs.size > 0) return "repairing";
    if (this.testRuns > 0 || this.testTokens.size > 0) return "running-tests";
    if (this.lastError !== undefined) return "error";
    return "idle";
  }

  view(): View {
    const phase = this.phase();
    const version = this.version ? ` ${this.version}` : "";
    const hint = "\nClick for the ledex output.";
    switch (phase) {
      case "starting":
        return { phase, text: "$(sync~spin) ledex", tooltip: "ledex: starting the server" + hint, error: false };
      case "stopped":
        return { phase, text: "$(circle-slash) ledex", tooltip: "ledex: the server is not running" + hint, error: false };
      case "repairing": {
        const detail = [...this.repairs.values()].filter(Boolean).pop();
        return {
          phase,
          text: "$(loading~spin) ledex: fixing",
          tooltip: `ledex: explaining and fixing${detail ? `\n${detail}` : ""}` + hint,
          error: false,
        };
      }
      case "running-tests":
        return { phase, text: "$(beaker~spin) ledex: testing", tooltip: "ledex: running the tests" + hint, error: false };
      case "error":
        return {
          phase,
          text: "$(error) ledex",
          tooltip: withPrefix(this.lastError ?? "the server stopped") + hint,
          error: true,
        };
      default: {
        const run = this.lastRun;
        const summary = run
          ? `\nlast run: ${run.passed} passed, ${run.failed} failed` +
            (run.errors ? `, ${run.errors} collection errors` : "")
          : "";
        const text = run && run.failed + run.errors > 0 ? `$(beaker) ledex: ${run.failed + run.errors} failing` : "$(check) ledex";
        return { phase, text, tooltip: `ledex${version}: idle${summary}` + hint, error: false };
      }
    }
  }
}

/** "ledex: message", unless the message names ledex already. */
function withPrefix(message: string): string {
  return /^ledex\b/.test(message) ? message : `ledex: ${message}`;
}
