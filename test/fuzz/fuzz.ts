/**
 * The property-based fuzzer's shared parts (fast-check): requests as bytes on a raw socket
 * (node:net, so malformed escapes, raw header bytes and odd framing reach the server as sent),
 * generators of hostile input, and the contract's check of every answer.
 *
 * Bounded so the suite stays fast; a longer run:
 *   FUZZ_RUNS=5000 npx tap --disable-coverage -t 1800 test/fuzz/*.test.ts   inputs per route family (default: each family's own)
 *   FUZZ_SEED=123456 npx tap --disable-coverage test/fuzz/gateway.test.ts     replay the run that printed this seed
 *   FUZZ_SHRINK=0 ...                                                         report a failure without shrinking it
 * Each file prints its seed first (a crash of the process leaves no fast-check report behind).
 */
import crypto from 'node:crypto';
import fc from 'fast-check';
import { rawBytes, type RawAnswer, type RawEnd } from '../gateway/raw.js';

/** Inputs per route family: FUZZ_RUNS when set, else the family's default (the suite's bounded run). */
export function runsOf(dflt: number): number {
  const n = Number(process.env.FUZZ_RUNS);
  return Number.isSafeInteger(n) && n > 0 ? n : dflt;
}

export const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0;

interface Tap {
  comment(...args: unknown[]): void;
  pass(message: string): void;
}

/**
 * Run `check` on `runs` inputs of `arb` (fast-check shrinks a failure and throws with its seed and
 * path), then say how many inputs the family tried.
 */
export async function fuzz<T>(t: Tap, label: string, arb: fc.Arbitrary<T>, runs: number, check: (input: T) => Promise<void>, maxRuns = Infinity): Promise<number> {
  let tried = 0;
  const out = await fc.check(
    fc.asyncProperty(arb, async (input) => {
      tried++;
      await check(input);
    }),
    { numRuns: Math.min(runsOf(runs), maxRuns), seed: SEED, endOnFailure: process.env.FUZZ_SHRINK === '0' },
  );
  t.comment(`${label}: ${tried} inputs tried`);
  if (out.failed) {
    // fast-check's own report prints the whole counterexample (some inputs are 400 KB): a short one.
    const err = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
    throw new Error(`${label}: ${err}\n  counterexample: ${short(out.counterexample)}\n  replay: FUZZ_SEED=${out.seed} (path ${out.counterexamplePath}, ${out.numShrinks} shrinks)`);
  }
  t.pass(`${label}: every answer kept the contract`);
  return tried;
}

/** JSON with every long string cut (`x…(70000)`), for reports. */
export function short(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'string' && x.length > 120 ? `${x.slice(0, 60)}…(${x.length})` : Buffer.isBuffer(x) ? `<${x.length} bytes>` : x))?.slice(0, 2000) ?? String(v);
}

// ---------------------------------------------------------------------------------------------
// Requests on the wire

export interface Wire {
  method: string;
  /** The request target exactly as sent (not escaped here). */
  target: string;
  headers: [string, string][];
  body?: string | Buffer;
}

