/**
 * What bench/join sets up in the gateway: rooms through the operator API (defences on and off),
 * the headers of a browser, and the clean-up of a run's keys.
 */
import { loadConfig } from '../../shared/config.js';
import { createRedis, dropPrefix } from '../../shared/redis.js';

const ADMIN = { authorization: 'Bearer dev-admin-token', 'content-type': 'application/json' };
/** What a browser sends: the header part of the suspicion score stays 0. */
export const BROWSER = {
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
  accept: 'application/json', 'accept-language': 'en-US,en;q=0.9', 'content-type': 'application/json',
};
export const HUGE = { capacity: 10_000_000, refillPerSec: 10_000_000 };
/** 100 CIDRs none of which holds 127/8 (the admin API takes bodies up to 4 KiB: about 200 list entries in all). */
const cidrs = (first: number) => Array.from({ length: 100 }, (_, i) => `${first}.${i}.0.0/16`);
/** Defences on: defaults, with buckets large enough never to reject this load, and the longest lists one PUT can carry. */
export const DEFENCES_ON = {
  limits: { ip: { capacity: 1_000_000, refillPerSec: 100_000 }, subnet: HUGE, room: HUGE },
  captcha: { mode: 'suspicious', threshold: 50 }, allow: cidrs(10), block: cidrs(100),
};
export const DEFENCES_OFF = { limits: { ip: HUGE, subnet: HUGE, room: HUGE }, captcha: { mode: 'off' }, allow: [], block: [] };

export async function putRoom(port: number, room: string, body: Record<string, unknown>): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/admin/rooms/${room}`, {
    method: 'PUT', headers: ADMIN,
    body: JSON.stringify({ opensAt: new Date(Date.now() - 60_000).toISOString(), prequeueSeconds: 0, ...body }),
  });
  if (res.status !== 200 && res.status !== 201) throw new Error(`PUT /admin/rooms/${room}: ${res.status} ${await res.text()}`);
}

/** Delete every key of a run's prefix. */
export async function dropKeys(env: Record<string, string>, prefix: string): Promise<void> {
  const redis = createRedis(loadConfig(env).redisUrl);
  try {
    await dropPrefix(redis, prefix);
  } finally {
    redis.disconnect();
  }
}

