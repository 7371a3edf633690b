/**
 * The architecture's import rules, checked by dependency-cruiser on every `npm test`
 * (`npm run depcheck`). The folder tree is the architecture (README, "Architecture"):
 *   shared/ is the base every other folder may use; only shared/node/ may touch Node;
 *   worker/ and coordinator/ are two programs that meet only through shared/protocol;
 *   harness/ runs edgepool's processes from outside (spawn, wait on their events) for bin/,
 *   bench/ and tests/, and nothing below them imports it;
 *   bin/ (the CLI) may use the programs; bench/ may use the programs but not the CLI;
 *   tests/ may use anything; nothing imports bench/ or tests/ but themselves.
 */
const BROWSER = "^(worker/browser|worker/core|shared/(?!node/)[^/]+(/|\\.ts$))";

module.exports = {
  forbidden: [
    {
      name: "no-cycles",
      severity: "error",
      comment: "An import cycle: modules that need each other belong in one file, or one of them needs an interface.",
      from: {},
      to: { circular: true },
    },
    {
      name: "browser-no-node",
      severity: "error",
      comment: "Browser code (the join page's worker, worker/core, shared/ outside shared/node) may not import Node built-ins or shared/node/.",
      from: { path: BROWSER },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "browser-no-shared-node",
      severity: "error",
      comment: "Browser code may not import shared/node/ (Node-only helpers).",
      from: { path: BROWSER },
      to: { path: "^shared/node/" },
    },
    {
      name: "browser-packages",
      severity: "error",
      comment: "Browser code may use only packages that run in a browser: zod, protobufjs and onnxruntime-web.",
      from: { path: BROWSER },
      to: { path: "node_modules/", pathNot: "node_modules/(zod|protobufjs|onnxruntime-web)/" },
    },
    {
      name: "shared-is-the-base",
      severity: "error",
      comment: "shared/ is what coordinator and worker have in common: it imports nothing above it.",
      from: { path: "^shared/" },
      to: { path: "^(coordinator|worker|harness|bin|bench|tests)/" },
    },
    {
      name: "harness-from-outside",
      severity: "error",
      comment: "harness/ drives the processes from outside; it may use the programs, not the CLI, bench or tests.",
      from: { path: "^harness/" },
      to: { path: "^(bin|bench|tests)/" },
    },
    {
      name: "worker-not-coordinator",
      severity: "error",
      comment: "The worker speaks to the coordinator only through shared/protocol.",
      from: { path: "^worker/" },
      to: { path: "^(coordinator|harness|bin|bench|tests)/" },
    },
    {
      name: "coordinator-not-worker",
      severity: "error",
      comment: "The coordinator speaks to workers only through shared/protocol.",
      from: { path: "^coordinator/" },
      to: { path: "^(worker|harness|bin|bench|tests)/" },
    },
    {
      name: "client-is-a-client",
      severity: "error",
      comment: "The client SDK runs in the submitter's process: it may use the API's view schemas and the report data shape, not the server.",
      from: { path: "^coordinator/client/" },
      to: { path: "^coordinator/(?!client/|api/|report/report-data\\.ts$)" },
    },
    {
      name: "bin-not-bench-or-tests",
      severity: "error",
      from: { path: "^bin/" },
      to: { path: "^(bench|tests)/" },
    },
    {
      name: "bench-not-bin-or-tests",
      severity: "error",
      from: { path: "^bench/" },
      to: { path: "^(bin|tests)/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^worker/browser/dist/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
  },
};