/** The request's bytes: the caller's headers as given, then host, content-length and connection: close unless given. */
export function bytesOf(w: Wire): Buffer {
  const body = w.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(w.body) ? w.body : Buffer.from(w.body, 'utf8');
  const has = (name: string) => w.headers.some(([n]) => n.toLowerCase() === name);
  const lines = [`${w.method} ${w.target} HTTP/1.1`, ...w.headers.map(([n, v]) => `${n}: ${v}`)];
  if (!has('host')) lines.push('host: 127.0.0.1');
  if (!has('content-length') && !has('transfer-encoding') && (body.length > 0 || w.method === 'POST' || w.method === 'PUT')) lines.push(`content-length: ${body.length}`);
  if (!has('connection')) lines.push('connection: close');
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8'), body]);
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** True when the request is valid HTTP/1.1 syntax: a server must answer it (a malformed one it may just drop). */
export function wellFormed(w: Wire): boolean {
  if (!TOKEN.test(w.method) || !/^[\x21-\x7e\x80-\uffff]+$/.test(w.target)) return false;
  return w.headers.every(([n, v]) => TOKEN.test(n) && !/[\x00-\x08\x0a-\x1f\x7f]/.test(v));
}

export type Answer = RawAnswer & { end: RawEnd };

export function send(port: number, w: Wire, ms = 5000): Promise<Answer> {
  return rawBytes(port, bytesOf(w), ms);
}

/** The JSON of an answer's body, or undefined when it is none. */
export function jsonOf(a: Answer): unknown {
  try {
    return JSON.parse(a.body);
  } catch {
    return undefined;
  }
}

export interface Tally {
  /** Inputs per route family. */
  families: Record<string, number>;
  /** Answers per status (0: dropped without an answer). */
  statuses: Record<string, number>;
  /** 503 unavailable answers (allowed with Retry-After, not expected here). */
  unavailable: number;
  /** Malformed requests the server dropped without an answer. */
  dropped: number;
}

export function tally(): Tally {
  return { families: {}, statuses: {}, unavailable: 0, dropped: 0 };
}

/**
 * What is wrong with an answer under the contract, or null: an answer to every well-formed
 * request (no hang, no silent close), no 5xx but 503 `unavailable` with Retry-After, every
 * error a JSON `{error, message}` whose code is in the service's table, every JSON body JSON.
 */
export function problemOf(codes: Record<string, unknown>, w: Wire, a: Answer, count?: Tally, mayDrop = !wellFormed(w)): string | null {
  if (count) count.statuses[a.status] = (count.statuses[a.status] ?? 0) + 1;
  if (a.status === 0) {
    if (mayDrop) {
      if (count) count.dropped++;
      return null;
    }
    return a.end === 'timeout' ? 'no answer in time (a hang)' : 'closed without an answer';
  }
  if (w.method === 'HEAD') return a.status >= 500 ? `${a.status} to a HEAD` : null; // no body to check
  const ct = a.headers['content-type'] ?? '';
  const body = jsonOf(a) as Record<string, unknown> | undefined;
  if (ct.includes('json') && body === undefined && a.status !== 101) return `a ${ct} body that is not JSON: ${a.body.slice(0, 200)}`;
  if (a.status < 400) return null;
  if (a.status >= 500) {
    const fine = a.status === 503 && body?.error === 'unavailable' && a.headers['retry-after'] !== undefined;
    if (!fine) return `${a.status}: ${a.body.slice(0, 300)}`;
    if (count) count.unavailable++;
  }
  if (!ct.includes('json') || !body || typeof body !== 'object') return `error ${a.status} without a JSON body: ${ct} ${a.body.slice(0, 200)}`;
  if (typeof body.error !== 'string' || !Object.hasOwn(codes, body.error)) return `error code ${JSON.stringify(body.error)} is not in the contract's table`;
  if (typeof body.message !== 'string' || body.message === '') return `error ${body.error} without a message`;
  return null;
}

/** Send `w`, check the answer, throw (for fast-check to shrink) when it breaks the contract. */
export async function exchange(port: number, codes: Record<string, unknown>, w: Wire, count: Tally, opts: { ms?: number; mayDrop?: (w: Wire) => boolean } = {}): Promise<Answer> {
  const ms = opts.ms ?? 5000;
  const mayDrop = !wellFormed(w) || (opts.mayDrop?.(w) ?? false);
  const a = await send(port, w, mayDrop ? Math.min(ms, 150) : ms);
  const p = problemOf(codes, w, a, count, mayDrop);
  if (p) throw new Error(`${p}\n  request: ${short(bytesOf(w).toString('utf8'))}`);
  return a;
}

// ---------------------------------------------------------------------------------------------
// Hostile input

/** Percent-encode every byte outside the unreserved set (lone surrogates included, as UTF-8 of U+FFFD). */
export function pct(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9._~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

const NASTY = [
  '', '.', '..', '../..', '..%2f..', '%2e%2e', '%', '%%', '%zz', '%E0%A4%A', '%C0%AF', '%ED%A0%80', '%FF', '%00', '%0d%0a', '%2F', '+',
  '\u0000', '\u0001\u001f', '\u007f', '\t', '\u202e', 'é', 'ü', '💥', '\ud800', '\udfff', '𝕏', 'ß', '\ufeff', '\u2028',
  'null', 'true', '0', '-1', '1e309', 'NaN', 'Infinity', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty',
  "' OR 1=1--", '"; DROP TABLE users;--', '<script>', '${x}', '{{x}}', '%s%s%s', '\\', '/', '//', '?', '#', '&', '=', ';', ',', '"',
];
export const nasty = fc.constantFrom(...NASTY);
/** Very long text: over the 1 KiB frame cap, the 4 KiB and 16 KiB body caps, the 64 KiB admin cap. */
export const long = fc.constantFrom(300, 1025, 4097, 17_000, 70_000).chain((n) => fc.constantFrom('x', 'é', '%', '9').map((c) => c.repeat(n)));
/** Any hostile text: the list above, random text of every kind (control characters, lone surrogates), very long. */
export const junk: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: nasty, weight: 4 },
  { arbitrary: fc.string({ maxLength: 24 }), weight: 2 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }), weight: 2 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 12 }), weight: 2 },
  { arbitrary: long, weight: 1 },
);
/** `arb` one time in `oneIn`, else null (fc.option's `freq` is the other way round: null one time in `freq`). */
export function sometimes<T>(arb: fc.Arbitrary<T>, oneIn: number): fc.Arbitrary<T | null> {
  return fc.oneof({ arbitrary: fc.constant(null), weight: oneIn - 1 }, { arbitrary: arb, weight: 1 });
}

