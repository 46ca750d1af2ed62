/**
 * Test fixtures for checkout: a Postgres database per test file (created and dropped),
 * a Redis key prefix per test file, a real HTTP JWKS server with Ed25519 keys we control,
 * and small HTTP helpers. Nothing here mocks Redis or Postgres.
 */
import http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { loadConfig, type Config } from '../../shared/config.js';
import { createDatabaseIfMissing } from '../../checkout/postgres.js';
import { startCheckout, type CheckoutOptions } from '../../checkout/main.js';
import { dropKeys } from '../gateway/helpers.js';

export const ADMIN = 'test-admin-token';
export const WEBHOOK_SECRET = 'test-webhook-secret';
const BASE_DB = process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A fresh database for this test file, dropped at the end. */
export async function testDatabase(t: Teardown, tag: string): Promise<string> {
  const name = `checkout_${tag}_${randomUUID().slice(0, 8)}`;
  const u = new URL(BASE_DB);
  const adminUrl = u.toString();
  await createDatabaseIfMissing(adminUrl, name);
  t.teardown(async () => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await c.end();
  });
  u.pathname = `/${name}`;
  return u.toString();
}

export interface Keys {
  url: string;
  kid: string;
  /** Signs an admission token; `claims` override the defaults. */
  sign(claims: Record<string, unknown>, opts?: { kid?: string; key?: CryptoKey; alg?: string; header?: Record<string, unknown> }): Promise<string>;
  /** Adds a new key to the JWKS (and signs with it from now on). */
  rotate(): Promise<string>;
  /** How often the JWKS was fetched. */
  fetches(): number;
  /** A key the JWKS never published. */
  stranger: CryptoKey;
}

