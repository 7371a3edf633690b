/**
 * The coordinator's HTTP routes: one table of method + path pattern → handler, with the
 * services each handler needs passed in. Every request is first checked against its route's
 * roles (auth.ts; an unknown route under /api needs a token too, so it tells nothing to a
 * stranger), then matched. API patterns match decoded path segments (`:name` is one segment,
 * empty segments are ignored); static pages match their exact path, since "/join/" is not
 * "/join" to a browser resolving relative links. While the coordinator is closing, routes
 * that take work answer E_UNAVAILABLE.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import { PROTOCOL_VERSION } from "../../shared/protocol/messages.js";
import { type JobListView, jobView } from "../api/jobs.js";
import { modelView } from "../api/models.js";
import type { HealthView } from "../api/status.js";
import { uploadView } from "../api/uploads.js";
import { DASHBOARD_PATHS, serveDashboardAsset } from "../dashboard/assets.js";
import { CreateJobSchema } from "../api/jobs.js";
import type { JobService } from "../jobs/job-service.js";
import type { ModelStore } from "../jobs/model-store.js";
import type { JoinPage } from "../join/page.js";
import type { CoordinatorMetrics } from "../observe/metrics.js";
import type { StatusViews } from "../observe/status.js";
import { VERSION } from "../../shared/version.js";
import { type Authenticator, type Viewer, redactUrl } from "./auth.js";
import { serveFile } from "./files.js";
import { parseRequestUrl, readJson, sendError, sendJson } from "./http-util.js";
import { createInlineJob, isFrameBody } from "./inline-job.js";
import type { EventStream } from "./sse.js";

export type Method = "GET" | "HEAD" | "POST" | "DELETE";

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** The pattern's `:name` segments, decoded. */
  params: Readonly<Record<string, string>>;
  viewer: Viewer;
}

export interface Route {
  method: Method;
  /** `/api/jobs/:id`; with `exact`, a literal path compared with the request's as it came. */
  path: string;
  exact?: boolean;
  /** Creates something (a model, an upload, a job): refused while the coordinator closes. */
  takesWork?: boolean;
  handle: (ctx: RouteContext) => Promise<void> | void;
}

/** What the routes serve from; the coordinator wires it. */
export interface RouterServices {
  auth: Authenticator;
  models: ModelStore;
  jobs: JobService;
  metrics: CoordinatorMetrics;
  /** The dashboard's live feed. */
  feed: EventStream;
  /** The browser worker's page and assets, and the join QR code. */
  join: JoinPage;
  views: StatusViews;
  maxFrameBytes: number;
  /** False once the coordinator is closing. */
  acceptingWork: () => boolean;
}

/** ?wait=<ms> on a job request: answer when the job ends, or after that long (a long poll, at most 60 s). */
function waitParam(url: URL): number {
  return Math.min(60_000, Math.max(0, Number(url.searchParams.get("wait") ?? 0) || 0));
}

const OCTETS = "application/octet-stream";