/** Text for a header value: junk without CR/LF (those end the header: see `rawHttp` for framing junk). */
export const headerJunk = junk.map((s) => s.replace(/[\r\n]/g, ''));

/** Request headers: each of `named` present three times in four (its own values), and up to two of `extra` with junk. */
export function headersOf(named: Record<string, fc.Arbitrary<string>>, extra: string[]): fc.Arbitrary<[string, string][]> {
  return fc
    .tuple(
      fc.record(Object.fromEntries(Object.entries(named).map(([n, v]) => [n, fc.option(v, { freq: 4 })]))),
      fc.array(fc.tuple(fc.constantFrom(...extra), headerJunk), { maxLength: 2 }),
    )
    .map(([hs, more]) => [...Object.entries(hs).filter((e): e is [string, string] => e[1] !== null), ...more]);
}

/** One URL path segment: a known one, the junk percent-encoded, or the junk as raw bytes. */
export function segment(known: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constantFrom(...known), weight: 4 },
    { arbitrary: junk.map(pct), weight: 2 },
    { arbitrary: junk.map((s) => s.replace(/[\r\n/?# ]/g, '')), weight: 2 },
  );
}

/** A query string (with its `?`), or none: known names with hostile values, hostile names, raw junk. */
export function query(names: string[], values: fc.Arbitrary<string> = junk): fc.Arbitrary<string> {
  const pair = fc.tuple(fc.oneof(fc.constantFrom(...names), junk.map(pct)), fc.oneof(values.map(pct), values.map((s) => s.replace(/[\r\n# ]/g, ''))));
  return fc.oneof(
    { arbitrary: fc.constant(''), weight: 3 },
    { arbitrary: fc.array(pair, { maxLength: 4 }).map((ps) => `?${ps.map(([k, v]) => `${k}=${v}`).join('&')}`), weight: 3 },
    { arbitrary: junk.map((s) => `?${s.replace(/[\r\n# ]/g, '')}`), weight: 1 },
  );
}

/** Numbers that break naive code: huge, fractional, negative zero, past 2^53, out of any range. */
export const oddNumber = fc.oneof(
  fc.constantFrom(0, -0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, -(2 ** 53) - 1, 2 ** 31, 2 ** 32, 1e-300, Number.MAX_SAFE_INTEGER),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
/** Any JSON value, nested junk included. */
export const anyJson = fc.oneof(fc.jsonValue({ maxDepth: 3 }), oddNumber, junk, fc.constant(null));

/** A field's value: usually one of `good`, else something of another type or out of shape. */
export function fieldOf(good: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.oneof({ arbitrary: good, weight: 3 }, { arbitrary: anyJson, weight: 2 });
}

/** A JSON object built from `fields` (each present or not), sometimes with an extra junk field. */
export function shaped(fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Record<string, unknown>> {
  return fc.tuple(
    fc.record(Object.fromEntries(Object.entries(fields).map(([k, a]) => [k, fieldOf(a)])), { requiredKeys: [] }),
    sometimes(fc.tuple(fc.oneof(nasty, fc.string({ maxLength: 10 })), anyJson), 6),
  ).map(([o, extra]) => (extra ? { ...o, [extra[0]]: extra[1] } : o) as Record<string, unknown>);
}

const KEEP = Symbol('keep');
const DROP = Symbol('drop');
/**
 * `base` with a few of its fields changed: each field of `alt` kept (most often), dropped, or
 * given one of its values. Deep paths need inputs that are valid but for one or two fields.
 */
export function varied(base: Record<string, unknown>, alt: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Record<string, unknown>> {
  const field = (a: fc.Arbitrary<unknown>) => fc.oneof({ arbitrary: fc.constant(KEEP), weight: 8 }, { arbitrary: fc.constant(DROP), weight: 1 }, { arbitrary: a, weight: 2 });
  return fc.record(Object.fromEntries(Object.entries(alt).map(([k, a]) => [k, field(a)]))).map((r) => {
    const out = { ...base };
    for (const [k, v] of Object.entries(r)) {
      if (v === DROP) delete out[k];
      else if (v !== KEEP) out[k] = v;
    }
    return out;
  });
}

/** Body text: the shaped object as JSON, or invalid JSON, other JSON types, deep nesting, huge. */
export function bodyText(obj: fc.Arbitrary<unknown>): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: obj.map((o) => JSON.stringify(o)), weight: 6 },
    { arbitrary: anyJson.map((v) => JSON.stringify(v) ?? ''), weight: 1 },
    {
      arbitrary: fc.constantFrom('', ' ', '{', '}', '{"a":', "{'a':1}", '{"a":1,}', '[]', 'null', '1', '"x"', '{"a":1e99999}', '{"__proto__":{"polluted":1}}',
        '{"constructor":{"prototype":{"x":1}}}', '\u0000', '\ufeff{}', '{"a":"\\ud800"}', '{"a":"\\u0000"}', '{}{}', '{"a":1}garbage', 'true'),
      weight: 2,
    },
    { arbitrary: fc.constantFrom(1000, 20_000).map((n) => '['.repeat(n) + ']'.repeat(n)), weight: 1 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 1 },
    { arbitrary: long.map((s) => JSON.stringify({ x: s })), weight: 1 },
  );
}

export const contentType = fc.oneof(
  { arbitrary: fc.constantFrom('application/json', 'application/json; charset=utf-8'), weight: 6 },
  {
    arbitrary: fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/vnd.api+json',
      'APPLICATION/JSON', 'application/json; charset=latin1', 'application/jsonx', 'application/json;;;', '*/*', ''),
    weight: 3,
  },
  { arbitrary: headerJunk, weight: 1 },
);

/** A JWT-looking text made of three parts: real ones and mutations (truncated, re-encoded, flipped). */
export function mutateToken(good: string): fc.Arbitrary<string> {
  const [h = '', p = '', s = ''] = good.split('.');
  return fc.oneof(
    fc.constant(good),
    fc.nat({ max: Math.max(1, good.length - 1) }).map((n) => good.slice(0, n)),
    fc.nat({ max: Math.max(1, good.length - 1) }).map((n) => good.slice(0, n) + (good[n] === 'A' ? 'B' : 'A') + good.slice(n + 1)),
    fc.constantFrom(`${h}.${p}.`, `${h}..${s}`, `.${p}.${s}`, `${h}.${p}`, `${good}.x`, `${good}=`, `${h}.${p}.${s}==`, ` ${good}`, `${good} `, `${h}.${p}.${s.slice(0, -1)}`, good.toUpperCase()),
    fc.constantFrom(
      `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`,
      `${b64({ alg: 'HS256', kid: 'x' })}.${p}.${s}`,
      `${b64({ alg: 'EdDSA', kid: 'k', crit: ['x'] })}.${p}.${s}`,
      `${b64({ alg: 'EdDSA' })}.${p}.${s}`,
      `${b64({ alg: 'EdDSA', kid: '../../etc/passwd' })}.${p}.${s}`,
      `${b64({ alg: 'EdDSA', kid: 'k', jku: 'http://127.0.0.1:1/' })}.${p}.${s}`,
      `${b64([])}.${p}.${s}`,
      `${b64('x')}.${b64('y')}.${s}`,
    ),
    junk,
  );
}

export function b64(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

/** An HS256 token over `claims`: with the default secret (testConfig's SESSION_SECRET), a checkout session token with any claims. */
export function hs256(claims: unknown, secret = 'test-session-secret', header: unknown = { alg: 'HS256', typ: 'JWT' }): string {
  const head = `${b64(header)}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}

/** Request framing that is not HTTP: no version, bare LF, NUL, a header line without a colon, absolute or `*` targets. */
export const rawHttp = fc.constantFrom(
  'GET / HTTP/1.1\nhost: x\n\n', 'GET /\r\n\r\n', 'GET / HTTP/9.9\r\nhost: x\r\n\r\n', 'GET * HTTP/1.1\r\nhost: x\r\n\r\n',
  'GET http://127.0.0.1/healthz HTTP/1.1\r\nhost: x\r\n\r\n', 'OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n', '\u0000\u0000\u0000\r\n\r\n',
  'GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n', 'GET /healthz HTTP/1.1\r\n: empty\r\n\r\n', 'GET /healthz HTTP/1.1\r\nhost: x\r\n folded: line\r\n\r\n',
  'GET /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello', 'POST /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n',
  'POST /healthz HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', 'GET /a\u0000b HTTP/1.1\r\nhost: x\r\n\r\n', 'GET /a b HTTP/1.1\r\nhost: x\r\n\r\n',
  'GET /healthz HTTP/1.1\r\nhost: x\r\nx\u0000y: 1\r\n\r\n', 'GET /healthz HTTP/1.1\r\nhost: x\r\nx: a\u0000b\r\n\r\n', '\r\n\r\n\r\n',
  'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'GET /healthz HTTP/1.0\r\n\r\n', 'get /healthz HTTP/1.1\r\nhost: x\r\n\r\n', 'GET /healthz HTTP/1.1\r\nhost: x\r\nx: \u00ff\u00fe\r\n\r\n',
);