/** A real HTTP JWKS on 127.0.0.1:0, like the gateway's /.well-known/jwks.json. */
export async function jwksServer(t: Teardown): Promise<Keys> {
  const keys: { kid: string; priv: CryptoKey; jwk: Record<string, unknown> }[] = [];
  const add = async () => {
    const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const kid = `k-${randomUUID().slice(0, 8)}`;
    keys.push({ kid, priv: privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' } });
    return kid;
  };
  await add();
  let fetches = 0;
  const server = http.createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') return res.writeHead(404).end();
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: keys.map((k) => k.jwk) }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  }));
  server.unref();
  const stranger = (await generateKeyPair('EdDSA', { crv: 'Ed25519' })).privateKey;
  const self: Keys = {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/.well-known/jwks.json`,
    get kid() {
      return keys[keys.length - 1]!.kid;
    },
    async sign(claims, opts = {}) {
      const current = keys[keys.length - 1]!;
      const kid = opts.kid ?? current.kid;
      const key = opts.key ?? keys.find((k) => k.kid === kid)?.priv ?? current.priv;
      const now = Math.floor(Date.now() / 1000);
      const body = { iss: 'waiting-room', aud: 'checkout', sub: `v-${randomUUID()}`, room: 'room1', sale: 'sale1', ticket: 1, jti: randomUUID(), iat: now, exp: now + 600, ...claims };
      for (const k of Object.keys(body)) if ((body as Record<string, unknown>)[k] === undefined) delete (body as Record<string, unknown>)[k];
      return new SignJWT(body).setProtectedHeader({ alg: opts.alg ?? 'EdDSA', kid, ...opts.header }).sign(key);
    },
    rotate: add,
    fetches: () => fetches,
    stranger,
  };
  return self;
}

export function testConfig(databaseUrl: string, jwksUrl: string, extra: Record<string, string> = {}): Config {
  return loadConfig({
    DATABASE_URL: databaseUrl,
    JWKS_URL: jwksUrl,
    REDIS_PREFIX: `t-${randomUUID().slice(0, 8)}`,
    ADMIN_TOKEN: ADMIN,
    PAYMENT_WEBHOOK_SECRET: WEBHOOK_SECRET,
    SESSION_SECRET: 'test-session-secret',
    LOG_LEVEL: 'silent',
    ...extra,
  });
}

/** Deletes every Redis key under the config's prefix at the end of the test. */
export function cleanRedis(t: Teardown, config: Config) {
  t.teardown(() => dropKeys(config));
}

export interface World {
  config: Config;
  keys: Keys;
  url: string;
  sweep(): Promise<number>;
  close(): Promise<void>;
}

/** Database + JWKS + Redis prefix + a running checkout on port 0, all torn down at the end. */
export async function world(t: Teardown, tag: string, opts: CheckoutOptions = {}, extraEnv: Record<string, string> = {}): Promise<World> {
  // Teardowns run in order: stop checkout first, then drop its database and keys.
  const later: (() => unknown)[] = [];
  const deferred: Teardown = { teardown: (fn) => later.push(fn) };
  let app: Awaited<ReturnType<typeof startCheckout>> | null = null;
  t.teardown(async () => {
    await app?.close();
    for (const fn of later) await fn();
  });
  const [db, keys] = await Promise.all([testDatabase(deferred, tag), jwksServer(deferred)]);
  const config = testConfig(db, keys.url, extraEnv);
  cleanRedis(deferred, config);
  app = await startCheckout(config, { port: 0, poolSize: 5, ...opts });
  return { config, keys, url: app.url, sweep: app.sweep, close: app.close };
}

export async function call(
  base: string,
  method: string,
  path: string,
  opts: { body?: unknown; token?: string; headers?: Record<string, string>; raw?: string } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined = opts.raw;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed, headers: res.headers };
}

export async function createSale(base: string, sale: string, fields: Record<string, unknown> = {}) {
  const now = Date.now();
  const res = await call(base, 'PUT', `/admin/sales/${sale}`, {
    token: ADMIN,
    body: {
      name: `Sale ${sale}`,
      priceCents: 4999,
      currency: 'EUR',
      total: 10,
      startsAt: new Date(now - 60_000).toISOString(),
      endsAt: new Date(now + 3600_000).toISOString(),
      ...fields,
    },
  });
  if (res.status !== 201) throw new Error(`sale not created: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/**
 * scrypt hash of "password123" with N=1024 (cheap on purpose: the stored parameters let tests
 * log in thousands of users quickly; real sign-ups use N=16384).
 */
export const CHEAP_PASSWORD = 'password123';
let cheapHash: Promise<string> | null = null;
async function cheap(): Promise<string> {
  const { hashPassword } = await import('../../checkout/accounts.js');
  cheapHash ??= hashPassword(CHEAP_PASSWORD, { N: 1024, r: 8, p: 1 });
  return cheapHash;
}

/** Creates `n` users straight in the database (fast) and logs each in over HTTP. */
export async function usersWithSessions(w: Pick<World, 'url'> & { config: Pick<Config, 'databaseUrl'> }, n: number, tag = 'u'): Promise<{ userId: string; token: string; email: string }[]> {
  const c = new pg.Client({ connectionString: w.config.databaseUrl });
  await c.connect();
  const hash = await cheap();
  const emails = Array.from({ length: n }, (_, i) => `${tag}${i}-${randomUUID().slice(0, 6)}@example.com`);
  const { rows } = await c.query<{ id: string; email: string }>(
    'INSERT INTO users (email, password_hash) SELECT e, $2 FROM unnest($1::text[]) AS e RETURNING id, email',
    [emails, hash],
  );
  await c.end();
  const out: { userId: string; token: string; email: string }[] = [];
  for (let i = 0; i < rows.length; i += 100) {
    const chunk = rows.slice(i, i + 100);
    // A login answered 503 `unavailable` (Postgres slower than its timeouts on a loaded machine)
    // is tried again after its Retry-After, as a shopper's page does; any other answer stands.
    const login = async (email: string) => {
      for (let attempt = 0; ; attempt++) {
        const r = await call(w.url, 'POST', '/api/sessions', { body: { email, password: CHEAP_PASSWORD } });
        if (r.status !== 503 || attempt >= 10) return r;
        await new Promise((res) => setTimeout(res, 1000 * Number(r.headers.get('retry-after') ?? 1)));
      }
    };
    const sessions = await Promise.all(chunk.map((r) => login(r.email)));
    sessions.forEach((s, j) => {
      if (s.status !== 200) throw new Error(`login failed: ${s.status}`);
      out.push({ userId: chunk[j]!.id, token: s.body.sessionToken, email: chunk[j]!.email });
    });
  }
  return out;
}

export async function audit(base: string, sale: string) {
  const res = await call(base, 'GET', `/admin/sales/${sale}/audit`, { token: ADMIN });
  if (res.status !== 200) throw new Error(`audit failed: ${res.status}`);
  return res.body;
}

/** Polls `check` every 50 ms until it returns a value, failing after `ms`. */
export async function until<T>(check: () => Promise<T | undefined | null | false>, ms = 5000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The environment of a gateway + checkout test over real sockets: its own database and Redis
 * prefix; `stop` registers a service to close. At teardown the services close (last started
 * first), then the database and keys go.
 */
export async function productEnv(t: Teardown, tag: string) {
  const later: (() => unknown)[] = [];
  const stops: (() => Promise<unknown>)[] = [];
  t.teardown(async () => {
    for (const s of stops.reverse()) await s();
    for (const fn of later) await fn();
  });
  const deferred = { teardown: (fn: () => unknown) => later.push(fn) };
  const env = {
    DATABASE_URL: await testDatabase(deferred, tag),
    REDIS_PREFIX: `t-${randomUUID().slice(0, 8)}`,
    ADMIN_TOKEN: ADMIN,
    PAYMENT_WEBHOOK_SECRET: WEBHOOK_SECRET,
    LOG_LEVEL: 'silent',
    GATEWAY_PORT: '0',
  };
  cleanRedis(deferred, loadConfig(env));
  return { env, stop: (fn: () => Promise<unknown>) => { stops.push(fn); } };
}

/**
 * Between the provider and checkout: a real HTTP relay that answers 503 to the first `refuse`
 * deliveries (or to all while `down`), forwards the rest, and keeps what came back.
 */
export async function flakyRelay(t: Teardown, target: () => string, refuse: number) {
  const state = { refuse, down: false, refused: 0, seen: [] as { type: string; id: string }[], outcomes: [] as { type: string; outcome: string }[] };
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const ev = JSON.parse(raw) as { id: string; type: string };
    state.seen.push({ type: ev.type, id: ev.id });
    if (state.down || state.refuse > 0) {
      state.refuse--;
      state.refused++;
      return res.writeHead(503).end();
    }
    let r: Awaited<ReturnType<typeof call>>;
    try {
      r = await call(target(), 'POST', '/api/payments/webhook', { raw, headers: { 'content-type': 'application/json', 'x-signature': String(req.headers['x-signature']) } });
    } catch {
      // Checkout is gone (a retry still on its way while the test tears down): a relay says 502.
      return res.writeHead(502).end();
    }
    state.outcomes.push({ type: ev.type, outcome: r.body.outcome });
    res.writeHead(r.status, { 'content-type': 'application/json' }).end(JSON.stringify(r.body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  }));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, state };
}

