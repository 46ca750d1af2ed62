/**
 * The shapes of the gateway's API as JSON Schema (TypeBox): the routes validate what clients send
 * with them (`validator()` below, compiled once at start-up) and `GET /openapi.json` publishes the
 * same objects (openapi.ts), so the document cannot say one thing while a route checks another.
 *
 * A refusal names the field as clients write it (`limits.ip.burst`, `block[0]`) and says the rule,
 * taken from the schema: `admitRatePerMin must be an integer from 0 to 6000000.`
 *
 * Three formats are the gateway's own (registered here, before any validator runs):
 * `iso-date-time` (an ISO-8601 date-time that Date.parse reads; normalised to UTC on save),
 * `cidr` (an IPv4 or IPv6 address or CIDR) and `http-url` (an absolute http(s) URL).
 */
import { isIP } from 'node:net';
import { Type, type Static, type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import Format from 'typebox/format';
import { MAX_TOKEN_TTL_SECONDS } from '../shared/admission.js';
import { ROOM_NAME } from './room-config.js';

export function isCidr(s: string): boolean {
  const [addr, bits, ...rest] = s.split('/');
  if (rest.length || !addr) return false;
  const family = isIP(addr);
  if (!family) return false;
  if (bits === undefined) return true;
  if (!/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}
const isIsoDateTime = (v: string) => /^\d{4}-\d{2}-\d{2}T/.test(v) && !Number.isNaN(Date.parse(v));
const isHttpUrl = (v: string) => {
  try { return /^https?:$/.test(new URL(v).protocol); } catch { return false; }
};
Format.Set('iso-date-time', isIsoDateTime);
Format.Set('cidr', isCidr);
Format.Set('http-url', isHttpUrl);

/** What a format means, in a refusal. */
const FORMAT_RULE: Record<string, string> = {
  'iso-date-time': 'an ISO-8601 date-time',
  cidr: 'an IPv4 or IPv6 CIDR',
  'http-url': 'an http(s) URL',
};

// Inputs

export const SALE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const IsoDateTime = () => Type.String({ format: 'iso-date-time', description: 'an ISO-8601 date-time' });
const Cidrs = () => Type.Array(Type.String({ format: 'cidr' }), { maxItems: 1000, description: 'a list of at most 1000 CIDRs' });
const BucketPatch = () => Type.Object({
  capacity: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000 })),
  refillPerSec: Type.Optional(Type.Number({ minimum: 0.001, maximum: 10_000_000 })),
}, { additionalProperties: false });

export const RoomParam = Type.Object({ room: Type.String({ pattern: ROOM_NAME.source, description: '1-64 letters, digits, "_" or "-"' }) });

/**
 * `PUT /admin/rooms/:room`: a partial update; a field left out keeps its value (or its default on
 * creation). `version` and `updatedAt` are accepted (a GET's answer may be sent back) and ignored.
 */
export const RoomPatchBody = Type.Object({
  room: Type.Optional(Type.String({ description: 'the room of the URL (or left out)' })),
  name: Type.Optional(Type.String({ maxLength: 80, pattern: '^[^\\u0000-\\u001f\\u007f]*\\S[^\\u0000-\\u001f\\u007f]*$', description: '1-80 characters, without control characters' })),
  sale: Type.Optional(Type.String({ pattern: SALE_NAME.source, description: '1-64 letters, digits, "_", "-" or "."' })),
  overbook: Type.Optional(Type.Number({ minimum: 1, maximum: 10 })),
  claimSeconds: Type.Optional(Type.Integer({ minimum: 10, maximum: 3600 })),
  opensAt: Type.Optional(IsoDateTime()),
  closesAt: Type.Optional(Type.Union([IsoDateTime(), Type.Null()])),
  prequeueSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 86400 })),
  admitRatePerMin: Type.Optional(Type.Integer({ minimum: 0, maximum: 6_000_000 })),
  maxActive: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000_000 })),
  tokenTtlSeconds: Type.Optional(Type.Integer({ minimum: 30, maximum: MAX_TOKEN_TTL_SECONDS })),
  checkoutUrl: Type.Optional(Type.String({ format: 'http-url' })),
  limits: Type.Optional(Type.Object({ ip: Type.Optional(BucketPatch()), subnet: Type.Optional(BucketPatch()), room: Type.Optional(BucketPatch()) }, { additionalProperties: false })),
  captcha: Type.Optional(Type.Object({
    mode: Type.Optional(Type.Enum(['off', 'suspicious', 'always'])),
    threshold: Type.Optional(Type.Number({ minimum: 0, maximum: 1000 })),
  }, { additionalProperties: false })),
  allow: Type.Optional(Cidrs()),
  block: Type.Optional(Cidrs()),
  trustedProxies: Type.Optional(Cidrs()),
  paused: Type.Optional(Type.Boolean()),
  closed: Type.Optional(Type.Boolean()),
  record: Type.Optional(Type.Boolean()),
  version: Type.Optional(Type.Unknown()),
  updatedAt: Type.Optional(Type.Unknown()),
}, { additionalProperties: false });
export type RoomPatchBody = Static<typeof RoomPatchBody>;

