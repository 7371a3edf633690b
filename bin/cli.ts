/** The `edgepool` command line: one subcommand per user task, each with --help. */
import { Command, Option } from "commander";

const collect = (value: string, previous: string[] = []) => [...previous, value];

function logOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option("--log-level <level>", "log level").choices(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info").env("EDGEPOOL_LOG_LEVEL"))
    .addOption(new Option("--log-format <format>", "json lines for machines, pretty for people").choices(["json", "pretty"]).default("json").env("EDGEPOOL_LOG_FORMAT"));
}

/** `--coordinator <url>`, required, also read from EDGEPOOL_COORDINATOR. */
function coordinatorOption(example: string): Option {
  return new Option("--coordinator <url>", `coordinator URL, e.g. ${example}`).env("EDGEPOOL_COORDINATOR").makeOptionMandatory();
}

/** `--token`, also read from EDGEPOOL_TOKEN: for a coordinator started with tokens. */
function tokenOption(role: "worker" | "client"): Option {
  return new Option("--token <token>", `${role} token, for a coordinator started with tokens (prefer EDGEPOOL_TOKEN: flags show in ps)`).env("EDGEPOOL_TOKEN");
}

/** `--ca <file.pem>`, also read from EDGEPOOL_CA: for a coordinator with a self-signed certificate. */
function caOption(): Option {
  return new Option("--ca <file.pem>", "also trust this CA certificate (a coordinator's self-signed certificate)").env("EDGEPOOL_CA");
}

