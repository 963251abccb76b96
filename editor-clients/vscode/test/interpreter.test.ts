import { describe, expect, it } from "vitest";
import {
  installCommand,
  judgeProbe,
  resolveInterpreter,
  serverCommand,
  shellQuote,
} from "../src/interpreter";

describe("resolveInterpreter", () => {
  it("prefers the setting", () => {
    expect(resolveInterpreter("/opt/venv/bin/python", "/usr/bin/python3.11")).toEqual({
      python: "/opt/venv/bin/python",
      source: "setting",
    });
  });
  it("falls back to the Python extension's interpreter", () => {
    expect(resolveInterpreter(undefined, "/home/u/.venv/bin/python")).toEqual({
      python: "/home/u/.venv/bin/python",
      source: "python-extension",
    });
    expect(resolveInterpreter("  ", "/x/python")).toMatchObject({ source: "python-extension" });
    expect(resolveInterpreter(null, "/x/python")).toMatchObject({ source: "python-extension" });
  });
  it("falls back to python3", () => {
    expect(resolveInterpreter(undefined, undefined)).toEqual({ python: "python3", source: "default" });
    expect(resolveInterpreter("", "")).toEqual({ python: "python3", source: "default" });
  });
  it("expands ~ in the setting", () => {
    const home = process.env.HOME;
    process.env.HOME = "/home/me";
    try {
      expect(resolveInterpreter("~/venv/bin/python", undefined).python).toBe("/home/me/venv/bin/python");
    } finally {
      process.env.HOME = home;
    }
  });
});

describe("the server command", () => {
  it("runs the module ledex serve with the interpreter", () => {
    expect(serverCommand({ python: "/v/bin/python", source: "setting" })).toEqual({
      command: "/v/bin/python",
      args: ["-m", "ledex", "serve"],
    });
  });
  it("quotes the install command when needed", () => {
    expect(installCommand({ python: "/v/bin/python", source: "setting" })).toBe("/v/bin/python -m pip install ledex");
    expect(installCommand({ python: "/my env/python", source: "setting" })).toBe("'/my env/python' -m pip install ledex");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });
});

describe("judgeProbe", () => {
  const python = { python: "/v/bin/python", source: "setting" as const };
  it("accepts an importable ledex and reads its version", () => {
    expect(judgeProbe(python, { code: 0, stdout: "0.1.0\n", stderr: "" })).toEqual({ ok: true, version: "0.1.0" });
  });
  it("says how to install ledex when it is missing", () => {
    const verdict = judgeProbe(python, {
      code: 1,
      stdout: "",
      stderr: "Traceback (most recent call last):\n  File \"<string>\", line 1\nModuleNotFoundError: No module named 'ledex'\n",
    });
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) {
      expect(verdict.reason).toBe("not-installed");
      expect(verdict.message).toContain("/v/bin/python -m pip install ledex");
      expect(verdict.message).toContain("ledex.python");
    }
  });
  it("tells a missing interpreter from a missing package", () => {
    const verdict = judgeProbe({ python: "python3", source: "default" }, { code: null, stdout: "", stderr: "", spawnError: "ENOENT" });
    expect(verdict).toMatchObject({ ok: false, reason: "no-interpreter" });
    if (!verdict.ok) expect(verdict.message).toContain("was not found");
  });
  it("reports other import errors with their last line", () => {
    const verdict = judgeProbe(python, { code: 1, stdout: "", stderr: "Traceback\nImportError: cannot import name 'x'\n" });
    expect(verdict).toMatchObject({ ok: false, reason: "broken" });
    if (!verdict.ok) expect(verdict.message).toContain("ImportError: cannot import name 'x'");
  });
  it("reports a probe that hangs", () => {
    expect(judgeProbe(python, { code: null, stdout: "", stderr: "", timedOut: true })).toMatchObject({ ok: false, reason: "broken" });
  });
});
