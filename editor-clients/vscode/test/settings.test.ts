import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { needsRestart, runsOn, SERVER_KEYS, serverSettings } from "../src/settings";

const manifest = JSON.parse(readFileSync(join(__dirname, "..", "package.json"), "utf8"));
const properties: Record<string, { default: unknown }> = manifest.contributes.configuration.properties;

describe("serverSettings", () => {
  it("keeps the server's keys only (no `trace`), without unset values", () => {
    const section = { model: "embedded", candidates: 2, trace: { server: "off" }, python: null, unknown: 1 };
    expect(serverSettings(section)).toEqual({ model: "embedded", candidates: 2 });
  });
  it("passes the Python extension's interpreter as the test interpreter", () => {
    expect(serverSettings({}, { python: "/env/bin/python", source: "python-extension" })).toEqual({ python: "/env/bin/python" });
  });
  it("leaves python unset with the python3 fallback (the server then uses the workspace .venv)", () => {
    expect(serverSettings({}, { python: "python3", source: "default" })).toEqual({});
  });
  it("keeps an explicit python setting", () => {
    expect(serverSettings({ python: "/a/python" }, { python: "/a/python", source: "setting" })).toEqual({ python: "/a/python" });
    expect(serverSettings({ python: "" }, { python: "python3", source: "default" })).toEqual({});
  });
  it("handles a missing section", () => {
    expect(serverSettings(undefined)).toEqual({});
  });
});

describe("package.json", () => {
  it("contributes every server setting, and only the extension's own besides", () => {
    const keys = Object.keys(properties).map((k) => k.replace(/^ledex\./, ""));
    expect(keys.filter((k) => !k.startsWith("trace.")).sort()).toEqual([...SERVER_KEYS].sort());
    for (const key of Object.keys(properties)) {
      expect(properties[key], key).toHaveProperty("default");
      expect((properties[key] as { markdownDescription?: string }).markdownDescription, key).toBeTruthy();
    }
  });
  it("contributes the four commands", () => {
    const titles = manifest.contributes.commands.map((c: { category: string; title: string }) => `${c.category}: ${c.title}`);
    expect(titles).toEqual([
      "ledex: Explain and Fix Failing Test",
      "ledex: Run Tests",
      "ledex: Restart Server",
      "ledex: Show Output",
    ]);
  });
  it("bundles: one entry point, vscode external", () => {
    expect(manifest.main).toBe("./dist/extension.js");
    expect(manifest.dependencies).toHaveProperty("vscode-languageclient");
  });
});

describe("other settings logic", () => {
  it("restarts only for a new interpreter", () => {
    expect(needsRestart({ python: "a", source: "setting" }, { python: "a", source: "setting" })).toBe(false);
    expect(needsRestart({ python: "a", source: "setting" }, { python: "b", source: "setting" })).toBe(true);
  });
  it("reads runOn", () => {
    expect([...runsOn({ runOn: ["save"] })]).toEqual(["save"]);
    expect([...runsOn({ runOn: "open" })]).toEqual(["open"]);
    expect(runsOn({}).has("save")).toBe(true);
  });
});
