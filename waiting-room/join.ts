/**
 * Joining a room. Every join of one room that arrives in the same event-loop turn is placed by
 * ONE call of lua/joinBatch (flushed on setImmediate, at most 500 per call): idempotent per
 * visitor, token buckets, suspicion score, pre-queue or ticket. The handler around it copies the
 * request, resolves the visitor id, asks the bot defence, and answers per the contract.
 */
import type { Redis } from 'ioredis';
import type { Metrics } from './metrics.js';
import type { RoomView } from './rooms.js';
import { preMember, type Draws } from './draw.js';
import { gateOf, joinBatch, type JoinBatchEntry, type JoinCode } from './scripts.js';

export const MAX_JOIN_BATCH = 500;

/** One join as the handler hands it over; the batcher adds the draw key. */
export type JoinEntry = Omit<JoinBatchEntry, 'preMember' | 'arrivedAt'> & {
  /** ms since epoch when the request reached this gateway process (its own clock); default: the batch's now. */
  arrivedAt?: number;
};

export type { JoinCode };

export interface JoinResult {
  code: JoinCode;
  /** null while in the pre-queue before open. */
  ticket: number | null;
  /** Tickets ahead not yet admitted + 1; 0 when admitted; null in the pre-queue. */
  position: number | null;
  score: number;
  retryAfterSeconds: number;
}

interface Pending { view: RoomView; entries: JoinEntry[]; waiters: { resolve: (r: JoinResult) => void; reject: (e: unknown) => void }[] }

export class JoinBatcher {
  private pending = new Map<string, Pending>();
  private scheduled = false;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly clock: () => number,
    private readonly metrics: Metrics,
    private readonly draws: Draws,
    /** Told after each batch Redis applied (the admitter wakes the room if it was idle). */
    private readonly onJoined: (room: string) => void = () => {},
  ) {}

  join(view: RoomView, entry: JoinEntry): Promise<JoinResult> {
    return new Promise((resolve, reject) => {
      let p = this.pending.get(view.cfg.room);
      if (!p) { p = { view, entries: [], waiters: [] }; this.pending.set(view.cfg.room, p); }
      p.view = view;
      p.entries.push(entry);
      p.waiters.push({ resolve, reject });
      if (!this.scheduled) { this.scheduled = true; setImmediate(() => this.flush()); }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const all = this.pending;
    this.pending = new Map();
    for (const p of all.values()) {
      for (let i = 0; i < p.entries.length; i += MAX_JOIN_BATCH) {
        this.run(p.view, p.entries.slice(i, i + MAX_JOIN_BATCH), p.waiters.slice(i, i + MAX_JOIN_BATCH));
      }
    }
  }

  /** The room's seed first (cached after the first call), for each visitor's pre-queue member. */
  private run(view: RoomView, entries: JoinEntry[], waiters: Pending['waiters']): void {
    this.draws.secret(view.cfg.room).then(({ seed }) => this.call(view, entries, waiters, seed), (err: unknown) => { for (const w of waiters) w.reject(err); });
  }

  private call(view: RoomView, entries: JoinEntry[], waiters: Pending['waiters'], seed: Buffer): void {
    const { cfg } = view;
    const now = this.clock();
    this.metrics.joinBatch.observe(entries.length);
    joinBatch(this.redis, this.prefix, cfg.room, {
      now, opensAtMs: view.opensAtMs, gate: gateOf(view.state, view.held), limits: cfg.limits, captcha: cfg.captcha,
      entries: entries.map((e) => ({ ...e, preMember: preMember(seed, e.vid), arrivedAt: e.arrivedAt ?? now })),
    }).then(({ at, places }) => {
      this.onJoined(cfg.room);
      waiters.forEach((w, i) => {
        const { code, ticket: t, score, retryAfterSeconds } = places[i]!;
        const ticket = t > 0 ? t : null;
        w.resolve({ code, ticket, position: ticket === null ? null : Math.max(0, ticket - at), score, retryAfterSeconds });
      });
    }, (err: unknown) => { for (const w of waiters) w.reject(err); });
  }
}
