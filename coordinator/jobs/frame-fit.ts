/** Whether a job's shards can travel: every shard frame and result frame must fit the frame limit. */
import { EdgepoolError } from "../../shared/errors.js";

/** Room left in a frame for its JSON header and alignment padding. */
export const FRAME_HEADER_ALLOWANCE = 64 * 1024;

/**
 * Refuses a job whose shards could not travel in one frame: a single row over the frame
 * limit, or a fixed shard size whose input or (known) output rows exceed it (a shard holds at
 * most the job's `rows`). The message names the largest --shard-size that fits.
 */
export function checkShardsFitFrame(inRowBytes: number, outRowBytes: number, shardSize: number | null, maxFrameBytes: number, rows = Infinity): void {
  const perRow = Math.max(inRowBytes, outRowBytes, 1);
  const budget = maxFrameBytes - FRAME_HEADER_ALLOWANCE;
  const fits = Math.floor(budget / perRow);
  if (fits < 1) {
    throw new EdgepoolError(
      "E_TOO_LARGE",
      `one row of this job moves ${perRow} bytes, more than fits in one ${maxFrameBytes}-byte frame; start the coordinator with a larger --max-frame-mb`,
    );
  }
  if (shardSize !== null && Math.min(shardSize, rows) > fits) {
    throw new EdgepoolError(
      "E_TOO_LARGE",
      `--shard-size ${shardSize} makes frames of about ${Math.min(shardSize, rows) * perRow} bytes (${perRow} bytes a row), over the coordinator's ` +
        `frame limit of ${maxFrameBytes} bytes (--max-frame-mb); use --shard-size ${fits} or less, or leave it out to size shards automatically`,
    );
  }
}
