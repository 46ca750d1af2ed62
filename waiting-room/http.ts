/**
 * uWebSockets.js request/response helpers: copy what a handler needs from the request
 * synchronously, attach onAborted before any async work, answer inside res.cork and never
 * after an abort, read bodies with a 4 KiB cap (the contract's, for public routes) or 64 KiB
 * under /admin/ (a room PUT may carry allow/block lists of up to 1,000 CIDRs each).
 */
import type uWS from 'uWebSockets.js';
import type { Logger } from 'pino';
import { errorBody, UNAVAILABLE_RETRY_AFTER_SECONDS } from '../shared/errors.js';
import { isRedisUnavailable } from '../shared/redis.js';
import { throttledWarn } from '../shared/log.js';
import { ERRORS, STATUS_TEXT, type ErrorCode } from './errors.js';

export const MAX_BODY_BYTES = 4096;
export const MAX_ADMIN_BODY_BYTES = 64 * 1024;

/** The body cap of a route pattern. */
export function bodyLimitOf(pattern: string): number {
  return pattern.startsWith('/admin/') ? MAX_ADMIN_BODY_BYTES : MAX_BODY_BYTES;
}

export interface Req {
  method: string;
  url: string;
  query: string;
  headers: Record<string, string>;
  /** The TCP peer address. */
  socketIp: string;
  params: string[];
}

export type Headers = Record<string, string | string[]>;
const NO_HEADERS: Headers = Object.freeze({}) as Headers;

export class Reply {
  aborted = false;
  done = false;
  constructor(readonly res: uWS.HttpResponse, readonly bodyLimit = MAX_BODY_BYTES) {
    res.onAborted(() => { this.aborted = true; });
  }

  send(status: number, body: string | Buffer, headers: Headers = NO_HEADERS): void {
    if (this.aborted || this.done) return;
    this.done = true;
    const res = this.res;
    res.cork(() => {
      res.writeStatus(STATUS_TEXT[status] ?? String(status));
      for (const name in headers) {
        const value = headers[name]!;
        if (typeof value === 'string') res.writeHeader(name, value);
        else for (let i = 0; i < value.length; i++) res.writeHeader(name, value[i]!);
      }
      res.end(body);
    });
  }

  json(status: number, body: unknown, headers: Headers = {}): void {
    this.send(status, JSON.stringify(body), { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  }

  error(code: ErrorCode, fields: Record<string, unknown> = {}, message?: string, headers: Headers = {}): void {
    const spec = ERRORS[code];
    const extra: Headers = { ...headers };
    if (code === 'rate_limited' && typeof fields.retryAfterSeconds === 'number') extra['retry-after'] = String(fields.retryAfterSeconds);
    if (code === 'unavailable') extra['retry-after'] ??= String(UNAVAILABLE_RETRY_AFTER_SECONDS);
    this.json(spec.status, errorBody(code, spec, fields, message), extra);
  }
}

/**
 * The request headers any route or the bot defence reads: only these are copied (one getHeader
 * each instead of a callback per header; add a name here before reading it anywhere).
 */
export const USED_HEADERS = [
  'authorization', 'content-type', 'content-length', 'cookie', 'x-visitor-id', 'x-forwarded-proto',
  'user-agent', 'accept', 'accept-language', 'sec-fetch-site',
] as const;

/** decodeURIComponent that answers null for a malformed escape (`%E0%A4%A`) instead of throwing. */
export function decodeSegment(s: string): string | null {
  if (s.indexOf('%') < 0) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

/**
 * Copy what a handler needs from the request, synchronously. Null when a URL parameter has a
 * malformed percent-escape (the caller answers 400 bad_request).
 */
export function copyRequest(res: uWS.HttpResponse, req: uWS.HttpRequest, paramCount = 0, url = req.getUrl()): Req | null {
  const headers: Record<string, string> = {};
  for (const name of USED_HEADERS) {
    const v = req.getHeader(name);
    if (v) headers[name] = v;
  }
  // x-forwarded-for may come as several lines (HAProxy adds its own line after the client's):
  // the last one is the proxy's, as before, so walk the headers only when there is one at all.
  if (req.getHeader('x-forwarded-for')) req.forEach((k, v) => { if (k === 'x-forwarded-for') headers[k] = v; });
  const params: string[] = [];
  for (let i = 0; i < paramCount; i++) {
    const p = decodeSegment(req.getParameter(i) ?? '');
    if (p === null) return null;
    params.push(p);
  }
  return {
    method: req.getCaseSensitiveMethod?.() ?? req.getMethod(),
    url,
    query: req.getQuery() ?? '',
    headers,
    // ASCII (digits, dots, colons, hex): latin1 over the bytes in place, no decoder.
    socketIp: Buffer.from(res.getRemoteAddressAsText()).toString('latin1'),
    params,
  };
}

/**
 * Start reading the body now (it must be attached synchronously). Resolves with the bytes,
 * or 'too_large' past the reply's bodyLimit (the rest is ignored), or 'aborted'.
 */
export function readBody(res: uWS.HttpResponse, reply: Reply): Promise<Buffer | 'too_large' | 'aborted'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let finished = false;
    res.onData((chunk, isLast) => {
      if (finished) return;
      if (reply.aborted) { finished = true; resolve('aborted'); return; }
      size += chunk.byteLength;
      if (size > reply.bodyLimit) { finished = true; resolve('too_large'); return; }
      // uWS reuses the chunk's memory after this callback: copy it.
      const copy = Buffer.from(chunk.slice(0));
      if (isLast) { finished = true; resolve(chunks.length ? Buffer.concat([...chunks, copy]) : copy); return; }
      chunks.push(copy);
    });
  });
}

