/**
 * Joining a room. Every join of one room that arrives in the same event-loop turn is placed by
 * ONE call of lua/joinBatch (flushed on setImmediate, at most 500 per call): idempotent per
 * visitor, token buckets, suspicion score, pre-queue or ticket. The handler around it copies the
 * request, resolves the visitor id, asks the bot defence, and answers per the contract.
 */
import type { Redis } from 'ioredis';
import type { Metrics } from './metrics.js';
import type { RoomView } from './rooms.js';
import { roomKeys } from '../shared/keys.js';
import { preMember, type Draws } from './draw.js';
import { gateOf, joinBatch, type JoinBatchEntry, type JoinCode } from './scripts.js';

export const MAX_JOIN_BATCH = 500;

/** One join as the handler hands it over; the batcher adds the draw key. */
export type JoinEntry = Omit<JoinBatchEntry, 'preMember' | 'arrivedAt'> & {
  /** ms since epoch when the request reached this gateway process (its own clock); default: the batch's now. */
  arrivedAt?: number;
  /**
   * The visitor id was minted for this request: it cannot be in the pre-queue, so once the room
   * is open its pre-queue member (an HMAC and a SHA-256 in Node, a ZMSCORE in Redis) is not needed.
   */
  newVisitor?: boolean;
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

  /**
   * The room's seed first (cached after the first call), for each visitor's pre-queue member; once
   * the room is due open, also its pre-queue size N (cached once Redis says it opened).
   */
  private run(view: RoomView, entries: JoinEntry[], waiters: Pending['waiters']): void {
    const room = view.cfg.room;
    const fail = (err: unknown) => { for (const w of waiters) w.reject(err); };
    const secret = this.draws.secret(room);
    if (this.clock() < view.opensAtMs) { secret.then(({ seed }) => this.call(view, entries, waiters, seed, null), fail); return; }
    Promise.all([secret, this.draws.openedCount(room, roomKeys(this.prefix, room).q)])
      .then(([{ seed }, n]) => this.call(view, entries, waiters, seed, n), fail);
  }

  /** `openedN`: the pre-queue's size at open when known (the room opened), else null. */
  private call(view: RoomView, entries: JoinEntry[], waiters: Pending['waiters'], seed: Buffer, openedN: number | null): void {
    const { cfg } = view;
    const now = this.clock();
    this.metrics.joinBatch.observe(entries.length);
    // At or after opensAt the script opens the room if it has not yet, so no join of this call goes
    // to the pre-queue: a visitor who cannot already be in it needs no member.
    const open = now >= view.opensAtMs;
    const batch: JoinBatchEntry[] = new Array(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const member = open && (e.newVisitor || openedN === 0) ? '' : preMember(seed, e.vid);
      batch[i] = {
        vid: e.vid, ip: e.ip, subnet: e.subnet, allowListed: e.allowListed, headerScore: e.headerScore, captchaPassed: e.captchaPassed,
        preMember: member, arrivedAt: e.arrivedAt ?? now,
      };
    }
    joinBatch(this.redis, this.prefix, cfg.room, {
      now, opensAtMs: view.opensAtMs, gate: gateOf(view.state, view.held), limits: cfg.limits, captcha: cfg.captcha, entries: batch,
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
