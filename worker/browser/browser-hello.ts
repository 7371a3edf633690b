/**
 * Who this browser worker is: a worker id kept for the life of the tab (sessionStorage, so a
 * reload keeps it and two tabs are two workers), a name a person recognises, and the `hello`
 * that opens every connection, built with the shared schema so a bad value fails here.
 */
import { helloMessage } from "../../shared/protocol/encode.js";
import type { EngineInfo } from "./engine-messages.js";

const ID_KEY = "edgepool.workerId";

function randomHex(bytes: number): string {
  // crypto.randomUUID exists only in secure contexts; getRandomValues everywhere.
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** This tab's worker id, made on first use. */
export function tabWorkerId(): string {
  try {
    const have = sessionStorage.getItem(ID_KEY);
    if (have && /^browser-[0-9a-f]{16,32}$/.test(have)) return have;
    const id = `browser-${randomHex(12)}`;
    sessionStorage.setItem(ID_KEY, id);
    return id;
  } catch {
    // Storage can be off (privacy modes): an id for this page load only.
    return `browser-${randomHex(12)}`;
  }
}

/** "android-chrome", "iphone-safari", "linux-firefox", ... from the user agent. */
export function deviceLabel(ua: string): string {
  const os = /iPhone/.test(ua) ? "iphone" : /iPad/.test(ua) ? "ipad" : /Android/.test(ua) ? "android" : /Mac OS X/.test(ua) ? "mac" : /Windows/.test(ua) ? "windows" : /CrOS/.test(ua) ? "chromebook" : /Linux/.test(ua) ? "linux" : "device";
  const browser = /Edg\//.test(ua) ? "edge" : /Firefox\//.test(ua) ? "firefox" : /SamsungBrowser\//.test(ua) ? "samsung" : /Chrom(e|ium)\//.test(ua) ? "chrome" : /Safari\//.test(ua) ? "safari" : "browser";
  return `${os}-${browser}`;
}

/** The default name: the device label and the end of the worker id. */
export function defaultName(workerId: string, ua: string): string {
  return `${deviceLabel(ua)}-${workerId.slice(-4)}`;
}

/** The hello text for this browser, built with the shared schema. Throws E_CONFIG naming the bad field. */
export function buildBrowserHello(workerId: string, name: string, info: EngineInfo): string {
  const nav = navigator as Navigator & { deviceMemory?: number };
  return helloMessage({
    workerId,
    name,
    platform: "browser",
    arch: "wasm32",
    cpus: Math.max(1, Math.min(4096, navigator.hardwareConcurrency || 1)),
    // Chrome rounds it to a power of two in GiB, and only in secure contexts; 0 is "unknown".
    memoryBytes: typeof nav.deviceMemory === "number" ? nav.deviceMemory * 2 ** 30 : 0,
    runtime: { name: "onnxruntime-web", version: info.ortVersion },
    threads: info.threads,
    slots: 1,
    maxCpu: 100,
    virtual: false,
    backend: info.backend,
    userAgent: navigator.userAgent.slice(0, 512),
  });
}
