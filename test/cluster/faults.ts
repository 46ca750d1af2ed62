/**
 * What the fault tests share (docs/api.md section 6): real gateway processes on one port against a
 * Redis Cluster the test started, stopped at teardown by their pids; a timed HTTP call that says
 * how long each answer took (a hang is bounded, never a speed benchmark); the processes holding a
 * port's connections, as the kernel says.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { spawnService, type Service } from '../../scripts/procs.js';
import { loadConfig } from '../../shared/config.js';
import { freePort } from '../../shared/ports.js';
import { ADMIN, dropKeys, OPEN_LIMITS } from '../gateway/helpers.js';

interface Teardown { teardown(fn: () => unknown): void }

/** The environment of a service process on the cluster `seeds`, with its own key prefix. */
export function serviceEnv(seeds: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '',
    REDIS_CLUSTER_NODES: seeds, REDIS_PREFIX: `t-${randomUUID().slice(0, 8)}`, ADMIN_TOKEN: ADMIN, LOG_LEVEL: 'warn',
    GATEWAY_HOST: '127.0.0.1', CHECKOUT_HOST: '127.0.0.1', ...extra,
  };
}

export interface Gateways { url: string; port: number; list: Service[] }

/** `n` `npm run gateway` processes sharing one port; stopped (and the prefix's keys dropped) at teardown. */
export async function startGateways(t: Teardown, n: number, env: Record<string, string>): Promise<Gateways> {
  const port = await freePort();
  const list: Service[] = [];
  t.teardown(async () => {
    await Promise.all(list.map((s) => s.stop(3000)));
    await dropKeys(loadConfig(env)).catch(() => {});
  });
  const spawned = await Promise.allSettled(Array.from({ length: n }, (_, i) => spawnService(`gateway-${i + 1}`, 'scripts/gateway.ts', { env: { ...env, GATEWAY_PORT: String(port) } })));
  for (const r of spawned) if (r.status === 'fulfilled') list.push(r.value);
  for (const r of spawned) if (r.status === 'rejected') throw r.reason;
  return { url: `http://127.0.0.1:${port}`, port, list };
}

/** Create or update a room through the gateways (no limits in the way: every client is 127.0.0.1). */
export async function putRoom(url: string, room: string, body: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${url}/admin/rooms/${room}`, {
    method: 'PUT', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...OPEN_LIMITS, ...body }), signal: AbortSignal.timeout(10_000),
  });
  if (res.status >= 300) throw new Error(`PUT room ${room}: ${res.status} ${await res.text()}`);
}

export interface Answer { status: number; error?: unknown; body: Record<string, unknown>; retryAfter: string | null; ms: number }

/** A client that gives up long after the contract's 2 s, so a hang shows as a slow answer, not a stuck test. */
export const CLIENT_GIVES_UP_MS = 6000;

/** One HTTP call, timed; a call that got no answer is status 0. */
export async function timedCall(url: string, init: RequestInit = {}): Promise<Answer> {
  const started = performance.now();
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(CLIENT_GIVES_UP_MS) });
    const text = await res.text();
    let body: Record<string, unknown> = {};
    try { body = JSON.parse(text) as Record<string, unknown>; } catch { body = { text }; }
    return { status: res.status, error: body.error, body, retryAfter: res.headers.get('retry-after'), ms: Math.round(performance.now() - started) };
  } catch (err) {
    return { status: 0, error: `no answer: ${(err as Error).name} ${String((err as { cause?: { code?: string } }).cause?.code ?? '')}`, body: {}, retryAfter: null, ms: Math.round(performance.now() - started) };
  }
}

/** How many established connections on local `port` each pid holds (`ss`, the kernel's view). */
export function connectionsByPid(port: number): Map<number, number> {
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  const by = new Map<number, number>();
  for (const m of out.matchAll(/pid=(\d+)/g)) by.set(Number(m[1]), (by.get(Number(m[1])) ?? 0) + 1);
  return by;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
