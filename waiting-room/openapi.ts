/**
 * The gateway's OpenAPI 3.1 document (`GET /openapi.json`): one entry per route, whose request
 * schemas are the very objects the routes validate with (schemas.ts) and whose error responses
 * come from the error table by code (shared/openapi.ts, as checkout's do).
 * test/gateway/openapi.test.ts holds it against the routes the server registers, both ways, and
 * checks real answers against the answer schemas. docs/api.md is the prose beside it.
 */
import type { TSchema } from 'typebox';
import { addErrorResponses, openApiPath } from '../shared/openapi.js';
import { ERRORS, type ErrorCode } from './errors.js';
import {
  SaleRoomQuery,
  AdminRoom, AdminRooms, AnyObject, AuditAnswer, ClaimAnswer, DrawAnswer, DrawQuery, HealthAnswer, JoinAnswer, JoinBody, JwksAnswer,
  MeAnswer, PauseAnswer, ReportAnswer, RoomParam, RoomPatchBody, RoomStateAnswer, RotateAnswer, StatsAnswer,
} from './schemas.js';

interface Operation {
  summary: string;
  description?: string;
  query?: TSchema & { properties: Record<string, TSchema> };
  body?: TSchema;
  /** The success answer: its status, its JSON schema (or a media type for a page or text). */
  answer: { status: number; schema?: TSchema; media?: string };
  /** Error codes beyond those every route of its kind may answer (see `codesOf`). */
  errors?: ErrorCode[];
  /** Needs no Redis (pages, this document): never 503. */
  static?: boolean;
}

const WS_DESCRIPTION = 'Upgrade to a WebSocket (the visitor from the `wr_vid` cookie, `x-visitor-id`, or `?vid=` for cookieless clients). ' +
  'Server → client messages, JSON text frames: `{type:"position", position, etaSeconds, chance, admittedThrough, queued, state, held, unitsLeft}` ' +
  'at least every 2 s while waiting; `{type:"admitted", token, checkoutUrl, expiresAt}` when the visitor\'s turn comes; ' +
  '`{type:"state", state, held}` on pause, resume, sold out or close. Frames from the client are ignored. See docs/api.md.';

/** Every route the gateway registers, by `METHOD pattern` (uWS patterns: `:room`). */
export const OPERATIONS: Record<string, Operation> = {
  'GET /rooms/:room': { summary: 'The queue page (HTML)', answer: { status: 200, media: 'text/html' }, static: true },
  'GET /rooms/:room/draw': { summary: 'The draw verifier page (HTML)', answer: { status: 200, media: 'text/html' }, static: true },
  'GET /rooms': {
    summary: "The sale's waiting room: 302 to its queue page (the open one first), or a 404 page when no room guards the sale",
    query: SaleRoomQuery, answer: { status: 302 }, static: true,
  },
  'GET /admin': { summary: 'The operator console (HTML; it asks for the admin token before any /admin/ call)', answer: { status: 200, media: 'text/html' }, static: true },
  'GET /api/rooms/:room': { summary: "A room's public state", answer: { status: 200, schema: RoomStateAnswer } },
  'POST /api/rooms/:room/join': {
    summary: 'Join the queue (idempotent per visitor)', body: JoinBody, answer: { status: 200, schema: JoinAnswer },
    errors: ['captcha_required', 'captcha_failed', 'blocked', 'not_open', 'sold_out', 'closed', 'rate_limited'],
  },
  'GET /api/rooms/:room/me': { summary: "The visitor's place", answer: { status: 200, schema: MeAnswer }, errors: ['not_in_queue'] },
  'POST /api/rooms/:room/claim': { summary: 'The admission token, once admitted (the same one on repeat)', body: AnyObject, answer: { status: 200, schema: ClaimAnswer }, errors: ['not_in_queue', 'not_yet'] },
  'GET /api/rooms/:room/ws': { summary: 'Live updates (WebSocket)', description: WS_DESCRIPTION, answer: { status: 101 } },
  'GET /api/rooms/:room/draw': { summary: 'The drawn pre-queue entrants in ticket order, once open', query: DrawQuery, answer: { status: 200, schema: DrawAnswer }, errors: ['not_open'] },
  'GET /api/rooms/:room/report': { summary: 'The signed fairness report, once closed or sold out', answer: { status: 200, schema: ReportAnswer }, errors: ['not_yet'] },
  'GET /healthz': { summary: '200 while Redis answers, else 503', answer: { status: 200, schema: HealthAnswer } },
  'GET /metrics': { summary: 'Prometheus metrics', answer: { status: 200, media: 'text/plain' } },
  'GET /.well-known/jwks.json': { summary: 'The public keys that verify admission tokens', answer: { status: 200, schema: JwksAnswer } },
  'GET /openapi.json': { summary: 'This document', answer: { status: 200, schema: { type: 'object' } as TSchema }, static: true },
  'GET /admin/rooms': { summary: 'Every room with its state', answer: { status: 200, schema: AdminRooms } },
  'GET /admin/rooms/:room': { summary: "A room's config and state", answer: { status: 200, schema: AdminRoom } },
  'PUT /admin/rooms/:room': { summary: 'Create (201) or update (200) a room', body: RoomPatchBody, answer: { status: 200, schema: AdminRoom } },
  'POST /admin/rooms/:room/pause': { summary: 'Pause admission', body: AnyObject, answer: { status: 200, schema: PauseAnswer } },
  'POST /admin/rooms/:room/resume': { summary: 'Resume admission', body: AnyObject, answer: { status: 200, schema: PauseAnswer } },
  'GET /admin/rooms/:room/audit': { summary: "The room's audit log", answer: { status: 200, schema: AuditAnswer } },
  'GET /admin/rooms/:room/stats': { summary: "The room's live figures", answer: { status: 200, schema: StatsAnswer } },
  'GET /admin/rooms/:room/recording': { summary: "The room's arrival recording (NDJSON)", answer: { status: 200, media: 'application/x-ndjson' }, errors: ['not_found'] },
  'POST /admin/keys/rotate': { summary: 'Rotate the admission-token signing key', body: AnyObject, answer: { status: 200, schema: RotateAnswer } },
};

