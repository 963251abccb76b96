// End-to-end: the packaged extension in a real VS Code (code-server) in a real browser (Debian's
// chromium, driven by playwright-core). Opens the buggy project, waits for ledex's diagnostic,
// picks "Explain and fix" from the quick-fix menu, saves, and checks the file on disk is fixed.
// Run by tests/editor_clients/test_vscode.py, which starts the scripted model and sets:
//   LEDEX_E2E_WORKSPACE  a copy of examples/buggy_inventory (it gets edited)
//   LEDEX_E2E_PYTHON     the interpreter with ledex installed (setting ledex.python)
//   LEDEX_E2E_MODEL      the model spec (setting ledex.model), e.g. openai:http://127.0.0.1:PORT/v1#m
//   LEDEX_E2E_VSIX       the packaged extension
//   LEDEX_E2E_ARTIFACTS  where screenshots and logs go
//   LEDEX_E2E_FILE, LEDEX_E2E_EXPECT  the file to fix (relative to the workspace), and a line
//                        the fixed file must hold
//   CHROMIUM             the browser (default /usr/bin/chromium)
//   LEDEX_E2E_SCENARIO   `fix` (default), or `not-installed`: LEDEX_E2E_PYTHON lacks ledex, and
//                        the extension must say so with the install command
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const workspace = resolve(env("LEDEX_E2E_WORKSPACE"));
const python = env("LEDEX_E2E_PYTHON");
const model = env("LEDEX_E2E_MODEL");
const vsix = resolve(env("LEDEX_E2E_VSIX"));
const artifacts = resolve(env("LEDEX_E2E_ARTIFACTS", join(here, "artifacts")));
const file = env("LEDEX_E2E_FILE");
const expected = env("LEDEX_E2E_EXPECT");
const browserPath = env("CHROMIUM", "/usr/bin/chromium");
const scenario = env("LEDEX_E2E_SCENARIO", "fix");
const codeServer = join(here, "node_modules", ".bin", "code-server");
const DIAGNOSTIC_TIMEOUT = Number(process.env.LEDEX_E2E_DIAGNOSTIC_TIMEOUT ?? 120_000);
const FIX_TIMEOUT = Number(process.env.LEDEX_E2E_FIX_TIMEOUT ?? 120_000);
// With a model on this machine the server repairs a new failure in the background: the quick fix
// is then the verified fix, titled with the explanation, before anyone asks (LEDEX_E2E_PREFETCH=1
// waits for that title instead of taking "Explain and fix").
const PREFETCH = process.env.LEDEX_E2E_PREFETCH === "1";
const QUICK_FIX = PREFETCH ? /\(verified fix for/i : /Explain and fix|\(verified fix for/i;

const started = Date.now();
const say = (message) => console.log(`[e2e +${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);

mkdirSync(artifacts, { recursive: true });
const scratch = mkdtempSync(join(tmpdir(), "ledex-vscode-e2e-"));
const userData = join(scratch, "user-data");
const extensions = join(scratch, "extensions");
const browserProfile = join(scratch, "chromium");
let server;
let context;

async function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

async function waitForHttp(url, timeout) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`code-server exited with ${server.exitCode}; see code-server.log`);
    try {
      const reply = await fetch(url);
      if (reply.ok) return;
      last = `HTTP ${reply.status}`;
    } catch (error) {
      last = error.message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not answer in ${timeout} ms (${last})`);
}

async function poll(what, timeout, check) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
}

