/** Friendly options validated once: the first problem becomes an E_CONFIG error naming the flag. */
import type { z } from "zod";
import { EdgepoolError } from "./errors.js";

/** `shardSize` -> `--shard-size`: options are named as the user typed them. */
export function flagName(key: PropertyKey): string {
  return `--${String(key).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

export function parseConfig<T>(schema: z.ZodType<T>, input: unknown): T {
  const r = schema.safeParse(input ?? {});
  if (!r.success) {
    const issue = r.error.issues[0];
    const flag = issue && issue.path.length > 0 ? flagName(issue.path[0]!) : "options";
    throw new EdgepoolError("E_CONFIG", `invalid ${flag}: ${issue?.message ?? "invalid value"}`);
  }
  return r.data;
}
