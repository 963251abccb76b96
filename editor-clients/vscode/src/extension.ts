// The VS Code side of ledex: starts `ledex serve` (vscode-languageclient over stdio) with the right
// interpreter, restarts it when it crashes, and adds the commands, the status bar item and the
// output channel. The features themselves (diagnostics, quick fixes, hover) come through LSP.
// The decisions live in modules without `vscode` imports (interpreter, backoff, status, settings,
// actions), unit-tested with vitest.
import { spawn } from "node:child_process";
import * as vscode from "vscode";
import {
  CloseAction,
  CodeActionKind,
  CodeActionRequest,
  CodeActionResolveRequest,
  CodeActionTriggerKind,
  ErrorAction,
  ExecuteCommandRequest,
  LanguageClient,
  State,
  type CodeAction as LspCodeAction,
  type Command as LspCommand,
  type LanguageClientOptions,
  type ServerOptions,
} from "vscode-languageclient/node";

import { codeOf, describeFixResult, diagnosticsAt, pickLedexAction } from "./actions";
import { RestartPolicy } from "./backoff";
import {
  describeSource,
  installCommand,
  type Interpreter,
  judgeProbe,
  PROBE_ARGS,
  type ProbeResult,
  resolveInterpreter,
  serverCommand,
} from "./interpreter";
import { needsRestart, runsOn, SECTION, serverSettings } from "./settings";
import { parseLogLine, StatusModel } from "./status";

const SERVER_RUN_TESTS = "ledex.runTests";
const CONFIG_FILES = /(^|[\\/])(pyproject\.toml|pytest\.ini|setup\.cfg|tox\.ini)$/;
const PROBE_TIMEOUT_MS = 30_000;

let manager: ServerManager | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<LedexApi> {
  const output = vscode.window.createOutputChannel("ledex");
  const status = new StatusModel();
  const item = vscode.window.createStatusBarItem("ledex.status", vscode.StatusBarAlignment.Left, 0);
  item.name = "ledex";
  item.command = "ledex.showOutput";
  const render = () => {
    const view = status.view();
    item.text = view.text;
    item.tooltip = view.tooltip;
    item.backgroundColor = view.error ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
    item.show();
  };
  status.onChange(render);
  render();

  manager = new ServerManager(context, output, status);
  context.subscriptions.push(
    output,
    item,
    manager,
    vscode.commands.registerCommand("ledex.explainAndFixAtCursor", () => manager!.explainAndFixAtCursor()),
    vscode.commands.registerCommand("ledex.runTestsNow", () => manager!.runTests()),
    vscode.commands.registerCommand("ledex.restartServer", () => manager!.restart(true)),
    vscode.commands.registerCommand("ledex.showOutput", () => output.show(true)),
    vscode.workspace.onDidChangeConfiguration((event) => manager!.onConfigurationChanged(event)),
  );
  await manager.start();
  return { status: () => status.view(), client: () => manager?.client };
}

export async function deactivate(): Promise<void> {
  await manager?.stop();
  manager = undefined;
}

/** What the extension exports (for other extensions and tests). */
export interface LedexApi {
  status(): ReturnType<StatusModel["view"]>;
  client(): LanguageClient | undefined;
}

