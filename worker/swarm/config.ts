/** The swarm's options: validated once with zod into one normalized object (parseSwarmConfig). */
import { z } from "zod";
import { parseConfig } from "../../shared/config.js";
import { CaFileSchema } from "../../shared/node/tls.js";
import { TokenOptionSchema } from "../../shared/token.js";
import { WorkerConfigSchema } from "../config.js";
import { ProfileMixSchema } from "./profiles.js";

/** Version reported as the simulated runtime's, so reports can tell simulator revisions apart. */
export const SIMULATOR_VERSION = "1";

const Ms = z.coerce.number().int().positive().max(24 * 3600 * 1000);

export const SwarmConfigSchema = z
  .object({
    coordinator: WorkerConfigSchema.shape.coordinator,
    count: z.coerce.number().int().min(1).max(1_000_000),
    /** A tier ("mid") or a mix ("flagship:0.2,mid:0.45,low:0.35"). */
    profile: ProfileMixSchema.default(ProfileMixSchema.parse("flagship:0.2,mid:0.45,low:0.35")),
    /** Probability that a connected virtual worker drops out within a minute. */
    dropoutPerMin: z.coerce.number().min(0).max(1, "give a probability from 0 to 1").default(0),
    /** A dropped-out worker comes back after a delay drawn uniformly from this range. */
    dropoutDelayMinMs: Ms.default(1_000),
    dropoutDelayMaxMs: Ms.default(10_000),
    /** Sigma of the lognormal (mean 1) factor applied to every service time; 0 for none. */
    jitter: z.coerce.number().min(0).max(3).default(0.2),
    /** Workers dialling (connect + hello + welcome) at once. */
    dialConcurrency: z.coerce.number().int().min(1).max(10_000).default(200),
    reconnectMinMs: Ms.default(250),
    reconnectMaxMs: Ms.default(10_000),
    /** Dial, upgrade and welcome together must take no longer than this. */
    connectTimeoutMs: Ms.default(15_000),
    /** One `GET /api/models/<sha>` may take this long. */
    modelTimeoutMs: Ms.default(30_000),
    /** Spread source addresses over 127.0.x.y: "auto" does so on Linux for a 127.x.x.x coordinator. */
    spreadSourceAddresses: z.union([z.boolean(), z.literal("auto")]).default("auto"),
    maxPayloadBytes: z.coerce.number().int().min(1 << 20).max(2 ** 32).default(512 * (1 << 20)),
    /** Worker token for a coordinator started with tokens; every virtual worker dials with it. */
    token: TokenOptionSchema,
    /** CA certificate to trust for a wss:// coordinator with a self-signed certificate. */
    ca: CaFileSchema.optional(),
  })
  .refine((c) => c.dropoutDelayMinMs <= c.dropoutDelayMaxMs, { message: "must not exceed dropoutDelayMaxMs", path: ["dropoutDelayMinMs"] })
  .refine((c) => c.reconnectMinMs <= c.reconnectMaxMs, { message: "must not exceed reconnectMaxMs", path: ["reconnectMinMs"] });

export type SwarmConfig = z.infer<typeof SwarmConfigSchema>;
export type SwarmOptions = z.input<typeof SwarmConfigSchema>;

/** Validates swarm options; a bad value becomes an E_CONFIG error naming the option. */
export function parseSwarmConfig(input: unknown): SwarmConfig {
  return parseConfig(SwarmConfigSchema, input);
}
