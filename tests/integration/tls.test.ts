/**
 * A job over TLS with a self-signed certificate made in the test: the coordinator serves
 * https and wss on its one port, a worker dials wss:// trusting the certificate with --ca,
 * `submit` runs a job over https:// with --ca, and the outputs equal a local run. Without
 * --ca, the CLI and the worker refuse the certificate with a clear E_TLS error.
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { EdgepoolError } from "../../shared/errors.js";
import { readNpyFile, writeNpyFile } from "../../shared/node/npy-file.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { maxAbsDiff } from "../../shared/tensor/tensor-ops.js";
import type { Tensor } from "../../shared/tensor/tensor.js";
import { runLocally } from "../../worker/local-run.js";
import { type Proc, runCli, startCoordinator, startProc, startWorker, tempDir } from "../../harness/procs.js";

const ROWS = 400;

let tmp: Awaited<ReturnType<typeof tempDir>>;
let coordinator: Proc;
let url: string;
let cert: string;
const started: Proc[] = [];
const f = (name: string) => path.join(tmp.dir, name);

beforeAll(async () => {
  tmp = await tempDir("tls");
  cert = f("cert.pem");
  // A P-256 key and a self-signed certificate for 127.0.0.1 and localhost, valid for a day.
  await promisify(execFile)("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", f("key.pem"), "-out", cert, "-days", "1", "-subj", "/CN=edgepool test",
    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ]);
  coordinator = startProc(["coordinator", "--port", "0", "--data-dir", f("c"), "--tls-cert", cert, "--tls-key", f("key.pem")]);
  url = (await coordinator.waitFor(/listening on (https:\/\/\S+) \(workers: --coordinator wss:\/\//))[1]!;
  await writeNpyFile(f("x.npy"), { dtype: "float32", dims: [ROWS, 256], data: seededNormal(9, ROWS * 256, 1) });
});

afterAll(async () => {
  await Promise.all(started.map((p) => p.stop("SIGKILL")));
  await coordinator?.stop();
  await tmp?.remove();
});

describe("a coordinator with --tls-cert and --tls-key", () => {
  it("runs a job from a wss:// worker and an https:// submit that trust the certificate with --ca", async () => {
    const w = await startWorker(coordinator, url, "tls-worker", f("w"), ["--ca", cert]);
    started.push(w);
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const out = f("out");
    const r = await runCli(["submit", "--coordinator", url, "--ca", cert, "--model", "mlp", "--input", `x=${f("x.npy")}`, "--out", out, "--shard-size", "50", "--quiet"], 50_000);
    expect(r.code, `${r.stderr}\ncoordinator:\n${coordinator.stdout().slice(-3000)}${coordinator.stderr().slice(-3000)}`).toBe(0);
    const got = await readNpyFile(path.join(out, "logits.npy"));
    const x = await readNpyFile(f("x.npy"));
    const want = await runLocally(catalogModel("mlp").build(), "x", x as Tensor, { chunk: ROWS, threads: 1 });
    expect(got.dims).toEqual([ROWS, 10]);
    expect(maxAbsDiff(got, want.out)).toBeLessThanOrEqual(1e-5);

    const s = await new CoordinatorClient(url, { ca: await readFile(cert, "utf8") }).status();
    expect(s.url).toBe(url);
    expect(s.workers.map((x) => [x.name, x.shardsDone])).toEqual([["tls-worker", ROWS / 50]]);
  });

  it("refuses the self-signed certificate without --ca: submit with E_TLS, the SDK too, a worker keeps retrying", async () => {
    const r = await runCli(["submit", "--coordinator", url, "--model", "mlp", "--input", `x=${f("x.npy")}`, "--out", f("out-no-ca")]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^edgepool submit: error: the TLS certificate of https:\/\/127\.0\.0\.1:\d+ is not trusted \(self[- ]signed certificate\); .*pass its CA with --ca <file\.pem> or set EDGEPOOL_CA \[E_TLS\]$/m);

    const err = await new CoordinatorClient(url).status().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EdgepoolError);
    expect((err as EdgepoolError).code).toBe("E_TLS");

    const w = startProc(["worker", "--coordinator", url.replace("https", "wss"), "--name", "no-ca", "--state-dir", f("w-no-ca")]);
    started.push(w);
    await w.waitFor(/"code":"E_TLS"[^\n]*is not trusted[^\n]*"coordinator refused the connection"/);
    expect(w.child.exitCode).toBeNull();
    await w.stop();
  });

  it("names the mismatch when https:// is dialled at a plain http coordinator", async () => {
    const { proc: plain, url: plainUrl, listening } = await startCoordinator(["--port", "0", "--data-dir", f("plain")]);
    started.push(plain);
    expect(listening.tls).toBe(false);
    const r = await runCli(["status", "--coordinator", plainUrl.replace("http", "https")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/does not speak TLS on that port.*use http:\/\/ or ws:\/\/.*\[E_TLS\]/);
    await plain.stop();
  });

  it("checks the certificate files at start", async () => {
    const r = await runCli(["coordinator", "--port", "0", "--data-dir", f("c2"), "--tls-cert", cert]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid --tls-key: give --tls-cert and --tls-key together/);
    const bad = await runCli(["submit", "--coordinator", url, "--ca", f("x.npy"), "--model", "mlp", "--input", `x=${f("x.npy")}`, "--out", f("o")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid --ca: .*x\.npy is not a PEM certificate file/);
  });
});
