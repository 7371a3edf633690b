/**
 * The V8 flags every edgepool process starts with. The shebang of bin/edgepool.js carries the
 * same list for `npx edgepool`; whatever spawns the CLI with `node` itself (local pools, tests,
 * the benchmarks, the systemd unit) passes these. tests/launcher.test.ts checks both agree.
 *
 * --single-threaded-gc: by default V8 marks and scavenges on helper threads. A coordinator
 * or worker moving tensors allocates a megabyte buffer per message, and each few dozen MB of
 * them starts a marking cycle (external memory pressure). On a machine whose cores the pool's
 * processes and ONNX Runtime already keep busy, the helper threads only contend for those
 * cores: on 2 cores, 1 MiB shards moved 520-715 MB/s with them and 950-1,240 MB/s without,
 * the coordinator's CPU falling from 1.3-1.5 to 0.7 ms per MB (`npm run bench -- --only
 * transport`). The heaps are small (tens of MB), so the pauses stay short on one thread.
 */
export const NODE_FLAGS: readonly string[] = ["--single-threaded-gc"];
