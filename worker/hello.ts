/** The `hello` this worker opens every connection with: who it is and what it can do. */
import { createRequire } from "node:module";
import os from "node:os";
import * as ort from "onnxruntime-node";
import { helloMessage } from "../shared/protocol/encode.js";
import type { WorkerConfig } from "./config.js";

/** onnxruntime-node's version as its package states it, for builds whose `env.versions` is empty. */
function ortPackageVersion(): string {
  try {
    const pkg: unknown = createRequire(import.meta.url)("onnxruntime-node/package.json");
    if (typeof pkg === "object" && pkg !== null && "version" in pkg && typeof pkg.version === "string") return pkg.version;
  } catch {
    // Fall through: an unknown version is not a reason to refuse to work.
  }
  return "unknown";
}

/** The ONNX Runtime version this worker runs. */
export function runtimeVersion(): string {
  const versions = ort.env.versions as { node?: string; common?: string } | undefined;
  return versions?.node ?? versions?.common ?? ortPackageVersion();
}

/**
 * The hello message's text. Built with the shared schema, so a bad local value (a
 * 200-character name) is a clear E_CONFIG error here rather than a refusal from the
 * coordinator.
 */
export function buildHello(config: WorkerConfig, workerId: string): string {
  return helloMessage({
    workerId,
    name: config.name,
    platform: process.platform,
    arch: process.arch,
    cpus: os.availableParallelism(),
    memoryBytes: os.totalmem(),
    runtime: { name: "onnxruntime-node", version: runtimeVersion() },
    threads: config.threads,
    slots: config.slots,
    maxCpu: config.maxCpu,
    virtual: false,
    backend: "cpu",
  });
}
