/**
 * The launcher and the node flags: `npx edgepool` (the shebang) and every place that starts
 * the CLI with `node` itself must run it with the same flags.
 */
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it, vi } from "vitest";
import { NODE_FLAGS } from "../../shared/node/node-flags.js";
import { systemdUnit } from "../../bin/commands/systemd-unit.js";
import { parseWorkerConfig } from "../../worker/config.js";
import { BIN, tempDir } from "../../harness/procs.js";
import { VERSION } from "../../shared/version.js";

describe("launcher", () => {
  it("reports the version package.json gives", () => {
    const pkg = JSON.parse(readFileSync(path.join(path.dirname(BIN), "..", "package.json"), "utf8")) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });

  it("carries NODE_FLAGS in its shebang", () => {
    const first = readFileSync(BIN, "utf8").split("\n")[0];
    expect(first).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(" ")}`);
  });

  it("runs as a program through its shebang, with those flags", async () => {
    const { stdout } = await promisify(execFile)(BIN, ["models"], { timeout: 30_000 });
    expect(stdout).toMatch(/\nmlp\s+0\.27\s/);
    // A daemon started the way `npx edgepool` starts it: its command line, as the kernel has it.
    const tmp = await tempDir("launcher");
    const child = spawn(BIN, ["coordinator", "--port", "0", "--data-dir", tmp.dir, "--log-level", "warn"], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = "";
        child.stdout!.on("data", (d: Buffer) => {
          out += d.toString();
          if (out.includes("listening on")) resolve();
        });
        child.once("exit", (code) => reject(new Error(`coordinator exited with ${code}`)));
      });
      const argv = readFileSync(`/proc/${child.pid}/cmdline`, "utf8").split("\0").filter(Boolean);
      expect(path.basename(argv[0]!)).toMatch(/^node/);
      expect(argv.slice(1, 1 + NODE_FLAGS.length)).toEqual(NODE_FLAGS);
      expect(argv[1 + NODE_FLAGS.length]).toBe(BIN);
    } finally {
      child.kill("SIGINT");
      await new Promise((resolve) => (child.exitCode === null ? child.once("exit", resolve) : resolve(null)));
      await tmp.remove();
    }
  });

  it("puts NODE_FLAGS between node and the launcher in a systemd unit", () => {
    const unit = systemdUnit(parseWorkerConfig({ coordinator: "ws://10.0.0.2:7070", stateDir: "/var/lib/edgepool" }), {
      node: "/usr/bin/node",
      bin: "/opt/edgepool/bin/edgepool.js",
      user: "edgepool",
    });
    expect(unit).toContain(`\nExecStart=/usr/bin/node ${NODE_FLAGS.join(" ")} /opt/edgepool/bin/edgepool.js worker\n`);
  });

  it("says what went wrong when a command throws instead of answering with a code, and exits 1", async () => {
    vi.resetModules();
    vi.doMock("../../bin/commands/models.js", () => ({
      modelsCommand: () => {
        throw new Error("onnxruntime-node could not load its binary");
      },
    }));
    const written: string[] = [];
    const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    try {
      const { main } = await import("../../bin/cli.js");
      expect(await main(["node", "edgepool", "models"])).toBe(1);
    } finally {
      spy.mockRestore();
      vi.doUnmock("../../bin/commands/models.js");
    }
    expect(written.join("")).toMatch(/^edgepool: .*onnxruntime-node could not load its binary/);
  });
});