class ServerManager implements vscode.Disposable {
  client: LanguageClient | undefined;
  private interpreter: Interpreter | undefined;
  private readonly policy = new RestartPolicy();
  private startedAt: number | undefined;
  private testsWatchdog: NodeJS.Timeout | undefined;
  private readonly log: vscode.OutputChannel;
  private starting: Promise<void> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly output: vscode.OutputChannel,
    private readonly status: StatusModel,
  ) {
    this.log = watchedChannel(output, (line) => this.onLogLine(line));
  }

  dispose(): void {
    clearTimeout(this.restartTimer);
    clearTimeout(this.testsWatchdog);
    void this.stop();
  }

  // --- lifecycle --------------------------------------------------------------------------------

  start(): Promise<void> {
    this.starting ??= this.doStart().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async doStart(): Promise<void> {
    this.status.serverStarting();
    const interpreter = resolveInterpreter(
      vscode.workspace.getConfiguration(SECTION).get<string | null>("python"),
      await pythonExtensionInterpreter(this.context, (path) => this.onPythonChanged(path)),
    );
    this.interpreter = interpreter;
    this.output.appendLine(`ledex: starting the server with ${interpreter.python} (${describeSource(interpreter)})`);
    const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath; // where the server runs
    const verdict = judgeProbe(interpreter, await probe(interpreter.python, cwd));
    if (!verdict.ok) {
      this.status.serverError(verdict.message, true);
      this.output.appendLine(verdict.message);
      void this.explainProbeFailure(interpreter, verdict.reason, verdict.message);
      return;
    }
    const client = this.createClient(interpreter);
    this.client = client;
    try {
      this.startedAt = Date.now();
      await client.start();
      this.status.serverReady(verdict.version);
      this.output.appendLine(`ledex: server ${verdict.version} running`);
    } catch (error) {
      const message = `ledex: the server did not start: ${errorText(error)}`;
      this.output.appendLine(message);
      if (this.restartTimer === undefined) {
        // (with a restart scheduled, the status bar says so, and the backoff ends in a message)
        this.status.serverError(message, true);
        void vscode.window.showErrorMessage(message, "Show Output").then((choice) => {
          if (choice) this.output.show(true);
        });
      }
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) {
      try {
        if (client.state !== State.Stopped) await client.stop(5_000);
      } catch (error) {
        this.output.appendLine(`ledex: stopping the server: ${errorText(error)}`);
      }
      try {
        await client.dispose(1_000);
      } catch {
        // already stopped
      }
    }
    this.status.serverStopped();
  }

  async restart(byHand = false): Promise<void> {
    if (byHand) {
      this.policy.reset();
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
    }
    await this.starting;
    await this.stop();
    await this.start();
  }

  private async explainProbeFailure(interpreter: Interpreter, reason: string, message: string): Promise<void> {
    const actions = reason === "not-installed" ? ["Copy Install Command", "Open Settings", "Show Output"] : ["Open Settings", "Show Output"];
    const choice = await vscode.window.showErrorMessage(message, ...actions);
    if (choice === "Copy Install Command") {
      await vscode.env.clipboard.writeText(installCommand(interpreter));
    } else if (choice === "Open Settings") {
      await vscode.commands.executeCommand("workbench.action.openSettings", "ledex.python");
    } else if (choice === "Show Output") {
      this.output.show(true);
    }
  }

  private createClient(interpreter: Interpreter): LanguageClient {
    const { command, args } = serverCommand(interpreter);
    const folder = vscode.workspace.workspaceFolders?.[0];
    // stdio is the default; naming `transport: stdio` would make the client append `--stdio`.
    const serverOptions: ServerOptions = {
      command,
      args,
      options: { cwd: folder?.uri.fsPath, env: { ...process.env, PYTHONUNBUFFERED: "1" } },
    };
    const settingsFor = (scope?: vscode.Uri) =>
      serverSettings(sectionObject(vscode.workspace.getConfiguration(SECTION, scope)), this.interpreter);
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: "file", language: "python" },
        { scheme: "file", pattern: "**/{pyproject.toml,pytest.ini,setup.cfg,tox.ini}" },
      ],
      outputChannel: this.log,
      initializationOptions: { [SECTION]: settingsFor() },
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue, handled: true }),
        closed: () => this.onServerClosed(client),
      },
      middleware: {
        workspace: {
          // Answer `workspace/configuration` with the server's keys only (the section also holds
          // the extension's own, e.g. `trace`, which the server would warn about).
          configuration: async (params, token, next) => {
            const answers = await next(params, token);
            if (!Array.isArray(answers)) return answers;
            return params.items.map((item, index) =>
              item.section === SECTION
                ? settingsFor(item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined)
                : answers[index],
            );
          },
        },
        didOpen: async (document, next) => {
          this.noteTestTrigger(document, "open");
          return next(document);
        },
        didSave: async (document, next) => {
          this.noteTestTrigger(document, "save");
          return next(document);
        },
        handleWorkDoneProgress: (token, params, next) => {
          const key = String(token);
          if (params.kind === "begin") this.status.progressBegin(key, params.title, params.message);
          else if (params.kind === "report") this.status.progressReport(key, params.message);
          else this.status.progressEnd(key, params.message);
          next(token, params);
        },
      },
    };
    const client: LanguageClient = new LanguageClient("ledex", "ledex", serverOptions, clientOptions);
    return client;
  }

  /** The server's connection closed without us stopping it: a crash. Start a fresh client (the
   * interpreter is resolved and checked again) after the backoff's delay, or give up. */
  private onServerClosed(client: LanguageClient): { action: CloseAction; message?: string; handled?: boolean } {
    if (client !== this.client) {
      return { action: CloseAction.DoNotRestart, handled: true }; // an old client, replaced already
    }
    const decision = this.policy.onCrash(Date.now(), this.startedAt);
    if (!decision.restart) {
      const message =
        `ledex: the server stopped ${decision.crashes} times in ${Math.round(decision.window / 60_000)} minutes; ` +
        "it will not be restarted. See the ledex output, then run 'ledex: Restart Server'.";
      this.status.serverError(message, true);
      void vscode.window.showErrorMessage(message, "Show Output", "Restart Server").then((choice) => {
        if (choice === "Show Output") this.output.show(true);
        if (choice === "Restart Server") void this.restart(true);
      });
      return { action: CloseAction.DoNotRestart, message, handled: true };
    }
    const seconds = Math.max(1, Math.round(decision.delay / 1000));
    const message = `ledex: the server stopped unexpectedly; restarting it in ${seconds}s (attempt ${decision.attempt})`;
    this.status.serverStarting();
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.restart(false);
    }, decision.delay);
    return { action: CloseAction.DoNotRestart, message, handled: true };
  }

  async onConfigurationChanged(event: vscode.ConfigurationChangeEvent): Promise<void> {
    if (!event.affectsConfiguration(SECTION)) return;
    const next = resolveInterpreter(
      vscode.workspace.getConfiguration(SECTION).get<string | null>("python"),
      this.interpreter?.source === "python-extension" ? this.interpreter.python : undefined,
    );
    if (!this.client || !this.interpreter || needsRestart(this.interpreter, next)) {
      await this.restart(true);
      return;
    }
    // Pushed as a `ledex` object; the server also pulls `workspace/configuration` (filtered above).
    const settings = serverSettings(sectionObject(vscode.workspace.getConfiguration(SECTION)), this.interpreter);
    await this.client.sendNotification("workspace/didChangeConfiguration", { settings: { [SECTION]: settings } });
  }

  private onPythonChanged(path: string | undefined): void {
    if (this.interpreter && this.interpreter.source !== "setting" && path && path !== this.interpreter.python) {
      this.output.appendLine(`ledex: the Python extension's interpreter changed to ${path}; restarting the server`);
      void this.restart(true);
    }
  }

  // --- status -----------------------------------------------------------------------------------

  private noteTestTrigger(document: vscode.TextDocument, event: "open" | "save"): void {
    const isTestInput = document.languageId === "python" || CONFIG_FILES.test(document.uri.fsPath);
    const settings = sectionObject(vscode.workspace.getConfiguration(SECTION, document.uri));
    if (!isTestInput || !runsOn(settings).has(event) || !vscode.workspace.getWorkspaceFolder(document.uri)) return;
    this.testsStarted(Number(settings.timeout ?? 60));
  }

  private testsStarted(timeoutSeconds: number): void {
    this.status.testsRequested();
    clearTimeout(this.testsWatchdog);
    // The server says when a run ends (its log); never spin forever if a line is missed.
    this.testsWatchdog = setTimeout(() => this.status.testsFinished(), (timeoutSeconds + 30) * 1000);
  }

  private onLogLine(line: string): void {
    const event = parseLogLine(line);
    if (event?.kind === "tests-finished") {
      clearTimeout(this.testsWatchdog);
      this.status.testsFinished(event);
    } else if (event?.kind === "tests-failed") {
      clearTimeout(this.testsWatchdog);
      this.status.testsFailed(event.message);
    } else if (/^\[Error/.test(line)) {
      this.status.serverError(line.replace(/^\[Error\s*-[^\]]*\]\s*/, ""), false);
    }
  }

  // --- commands ---------------------------------------------------------------------------------

  private async runningClient(): Promise<LanguageClient | undefined> {
    await this.starting;
    if (this.client?.state === State.Running) return this.client;
    if (this.restartTimer !== undefined) {
      void vscode.window.showInformationMessage("ledex: the server is restarting; try again in a moment.");
      return undefined;
    }
    const choice = await vscode.window.showErrorMessage("ledex: the server is not running.", "Restart Server", "Show Output");
    if (choice === "Restart Server") await this.restart(true);
    if (choice === "Show Output") this.output.show(true);
    const after = this.client as LanguageClient | undefined;
    return after?.state === State.Running ? after : undefined;
  }

  async runTests(): Promise<void> {
    const client = await this.runningClient();
    if (!client) return;
    const uri = vscode.window.activeTextEditor?.document.uri;
    const args = uri && vscode.workspace.getWorkspaceFolder(uri) ? [{ uri: uri.toString() }] : [];
    this.status.clearError();
    this.testsStarted(Number(vscode.workspace.getConfiguration(SECTION).get("timeout") ?? 60));
    try {
      const result = (await client.sendRequest(ExecuteCommandRequest.type, { command: SERVER_RUN_TESTS, arguments: args })) as
        | Record<string, { status: string; passed: number; failed: number; collectionErrors: number }>
        | null;
      const runs = Object.values(result ?? {});
      const total = runs.reduce(
        (sum, r) => ({ passed: sum.passed + r.passed, failed: sum.failed + r.failed, errors: sum.errors + r.collectionErrors }),
        { passed: 0, failed: 0, errors: 0 },
      );
      this.status.testsFinished(runs.length ? total : undefined);
      const errors = total.errors ? `, ${total.errors} collection errors` : "";
      void vscode.window.setStatusBarMessage(`ledex: ${total.passed} passed, ${total.failed} failed${errors}`, 10_000);
    } catch (error) {
      this.status.testsFailed(`running the tests failed: ${errorText(error)}`);
      void vscode.window.showErrorMessage(`ledex: running the tests failed: ${errorText(error)}`);
    }
  }

  /** The ledex quick fix for the failing test under the cursor (or nearest to it), applied. */
  async explainAndFixAtCursor(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      void vscode.window.showInformationMessage("ledex: open the Python file with the failing test first.");
      return;
    }
    const document = editor.document;
    const diagnostics = diagnosticsAt(vscode.languages.getDiagnostics(document.uri), editor.selection.active);
    if (diagnostics.length === 0) {
      void vscode.window.showInformationMessage(
        "ledex: no failing test reported in this file. Save the file or run 'ledex: Run Tests' first.",
      );
      return;
    }
    const client = await this.runningClient();
    if (!client) return;
    const c2p = client.code2ProtocolConverter;
    const p2c = client.protocol2CodeConverter;
    const target = diagnostics[0];
    const actions = (await client.sendRequest(CodeActionRequest.type, {
      textDocument: { uri: c2p.asUri(document.uri) },
      range: c2p.asRange(target.range),
      context: {
        diagnostics: await c2p.asDiagnostics(diagnostics),
        only: [CodeActionKind.QuickFix],
        triggerKind: CodeActionTriggerKind.Invoked,
      },
    })) as Array<LspCodeAction | LspCommand> | null;
    const codeActions = (actions ?? []).filter((a): a is LspCodeAction => typeof (a as LspCodeAction).title === "string" && typeof (a as LspCommand).command !== "string");
    const unverified = Boolean(vscode.workspace.getConfiguration(SECTION, document.uri).get("showUnverified"));
    const chosen = pickLedexAction(codeActions, unverified);
    if (!chosen) {
      void vscode.window.showInformationMessage(`ledex: nothing to fix for ${codeOf(target) ?? "this test"} (the test may pass now).`);
      return;
    }
    this.output.appendLine(`ledex: chose the code action "${chosen.title}"`);
    let action = chosen;
    if (!action.edit && !action.command && action.data !== undefined) {
      action = await client.sendRequest(CodeActionResolveRequest.type, action);
    }
    if (action.edit) {
      const applied = await vscode.workspace.applyEdit(await p2c.asWorkspaceEdit(action.edit));
      void vscode.window.showInformationMessage(
        applied ? `${action.title.replace(/ \(verified fix for .*\)$/, "")} — fix applied` : "ledex: the fix could not be applied",
      );
      return;
    }
    if (action.command) {
      const result = await client.sendRequest(ExecuteCommandRequest.type, {
        command: action.command.command,
        arguments: action.command.arguments,
      });
      void vscode.window.showInformationMessage(describeFixResult(result));
      return;
    }
    // Resolved without an edit: the server has said why (no verified fix, cancelled, ...).
  }
}

