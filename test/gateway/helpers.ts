/** Shared set-up for the gateway tests: a config with its own Redis prefix, a gateway on port 0, cleanup. */
import { randomUUID } from 'node:crypto';
import { loadConfig, type Config } from '../../shared/config.js';
import { createRedisClient, dropPrefix } from '../../shared/redis.js';
import { startGateway, type Gateway, type GatewayOptions } from '../../waiting-room/server.js';

export const ADMIN = 'test-admin-token';

export function testConfig(extra: Record<string, string> = {}): Config {
  return loadConfig({ REDIS_PREFIX: `t-${randomUUID().slice(0, 8)}`, LOG_LEVEL: 'silent', ADMIN_TOKEN: ADMIN, ...extra });
}

export interface Teardown { teardown(fn: () => unknown): void }

/** Delete every key of a config's prefix (the test's own), on one Redis or on each master of a cluster. */
export async function dropKeys(config: Pick<Config, 'redisUrl' | 'redisPrefix'> & Partial<Pick<Config, 'redisClusterNodes'>>): Promise<void> {
  const r = createRedisClient({ redisUrl: config.redisUrl, redisClusterNodes: config.redisClusterNodes ?? [] }, { enableAutoPipelining: false });
  r.on('error', () => {});
  try {
    await dropPrefix(r, config.redisPrefix);
  } finally {
    r.disconnect();
  }
}

/** Start a gateway for a test; it is closed and its keys dropped at teardown. */
export async function gateway(t: Teardown, config: Config, opts: GatewayOptions = {}): Promise<Gateway> {
  const gw = await startGateway(config, { port: 0, admitter: false, ...opts });
  t.teardown(async () => {
    await gw.close();
    await dropKeys(config);
  });
  return gw;
}

export function adminHeaders(): Record<string, string> {
  return { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
}

export async function putRoom(gw: Gateway, room: string, body: Record<string, unknown>): Promise<Response> {
  const res = await fetch(`${gw.url}/admin/rooms/${room}`, { method: 'PUT', headers: adminHeaders(), body: JSON.stringify(body) });
  if (res.status >= 300) throw new Error(`PUT room ${room}: ${res.status} ${await res.text()}`);
  return res;
}

/** Room limits that never get in the way of a test that is not about them. */
export const OPEN_LIMITS = {
  limits: { ip: { capacity: 1_000_000, refillPerSec: 1_000_000 }, subnet: { capacity: 1_000_000, refillPerSec: 1_000_000 }, room: { capacity: 1_000_000, refillPerSec: 1_000_000 } },
  captcha: { mode: 'off' },
};

export interface JoinReply { status: number; body: Record<string, unknown>; visitorId: string }

export async function join(gw: Gateway, room: string, visitorId?: string, body = '{}'): Promise<JoinReply> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (visitorId) headers['x-visitor-id'] = visitorId;
  const res = await fetch(`${gw.url}/api/rooms/${room}/join`, { method: 'POST', headers, body });
  const json = (await res.json()) as Record<string, unknown>;
  return { status: res.status, body: json, visitorId: String(json.visitorId ?? visitorId ?? '') };
}

export async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Wait until `check` returns a truthy value, polling every 20 ms, failing after `ms`. */
export async function until<T>(check: () => Promise<T> | T, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A controllable clock for GatewayOptions.clock. */
export function manualClock(start: number) {
  let now = start;
  return { now: () => now, set: (ms: number) => { now = ms; }, advance: (ms: number) => { now += ms; } };
}

/** Map over items with at most `width` calls in flight (keeps thousands of requests from opening thousands of sockets). */
export async function inWaves<T, R>(items: T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  return out;
}
