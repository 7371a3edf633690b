/**
 * What a virtual worker needs to know of a model to fake its answer: FLOPs per sample (for
 * the service time) and the outputs' dtypes and shapes after the batch dim (for zero
 * outputs). Fetched from the coordinator's `GET /api/models/<sha>` once per model for the
 * whole swarm; a failed fetch is not cached, so the next shard of that model tries again.
 */
import type { Logger } from "pino";
import { z } from "zod";
import { EdgepoolError } from "../../shared/errors.js";
import { httpRequest } from "../../shared/node/http-request.js";
import { IoInfoSchema } from "../../shared/onnx/model-info.js";
import type { TensorSpec } from "../../shared/protocol/frame.js";
import { authHeader } from "../../shared/token.js";
import type { SwarmConfig } from "./config.js";

export interface OutputSpec {
  name: string;
  dtype: TensorSpec["dtype"];
  /** Dims after the batch dim. */
  tail: number[];
}

export interface ModelSpec {
  flopsPerSample: number;
  outputs: OutputSpec[];
  /** Set when outputs cannot be shaped without running the model; every shard gets it as shard_error. */
  shapeError: string | null;
}

const ModelViewSchema = z.object({
  flopsPerSample: z.number().nonnegative(),
  outputs: z.array(IoInfoSchema).min(1),
});

function modelSpec(view: z.infer<typeof ModelViewSchema>): ModelSpec {
  const outputs: OutputSpec[] = [];
  for (const o of view.outputs) {
    if (o.shape.length === 0) {
      return { flopsPerSample: view.flopsPerSample, outputs, shapeError: `output '${o.name}' is a scalar with no batch dim; a virtual worker cannot shape it` };
    }
    const tail: number[] = [];
    for (const d of o.shape.slice(1)) {
      if (typeof d !== "number") {
        return {
          flopsPerSample: view.flopsPerSample,
          outputs,
          shapeError: `output '${o.name}' has symbolic dim '${d}' besides the batch dim [${o.shape.join(",")}]; a virtual worker cannot know its size without running the model`,
        };
      }
      tail.push(d);
    }
    outputs.push({ name: o.name, dtype: o.dtype, tail });
  }
  return { flopsPerSample: view.flopsPerSample, outputs, shapeError: null };
}

/** The `http(s)://host:port` origin of a ws(s):// coordinator URL. */
export function httpOrigin(wsUrl: string): string {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  return u.origin;
}

/** Model specs by hash, fetched once for the whole swarm. */
export class ModelSpecs {
  private readonly specs = new Map<string, Promise<ModelSpec>>();
  private readonly origin: string;

  constructor(
    private readonly config: SwarmConfig,
    private readonly log: Logger,
  ) {
    this.origin = httpOrigin(config.coordinator);
  }

  /** The spec of model `sha`; rejects with E_UNAVAILABLE, E_NOT_FOUND or E_PROTOCOL. */
  get(sha: string): Promise<ModelSpec> {
    let p = this.specs.get(sha);
    if (!p) {
      p = this.fetch(sha);
      this.specs.set(sha, p);
      p.catch(() => {
        if (this.specs.get(sha) === p) this.specs.delete(sha);
      });
    }
    return p;
  }

  private async fetch(sha: string): Promise<ModelSpec> {
    const url = `${this.origin}/api/models/${sha}`;
    let res: Response;
    try {
      res = await httpRequest(url, {
        signal: AbortSignal.timeout(this.config.modelTimeoutMs),
        headers: authHeader(this.config.token),
        ...(this.config.ca ? { ca: this.config.ca.pem } : {}),
      });
    } catch (cause) {
      throw new EdgepoolError("E_UNAVAILABLE", `cannot fetch model ${sha} info from ${url}`, { cause });
    }
    if (!res.ok) throw new EdgepoolError(res.status === 404 ? "E_NOT_FOUND" : "E_UNAVAILABLE", `GET ${url} answered HTTP ${res.status}`);
    const parsed = ModelViewSchema.safeParse(await res.json());
    if (!parsed.success) throw new EdgepoolError("E_PROTOCOL", `unexpected model info from ${url}: ${parsed.error.issues[0]?.message ?? "invalid"}`);
    const spec = modelSpec(parsed.data);
    this.log.info({ model: sha, flopsPerSample: spec.flopsPerSample, outputs: spec.outputs.length, shapeError: spec.shapeError }, "model info fetched");
    return spec;
  }
}