// --- helpers -------------------------------------------------------------------------------------

/** The settings section as a plain object (WorkspaceConfiguration also has methods). */
function sectionObject(config: vscode.WorkspaceConfiguration): Record<string, unknown> {
  return JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
}

/** An output channel that also shows each line to `watch` (the server's log drives the status). */
function watchedChannel(channel: vscode.OutputChannel, watch: (line: string) => void): vscode.OutputChannel {
  return new Proxy(channel, {
    get(target, property, receiver) {
      if (property === "appendLine") {
        return (line: string) => {
          target.appendLine(line);
          try {
            watch(line);
          } catch {
            // the status is best effort
          }
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** Run `python -c "import ledex ..."`: is ledex importable in that interpreter? */
function probe(python: string, cwd: string | undefined): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    let settled = false;
    const done = (result: ProbeResult) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(result);
      }
    };
    const child = spawn(python, PROBE_ARGS, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      done({ code: null, stdout, stderr, timedOut: true });
    }, PROBE_TIMEOUT_MS);
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", (error: NodeJS.ErrnoException) => done({ code: null, stdout, stderr, spawnError: error.code ?? error.message }));
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

interface PythonExtensionApi {
  environments?: {
    getActiveEnvironmentPath(resource?: vscode.Uri): { id: string; path: string };
    resolveEnvironment(env: { id: string; path: string } | string): Promise<{ executable: { uri?: vscode.Uri } } | undefined>;
    onDidChangeActiveEnvironmentPath: vscode.Event<{ path: string }>;
  };
}

/** The interpreter selected in the Python extension (ms-python.python), when it is installed. */
async function pythonExtensionInterpreter(
  context: vscode.ExtensionContext,
  onChange: (path: string | undefined) => void,
): Promise<string | undefined> {
  const extension = vscode.extensions.getExtension<PythonExtensionApi>("ms-python.python");
  if (!extension) return undefined;
  try {
    const api = extension.isActive ? extension.exports : await extension.activate();
    const environments = api?.environments;
    if (!environments) return undefined;
    const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
    const active = environments.getActiveEnvironmentPath(resource);
    const resolved = await environments.resolveEnvironment(active);
    if (!listening) {
      listening = true;
      context.subscriptions.push(
        environments.onDidChangeActiveEnvironmentPath(async (event) => {
          const env = await environments.resolveEnvironment(event.path).catch(() => undefined);
          onChange(env?.executable.uri?.fsPath ?? event.path);
        }),
      );
    }
    return resolved?.executable.uri?.fsPath ?? active.path;
  } catch {
    return undefined;
  }
}
let listening = false;

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