/** Every route the coordinator answers. */
export function coordinatorRoutes(s: RouterServices): Route[] {
  const joinRoute = (method: Method, path: string): Route => ({ method, path, exact: true, handle: ({ req, res, url }) => s.join.serve(req, res, url) });
  return [
    ...DASHBOARD_PATHS.map((path): Route => ({ method: "GET", path, exact: true, handle: ({ res }) => serveDashboardAsset(res, path) })),
    ...s.join.paths.flatMap((path) => [joinRoute("GET", path), joinRoute("HEAD", path)]),
    { method: "GET", path: "/models/:sha", handle: ({ res, params }) => serveFile(res, s.models.pathOf(params.sha!), OCTETS) },
    { method: "GET", path: "/metrics", handle: ({ res }) => s.metrics.respond(res) },
    {
      method: "GET",
      path: "/api/health",
      handle: ({ res }) => sendJson(res, 200, { ok: true, version: VERSION, protocol: PROTOCOL_VERSION } satisfies HealthView),
    },
    { method: "GET", path: "/api/events", handle: ({ req, res, viewer }) => s.feed.open(req, res, viewer.seesAll ? null : viewer.owner) },
    { method: "GET", path: "/api/status", handle: ({ res, viewer }) => sendJson(res, 200, s.views.status(viewer)) },
    { method: "GET", path: "/api/report-data", handle: ({ res, viewer }) => sendJson(res, 200, s.views.reportData(viewer)) },
    { method: "POST", path: "/api/models", takesWork: true, handle: async ({ req, res }) => sendJson(res, 201, modelView(await s.models.upload(req))) },
    { method: "GET", path: "/api/models/:sha", handle: ({ res, params }) => sendJson(res, 200, modelView(s.models.require(params.sha!))) },
    { method: "POST", path: "/api/uploads", takesWork: true, handle: async ({ req, res }) => sendJson(res, 201, uploadView(await s.jobs.upload(req))) },
    {
      method: "POST",
      path: "/api/jobs",
      takesWork: true,
      handle: async ({ req, res, url, viewer }) => {
        if (isFrameBody(req)) return createInlineJob(s.jobs, s.maxFrameBytes, req, res, waitParam(url), viewer);
        const body = await readJson(req, CreateJobSchema);
        sendJson(res, 201, jobView(await s.jobs.create(body, viewer.owner)));
      },
    },
    { method: "GET", path: "/api/jobs", handle: ({ res, viewer }) => sendJson(res, 200, { jobs: s.jobs.list(viewer).map(jobView) } satisfies JobListView) },
    {
      method: "GET",
      path: "/api/jobs/:id",
      handle: async ({ res, url, params, viewer }) => sendJson(res, 200, jobView(await s.jobs.waitForEnd(params.id!, waitParam(url), viewer))),
    },
    { method: "POST", path: "/api/jobs/:id/cancel", takesWork: true, handle: ({ res, params, viewer }) => sendJson(res, 200, jobView(s.jobs.cancel(params.id!, viewer))) },
    { method: "DELETE", path: "/api/jobs/:id", handle: ({ res, params, viewer }) => sendJson(res, 200, jobView(s.jobs.cancel(params.id!, viewer))) },
    {
      method: "GET",
      path: "/api/jobs/:id/outputs/:name",
      handle: ({ res, params, viewer }) => serveFile(res, s.jobs.outputFile(params.id!, params.name!, viewer), OCTETS),
    },
  ];
}

interface CompiledRoute extends Route {
  /** Literal segments, or `{ param }` for a `:name` one. */
  segments: Array<string | { param: string }>;
}

/** Matches requests against a route table and answers errors as {error:{code,message}}. */
export class Router {
  private readonly routes: CompiledRoute[];

  constructor(
    routes: readonly Route[],
    private readonly auth: Authenticator,
    private readonly acceptingWork: () => boolean,
    private readonly log: Logger,
  ) {
    this.routes = routes.map((r) => ({
      ...r,
      segments: r.path
        .split("/")
        .filter(Boolean)
        .map((seg) => (seg.startsWith(":") ? { param: seg.slice(1) } : seg)),
    }));
  }

  /** The server's request listener: never throws; a failure is the error's answer. */
  readonly listener = (req: IncomingMessage, res: ServerResponse): void => {
    this.route(req, res).catch((err: unknown) => {
      const e = toEdgepoolError(err);
      // The URL may carry a token (?token=); headers are never logged.
      if (e.code === "E_INTERNAL") this.log.error({ err: e.message, url: redactUrl(req.url) }, "request failed");
      sendError(res, e);
    });
  };

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { url, parts } = parseRequestUrl(req.url);
    const method = req.method ?? "GET";
    // Throws E_AUTH / E_FORBIDDEN; public routes (pages, /api/health) pass with any caller.
    const viewer = this.auth.httpAccess(req, url, method, parts);
    for (const route of this.routes) {
      if (route.method !== method) continue;
      const params = route.exact ? (route.path === url.pathname ? {} : null) : matchSegments(route.segments, parts);
      if (params === null) continue;
      if (route.takesWork && !this.acceptingWork()) {
        throw new EdgepoolError("E_UNAVAILABLE", "the coordinator is shutting down and takes no new work; retry once it is back");
      }
      return route.handle({ req, res, url, params, viewer });
    }
    const hint = parts[0] === "api" ? "" : "; the API lives under /api";
    throw new EdgepoolError("E_NOT_FOUND", `no route ${method} ${url.pathname}${hint}`);
  }
}

function matchSegments(segments: CompiledRoute["segments"], parts: readonly string[]): Record<string, string> | null {
  if (segments.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (const [i, seg] of segments.entries()) {
    const part = parts[i]!;
    if (typeof seg === "string") {
      if (seg !== part) return null;
    } else params[seg.param] = part;
  }
  return params;
}