/** `POST /api/rooms/:room/join`. */
export const JoinBody = Type.Object({
  captchaToken: Type.Optional(Type.String({ maxLength: 4000, description: 'the hCaptcha response, after a 403 captcha_required' })),
}, { additionalProperties: false });
export type JoinBody = Static<typeof JoinBody>;

/** A body that carries nothing (pause, resume, claim, key rotation): any JSON object, or none. */
export const AnyObject = Type.Object({});

/** Most entrants one page of the draw lists (docs/api.md section 8). */
export const MAX_DRAW_PAGE = 10_000;
/** `GET /api/rooms/:room/draw?after=N&limit=L`. */
/** GET /rooms?sale=: the sale whose waiting room a shopper is sent to. */
export const SaleRoomQuery = Type.Object({
  sale: Type.String({ maxLength: 200, description: "the sale's id, as checkout knows it" }),
});

export const DrawQuery = Type.Object({
  after: Type.Optional(Type.Integer({ minimum: 0, maximum: 999_999_999, default: 0, description: 'the last ticket already read (0 to start)' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_DRAW_PAGE, default: 1000 })),
});

// Answers (what the routes send; test/gateway/openapi.test.ts checks real answers against them)

const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()]);
export const ROOM_STATES = ['scheduled', 'prequeue', 'open', 'paused', 'sold_out', 'closed'] as const;
const State = () => Type.Enum([...ROOM_STATES]);
const Stock = { held: Type.Boolean(), unitsLeft: Nullable(Type.Integer({ minimum: 0 })) };

export const RoomStateAnswer = Type.Object({
  room: Type.String(), name: Type.String(), sale: Type.String(), state: State(), opensAt: Type.String(),
  prequeueOpensAt: Type.String(), closesAt: Nullable(Type.String()), queued: Type.Integer(), admittedThrough: Type.Integer(),
  admitRatePerMin: Type.Integer(), etaSecondsPerPlace: Nullable(Type.Number()), ...Stock,
  draw: Type.Object({ commitment: Type.String(), seed: Type.Optional(Type.String()), entrants: Type.Optional(Type.Integer()) }),
});
export const JoinAnswer = Type.Object({
  ticket: Nullable(Type.Integer({ minimum: 1 })), position: Nullable(Type.Integer({ minimum: 0 })), state: State(),
  visitorId: Type.String(), entrantId: Type.String(),
});
export const MeAnswer = Type.Object({
  ticket: Nullable(Type.Integer({ minimum: 1 })), position: Nullable(Type.Integer({ minimum: 0 })), admitted: Type.Boolean(), state: State(),
  etaSeconds: Nullable(Type.Number()), chance: Nullable(Type.Number({ minimum: 0, maximum: 1 })), entrantId: Type.String(), ...Stock,
});
export const ClaimAnswer = Type.Object({ token: Type.String(), checkoutUrl: Type.String(), expiresAt: Type.String() });
export const DrawAnswer = Type.Object({
  entrants: Type.Array(Type.Object({ ticket: Type.Integer({ minimum: 1 }), entrantId: Type.String() })),
  next: Nullable(Type.Integer()),
});
const ChanceBucket = Type.Object({
  from: Type.Number(), to: Type.Number(), visitors: Type.Integer(), shownMean: Nullable(Type.Number()),
  admitted: Type.Integer(), gotUnit: Type.Integer(), actual: Nullable(Type.Number()),
}, { description: 'visitors whose last chance shown before their wait ended was in [from, to) ([0.9, 1] for the last), and how many of them were admitted and bought' });
export const ReportAnswer = Type.Object({
  report: Type.Object({
    chance: Type.Object({ buckets: Type.Array(ChanceBucket), visitors: Type.Integer(), soldUnshown: Type.Integer() }, { description: '`chance` shown against what happened (docs/draw.md)' }),
  }),
  jws: Type.String(), kid: Type.String(),
}, { description: 'the signed fairness report (docs/draw.md)' });
export const AdminRoom = Type.Object({ room: Type.String(), sale: Type.String(), version: Type.Integer(), state: State(), held: Type.Boolean() }, { description: 'the room config (every field of PUT) with its state' });
export const AdminRooms = Type.Object({ rooms: Type.Array(AdminRoom) });
export const PauseAnswer = Type.Object({ room: Type.String(), state: State(), paused: Type.Boolean(), version: Type.Integer() });
export const AuditAnswer = Type.Object({
  entries: Type.Array(Type.Object({ at: Type.String(), action: Type.String(), version: Type.Integer(), changes: Type.Array(Type.Object({ field: Type.String(), old: Type.Unknown(), new: Type.Unknown() })) })),
});
export const StatsAnswer = Type.Object({
  room: Type.String(), arrivalsPerSecond: Type.Array(Type.Object({ at: Type.String(), arrivals: Type.Integer() })),
  arrivals: Type.Integer(), joined: Type.Integer(), queued: Type.Integer(), admitted: Type.Integer(), admittedThrough: Type.Integer(), active: Type.Integer(),
  challenged: Type.Integer(), challengePassRate: Nullable(Type.Number()), rateLimited: Type.Integer(), blocked: Type.Integer(), fairness: Type.Object({}),
});
export const RotateAnswer = Type.Object({ kid: Type.String(), keys: Type.Array(Type.String()) });
export const HealthAnswer = Type.Object({ ok: Type.Boolean(), redis: Type.Enum(['up', 'down']) });
export const JwksAnswer = Type.Object({ keys: Type.Array(Type.Object({ kty: Type.String(), crv: Type.String(), x: Type.String(), kid: Type.String() })) });

