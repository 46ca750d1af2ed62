/**
 * The gateway's Redis scripts (lua/*.lua): loaded once, registered on each ioredis client with
 * defineCommand (EVALSHA, reloaded on NOSCRIPT), and their tuple replies turned into typed results.
 * A line `--@include name` in a script is replaced by lua/include/name.lua.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Redis, Result } from 'ioredis';
import { PROJECT_ROOT } from '../shared/config.js';
import { claimsKey, claimsRefusedKey, claimsUsedKey, roomKey } from '../shared/keys.js';

const LUA_DIR = path.join(PROJECT_ROOT, 'lua');

export function loadLua(file: string): string {
  const src = readFileSync(path.join(LUA_DIR, `${file}.lua`), 'utf8');
  return src.replace(/^--@include (\w+)\s*$/gm, (_m, inc: string) => readFileSync(path.join(LUA_DIR, 'include', `${inc}.lua`), 'utf8'));
}

/** Command name → script file (`<verbNoun>-<numKeys>`). */
export const SCRIPT_FILES = {
  joinBatch: 'joinBatch-8',
  admitBatch: 'admitBatch-10',
  lookupVisitor: 'lookupVisitor-4',
  saveRoomConfig: 'saveRoomConfig-3',
  putSigningKey: 'putSigningKey-1',
} as const;

type Arg = string | number;
declare module 'ioredis' {
  interface RedisCommander<Context> {
    joinBatch(...args: Arg[]): Result<(string | number)[], Context>;
    admitBatch(...args: Arg[]): Result<(string | number)[], Context>;
    lookupVisitor(...args: Arg[]): Result<(string | number)[], Context>;
    saveRoomConfig(...args: Arg[]): Result<number, Context>;
    putSigningKey(...args: Arg[]): Result<string, Context>;
  }
}

let sources: Record<string, string> | null = null;

export function defineScripts(redis: Redis): Redis {
  sources ??= Object.fromEntries(Object.entries(SCRIPT_FILES).map(([name, file]) => [name, loadLua(file)]));
  for (const [name, file] of Object.entries(SCRIPT_FILES)) {
    redis.defineCommand(name, { numberOfKeys: Number(file.split('-')[1]), lua: sources[name]! });
  }
  return redis;
}

/** The keys of one room's queue, in one hash tag. */
export function queueKeys(prefix: string, room: string) {
  const k = (part: string) => roomKey(prefix, room, part);
  return {
    q: k('q'), tix: k('tix'), pre: k('pre'), preseq: k('preseq'), stats: k('stats'), tbRoom: k('tb:room'),
    qpost: k('q:post'), fairPost: k('fair:post'), active: k('active'), tok: k('tok'), cfg: k('cfg'), audit: k('audit'),
    claims: claimsKey(prefix, room), claimsUsed: claimsUsedKey(prefix, room), claimsRefused: claimsRefusedKey(prefix, room),
    base: roomKey(prefix, room, ''),
    sec: (nowMs: number) => k(`sec:${Math.floor(nowMs / 1000)}`),
  };
}

export type VisitorPlace =
  | { kind: 'none'; at: number; next: number; opened: boolean }
  | { kind: 'pre'; at: number; next: number; opened: boolean }
  | { kind: 'ticket'; ticket: number; at: number; next: number; opened: boolean; token: string | null };

export async function lookupVisitor(redis: Redis, prefix: string, room: string, vid: string): Promise<VisitorPlace> {
  const k = queueKeys(prefix, room);
  const r = await redis.lookupVisitor(k.q, k.tix, k.pre, k.tok, vid);
  const [kind, ticket, at, next, opened, token] = [Number(r[0]), Number(r[1]), Number(r[2]), Number(r[3]), r[4] === 1 || r[4] === '1', String(r[5] ?? '')];
  if (kind === 2) return { kind: 'ticket', ticket, at, next, opened, token: token || null };
  return { kind: kind === 1 ? 'pre' : 'none', at, next, opened };
}

/** What the admitter last saw of the stock (lua/admitBatch: out, avl, held, cres, clap in q). */
export interface StockSeen {
  /** Outstanding admissions (CONTRACT.md section 7). */
  outstanding: number;
  /** The sale's unreserved units as the admitter saw them; null when unknown. */
  available: number | null;
  /** The stock holds the line (no unit free, or outstanding admissions reach the cap). */
  held: boolean;
  /** Admissions that went on to reserve, and claims that lapsed, so far. */
  reserved: number;
  lapsed: number;
}

export interface Snapshot { at: number; next: number; opened: boolean; queued: number; stock?: StockSeen }

const num = (v: string | null | undefined) => Number(v ?? 0) || 0;

/** The room's queue counters (admittedThrough, last ticket, waiting count) and what the admitter saw of the stock. */
export async function queueSnapshot(redis: Redis, prefix: string, room: string): Promise<Snapshot> {
  const k = queueKeys(prefix, room);
  const [h, preCount] = await Promise.all([redis.hmget(k.q, 'opened', 'next', 'at', 'out', 'avl', 'held', 'cres', 'clap'), redis.zcard(k.pre)]);
  const opened = h[0] === '1';
  const next = Number(h[1] ?? 0);
  const at = Number(h[2] ?? 0);
  const avl = h[4] == null ? -1 : Number(h[4]);
  const stock: StockSeen = { outstanding: num(h[3]), available: avl >= 0 ? avl : null, held: h[5] === '1', reserved: num(h[6]), lapsed: num(h[7]) };
  return { opened, next, at, queued: opened ? next - at : preCount, stock };
}
