/**
 * Models by content hash, in the browser: `GET {base}/{sha256}` from the coordinator, the
 * body's sha256 checked before ONNX Runtime sees a byte. A download that stalls is given up
 * after `timeoutMs`; one bigger than `maxBytes` is refused while it streams.
 */
import { readBodyCapped } from "../../shared/read-body.js";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import { sha256Hex } from "./sha256.js";

const SHA256 = /^[0-9a-f]{64}$/;

export interface FetchModelOptions {
  timeoutMs: number;
  maxBytes: number;
  /** Sent as `Authorization: Bearer` when the coordinator requires a worker token. */
  token: string | null;
}

/** The verified bytes of model `sha256`. Throws E_MODEL_LOAD, E_TIMEOUT or E_MODEL_HASH. */
export async function fetchModel(base: string, sha256: string, opts: FetchModelOptions): Promise<Uint8Array> {
  if (!SHA256.test(sha256)) throw new EdgepoolError("E_BAD_REQUEST", `'${sha256}' is not a lowercase hex sha256`);
  const url = `${base.replace(/\/+$/, "")}/${sha256}`;
  const signal = AbortSignal.timeout(opts.timeoutMs);
  let bytes: Uint8Array;
  try {
    const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
    const res = await fetch(url, { signal, cache: "default", headers });
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      if (res.status === 401 || res.status === 403) {
        throw new EdgepoolError("E_AUTH", `GET ${url} answered HTTP ${res.status}: the coordinator wants a valid worker token; open the join link that carries one (…/join#token=…)`);
      }
      throw new EdgepoolError("E_MODEL_LOAD", `GET ${url} answered HTTP ${res.status}; the coordinator does not serve model ${sha256}`);
    }
    bytes = await readBodyCapped(res, opts.maxBytes, `model ${sha256}`, "this browser");
  } catch (err) {
    if (signal.aborted) throw new EdgepoolError("E_TIMEOUT", `downloading model ${sha256} took longer than ${opts.timeoutMs} ms`, { cause: err });
    if (err instanceof EdgepoolError) throw err;
    throw new EdgepoolError("E_MODEL_LOAD", `cannot download model ${sha256} from ${url}: ${toEdgepoolError(err).message}`, { cause: err });
  }
  const actual = await sha256Hex(bytes);
  if (actual !== sha256) throw new EdgepoolError("E_MODEL_HASH", `model downloaded from ${url} has sha256 ${actual}, not ${sha256}; not using it`);
  return bytes;
}
