/** `edgepool report`: turn a coordinator's measurements into report.md and SVG charts. */
import path from "node:path";
import { z } from "zod";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { loadProfiles } from "../../coordinator/report/reference-profiles.js";
import { writeReport } from "../../coordinator/report/render.js";
import { ClientAuthSchema, clientOptions, fail, parseOptions } from "../cli-util.js";

const ReportOptionsSchema = ClientAuthSchema.extend({
  coordinator: z.string().min(1),
  out: z.string().min(1),
  profiles: z.string().optional(),
  set: z.array(z.string()).default([]),
  devices: z.coerce.number().positive().optional(),
});

export async function reportCommand(raw: Record<string, unknown>, argv: string[]): Promise<number> {
  try {
    const opts = parseOptions(ReportOptionsSchema, raw);
    const profiles = await loadProfiles({ ...(opts.profiles ? { file: opts.profiles } : {}), overrides: opts.set });
    const data = await new CoordinatorClient(opts.coordinator, clientOptions(opts)).reportData();
    const command = ["npx", "edgepool", ...argv.slice(2)].join(" ");
    const { reportPath } = await writeReport(path.resolve(opts.out), data, profiles, { command, ...(opts.devices ? { devices: opts.devices } : {}) });
    process.stdout.write(`report written to ${reportPath}\n`);
    return 0;
  } catch (err) {
    return fail("report", err);
  }
}
