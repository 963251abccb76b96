import { describe, expect, it } from "vitest";
import { parseLogLine, progressKind, StatusModel } from "../src/status";

function running(): StatusModel {
  const model = new StatusModel();
  model.serverStarting();
  model.serverReady("0.1.0");
  return model;
}

describe("StatusModel", () => {
  it("goes starting -> idle", () => {
    const model = new StatusModel();
    expect(model.phase()).toBe("stopped");
    model.serverStarting();
    expect(model.view()).toMatchObject({ phase: "starting", error: false });
    model.serverReady("0.1.0");
    expect(model.view()).toMatchObject({ phase: "idle", text: "$(check) ledex" });
    expect(model.view().tooltip).toContain("0.1.0");
  });

  it("shows a test run until the server reports its result", () => {
    const model = running();
    model.testsRequested();
    expect(model.phase()).toBe("running-tests");
    model.testsFinished({ passed: 3, failed: 1, errors: 0 });
    expect(model.view()).toMatchObject({ phase: "idle", text: "$(beaker) ledex: 1 failing" });
    expect(model.view().tooltip).toContain("3 passed, 1 failed");
  });

  it("shows repairing while a fix progress is open, over running tests", () => {
    const model = running();
    const seen: string[] = [];
    model.onChange((view) => seen.push(view.phase));
    model.testsRequested();
    model.progressBegin("t1", "ledex: explain and fix", "tests/test_x.py::test_y");
    expect(model.phase()).toBe("repairing");
    model.progressReport("t1", "round 1/3, verifying 4 candidate(s)");
    expect(model.view().tooltip).toContain("round 1/3");
    model.progressEnd("t1", "fix ready");
    expect(model.phase()).toBe("running-tests");
    model.testsFinished();
    expect(model.phase()).toBe("idle");
    expect(seen).toContain("repairing");
  });

  it("follows the server's test-run progress, and takes the counts from its end", () => {
    const model = running();
    model.progressBegin("run1", "ledex: running the tests", "project");
    expect(model.phase()).toBe("running-tests");
    model.progressEnd("run1", "5 passed, 2 failed, 1 collection error(s) in 1.4s");
    expect(model.view()).toMatchObject({ phase: "idle", text: "$(beaker) ledex: 3 failing" });
    model.progressBegin("run2", "ledex: running the tests", "project");
    model.progressEnd("run2", "cancelled"); // a newer run replaced it
    expect(model.phase()).toBe("idle");
  });

  it("ignores progress it does not know and unknown tokens", () => {
    const model = running();
    model.progressBegin("x", "indexing");
    model.progressEnd("y");
    expect(model.phase()).toBe("idle");
  });

  it("shows errors until the next good run", () => {
    const model = running();
    model.testsFailed("the tests of /w could not run: no pytest");
    expect(model.view()).toMatchObject({ phase: "error", error: true });
    expect(model.view().tooltip).toContain("no pytest");
    model.testsRequested();
    expect(model.phase()).toBe("running-tests");
    model.testsFinished({ passed: 1, failed: 0, errors: 0 });
    expect(model.phase()).toBe("idle");
  });

  it("a failed repair is an error", () => {
    const model = running();
    model.progressBegin("t", "ledex: explain and fix");
    model.progressEnd("t", "failed: the model server cannot be reached");
    expect(model.view()).toMatchObject({ phase: "error" });
  });

  it("a fatal server error stays until the server starts again", () => {
    const model = running();
    model.serverError("ledex is not installed in `python3`", true);
    expect(model.view().tooltip.startsWith("ledex is not installed in `python3`")).toBe(true);
    model.testsRequested();
    expect(model.phase()).toBe("error");
    model.serverStarting();
    expect(model.phase()).toBe("starting");
    model.serverReady();
    expect(model.phase()).toBe("idle");
  });
});

describe("reading the server", () => {
  it("parses the run summary log line (as the client writes it)", () => {
    expect(parseLogLine("[Info  - 10:01:02 PM] ledex: /w/proj: 3 passed, 1 failed in 0.8s (/v/bin/python)")).toEqual({
      kind: "tests-finished",
      passed: 3,
      failed: 1,
      errors: 0,
    });
    expect(parseLogLine("ledex: /w: 0 passed, 0 failed, 2 collection errors in 0.1s (python3)")).toMatchObject({ errors: 2 });
    expect(parseLogLine("[Error - 1:00:00 AM] ledex: the tests of /w could not run: timeout")).toMatchObject({
      kind: "tests-failed",
    });
    expect(parseLogLine("ledex: settings: Settings(...)")).toBeNull();
  });
  it("classifies progress titles", () => {
    expect(progressKind("ledex: explain and fix")).toBe("repair");
    expect(progressKind("ledex: explain and fix (unverified attempt)")).toBe("repair");
    expect(progressKind("ledex: running tests")).toBe("tests");
    expect(progressKind("indexing")).toBe("other");
  });
});
