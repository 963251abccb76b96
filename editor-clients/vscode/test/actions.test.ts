import { describe, expect, it } from "vitest";
import { codeOf, describeFixResult, diagnosticsAt, pickLedexAction } from "../src/actions";

const range = (l1: number, c1: number, l2: number, c2: number) => ({
  start: { line: l1, character: c1 },
  end: { line: l2, character: c2 },
});
const failing = { source: "ledex", code: "tests/test_a.py::test_x", range: range(10, 4, 10, 30) };
const note = { source: "ledex", code: "tests/test_a.py::test_x", range: range(2, 0, 2, 20) };
const other = { source: "pylint", code: "E1", range: range(10, 0, 10, 5) };

describe("diagnosticsAt", () => {
  it("takes the ledex diagnostic under the cursor", () => {
    expect(diagnosticsAt([other, failing, note], { line: 10, character: 8 })).toEqual([failing]);
  });
  it("takes one on the cursor's line", () => {
    expect(diagnosticsAt([failing], { line: 10, character: 0 })).toEqual([failing]);
  });
  it("else the nearest one", () => {
    expect(diagnosticsAt([failing, note], { line: 4, character: 0 })).toEqual([note]);
    expect(diagnosticsAt([failing, note], { line: 9, character: 0 })).toEqual([failing]);
  });
  it("ignores other sources and codeless diagnostics", () => {
    expect(diagnosticsAt([other, { source: "ledex", range: range(1, 0, 1, 1) }], { line: 1, character: 0 })).toEqual([]);
  });
  it("reads wrapped codes", () => {
    expect(codeOf({ source: "ledex", code: { value: "t::x", target: {} }, range: range(0, 0, 0, 0) })).toBe("t::x");
  });
});

describe("pickLedexAction", () => {
  const explain = { title: "ledex: Explain and fix test_x", kind: "quickfix" };
  const verified = { title: "ledex: It adds instead of subtracting. (verified fix for test_x)", kind: "quickfix", isPreferred: true };
  const unverified = { title: "ledex (UNVERIFIED, tests still fail): maybe", kind: "quickfix" };
  const foreign = { title: "Organize imports", kind: "source.organizeImports" };
  const fixAll = { title: "ledex: explain and fix the 1 failing test(s) of this file", kind: "source.fixAll.ledex" };
  it("prefers the verified fix", () => {
    expect(pickLedexAction([foreign, unverified, explain, verified])).toBe(verified);
  });
  it("takes Explain and fix otherwise", () => {
    expect(pickLedexAction([foreign, fixAll, unverified, explain])).toBe(explain);
  });
  it("an unverified attempt only when allowed", () => {
    expect(pickLedexAction([unverified])).toBeUndefined();
    expect(pickLedexAction([unverified], true)).toBe(unverified);
    expect(pickLedexAction([foreign])).toBeUndefined();
  });
});

describe("describeFixResult", () => {
  it("words the command's reply", () => {
    expect(describeFixResult({ applied: true, verified: true, message: "verified fix for t" })).toBe(
      "ledex: applied the verified fix (verified fix for t)",
    );
    expect(describeFixResult({ applied: false, message: "cancelled" })).toBe("ledex: no fix applied: cancelled");
    expect(describeFixResult(null)).toBe("ledex: no fix");
  });
});
