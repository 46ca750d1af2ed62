/**
 * What each visitor was last told `chance` was, for the fairness report's calibration table
 * (report.ts, docs/draw.md "The fairness report"). Cheap by design: no Redis write per visitor
 * per round.
 *
 * - In memory, per process: the last chance a position message (live.ts, on the socket's user
 *   data) or `GET /me` (here, per visitor) showed before the wait ended. Messages that carry the
 *   end (state sold_out or closed, chance 0) do not count, as in the replay report.
 * - When a visitor is admitted, its last chance shown is written once: HSETNX into the room's
 *   `chance:adm` hash (visitor id -> chance). Admissions are bounded by the stock, so is the hash.
 * - When the room ends (sold out or closed, seen through Rooms.onChange), each process adds the
 *   visitors it still holds to the room's `chance:wait` counters, one pipeline: HINCRBY `n<k>` and
 *   HINCRBYFLOAT `s<k>` per bucket k (shared/chance-buckets.ts). Of those it holds, the ones whose
 *   ticket is within admittedThrough were admitted (a /me poller that claimed its token and never
 *   polled again, a socket that closed before its admitted message): they go to `chance:adm`.
 * At report time the admitted visitors' outcome comes from checkout's set of buyers (`sold`).
 *
 * Limits (documented): a visitor with sockets on two processes, or a socket on one and /me polls
 * on another, is counted by each at the end; a visitor told the room ended who is admitted later
 * (units came back) stays counted as waiting; a process that crashes loses what it held.
 */
import type { Redis } from 'ioredis';
import { chanceBucket } from '../shared/chance-buckets.js';
import { chanceAdmittedKey, chanceWaitingKey, roomKeys } from '../shared/keys.js';

/** A visitor's last chance shown, with its ticket (to tell admitted from waiting at the end). */
export interface Shown { vid: string; ticket: number; shown: number }

export class ChanceLedger {
  /** Visitors without a socket here (GET /me pollers, sockets that closed while waiting): room -> vid -> last shown. */
  private readonly held = new Map<string, Map<string, { ticket: number; shown: number }>>();

  constructor(private readonly redis: Redis, private readonly prefix: string, private readonly onError: (err: unknown) => void = () => {}) {}

  /** A waiting visitor (ticket > 0) was shown `chance` outside a socket, or its socket closed. */
  note(room: string, vid: string, ticket: number, shown: number): void {
    let m = this.held.get(room);
    if (!m) this.held.set(room, (m = new Map()));
    m.set(vid, { ticket, shown });
  }

  /** The last chance shown to `vid` outside a socket, if any (then forgotten). */
  take(room: string, vid: string): Shown | undefined {
    const e = this.held.get(room)?.get(vid);
    if (!e) return undefined;
    this.held.get(room)!.delete(vid);
    return { vid, ...e };
  }

  /** `vid` was admitted, last shown `shown` (null: never shown a number): written once. */
  admitted(room: string, vid: string, shown: number | null): void {
    const held = this.take(room, vid);
    const c = shown ?? held?.shown;
    if (c === undefined) return;
    this.redis.hsetnx(chanceAdmittedKey(this.prefix, room), vid, String(c)).catch(this.onError);
  }

  /**
   * The room ended: `sockets` are the waiting visitors of this process's sockets (each once);
   * with the visitors held here they go to the room's counters (or, admitted, to `chance:adm`).
   */
  async roomEnded(room: string, sockets: Shown[]): Promise<void> {
    const all = new Map<string, Shown>();
    for (const [vid, e] of this.held.get(room) ?? []) all.set(vid, { vid, ...e });
    this.held.delete(room);
    for (const s of sockets) all.set(s.vid, s);
    if (all.size === 0) return;
    try {
      const at = Number((await this.redis.hget(roomKeys(this.prefix, room).q, 'at')) ?? 0);
      const n = new Map<number, number>();
      const sum = new Map<number, number>();
      const p = this.redis.pipeline();
      for (const s of all.values()) {
        if (s.ticket <= at) { p.hsetnx(chanceAdmittedKey(this.prefix, room), s.vid, String(s.shown)); continue; }
        const k = chanceBucket(s.shown);
        n.set(k, (n.get(k) ?? 0) + 1);
        sum.set(k, (sum.get(k) ?? 0) + s.shown);
      }
      const wait = chanceWaitingKey(this.prefix, room);
      for (const [k, c] of n) p.hincrby(wait, `n${k}`, c).hincrbyfloat(wait, `s${k}`, sum.get(k)!);
      await p.exec();
    } catch (err) {
      this.onError(err); // the report then counts fewer visitors who waited in vain
    }
  }
}
