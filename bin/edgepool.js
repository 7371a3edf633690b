#!/usr/bin/env -S node --single-threaded-gc
// Launcher: runs the TypeScript CLI through tsx, so `npx edgepool` works in a clone with no build step.
import { register } from "tsx/esm/api";

register();
const { main } = await import("./cli.ts");
const code = await main(process.argv);
process.exitCode = code;
// Commands close what they open; this only guards against a stray handle keeping a finished CLI alive.
setTimeout(() => process.exit(code), 3000).unref();