export async function reserveAndPay(w: Pick<World, 'url' | 'keys'>, sale: string, user: { token: string }, method: string) {
  const r = await call(w.url, 'POST', `/api/sales/${sale}/reservations`, { token: user.token, headers: { 'x-admission-token': await w.keys.sign({ sale }) } });
  if (r.status !== 201) throw new Error(`reserve: ${r.status} ${JSON.stringify(r.body)}`);
  const p = await call(w.url, 'POST', `/api/reservations/${r.body.reservationId}/payment`, { token: user.token, body: { method } });
  if (p.status !== 202) throw new Error(`pay: ${p.status}`);
  return p.body.paymentId as string;
}

const CHILD = fileURLToPath(new URL('./fixtures/child.ts', import.meta.url));

/** A checkout process of its own (fixtures/child.ts), to kill: `options` are more startCheckout options (JSON). */
export function startChild(env: Record<string, string>, offsetMs = 0, options: CheckoutOptions = {}): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, ['--import=tsx', CHILD], {
    env: { ...process.env, CHECKOUT_TEST_ENV: JSON.stringify(env), CHECKOUT_TEST_CLOCK_OFFSET_MS: String(offsetMs), CHECKOUT_TEST_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child did not start in 30 s')), 30_000);
    proc.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
    createInterface({ input: proc.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve({ proc, url: JSON.parse(line).url });
    });
  });
}

export function kill9(proc: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return r();
    proc.once('exit', () => r());
    proc.kill('SIGKILL');
  });
}

/**
 * The environment of checkout processes a test kills (startChild): a database, JWKS and Redis
 * prefix of their own; `children` are SIGKILLed at teardown, before the rest goes.
 */
export async function childrenEnv(t: Teardown, tag: string) {
  const children: ChildProcess[] = [];
  const later: (() => unknown)[] = [];
  t.teardown(async () => {
    await Promise.all(children.map(kill9));
    for (const fn of later) await fn();
  });
  const deferred = { teardown: (fn: () => unknown) => later.push(fn) };
  const databaseUrl = await testDatabase(deferred, tag);
  const keys = await jwksServer(deferred);
  const env = {
    DATABASE_URL: databaseUrl,
    JWKS_URL: keys.url,
    REDIS_PREFIX: `t-${randomUUID().slice(0, 8)}`,
    ADMIN_TOKEN: ADMIN,
    PAYMENT_WEBHOOK_SECRET: WEBHOOK_SECRET,
    SESSION_SECRET: 'test-session-secret',
    LOG_LEVEL: 'silent',
  };
  cleanRedis(deferred, { redisUrl: 'redis://127.0.0.1:6379', redisPrefix: env.REDIS_PREFIX } as never);
  return { children, databaseUrl, keys, env };
}
