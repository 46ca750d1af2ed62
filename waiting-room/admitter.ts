/**
 * The admission loop: each tick, for every room past opensAt, run lua/admitBatch (the only writer
 * of admittedThrough; it also flips the room open), sign a token for each
 * admitted visitor, store it (`tok` hash, so /claim and reconnects get the same token) and publish
 * the admitted messages to whichever process holds each visitor's WebSocket.
 *
 * Delivery (docs/api.md section 7): a token leaves the gateway only through deliverTokens (a
 * socket's admitted message, ensureToken) or lookupVisitor (the visitor's own /me, /claim,
 * WebSocket), which mark the admission delivered first. One nobody delivered within
 * deliverMsOf(claimSeconds) is withdrawn by the next admitBatch call: the visitor is not there
 * (no socket of it, no request of it), so its place goes to the next in line at once instead of
 * after claimSeconds, unless it was seen within POLL_GRACE_MS (it polls GET /me: it is there,
 * and keeps its window until the grace after its last poll). A withdrawn visitor who comes back
 * is next in line and admitted again before any new ticket (and never withdrawn again).
 */
import type { Redis } from 'ioredis';
import { admittedChannel, parseStockSignal, roomKeys, saleStockKey, type StockSignal } from '../shared/keys.js';
import type { Metrics } from './metrics.js';
import { isHeld, stateAt, type Rooms, type RoomView } from './rooms.js';
import { FAIRNESS_SAMPLE } from './fairness.js';
import { admitBatch, Gate, gateOf } from './scripts.js';
import { runScript } from '../shared/scripts.js';
import { tokenExpiry, type KeyRing } from './tokens.js';

/** Most visitors one admitBatch call admits (keeps each call well under 10 ms of Redis time). */
export const MAX_ADMIT_PER_CALL = 250;
/** Calls per room per tick when the credit allows more than one call's worth (high rates). */
const MAX_CALLS_PER_TICK = 40;
/**
 * A room with nobody to admit (nobody waiting, or a gate that admits nobody: closed, sold out,
 * scheduled) is not called every tick: it is probed at most this often with one HMGET of its
 * queue counters (cheap, pipelined with the other idle rooms'), and called again as soon as the
 * probe shows someone waiting. A join through this process, and any change of the room's state
 * or stock, wake it at once; a join through another process is admitted within this delay.
 */
export const IDLE_PROBE_MS = 1000;
const IDLE_GATES: ReadonlySet<Gate> = new Set([Gate.closed, Gate.soldOut, Gate.scheduled]);

/**
 * How long an admitted visitor's token may stay undelivered before the admission is withdrawn
 * (while the stock cap holds someone back): a tenth of the room's claimSeconds (1 s at the
 * shortest claimSeconds, 12 s at the default 120). The queue page holds a WebSocket: its admitted
 * message arrives within milliseconds, and a page that reconnects or polls /me (every ~3 s) is
 * marked the moment it asks. A visitor with neither for this long has left the page; if it comes
 * back later it is next in line, and admitted again before any new ticket.
 */
export function deliverMsOf(claimSeconds: number): number {
  return claimSeconds * 100;
}

/**
 * Delivery grace (docs/api.md section 7): a visitor seen within this long (a GET /me poll, noted
 * in claims:polled by live.ts while it is near the front or admitted and undelivered) keeps its
 * delivery window until this long after it was last seen, whatever deliverMsOf says. A page that
 * follows its place by polling every few seconds (no WebSocket) is there; it learns it is
 * admitted on its next poll and claims then. Longer than such a page's interval (3-5 s), with
 * room for a slow request.
 */
export const POLL_GRACE_MS = 6000;

/**
 * How far from the front a waiting visitor's poll is noted (positions): as many as the room can
 * admit within the grace and one burst (admitBatch's credit is capped at one second's worth), plus
 * one. A visitor further back cannot be admitted before its next poll within the grace, so its poll
 * need not be noted: the notes stay bounded by the rate, not by the size of a polling crowd.
 */
