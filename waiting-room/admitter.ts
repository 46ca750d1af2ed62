/**
 * The admission loop: each tick, for every room past opensAt, run lua/admitBatch (the only writer
 * of admittedThrough; it also flips the room open), sign a token for each
 * admitted visitor, store it (`tok` hash, so /claim and reconnects get the same token) and publish
 * the admitted messages to whichever process holds each visitor's WebSocket.
 */
import type { Redis } from 'ioredis';
import { parseStockSignal, saleStockKey, type StockSignal } from '../shared/keys.js';
import type { Metrics } from './metrics.js';
import { isHeld, stateAt, type Rooms, type RoomView } from './rooms.js';
import { FAIRNESS_SAMPLE } from './fairness.js';
import { queueKeys } from './scripts.js';
import { tokenExpiry, type KeyRing } from './tokens.js';

/** Most visitors one admitBatch call admits (keeps each call well under 10 ms of Redis time). */
export const MAX_ADMIT_PER_CALL = 250;
/** Calls per room per tick when the credit allows more than one call's worth (high rates). */
const MAX_CALLS_PER_TICK = 40;

export function admittedChannel(prefix: string): string { return `${prefix}:admitted`; }

/**
 * One admitted-message batch on the pub/sub channel: [visitor id, token, expiresAt ms], and the
 * room's admittedThrough and waiting count after the step (every process pushes positions with them).
 */
export interface AdmittedNotice { room: string; checkoutUrl: string; items: [string, string, number][]; at?: number; queued?: number }

/**
 * The visitor's token: the stored one, or (after a crash between admission and storing it)
 * one signed now and stored with HSETNX so every caller ends up with the same token.
 */
export async function ensureToken(redis: Redis, prefix: string, keys: KeyRing, view: RoomView, vid: string, ticket: number, stored?: string | null): Promise<string> {
  const tok = queueKeys(prefix, view.cfg.room).tok;
  const have = stored ?? (await redis.hget(tok, vid));
  if (have) return have;
  const { token } = keys.sign({ sub: vid, room: view.cfg.room, sale: view.cfg.sale, ticket, ttlSeconds: view.cfg.tokenTtlSeconds });
  if (await redis.hsetnx(tok, vid, token)) return token;
  return (await redis.hget(tok, vid)) ?? token;
}

/**
 * The newest stock version whose reservations the signal's counters certainly include. Versions
 * are the sale row's updated_at in ms, truncated: two commits may share a millisecond, so only
 * versions strictly older than the signal's count as shown, and a reservation the signal has
 * not shown after USED_SHOWN_AFTER_MS is taken as shown (the sweeper rewrites it every second).
 */
const USED_SHOWN_AFTER_MS = 1500;
export function usedCutoff(stock: StockSignal | null, now: number): number {
  return Math.max((stock?.version ?? 0) - 1, now - USED_SHOWN_AFTER_MS);
}

export class Admitter {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly rooms: Rooms,
    private readonly keys: KeyRing,
    private readonly clock: () => number,
    private readonly metrics: Metrics,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** One tick over every room; returns how many visitors were admitted. */
  admitOnce(): Promise<number> {
    this.running ??= this.tick().finally(() => { this.running = null; });
    return this.running;
  }

  private async tick(): Promise<number> {
    let total = 0;
    for (const view of this.rooms.list()) {
      if (this.clock() < view.opensAtMs) continue;
      total += await this.admitRoom(view);
    }
    return total;
  }

  private async admitRoom(view: RoomView): Promise<number> {
    let total = 0;
    for (let i = 0; i < MAX_CALLS_PER_TICK; i++) {
      const n = await this.admitCall(view);
      total += n;
      if (n < MAX_ADMIT_PER_CALL) break;
    }
    return total;
  }

  /** One bounded admitBatch call: admit, sign, store, publish. */
  private async admitCall(view: RoomView): Promise<number> {
    const started = performance.now();
    const { cfg } = view;
    const now = this.clock();
    const k = queueKeys(this.prefix, cfg.room);
    const stock = parseStockSignal(await this.redis.hgetall(saleStockKey(this.prefix, cfg.sale)));
    // The room's own state machine decides (closed includes a sale checkout says has ended).
    const state = stateAt(cfg, view.opensAtMs, view.closesAtMs, now, stock);
    const gate = state === 'closed' || state === 'sold_out' ? 3 : isHeld(stock) ? 2 : cfg.paused ? 1 : 0;
    // The stock cap (CONTRACT.md section 7): the script decides from the signal's available units
    // (-1 = checkout does not know the sale, no cap) and the reservations it already shows.
    const available = stock ? Math.max(0, stock.available) : -1;
    const r = await this.redis.admitBatch(k.q, k.pre, k.preseq, k.qpost, k.active, k.stats, k.sec(now),
      k.claims, k.claimsUsed, k.claimsRefused,
      now, view.opensAtMs, cfg.admitRatePerMin, cfg.maxActive, cfg.tokenTtlSeconds * 1000, MAX_ADMIT_PER_CALL, gate,
      k.fairPost, FAIRNESS_SAMPLE, available, usedCutoff(stock, now), cfg.overbook, cfg.claimSeconds * 1000);
    const at = Number(r[0]);
    const count = Number(r[1]);
    this.metrics.admittedThrough.set({ room: cfg.room }, at);
    this.metrics.queued.set({ room: cfg.room }, Number(r[2]));
    this.metrics.active.set({ room: cfg.room }, Number(r[3]));
    if (count === 0) return 0;
    const items: [string, string, number][] = [];
    for (let i = 4; i < r.length; i += 2) {
      const vid = String(r[i]);
      const { token, expiresAt } = this.keys.sign({ sub: vid, room: cfg.room, sale: cfg.sale, ticket: Number(r[i + 1]), ttlSeconds: cfg.tokenTtlSeconds });
      items.push([vid, token, expiresAt]);
    }
    const p = this.redis.pipeline();
    for (const [vid, token] of items) p.hsetnx(k.tok, vid, token);
    const stored = (await p.exec()) ?? [];
    // A token signed on demand by /claim in between wins: send that one (read in one HMGET).
    const lost = items.flatMap((_, i) => (Number(stored[i]?.[1]) === 0 ? [i] : []));
    if (lost.length > 0) {
      const existing = await this.redis.hmget(k.tok, ...lost.map((i) => items[i]![0]));
      lost.forEach((i, j) => {
        const e = existing[j];
        if (e) items[i] = [items[i]![0], e, tokenExpiry(e)];
      });
    }
    const notice: AdmittedNotice = { room: cfg.room, checkoutUrl: cfg.checkoutUrl, items, at, queued: Number(r[2]) };
    await this.redis.publish(admittedChannel(this.prefix), JSON.stringify(notice));
    this.metrics.admitted.inc({ room: cfg.room }, count);
    this.metrics.admissionLag.observe((performance.now() - started) / 1000);
    return count;
  }

  start(intervalMs: number): void {
    const loop = () => {
      this.admitOnce().catch(this.onError).finally(() => {
        if (this.timer) this.timer = setTimeout(loop, intervalMs);
      });
    };
    this.timer = setTimeout(loop, intervalMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => {});
  }
}