// Validation

export type Verdict = { ok: true } | { ok: false; field: string; message: string };
const VALID: Verdict = Object.freeze({ ok: true });

interface Node { type?: string; format?: string; enum?: string[]; anyOf?: Node[]; minimum?: number; maximum?: number; maxLength?: number; description?: string; properties?: Record<string, Node>; items?: Node }

/** The rule a schema states, as a refusal says it after "must be". */
function rule(s: Node): string {
  if (s.anyOf) return s.anyOf.map(rule).join(' or ');
  if (s.enum) return s.enum.length === 1 ? `"${s.enum[0]}"` : `${s.enum.slice(0, -1).map((v) => `"${v}"`).join(', ')} or "${s.enum.at(-1)}"`;
  if (s.type === 'null') return 'null';
  if (s.format && FORMAT_RULE[s.format]) return FORMAT_RULE[s.format]!;
  if (s.description) return s.description;
  if (s.type === 'integer' || s.type === 'number') return `${s.type === 'integer' ? 'an integer' : 'a number'} from ${s.minimum} to ${s.maximum}`;
  if (s.type === 'boolean') return 'true or false';
  if (s.type === 'string') return s.maxLength === undefined ? 'a string' : `a string of at most ${s.maxLength} characters`;
  return `${s.type === 'array' ? 'a list' : 'an object'}`;
}

/** The field a JSON pointer names, as clients write it, and the schema that holds there (undefined: not a known field). */
function locate(root: Node, pointer: string): { field: string; node: Node | undefined } {
  let node: Node | undefined = root;
  let field = '';
  for (const seg of pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))) {
    if (node?.type === 'array') { field += `[${seg}]`; node = node.items; continue; }
    field += field ? `.${seg}` : seg;
    node = node?.properties && Object.hasOwn(node.properties, seg) ? node.properties[seg] : undefined;
  }
  return { field: field || 'body', node };
}

/**
 * A validator of `schema`, compiled once (the check itself is generated code: what a join pays).
 * Only a refusal walks the errors to name the field and the rule.
 */
export function validator(schema: TSchema): (value: unknown) => Verdict {
  const compiled = Compile(schema);
  return (value) => {
    if (compiled.Check(value)) return VALID;
    const [first] = compiled.Errors(value);
    if (!first) return { ok: false, field: 'body', message: 'The body is not the documented shape.' };
    const extra = first.keyword === 'additionalProperties' ? (first.params as { additionalProperties?: string[] }).additionalProperties?.[0] : undefined;
    const { field, node } = locate(schema as Node, extra === undefined ? first.instancePath : `${first.instancePath}/${extra}`);
    if (!node) return { ok: false, field, message: `${field} is not a known field.` };
    // A text that is no address at all reads better as "is not": `block[1] is not an IPv4 or IPv6 CIDR.`
    return { ok: false, field, message: `${field} ${node.format === 'cidr' ? 'is not' : 'must be'} ${rule(node)}.` };
  };
}