export function pollNoteDepth(admitRatePerMin: number): number {
  return Math.ceil(Math.max(1, admitRatePerMin / 60) + admitRatePerMin * POLL_GRACE_MS / 60_000) + 1;
}

/**
 * One admitted-message batch on the pub/sub channel: [visitor id, token, expiresAt ms, ticket], and
 * the room's admittedThrough and waiting count after the step (every process pushes positions with them).
 */
export interface AdmittedNotice { room: string; checkoutUrl: string; items: [string, string, number, number?][]; at?: number; queued?: number }

/** The visitor's admission was withdrawn (never delivered in time): it is next in line again, not admitted. */
export class AdmissionWithdrawn extends Error {}

/**
 * Mark these admitted visitors delivered and return their tokens (lua/deliverTokens-5.lua):
 * the stored token, or the one given (stored with HSETNX, first wins), or null when the
 * admission was withdrawn (the visitor is then marked come back).
 */
export async function deliverTokens(redis: Redis, prefix: string, room: string, now: number, items: { vid: string; ticket: number; token?: string }[]): Promise<(string | null)[]> {
  if (items.length === 0) return [];
  const k = roomKeys(prefix, room);
  const r = await runScript<string[]>(redis, 'deliverTokens', [k.q, k.tok, k.claimsUndelivered, k.claimsWithdrawn, k.claimsReturned],
    [now, ...items.flatMap((i) => [i.vid, i.ticket, i.token ?? ''])]);
  return items.map((_, i) => (r[i] ? String(r[i]) : null));
}

/**
 * The visitor's token: the one lookupVisitor just read (it marked the visitor delivered), else
 * the stored one or (after a crash between admission and storing it) one signed now, through
 * deliverTokens so every caller ends up with the same token. Throws AdmissionWithdrawn when the
 * admission was withdrawn.
 */
export async function ensureToken(redis: Redis, prefix: string, keys: KeyRing, view: RoomView, vid: string, ticket: number, stored?: string | null): Promise<string> {
  if (stored) return stored;
  const { token } = keys.sign({ sub: vid, room: view.cfg.room, sale: view.cfg.sale, ticket, ttlSeconds: view.cfg.tokenTtlSeconds });
  const [have] = await deliverTokens(redis, prefix, view.cfg.room, Date.now(), [{ vid, ticket, token }]);
  if (!have) throw new AdmissionWithdrawn(`the admission of ${vid} in ${view.cfg.room} was withdrawn`);
  return have;
}

/**
 * The newest stock version whose reservations the signal's counters include: its own version
 * (sales.stock_version, bumped under the sale row's lock by every change of stock). No signal:
 * no cap, and nothing reported needs keeping.
 */
export function usedCutoff(stock: StockSignal | null): number {
  return stock ? stock.version : Number.MAX_SAFE_INTEGER;
}