/** Parses argv, runs the command, and resolves its exit code. */
export async function main(argv: string[]): Promise<number> {
  let code = 0;
  // Each command's module is imported only when that command runs: a worker daemon then holds
  // none of the coordinator's code, and a smaller heap makes each of its collections cheaper.
  const run = (p: Promise<number> | number) => Promise.resolve(p).then((c) => void (code = c));
  const program = new Command("edgepool")
    .description("Pool the spare compute of many devices into one ONNX inference service, and measure what it is worth.")
    .showHelpAfterError("(add --help for usage)")
    .exitOverride();

  logOptions(
    program
      .command("coordinator")
      .description("serve jobs to workers on one HTTP + WebSocket port")
      .addOption(new Option("--port <port>", "port to listen on (0 picks a free one)").default("7070").env("EDGEPOOL_PORT"))
      .addOption(new Option("--host <addr>", "address to listen on (0.0.0.0 for other machines)").default("127.0.0.1").env("EDGEPOOL_HOST"))
      .addOption(new Option("--data-dir <dir>", "job database, models and tensors (default ~/.edgepool/coordinator)").env("EDGEPOOL_DATA_DIR"))
      .option("--stats-interval <ms>", "how often to log pooled throughput while work runs", "5000")
      .option("--heartbeat-timeout <ms>", "declare a silent worker dead after this long", "10000")
      .option("--shard-ms <ms>", "target duration of one shard; shard sizes follow each worker's speed", "500")
      .option("--max-frame-mb <n>", "largest WebSocket message (shard or result frame), MiB; jobs whose fixed shards cannot fit are refused", "256")
      .option("--max-model-mb <n>", "largest model upload, MiB", "2048")
      .option("--max-input-gb <n>", "largest input (.npy) upload, GiB", "256")
      .option("--max-jobs-per-client <n>", "queued or running jobs one client token may have at once", "16")
      .option("--max-messages-per-sec <n>", "WebSocket messages a connection may send per second (bursts of twice that)", "2000")
      .option("--max-workers <n>", "WebSocket connections at once; more are refused with 503", "100000")
      .option("--max-handshakes <n>", "WebSocket connections that have not said hello yet; more are refused with 503", "1000")
      .option("--hello-timeout <ms>", "close a WebSocket connection that has not said hello by then", "10000")
      .option("--headers-timeout <ms>", "answer 408 and drop an HTTP connection whose request headers are not in by then", "10000")
      .option("--request-timeout <ms>", "a whole HTTP request, uploads included, must arrive within this", "3600000")
      .addOption(new Option("--worker-token <token>", "a token workers join with; repeatable (any token turns authentication on)").argParser(collect).env("EDGEPOOL_WORKER_TOKEN"))
      .addOption(new Option("--client-token <token>", "a token clients submit and read their own jobs with; repeatable").argParser(collect).env("EDGEPOOL_CLIENT_TOKEN"))
      .addOption(new Option("--admin-token <token>", "a token that sees and cancels every job and reads /metrics; repeatable").argParser(collect).env("EDGEPOOL_ADMIN_TOKEN"))
      .addOption(new Option("--tokens-file <file.json>", 'many tokens: {"tokens":[{"token":"...","role":"worker|client|admin","name":"alice"}]}').env("EDGEPOOL_TOKENS_FILE"))
      .addOption(new Option("--insecure", "allow a non-loopback --host without any tokens (an open pool)"))
      .addOption(new Option("--tls-cert <file.pem>", "serve https and wss with this certificate (chain), with --tls-key").env("EDGEPOOL_TLS_CERT"))
      .addOption(new Option("--tls-key <file.pem>", "private key of --tls-cert").env("EDGEPOOL_TLS_KEY")),
  ).action(async (o: Record<string, unknown>) => run((await import("./commands/coordinator.js")).coordinatorCommand(o)));

  logOptions(
    program
      .command("worker")
      .description("run shards for a coordinator with ONNX Runtime (every flag can also come from its EDGEPOOL_* variable)")
      .addOption(coordinatorOption("ws://host:7070"))
      .addOption(tokenOption("worker"))
      .addOption(caOption())
      .addOption(new Option("--slots <n>", "shards run at once").default("1").env("EDGEPOOL_SLOTS"))
      .addOption(new Option("--threads <n>", "ONNX Runtime threads per shard").default("1").env("EDGEPOOL_THREADS"))
      .addOption(new Option("--max-cpu <percent>", "keep average CPU use of each thread at or under this share (duty cycle)").default("100").env("EDGEPOOL_MAX_CPU"))
      .addOption(new Option("--name <name>", "name shown in status (default: host name)").env("EDGEPOOL_NAME"))
      .addOption(new Option("--state-dir <dir>", "worker id and model cache (default ~/.edgepool/worker)").env("EDGEPOOL_STATE_DIR"))
      .option("--print-systemd-unit", "print a systemd unit that runs this worker with these options, and exit")
      // A test facility (corrupt:<rate>), read from EDGEPOOL_FAULT_INJECT; kept out of --help on purpose.
      .addOption(new Option("--fault-inject <spec>").env("EDGEPOOL_FAULT_INJECT").hideHelp()),
  ).action(async (o: Record<string, unknown>) => run(o.printSystemdUnit ? (await import("./commands/systemd-unit.js")).printSystemdUnitCommand(o) : (await import("../worker/main.js")).runWorker(o)));

  program
    .command("submit")
    .description("run a job: a model and .npy inputs in, .npy outputs out")
    .addOption(coordinatorOption("http://host:7070"))
    .addOption(tokenOption("client"))
    .addOption(caOption())
    .requiredOption("--model <model>", "an .onnx file or a catalog model name (see 'edgepool models')")
    .option("--input <name=file.npy>", "a named input; repeat for each model input", collect)
    .requiredOption("--out <dir>", "folder for the outputs, one <output name>.npy each")
    .option("--shard-size <n>", "rows per shard (default: sized to each worker's speed)")
    .option("--redundancy <k>", "have each shard computed by k different workers and compare the results (for untrusted workers)", "1")
    .option("--rtol <x>", "relative tolerance when comparing float results (default 1e-4)")
    .option("--atol <x>", "absolute tolerance when comparing float results (default 1e-5)")
    .option("--canaries <n>", "rows the coordinator computes itself; each worker must answer one right before it gets real shards (0-64)", "0")
    .option("--quiet", "no progress: print nothing but errors and the final line")
    .action(async (o: Record<string, unknown>) => run((await import("./commands/submit.js")).submitCommand({ ...o, input: o.input ?? [] })));

  program
    .command("status")
    .description("workers, jobs and pooled throughput of a coordinator")
    .addOption(coordinatorOption("http://host:7070"))
    .addOption(tokenOption("client"))
    .addOption(caOption())
    .option("--json", "print JSON for scripts")
    .option("--watch", "refresh in place until interrupted")
    .option("--interval <ms>", "refresh interval with --watch", "2000")
    .action(async (o: Record<string, unknown>) => run((await import("./commands/status.js")).statusCommand(o)));

  program.command("models").description("list the built-in model catalog").action(async () => run((await import("./commands/models.js")).modelsCommand()));

  program
    .command("export-model")
    .description("write a catalog model to an .onnx file")
    .argument("<name>", "catalog model name")
    .argument("<file>", "output .onnx file")
    .action(async (name: string, file: string) => run((await import("./commands/models.js")).exportModelCommand(name, file)));

  program
    .command("inspect")
    .description("print a model's inputs, outputs and FLOPs per sample (per generated token, with its layout, for a language model)")
    .argument("<file>", ".onnx file")
    .option("--json", "print JSON")
    .option("--context <n>", "for a language model: context length at which FLOPs per generated token are counted", "128")
    .action(async (file: string, o: { json?: boolean; context: string }) =>
      run((await import("./commands/models.js")).inspectCommand(file, { ...(o.json === true ? { json: true } : {}), context: Number(o.context) })),
    );

  program
    .command("demo")
    .description("start a local pool, run a demo job, print throughput (what npm start runs)")
    .option("--workers <n>", "worker processes (default: one per core)")
    .option("--samples <n>", "samples in the job", "8192")
    .option("--model <name>", "catalog model", "cnn")
    .option("--shard-size <n>", "rows per shard")
    .option("--report-dir <dir>", "where the report and the coordinator log go", "edgepool-report")
    .action(async (o: Record<string, unknown>) => run((await import("./commands/demo.js")).demoCommand(o)));

  logOptions(
    program
      .command("swarm")
      .description("connect many simulated (virtual) workers to a coordinator, to test it at scale")
      .addOption(coordinatorOption("ws://127.0.0.1:7070"))
      .addOption(tokenOption("worker"))
      .addOption(caOption())
      .requiredOption("--count <n>", "virtual workers to connect")
      .option("--profile <tier|mix>", "device tier (flagship, mid, low) or a mix like flagship:0.2,mid:0.45,low:0.35", "flagship:0.2,mid:0.45,low:0.35")
      .option("--dropout-per-min <p>", "probability that a worker drops out within a minute (it returns after 1-10 s)", "0")
      .option("--jitter <sigma>", "sigma of the lognormal factor on every service time", "0.2")
      .option("--dial-concurrency <n>", "connections opened at once", "200")
      .option("--stats-interval <ms>", "how often to log the swarm summary", "5000"),
  ).action(async (o: Record<string, unknown>) => run((await import("./commands/swarm.js")).swarmCommand(o)));

  program
    .command("report")
    .description("write report.md and SVG charts: measured throughput, H100-equivalents, the billion-device extrapolation")
    .addOption(coordinatorOption("http://host:7070"))
    .addOption(tokenOption("client"))
    .addOption(caOption())
    .requiredOption("--out <dir>", "folder for report.md and the charts")
    .option("--profiles <file.json>", "reference figures to override (any subset, JSON)")
    .option("--set <path=value>", "override one reference figure, e.g. availability.central=0.3; repeatable", collect)
    .option("--devices <n>", "fleet size to extrapolate to (default 1e9)")
    .action(async (o: Record<string, unknown>) => run((await import("./commands/report.js")).reportCommand({ ...o, set: o.set ?? [] }, argv)));

  program
    .command("bench")
    .description("measurements that need a pool")
    .command("scaling")
    .description("pooled throughput with 1..k real workers and n virtual ones, with a Universal Scalability Law fit")
    .option("--max-real <k>", "real worker processes to go up to (default: cores + 1)")
    .option("--virtual <list>", "virtual worker counts, comma-separated", "500,2000,5000,10000")
    .option("--json", "print one JSON object")
    .action(async (o: Record<string, unknown>) => run((await import("./commands/bench.js")).benchScalingCommand(o)));

  program
    .command("conformance")
    .description("run a folder of models with expected outputs through a pool and report pass/fail")
    .argument("<dir>", "folder with <name>.onnx and <name>_output_0.pb files")
    .option("--coordinator <url>", "use this coordinator instead of a local pool")
    .addOption(tokenOption("client"))
    .addOption(caOption())
    .option("--workers <n>", "local pool size", "2")
    .option("--rtol <x>", "relative tolerance", "1e-3")
    .option("--atol <x>", "absolute tolerance", "1e-7")
    .action(async (dir: string, o: Record<string, unknown>) => run((await import("./commands/conformance.js")).conformanceCommand(dir, o)));

  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    if (e.code === "commander.helpDisplayed" || e.code === "commander.help" || e.code === "commander.version") return 0;
    if (typeof e.exitCode === "number") return e.exitCode === 1 ? 2 : e.exitCode;
    // Not a usage error (commander printed those): a command's module that failed to load, or
    // a command that threw where it should have answered with a code. Say what it was.
    process.stderr.write(`edgepool: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  return code;
}
