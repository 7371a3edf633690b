/**
 * The join page's DOM: what the device is doing, its counters and speed, the engine in use,
 * and a short activity log. Everything from the network or the engine is written with
 * textContent, never as markup. The page's state is mirrored on <html data-state=...
 * data-backend=...> so tests and people with devtools can read it.
 */
import type { AgentSnapshot } from "./agent.js";
import type { EngineInfo } from "./engine-messages.js";

const MAX_LOG = 50;

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the join page has no #${id}`);
  return e as T;
}

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function fmtRate(x: number): string {
  if (x <= 0) return "–";
  return x >= 100 ? fmtInt(x) : x.toFixed(1);
}

type Tone = "idle" | "ok" | "busy" | "warn" | "bad";

export class JoinView {
  readonly toggle = el<HTMLButtonElement>("toggle");
  readonly onlyCharging = el<HTMLInputElement>("only-charging");
  readonly wakeLock = el<HTMLInputElement>("wake-lock");
  private readonly log = el<HTMLOListElement>("log");

  constructor() {
    el("host").textContent = location.host;
    el("ua").textContent = navigator.userAgent;
    el("cores").textContent = String(navigator.hardwareConcurrency || "unknown");
  }

  setName(name: string): void {
    el("name").textContent = name;
  }

  /** The engine is up: say which backend and threading it really uses. */
  setEngine(info: EngineInfo): void {
    const label = info.backend === "webgpu" ? "WebGPU" : "WebAssembly";
    el("backend").textContent = info.backend === "webgpu" ? "WebGPU" : "Wasm";
    el("backend-detail").textContent = info.backend === "webgpu" ? "GPU" : `SIMD, ${info.threads} thread${info.threads === 1 ? "" : "s"}`;
    el("engine").textContent = `onnxruntime-web ${info.ortVersion}, ${label}${info.backend === "wasm" ? ` (SIMD, ${info.threads} thread${info.threads === 1 ? "" : "s"})` : ""}`;
    el("isolation").textContent = info.crossOriginIsolated ? "cross-origin isolated (threads allowed)" : "not isolated (one thread)";
    document.documentElement.dataset.backend = info.backend;
    document.documentElement.dataset.threads = String(info.threads);
    for (const n of info.notes) this.append("info", n);
  }

  /** The engine could not start: nothing else can happen on this page. */
  setEngineFailed(message: string): void {
    this.headline("bad", "This browser cannot compute for the pool", message);
    el("backend").textContent = "none";
    this.toggle.disabled = true;
    document.documentElement.dataset.state = "failed";
  }

  render(s: AgentSnapshot): void {
    document.documentElement.dataset.state = s.state;
    el("shards").textContent = fmtInt(s.shardsDone);
    el("samples").textContent = fmtInt(s.samplesDone);
    el("speed").textContent = fmtRate(s.recentSamplesPerSec);
    const paused = s.state === "paused" || s.state === "pausing";
    this.toggle.disabled = s.state === "failed";
    this.toggle.dataset.paused = String(paused || s.pauseReasons.includes("user"));
    this.toggle.textContent = s.pauseReasons.includes("user") ? "Resume" : "Pause";
    switch (s.state) {
      case "connecting":
        this.headline("warn", "Connecting to the pool…", s.lastError ?? `Dialling ${location.host}.`);
        break;
      case "ready":
        if (s.running) this.headline("busy", "Computing", `A shard of ${fmtInt(s.running.rows)} samples for job ${s.running.jobId}${s.queued > 0 ? `; ${s.queued} more queued` : ""}.`);
        else this.headline("ok", "Connected, waiting for work", "The pool sends work when a job is submitted.");
        break;
      case "pausing":
        this.headline("warn", "Pausing…", "Handing queued work back and finishing the current shard.");
        break;
      case "paused":
        this.headline(
          "idle",
          s.pauseReasons.includes("battery") && !s.pauseReasons.includes("user") ? "Waiting for a charger" : "Paused",
          s.pauseReasons.includes("battery") ? "This device is not charging; it rejoins when plugged in." : "This device has left the pool; press Resume to rejoin.",
        );
        break;
      case "failed":
        this.headline("bad", "Stopped", s.lastError ?? "Reload the page to try again.");
        break;
    }
  }

  setChargingNote(text: string, supported: boolean): void {
    el("charging-note").textContent = text;
    this.onlyCharging.disabled = !supported;
  }

  setWakeNote(text: string, supported: boolean): void {
    el("wake-note").textContent = text;
    this.wakeLock.disabled = !supported;
  }

  /** Adds a line to the activity log (newest first). */
  append(level: "info" | "warn" | "error", message: string): void {
    const li = document.createElement("li");
    li.dataset.level = level;
    const t = document.createElement("time");
    t.textContent = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    li.append(t, document.createTextNode(message));
    this.log.prepend(li);
    while (this.log.childElementCount > MAX_LOG) this.log.lastElementChild?.remove();
  }

  private headline(tone: Tone, text: string, detail: string): void {
    el("dot").dataset.tone = tone;
    el("state").textContent = text;
    el("detail").textContent = detail;
  }
}