export class Admitter {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;
  /** Idle rooms (IDLE_PROBE_MS): room → clock ms of its next probe. */
  private readonly idle = new Map<string, number>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly rooms: Rooms,
    private readonly keys: KeyRing,
    private readonly clock: () => number,
    private readonly metrics: Metrics,
    private readonly onError: (err: unknown) => void = () => {},
  ) {
    rooms.onChange((room) => this.wake(room));
  }

  /** Someone joined `room` here, or its state changed: call it on the next tick. */
  wake(room: string): void {
    this.idle.delete(room);
  }

  /** One tick over every room; returns how many visitors were admitted. */
  admitOnce(): Promise<number> {
    this.running ??= this.tick().finally(() => { this.running = null; });
    return this.running;
  }

  private async tick(): Promise<number> {
    const now = this.clock();
    const due: RoomView[] = [];
    const probes: RoomView[] = [];
    for (const view of this.rooms.list()) {
      if (now < view.opensAtMs) continue;
      const probeAt = this.idle.get(view.cfg.room);
      if (probeAt === undefined) due.push(view);
      else if (now >= probeAt) probes.push(view);
    }
    if (probes.length > 0) {
      const seen = await Promise.all(probes.map((v) => this.redis.hmget(roomKeys(this.prefix, v.cfg.room).q, 'next', 'at', 'ret')));
      probes.forEach((v, i) => {
        const [next, at, ret] = seen[i]!;
        // Someone waiting: in the line, or come back after a withdrawal.
        if (Number(next ?? 0) > Number(at ?? 0) || Number(ret ?? 0) > 0) due.push(v);
        else this.idle.set(v.cfg.room, now + IDLE_PROBE_MS);
      });
    }
    let total = 0;
    for (const view of due) total += await this.admitRoom(view);
    return total;
  }

  private async admitRoom(view: RoomView): Promise<number> {
    let total = 0;
    for (let i = 0; i < MAX_CALLS_PER_TICK; i++) {
      const { count, waiting, gate } = await this.admitCall(view);
      total += count;
      if (count === 0 && (waiting === 0 || IDLE_GATES.has(gate))) this.idle.set(view.cfg.room, this.clock() + IDLE_PROBE_MS);
      else this.idle.delete(view.cfg.room);
      if (count < MAX_ADMIT_PER_CALL) break;
    }
    return total;
  }

  /** One bounded admitBatch call: admit, sign, store, publish. */
  private async admitCall(view: RoomView): Promise<{ count: number; waiting: number; gate: Gate }> {
    const started = performance.now();
    const { cfg } = view;
    const now = this.clock();
    const k = roomKeys(this.prefix, cfg.room);
    // The sale's stock signal lives in the sale's slot: read here, passed to the script as the gate.
    const stock = parseStockSignal(await this.redis.hgetall(saleStockKey(this.prefix, cfg.sale)));
    // The room's own state machine decides (closed includes a sale checkout says has ended).
    const state = stateAt(cfg, view.opensAtMs, view.closesAtMs, now, stock);
    const gate = gateOf(state, isHeld(stock));
    const r = await admitBatch(this.redis, this.prefix, cfg.room, {
      now, opensAtMs: view.opensAtMs, admitRatePerMin: cfg.admitRatePerMin, maxActive: cfg.maxActive,
      tokenTtlMs: cfg.tokenTtlSeconds * 1000, most: MAX_ADMIT_PER_CALL, gate, fairnessSampleCap: FAIRNESS_SAMPLE,
      // The stock cap (docs/api.md section 7): the script decides from the signal's available units
      // (-1 = checkout does not know the sale, no cap) and the reservations it already shows.
      available: stock ? Math.max(0, stock.available) : -1, usedCutoff: usedCutoff(stock),
      overbook: cfg.overbook, claimMs: cfg.claimSeconds * 1000, deliverMs: deliverMsOf(cfg.claimSeconds), graceMs: POLL_GRACE_MS, sale: cfg.sale,
    });
    const { at } = r;
    const count = r.admitted.length;
    this.metrics.admittedThrough.set({ room: cfg.room }, at);
    this.metrics.queued.set({ room: cfg.room }, r.waiting);
    this.metrics.active.set({ room: cfg.room }, r.active);
    if (count === 0) return { count, waiting: r.waiting, gate };
    const items: [string, string, number, number][] = [];
    for (const { vid, ticket } of r.admitted) {
      const { token, expiresAt } = this.keys.sign({ sub: vid, room: cfg.room, sale: cfg.sale, ticket, ttlSeconds: cfg.tokenTtlSeconds });
      items.push([vid, token, expiresAt, ticket]);
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
        if (e) items[i] = [items[i]![0], e, tokenExpiry(e), items[i]![3]];
      });
    }
    const notice: AdmittedNotice = { room: cfg.room, checkoutUrl: cfg.checkoutUrl, items, at, queued: r.waiting };
    await this.redis.spublish(admittedChannel(this.prefix, cfg.room), JSON.stringify(notice));
    this.metrics.admitted.inc({ room: cfg.room }, count);
    this.metrics.admissionLag.observe((performance.now() - started) / 1000);
    return { count, waiting: r.waiting, gate };
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
