// Picking the ledex quick fix for the cursor. Pure logic (no `vscode` import, structural types),
// unit-tested in test/actions.test.ts.

export interface Pos {
  line: number;
  character: number;
}
export interface Rng {
  start: Pos;
  end: Pos;
}
export interface DiagnosticLike {
  source?: string;
  code?: unknown;
  range: Rng;
}
export interface ActionLike {
  title: string;
  kind?: string;
  isPreferred?: boolean;
  diagnostics?: DiagnosticLike[];
}

export const SOURCE = "ledex";

function before(a: Pos, b: Pos): boolean {
  return a.line < b.line || (a.line === b.line && a.character < b.character);
}

function contains(range: Rng, position: Pos): boolean {
  return !before(position, range.start) && !before(range.end, position);
}

/**
 * The ledex diagnostics to fix for a cursor: those under the cursor, else those on its line, else
 * (when the file has ledex diagnostics elsewhere) the nearest one; failing tests first (an Error
 * with a pytest node id as its code), then notes.
 */
export function diagnosticsAt<D extends DiagnosticLike>(all: readonly D[], cursor: Pos): D[] {
  const ours = all.filter((d) => d.source === SOURCE && typeof codeOf(d) === "string");
  if (ours.length === 0) return [];
  const under = ours.filter((d) => contains(d.range, cursor));
  if (under.length) return under;
  const onLine = ours.filter((d) => d.range.start.line <= cursor.line && cursor.line <= d.range.end.line);
  if (onLine.length) return onLine;
  const distance = (d: D) =>
    Math.min(Math.abs(d.range.start.line - cursor.line), Math.abs(d.range.end.line - cursor.line));
  const nearest = Math.min(...ours.map(distance));
  return ours.filter((d) => distance(d) === nearest);
}

/** A diagnostic's code as a string (VS Code may wrap it as {value, target}). */
export function codeOf(d: DiagnosticLike): string | undefined {
  const code = d.code as unknown;
  if (typeof code === "string") return code;
  if (code && typeof code === "object" && typeof (code as { value?: unknown }).value === "string") {
    return (code as { value: string }).value;
  }
  return undefined;
}

/** The ledex quick fix to run: a verified (preferred) fix first, then "Explain and fix", never
 * an UNVERIFIED attempt unless it is all there is and `allowUnverified`. */
export function pickLedexAction<A extends ActionLike>(actions: readonly A[], allowUnverified = false): A | undefined {
  const ours = actions.filter(
    (a) => a.title.startsWith("ledex") && (a.kind === undefined || a.kind === "quickfix" || a.kind.startsWith("quickfix")),
  );
  const verified = ours.filter((a) => !a.title.includes("UNVERIFIED"));
  const preferred = verified.find((a) => a.isPreferred);
  if (preferred) return preferred;
  if (verified.length) return verified[0];
  return allowUnverified ? ours[0] : undefined;
}

/** The reply of the server's `ledex.explainAndFix` command, in words. */
export function describeFixResult(result: unknown): string {
  if (!result || typeof result !== "object") return "ledex: no fix";
  const r = result as { applied?: boolean; verified?: boolean; message?: string };
  if (r.applied) return `ledex: applied the ${r.verified ? "verified fix" : "unverified attempt"}${r.message ? ` (${r.message})` : ""}`;
  return `ledex: no fix applied${r.message ? `: ${r.message}` : ""}`;
}