/** A JSON object body: {} for an empty body, null for malformed JSON or a non-object. */
export function parseJsonObject(buf: Buffer): Record<string, unknown> | null {
  // `{}`, what a join usually sends: no string, no parse.
  if (buf.length === 2 && buf[0] === 0x7b && buf[1] === 0x7d) return {};
  const text = buf.toString('utf8');
  if (text.trim() === '') return {};
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** True when the declared content type can carry JSON (absent counts as JSON). */
export function isJsonContentType(headers: Record<string, string>): boolean {
  const ct = headers['content-type'];
  if (!ct || ct === 'application/json') return true;
  const base = ct.split(';')[0]!.trim().toLowerCase();
  return base === 'application/json' || base.endsWith('+json') || base === 'text/plain';
}

/**
 * Read and parse a JSON body with every contract check: 413 past the route's cap (4 KiB public,
 * 64 KiB admin), 400 bad_request for a wrong content type or malformed JSON. Resolves null when
 * an error was already sent.
 */
export async function readJson(res: uWS.HttpResponse, req: Req, reply: Reply, body: Promise<Buffer | 'too_large' | 'aborted'>): Promise<Record<string, unknown> | null> {
  const declared = Number(req.headers['content-length'] ?? 0);
  const tooLarge = () => reply.error('payload_too_large', {}, `The request body is larger than ${reply.bodyLimit / 1024} KiB.`);
  if (declared > reply.bodyLimit) { tooLarge(); return null; }
  const buf = await body;
  if (buf === 'aborted') return null;
  if (buf === 'too_large') { tooLarge(); return null; }
  if (buf.length > 0 && !isJsonContentType(req.headers)) { reply.error('bad_request', {}, 'The body must be JSON (content-type: application/json).'); return null; }
  const obj = parseJsonObject(buf);
  if (!obj) { reply.error('bad_request', {}, 'The body is not a JSON object.'); return null; }
  return obj;
}

export function queryParam(query: string, name: string): string | undefined {
  return new URLSearchParams(query).get(name) ?? undefined;
}

export type Handler = (req: Req, reply: Reply, body: Promise<Buffer | 'too_large' | 'aborted'> | null) => Promise<void>;

/** The answer to a fault thrown by a handler: 503 unavailable when Redis is away, else 500 internal (a bug). */
export function faultCode(err: unknown): 'unavailable' | 'internal' {
  return isRedisUnavailable(err) ? 'unavailable' : 'internal';
}

const registered = new WeakMap<uWS.TemplatedApp, string[]>();
const METHOD_NAME = { get: 'GET', post: 'POST', put: 'PUT', del: 'DELETE' } as const;

/** Note `METHOD pattern` as registered on `app` (route() does; so does the WebSocket route). */
export function noteRoute(app: uWS.TemplatedApp, method: keyof typeof METHOD_NAME, pattern: string): void {
  let list = registered.get(app);
  if (!list) registered.set(app, (list = []));
  list.push(`${METHOD_NAME[method]} ${pattern}`);
}

/** Every route registered on `app`, as `METHOD pattern` (the OpenAPI test holds the document to it). */
export function registeredRoutes(app: uWS.TemplatedApp): string[] {
  return [...(registered.get(app) ?? [])];
}

/**
 * Register a route: copy the request, start reading the body, answer 400 for a malformed URL and
 * 500/503 on faults. Nothing thrown by the handler, synchronously or not, escapes into uWS.
 */
export function route(app: uWS.TemplatedApp, method: 'get' | 'post' | 'put' | 'del', pattern: string, log: Logger, fn: Handler): void {
  const params = (pattern.match(/:/g) ?? []).length;
  const limit = bodyLimitOf(pattern);
  noteRoute(app, method, pattern);
  const unavailableWarn = throttledWarn(log);
  // Declared once per route, not per request (tsx names every closure bound to a name, per call).
  function failed(err: unknown, reply: Reply, url: string): void {
    const code = faultCode(err);
    if (code === 'internal') log.error({ err, url }, 'request failed');
    else unavailableWarn({ err: err instanceof Error ? err.message : String(err), url }, 'request failed: redis unavailable');
    reply.error(code);
  }
  const hasBody = method === 'post' || method === 'put';
  app[method](pattern, (res, req) => {
    const reply = new Reply(res, limit);
    let url = '';
    try {
      url = req.getUrl();
      const body = hasBody ? readBody(res, reply) : null;
      const r = copyRequest(res, req, params, url);
      if (!r) return reply.error('bad_request', {}, 'The URL has a malformed percent-escape.');
      fn(r, reply, body).then(undefined, (err: unknown) => failed(err, reply, url));
    } catch (err) {
      failed(err, reply, url);
    }
  });
}
