/**
 * The join page (GET /join): turns this browser into an edgepool worker. It starts the
 * compute engine (a Web Worker running onnxruntime-web), builds the hello from what the
 * engine really uses, joins the coordinator that served the page, and wires the controls:
 * pause/resume, "only while charging" and "keep the screen on" (remembered per browser).
 *
 * Query parameters, for people and tests: `name` (the worker's name), `backend`
 * (`auto`, `wasm` or `webgpu`), `threads` (WebAssembly threads when isolated). A coordinator
 * that requires tokens is joined with a link ending in `#token=<worker token>`.
 */
import { z } from "zod";
import "./zod-csp.js";
import { toEdgepoolError } from "../../shared/errors.js";
import { BrowserAgent } from "./agent.js";
import { buildBrowserHello, defaultName, tabWorkerId } from "./browser-hello.js";
import { EngineClient } from "./engine-client.js";
import { ScreenWakeLock, watchBattery } from "./device-policy.js";
import { JoinView } from "./view.js";

const ParamsSchema = z.object({
  name: z.string().trim().min(1).max(128).optional().catch(undefined),
  backend: z.enum(["auto", "wasm", "webgpu"]).catch("auto"),
  threads: z.coerce.number().int().min(0).max(64).catch(0),
});

/** Tokens as the coordinator accepts them: printable ASCII without spaces. */
const TOKEN = /^[\x21-\x7e]{16,1024}$/;
const TOKEN_KEY = "edgepool.token";

/**
 * The worker token, from the link's fragment (`/join#token=...`: a fragment is never sent to
 * a server or written to its logs), kept for this tab so a reload still has it, and removed
 * from the address bar so it does not sit on screen.
 */
function workerToken(): string | null {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash !== null) history.replaceState(null, "", `${location.pathname}${location.search}`);
  let token = fromHash;
  try {
    if (token !== null && TOKEN.test(token)) sessionStorage.setItem(TOKEN_KEY, token);
    else token = sessionStorage.getItem(TOKEN_KEY);
  } catch {
    // No storage: the token lasts for this page load.
  }
  return token !== null && TOKEN.test(token) ? token : null;
}

const SETTINGS = { onlyCharging: "edgepool.onlyCharging", wakeLock: "edgepool.wakeLock" } as const;

function setting(key: string): boolean {
  try {
    return localStorage.getItem(key) === "1";
  } catch {
    return false;
  }
}

function remember(key: string, on: boolean): void {
  try {
    localStorage.setItem(key, on ? "1" : "0");
  } catch {
    // Not remembered; still applied.
  }
}

async function main(): Promise<void> {
  const view = new JoinView();
  const q = new URLSearchParams(location.search);
  const params = ParamsSchema.parse({ name: q.get("name") ?? undefined, backend: q.get("backend") ?? "auto", threads: q.get("threads") ?? 0 });
  const workerId = tabWorkerId();
  const token = workerToken();
  const name = params.name ?? defaultName(workerId, navigator.userAgent);
  view.setName(name);

  const engine = new EngineClient(new URL("engine.js", import.meta.url), (m) =>
    view.append("info", `model ${m.sha256.slice(0, 12)} ready (${(m.bytes / 1024).toFixed(0)} KiB, ${m.ms} ms${m.fixedBatch ? ", batch of 1: sample by sample" : ""})`),
  );
  let info;
  try {
    info = await engine.init({ backend: params.backend, threads: params.threads, ortBase: new URL("ort/", import.meta.url).href, probeUrl: new URL("probe.onnx", import.meta.url).href, token });
  } catch (err) {
    view.setEngineFailed(toEdgepoolError(err).message);
    return;
  }
  view.setEngine(info);

  const agent = new BrowserAgent(
    {
      wsUrl: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
      // A browser must be offered a subprotocol back when it offers any: "edgepool" is it.
      protocols: token ? ["edgepool", `edgepool.token.${token}`] : [],
      modelBase: (modelPath) => new URL(modelPath, location.origin).href,
      hello: buildBrowserHello(workerId, name, info),
      engine,
      reconnectMinMs: 500,
      reconnectMaxMs: 15_000,
      helloTimeoutMs: 10_000,
    },
    { change: (s) => view.render(s), log: (level, message) => view.append(level, message) },
  );

  view.toggle.addEventListener("click", () => {
    const paused = agent.snapshot().pauseReasons.includes("user");
    agent.setPaused("user", !paused);
  });

  // Only while charging: a device on battery leaves the pool until it is plugged in.
  let charging: boolean | null = null;
  view.onlyCharging.checked = setting(SETTINGS.onlyCharging);
  const applyCharging = (): void => agent.setPaused("battery", view.onlyCharging.checked && charging === false);
  view.onlyCharging.addEventListener("change", () => {
    remember(SETTINGS.onlyCharging, view.onlyCharging.checked);
    applyCharging();
  });
  const hasBattery = await watchBattery((b) => {
    charging = b.charging;
    view.setChargingNote(`${b.charging ? "Charging" : "On battery"}, ${Math.round(b.level * 100)}%.`, true);
    applyCharging();
  });
  if (!hasBattery) {
    view.onlyCharging.checked = false;
    view.setChargingNote("This browser does not report its battery, so this cannot be honoured here.", false);
  }

  // Keep the screen on: phones suspend pages whose screen is off.
  const wake = new ScreenWakeLock((held, error) => {
    if (error) view.append("warn", `screen wake lock refused: ${error}`);
    view.setWakeNote(held ? "The screen stays on while this page is visible." : "Phones stop pages whose screen is off.", true);
  });
  if (ScreenWakeLock.supported) {
    view.wakeLock.checked = setting(SETTINGS.wakeLock);
    if (view.wakeLock.checked) void wake.set(true);
    view.wakeLock.addEventListener("change", () => {
      remember(SETTINGS.wakeLock, view.wakeLock.checked);
      void wake.set(view.wakeLock.checked);
    });
  } else {
    view.setWakeNote("This browser cannot keep the screen on (it needs https, or a newer browser).", false);
  }

  addEventListener("pagehide", () => agent.close());
  // A page restored from the back/forward cache has a closed agent: start afresh.
  addEventListener("pageshow", (e: PageTransitionEvent) => {
    if (e.persisted) location.reload();
  });
  agent.start();
}

main().catch((err: unknown) => {
  document.documentElement.dataset.state = "failed";
  const detail = document.getElementById("detail");
  if (detail) detail.textContent = `The page failed to start: ${toEdgepoolError(err).message}`;
});
