/** `edgepool bench scaling`: throughput against pool size, with a Universal Scalability Law fit. */
import os from "node:os";
import { z } from "zod";
import { describeFit, scalingBench } from "../scaling.js";
import { fail, parseOptions } from "../cli-util.js";

const ScalingOptionsSchema = z.object({
  maxReal: z.coerce.number().int().min(1).max(64).default(Math.max(3, os.availableParallelism() + 1)),
  virtual: z
    .string()
    .default("500,2000,5000,10000")
    .transform((s) => s.split(",").map((x) => Number(x.trim())))
    .pipe(z.array(z.number().int().positive()).max(12)),
  json: z.boolean().default(false),
});

export async function benchScalingCommand(raw: Record<string, unknown>): Promise<number> {
  try {
    const opts = parseOptions(ScalingOptionsSchema, raw);
    const say = (line: string) => {
      if (!opts.json) process.stdout.write(`${line}\n`);
    };
    const result = await scalingBench({ maxReal: opts.maxReal, virtualCounts: opts.virtual, say });
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    } else {
      say(describeFit("real workers (samples/s)", result.real.fit, "samples/s"));
      say(describeFit("virtual workers, coordinator capacity (shards/s)", result.virtual.fit, "shards/s"));
      for (const p of result.virtual.predicted) say(`  predicted at N=${p.n.toExponential(0)}: ${p.shardsPerSec.toFixed(0)} shards/s`);
    }
    return 0;
  } catch (err) {
    return fail("bench scaling", err);
  }
}
