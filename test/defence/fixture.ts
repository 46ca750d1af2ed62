/**
 * What the defence's HTTP tests share: a gateway (or two) on its own Redis prefix with an
 * injected clock, an admin PUT, and joins over real sockets from chosen source addresses
 * across 127.0.0.0/8 (loopback accepts any of them).
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Test } from 'tap';
import { loadConfig, type Config } from '../../shared/config.js';
import { createRedis, dropPrefix } from '../../shared/redis.js';
import type { Redis } from 'ioredis';
import { startGateway } from '../../waiting-room/server.js';
import { createDefence, type DefenceOptions } from '../../waiting-room/defence/index.js';

export const BROWSER: Record<string, string> = {
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
  accept: 'application/json',
  'accept-language': 'en-GB,en;q=0.9',
};

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/** One HTTP request over a fresh connection from `localAddress` (no cookies, no keep-alive). */
export function request(url: string, method: string, path: string, opts: {
  body?: unknown; headers?: Record<string, string>; localAddress?: string;
} = {}): Promise<Answer> {
  const u = new URL(path, url);
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method, agent: false,
      localAddress: opts.localAddress, timeout: 20_000,
      headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...opts.headers },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: Record<string, unknown> = {};
        try { body = text ? JSON.parse(text) : {}; } catch { body = { text }; }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export interface Gateway {
  url: string;
  config: Config;
  /** The gateway's own Redis client (the join script runs on it). */
  redis: Redis;
  /** The client the defence was given. */
  defenceRedis: Redis;
  join(room: string, opts?: { from?: string; headers?: Record<string, string>; captchaToken?: string }): Promise<Answer>;
  put(room: string, body: Record<string, unknown>): Promise<Answer>;
}

export interface Fixture {
  prefix: string;
  /** The gateways' shared clock (ms); tests move it by hand. */
  clock: { now: number };
  start(env?: Record<string, string>, defence?: DefenceOptions, gateway?: { admitter?: boolean }): Promise<Gateway>;
}

/** Starts nothing yet; every gateway started and every key written is gone when `t` ends. */
export function fixture(t: Test): Fixture {
  const prefix = `t-${randomUUID().slice(0, 8)}`;
  const clock = { now: Date.parse('2030-01-01T12:00:00.000Z') };
  const closers: (() => Promise<void>)[] = [];
  t.teardown(async () => {
    for (const c of closers.reverse()) await c();
    const redis = createRedis('redis://127.0.0.1:6379');
    await dropPrefix(redis, prefix);
    redis.disconnect();
  });
  return {
    prefix,
    clock,
    async start(env = {}, defenceOpts = {}, gatewayOpts = {}) {
      const config = loadConfig({ REDIS_PREFIX: prefix, ADMIN_TOKEN: 'test-admin', LOG_LEVEL: 'warn', ...env });
      const redis = createRedis(config.redisUrl);
      const defence = createDefence(config, redis, defenceOpts);
      const gw = await startGateway(config, { port: 0, clock: () => clock.now, defence, ...gatewayOpts });
      closers.push(async () => {
        await gw.close();
        await defence.close();
        redis.disconnect();
      });
      const auth = { authorization: 'Bearer test-admin' };
      return {
        url: gw.url,
        config,
        redis: gw.redis,
        defenceRedis: redis,
        join: (room, o = {}) => request(gw.url, 'POST', `/api/rooms/${room}/join`, {
          body: o.captchaToken === undefined ? {} : { captchaToken: o.captchaToken },
          headers: o.headers ?? BROWSER, localAddress: o.from,
        }),
        put: (room, body) => request(gw.url, 'PUT', `/admin/rooms/${room}`, { body, headers: auth }),
      };
    },
  };
}

/** A room open since a minute before the fixture's clock, with the given defence settings. */
export function openRoom(clockNow: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    opensAt: new Date(clockNow - 60_000).toISOString(),
    prequeueSeconds: 0,
    admitRatePerMin: 60,
    maxActive: 10,
    ...over,
  };
}

/** Tally of outcomes: `joined` for 200, else the error code. */
export function tally(answers: Answer[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of answers) {
    const k = a.status === 200 ? 'joined' : String(a.body.error ?? a.status);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** Polls `check` every 50 ms until it is true or `ms` pass; answers the time it took, or -1. */
export async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (Date.now() - started <= ms) {
    if (await check()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 50));
  }
  return -1;
}