async function main() {
  // 1. A fresh profile with the packaged extension and the settings under test.
  say(`installing ${vsix}`);
  const install = spawnSync(
    codeServer,
    ["--user-data-dir", userData, "--extensions-dir", extensions, "--install-extension", vsix],
    { encoding: "utf8", timeout: 120_000 },
  );
  writeFileSync(join(artifacts, "install-extension.log"), `${install.stdout}\n${install.stderr}`);
  if (install.status !== 0) throw new Error(`--install-extension failed (${install.status}): ${install.stderr || install.stdout}`);
  mkdirSync(join(userData, "User"), { recursive: true });
  const settings = {
    "ledex.python": python,
    "ledex.model": model,
    "ledex.candidates": 1,
    "ledex.rounds": 1,
    "ledex.debounce": 0.1,
    "ledex.trace.server": "messages",
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": false,
    "workbench.enableExperiments": false,
    "workbench.welcomePage.walkthroughs.openOnInstall": false,
    "security.workspace.trust.enabled": false,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "extensions.autoCheckUpdates": false,
    "extensions.autoUpdate": false,
    "extensions.ignoreRecommendations": true,
    "editor.minimap.enabled": false,
    "editor.fontSize": 15,
    "files.autoSave": "off",
    "window.restoreWindows": "none",
    "chat.disableAIFeatures": true,
    "workbench.panel.defaultLocation": "bottom",
  };
  writeFileSync(join(userData, "User", "settings.json"), JSON.stringify(settings, null, 2));

  // 2. code-server on loopback, no auth.
  const port = await freePort();
  const log = createWriteStream(join(artifacts, "code-server.log"));
  server = spawn(
    codeServer,
    [
      "--auth", "none",
      "--bind-addr", `127.0.0.1:${port}`,
      "--user-data-dir", userData,
      "--extensions-dir", extensions,
      "--disable-telemetry",
      "--disable-update-check",
      "--disable-workspace-trust",
      "--disable-getting-started-override",
      "--ignore-last-opened",
      "--config", join(scratch, "code-server.yaml"), // not ~/.config/code-server/config.yaml
      workspace,
    ],
    { stdio: ["ignore", "pipe", "pipe"], detached: true, env: { ...process.env, VSCODE_PROXY_URI: "" } },
  );
  // For the pytest test: what to kill if this script is killed before it cleans up.
  writeFileSync(join(artifacts, "code-server.pid"), String(server.pid));
  server.stdout.pipe(log);
  server.stderr.pipe(log);
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/healthz`, 60_000);
  say(`code-server is up on ${base}`);

  // 3. Chromium (Debian's), headless, with its own fresh profile.
  context = await chromium.launchPersistentContext(browserProfile, {
    executablePath: browserPath,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleLog = createWriteStream(join(artifacts, "browser-console.log"));
  page.on("console", (message) => consoleLog.write(`${message.type()}: ${message.text()}\n`));
  await page.goto(`${base}/?folder=${encodeURIComponent(workspace)}`);
  await page.waitForSelector(".monaco-workbench", { timeout: 60_000 });
  await page.waitForSelector(".statusbar", { timeout: 60_000 });
  say("the workbench is loaded");

  try {
    if (scenario === "not-installed") {
      await saysHowToInstall(page);
    } else {
      const buggy = await fix(page);
      await fixWithCommands(page, buggy);
      await restartsAfterCrash(page);
    }
  } catch (error) {
    await page.screenshot({ path: join(artifacts, "vscode-failure.png") }).catch(() => {});
    await dumpOutput(page).catch(() => {});
    throw error;
  }
}

async function commandPalette(page, command) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: 10_000 });
  await input.fill(`>${command}`);
  await page.locator(".quick-input-list .monaco-list-row").first().waitFor({ timeout: 10_000 });
  await page.keyboard.press("Enter");
}

async function dumpOutput(page) {
  // The ledex output channel on screen (the whole log is copied to logs/1-ledex.log at the end).
  await commandPalette(page, "ledex: Show Output");
  await page.waitForTimeout(1_500);
  await page.screenshot({ path: join(artifacts, "vscode-failure-output.png") }).catch(() => {});
}

async function fix(page) {
  const target = join(workspace, file);
  const before = readFileSync(target, "utf8");
  if (before.includes(expected)) throw new Error(`${file} already holds the fix`);

  // Open the file under repair (Quick Open) and wait for the extension's status item.
  await page.locator(".monaco-workbench").click({ position: { x: 700, y: 400 } }).catch(() => {});
  await page.keyboard.press("Control+P");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: 10_000 });
  await input.fill(file);
  await page.locator(".quick-input-list .monaco-list-row").first().waitFor({ timeout: 20_000 });
  await page.keyboard.press("Enter");
  const name = file.split("/").pop();
  await page.locator(`.tabs-container .tab[aria-label*="${name}"]`).first().waitFor({ timeout: 20_000 });
  say(`opened ${file}`);
  const status = page.locator('.statusbar-item[id*="ledex"]');
  await status.first().waitFor({ timeout: 60_000 });
  say(`status bar: ${(await status.first().innerText()).trim()}`);

  // ledex runs the tests and reports the failure at the function under repair (a squiggle, and
  // an entry in the Problems panel).
  await page.locator(".monaco-editor .squiggly-info, .monaco-editor .squiggly-error").first().waitFor({
    timeout: DIAGNOSTIC_TIMEOUT,
  });
  say("the diagnostic is shown");
  await page.keyboard.press("Control+Shift+M"); // the Problems panel
  const problem = page.locator(".markers-panel .monaco-list-row", { hasText: "test_remove_decreases_count" }).first();
  await problem.waitFor({ timeout: 20_000 });
  say(`Problems: ${(await problem.innerText()).replace(/\s+/g, " ").trim()}`);
  await page.screenshot({ path: join(artifacts, "vscode-diagnostic.png") });

  // The quick fix at ledex's diagnostic in this file (the note at the function under repair):
  // F8 moves the cursor to it, Ctrl+. opens the quick-fix menu.
  await page.locator(".monaco-editor .view-lines").first().click();
  await page.keyboard.press("Control+Home");
  await page.keyboard.press("F8");
  await page.locator(".marker-widget").first().waitFor({ timeout: 10_000 });
  await page.keyboard.press("Escape");
  await page.waitForTimeout(300);
  let item;
  for (let attempt = 0; attempt < (PREFETCH ? 15 : 5) && !item; attempt++) {
    await page.keyboard.press("Control+.");
    const candidate = page.locator(".action-widget .monaco-list-row", { hasText: QUICK_FIX }).first();
    try {
      await candidate.waitFor({ timeout: 10_000 });
      item = candidate;
    } catch {
      await page.keyboard.press("Escape");
      await page.waitForTimeout(1_000);
    }
  }
  if (!item) throw new Error(`the quick-fix menu has no ${QUICK_FIX}`);
  say(`quick fix: ${(await item.innerText()).trim()}`);
  await page.screenshot({ path: join(artifacts, "vscode-quickfix-menu.png") });
  // Choose it with the keyboard (the menu focuses its first action; a pointer click on the menu
  // row is not reliable in headless chromium).
  const rows = await page.locator(".action-widget .monaco-list-row.action").allInnerTexts();
  const index = rows.findIndex((text) => QUICK_FIX.test(text));
  for (let i = 0; i < index; i++) await page.keyboard.press("ArrowDown");
  await page.keyboard.press("Enter");

  // The server repairs (the scripted model, verified in the sandbox) and resolves the action with
  // the edit; VS Code applies it to the open document. Then save and check the disk.
  await page.locator(".tabs-container .tab.dirty").first().waitFor({ timeout: FIX_TIMEOUT });
  say("the fix is applied to the editor (unsaved)");
  await page.keyboard.press("Control+End"); // the end of the file: the repaired function in view
  await page.keyboard.press("Control+S");
  try {
    await poll(`${file} on disk to hold the fix`, 20_000, () => readFileSync(target, "utf8").includes(expected));
  } finally {
    writeFileSync(join(artifacts, "fixed-file.py"), readFileSync(target, "utf8"));
  }
  say(`${file} on disk is fixed`);

  // Saving re-runs the tests: the diagnostic goes away.
  await poll("the diagnostic to clear", DIAGNOSTIC_TIMEOUT, async () => {
    const rows = await page.locator(".markers-panel .monaco-list-row", { hasText: "test_remove_decreases_count" }).count();
    return rows === 0;
  });
  say("the diagnostic is gone");
  await page.waitForTimeout(500);
  const text = (await page.locator(".monaco-editor .view-lines").first().innerText()).replace(/\u00a0/g, " ");
  if (!text.includes(expected.trim())) throw new Error(`the editor does not show the fix:\n${text}`);
  await page.screenshot({ path: join(artifacts, "vscode-fixed.png") });
  say(`screenshot: ${join(artifacts, "vscode-fixed.png")}`);
  return before;
}

/** The `ledex serve` processes started by our code-server (never another test's). */
function ourLedexServers() {
  const parentOf = (pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      return 0;
    }
  };
  const descends = (pid) => {
    for (let p = pid, hops = 0; p > 1 && hops < 20; p = parentOf(p), hops++) {
      if (p === server.pid) return true;
    }
    return false;
  };
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
        return argv.includes("ledex") && argv.includes("serve") && descends(pid);
      } catch {
        return false;
      }
    });
}

/** Kill the server: the extension restarts it (backoff), and "ledex: Run Tests" works again. */
async function restartsAfterCrash(page) {
  const [pid] = ourLedexServers();
  if (!pid) throw new Error("no `ledex serve` process under code-server");
  process.kill(pid, "SIGKILL");
  say(`killed ledex serve (pid ${pid})`);
  const status = page.locator('.statusbar-item[id*="ledex"]').first();
  await poll("a new server process", 60_000, () => ourLedexServers().some((p) => p !== pid));
  // idle again: the check mark (or the beaker of "N failing"), not the spinner of "starting"
  await poll("the status bar to say idle again", 60_000, async () =>
    (await status.locator(".codicon-check, .codicon-beaker:not(.codicon-modifier-spin)").count()) > 0,
  );
  say(`restarted (pid ${ourLedexServers()[0]}); status bar: ${(await status.innerText()).trim()}`);
  await commandPalette(page, "ledex: Run Tests");
  const message = page.locator(".statusbar-item", { hasText: /ledex: \d+ passed, 0 failed/ }).first();
  await message.waitFor({ timeout: DIAGNOSTIC_TIMEOUT });
  say(`ledex: Run Tests after the restart: ${(await message.innerText()).trim()}`);
}

/** An interpreter without ledex: an error notification with the install command, and the status
 * bar item in its error state. */
async function saysHowToInstall(page) {
  const toast = page.locator(".notifications-toasts .notification-toast", { hasText: "is not installed" }).first();
  await toast.waitFor({ timeout: 60_000 });
  const text = (await toast.innerText()).replace(/\s+/g, " ");
  say(`notification: ${text}`);
  for (const part of [`${python} -m pip install ledex`, "Copy Install Command"]) {
    if (!text.includes(part)) throw new Error(`the notification lacks "${part}": ${text}`);
  }
  const status = page.locator('.statusbar-item[id*="ledex"]').first();
  await status.waitFor({ timeout: 10_000 });
  const tooltip = (await status.getAttribute("aria-label")) ?? "";
  say(`status bar: ${(await status.innerText()).trim()} (${tooltip})`);
  await page.screenshot({ path: join(artifacts, "vscode-not-installed.png") });
}

/** The extension's own commands: put the bug back (on disk), "ledex: Run Tests", then
 * "ledex: Explain and Fix Failing Test" with the cursor at the top of the file. */
async function fixWithCommands(page, buggy) {
  const target = join(workspace, file);
  writeFileSync(target, buggy);
  await poll("the editor to reload the buggy file", 30_000, async () => {
    await page.keyboard.press("Control+End");
    const text = (await page.locator(".monaco-editor .view-lines").first().innerText()).replace(/\u00a0/g, " ");
    return !text.includes(expected.trim());
  });
  await commandPalette(page, "ledex: Run Tests");
  const problem = page.locator(".markers-panel .monaco-list-row", { hasText: "test_remove_decreases_count" }).first();
  await problem.waitFor({ timeout: DIAGNOSTIC_TIMEOUT });
  say("ledex: Run Tests reported the failure again");
  await page.locator(".monaco-editor .view-lines").first().click();
  await page.keyboard.press("Control+Home");
  await commandPalette(page, "ledex: Explain and Fix Failing Test");
  await page.locator(".tabs-container .tab.dirty").first().waitFor({ timeout: FIX_TIMEOUT });
  await page.keyboard.press("Control+S");
  await poll(`${file} on disk to hold the fix again`, 20_000, () => readFileSync(target, "utf8").includes(expected));
  say("ledex: Explain and Fix Failing Test fixed the file");
  await poll("the diagnostic to clear", DIAGNOSTIC_TIMEOUT, async () => (await problem.count()) === 0);
  await page.screenshot({ path: join(artifacts, "vscode-fixed-by-command.png") });
}

/** VS Code's logs, with the ledex output channel (the server's log), into the artifacts. */
function keepLogs() {
  const keep = join(artifacts, "logs");
  const walk = (dir) => {
    let entries = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/ledex|exthost\.log|remoteagent\.log/.test(entry.name)) {
        mkdirSync(keep, { recursive: true });
        copyFileSync(path, join(keep, entry.name));
      }
    }
  };
  walk(join(userData, "logs"));
}

async function cleanUp() {
  await context?.close().catch(() => {});
  keepLogs();
  if (server && server.exitCode === null) {
    try {
      process.kill(-server.pid, "SIGTERM"); // code-server and the extension host it started
    } catch {
      // gone already
    }
    await new Promise((r) => setTimeout(r, 1_000));
    try {
      process.kill(-server.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  rmSync(scratch, { recursive: true, force: true });
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    console.error(`[e2e] ${signal}: stopping code-server`);
    await cleanUp();
    process.exit(130);
  });
}

main()
  .then(async () => {
    await cleanUp();
    say("passed");
    process.exit(0);
  })
  .catch(async (error) => {
    console.error(`[e2e] FAILED: ${error.stack ?? error}`);
    await cleanUp();
    process.exit(1);
  });