/** The error codes a route may answer: its own, plus those of every route with its path, body and guard. */
function codesOf(key: string, op: Operation): ErrorCode[] {
  const path = key.split(' ')[1]!;
  const codes: ErrorCode[] = ['internal', ...(op.errors ?? [])];
  if (!op.static) codes.push('unavailable');
  if (path.includes(':') || op.query || op.body) codes.push('bad_request');
  if (path.includes(':room') && !op.static) codes.push('unknown_room');
  if (op.body) codes.push('payload_too_large');
  if (path.startsWith('/admin/')) codes.push('unauthorized');
  return codes;
}

const json = (schema: unknown) => ({ content: { 'application/json': { schema } } });

function operation(key: string, op: Operation) {
  const path = key.split(' ')[1]!;
  const parameters: unknown[] = [...path.matchAll(/:([A-Za-z0-9_]+)/g)].map(([, name]) => ({
    name, in: 'path', required: true, schema: name === 'room' ? RoomParam.properties.room : { type: 'string' },
  }));
  for (const [name, schema] of Object.entries(op.query?.properties ?? {})) parameters.push({ name, in: 'query', required: false, schema });
  const { status, schema, media } = op.answer;
  const responses: Record<string, unknown> = {
    [status]: { description: op.summary, ...(schema ? json(schema) : media ? { content: { [media]: { schema: { type: 'string' } } } } : {}) },
  };
  if (key === 'PUT /admin/rooms/:room') responses[201] = { description: 'Created', ...json(schema) };
  if (key === 'GET /healthz') responses[503] = { description: 'Redis does not answer', ...json(schema) };
  const errors: Record<string, unknown> = {};
  addErrorResponses(errors, ERRORS, codesOf(key, op));
  for (const [s, e] of Object.entries(errors)) responses[s] ??= { description: (e as { description: string }).description, ...json(e) };
  return {
    summary: op.summary,
    ...(op.description ? { description: op.description } : {}),
    ...(path.startsWith('/admin/') ? { security: [{ bearer: [] }] } : {}),
    ...(parameters.length ? { parameters } : {}),
    ...(op.body ? { requestBody: { required: false, ...json(op.body) } } : {}),
    responses,
  };
}

/** The document, built once per process. */
export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [key, op] of Object.entries(OPERATIONS)) {
    const [method, path] = key.split(' ') as [string, string];
    (paths[openApiPath(path)] ??= {})[method.toLowerCase()] = operation(key, op);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'waiting-room gateway',
      version: '1',
      description: 'The fair waiting room in front of the flash-sale checkout: rooms, joins, live positions, admission tokens, the ' +
        'verifiable draw, the operator API. Every error body is `{error, message, ...fields}` with `error` one of the codes listed for its status.',
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths,
  };
}
