/**
 * POST /api/jobs with a frame body: the job's settings in the header, its inputs as the
 * tensors, all in one request (small jobs: one round trip instead of an upload per input,
 * a create and a poll). With ?wait=<ms>, the answer waits for the job to end; when it is
 * done in time, the answer is a frame too, the job's view in its header and the outputs as
 * its tensors. Otherwise it is the job's JSON view, as for any other job.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import { FRAME_MEDIA_TYPE, decodeFrame, encodeFrame } from "../../shared/protocol/frame.js";
import { type InlineAnswerHeader, jobView } from "../api/jobs.js";
import { InlineJobSchema } from "../api/jobs.js";
import type { JobService } from "../jobs/job-service.js";
import type { Viewer } from "./auth.js";
import { readBody, sendJson } from "./http-util.js";

/** True when the request's body is an edgepool frame (an inline job) rather than JSON. */
export function isFrameBody(req: IncomingMessage): boolean {
  return (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase() === FRAME_MEDIA_TYPE;
}

/** Creates the job from the frame and answers as described above; `waitMs` is the request's ?wait. */
export async function createInlineJob(
  jobs: JobService,
  maxFrameBytes: number,
  req: IncomingMessage,
  res: ServerResponse,
  waitMs: number,
  viewer: Viewer,
): Promise<void> {
  const body = await readBody(req, maxFrameBytes, "inline job frame", "--max-frame-mb");
  let frame: ReturnType<typeof decodeFrame>;
  try {
    frame = decodeFrame(body);
  } catch (err) {
    throw new EdgepoolError("E_BAD_REQUEST", `the inline job body is not an edgepool frame: ${toEdgepoolError(err).message}`);
  }
  const spec = InlineJobSchema.safeParse(frame.header);
  if (!spec.success) {
    const issue = spec.error.issues[0];
    throw new EdgepoolError("E_BAD_REQUEST", `invalid inline job header: ${issue?.path.join(".") ?? ""} ${issue?.message ?? ""}`.trim());
  }
  const { job, inputsWritten } = await jobs.createInline(spec.data, frame.tensors, viewer.owner, waitMs > 0);
  if (waitMs <= 0) {
    // No one waits for its outputs here: answered once its inputs are on disk, so the job survives a restart from then on.
    await inputsWritten;
    return sendJson(res, 201, jobView(jobs.get(job.id)));
  }
  const { row, outputs } = await jobs.inlineAnswer(job, waitMs);
  if (!outputs) return sendJson(res, 201, jobView(row));
  const header: InlineAnswerHeader = { job: jobView(row) };
  const answer = encodeFrame(header, outputs);
  res.writeHead(201, { "content-type": FRAME_MEDIA_TYPE, "content-length": answer.byteLength });
  res.end(answer);
}
