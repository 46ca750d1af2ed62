/**
 * The fairness report (issue 14): after a room closes or sells out, what happened, in one signed
 * document anyone can quote and check later. `GET /api/rooms/:room/report` answers
 * `{report, jws, kid}`: `jws` is a compact JWS (EdDSA, the gateway's admission key, `kid` in the
 * JWKS) whose payload is exactly the `report` object.
 *
 * Sources, all in the room's hash tag: the queue hash (N, next), the room counters (`stats`), the
 * post-open fairness sample (fairness.ts), the draw (draw.ts), the visitors the defences flagged
 * (`flagged`, a set written on the join path), the visitors who bought (`sold`, a set checkout
 * writes when a payment succeeds), when the room ended (`report` hash, first writer wins), and the
 * last chance each visitor was shown (`chance:adm`, `chance:wait`: chance-ledger.ts).
 */
import type { Redis } from 'ioredis';
import { CHANCE_BUCKETS, chanceBucket } from '../shared/chance-buckets.js';
import { chanceAdmittedKey, chanceWaitingKey, roomKey, roomKeys, soldVisitorsKey } from '../shared/keys.js';
import { orderFairness } from './fairness.js';
import type { RoomView } from './rooms.js';

import type { GatewayContext } from './context.js';

export const REPORT_JWS_TYP = 'fairness-report+jws';

export const flaggedKey = (prefix: string, room: string) => roomKey(prefix, room, 'flagged');
const endKey = (prefix: string, room: string) => roomKey(prefix, room, 'report');

/** Join outcomes that mean the defences flagged the visitor (challenged or limited). */
const FLAGGING: ReadonlySet<string> = new Set(['captcha_required', 'captcha_failed', 'rate_limited']);

/** Remember a visitor the defences flagged in this room (for the share of units they got). */
export function noteJoinOutcome(redis: Redis, prefix: string, room: string, vid: string, outcome: string): void {
  if (!FLAGGING.has(outcome)) return;
  redis.sadd(flaggedKey(prefix, room), vid).catch(() => {}); // a lost flag only lowers the share: best effort
}

/** Called on every state change this process sees: the first to see the end records when. */
export function noteStateChange(redis: Redis, prefix: string, view: RoomView, now: number): void {
  if (view.state !== 'sold_out' && view.state !== 'closed') return;
  const key = endKey(prefix, view.cfg.room);
  redis.multi().hsetnx(key, 'endedAt', now).hsetnx(key, 'endState', view.state).exec().catch(() => {});
}

export interface FairnessReport {
  room: string;
  sale: string;
  state: string;
  generatedAt: string;
  opensAt: string;
  /** When a gateway first saw the room sold out or closed (within ~1 s of it). */
  endedAt: string | null;
  endState: string | null;
  /** Seconds from opensAt to sold out; null when the room closed before selling out. */
  openToSoldOutSeconds: number | null;
  entrants: { prequeue: number; afterOpen: number; total: number };
  draw: { commitment: string; seed: string | null };
  admitted: number;
  /** Admission order against arrival order after open (fairness.ts): 1 and 0 overtakes = FIFO. */
  orderAfterOpen: { kendallTau: number | null; overtakes: number; sample: number };
  defences: { challenged: number; captchaPassed: number; captchaFailed: number; rateLimited: number; blocked: number; flaggedVisitors: number };
  units: { total: number | null; sold: number | null; soldToFlagged: number; flaggedShare: number | null };
  /** `chance` (docs/api.md section 7) shown against what happened (docs/draw.md). */
  chance: ChanceTable;
}

export interface ChanceBucket {
  /** [from, to) of the last chance shown ([from, to] for the last bucket). */
  from: number;
  to: number;
  /** Visitors whose last chance shown before their wait ended fell here. */
  visitors: number;
  /** The mean of those chances; null when the bucket is empty. */
  shownMean: number | null;
  /** Of them, admitted. */
  admitted: number;
  /** Of them, bought a unit (checkout's record of buyers). */
  gotUnit: number;
  /** gotUnit / visitors; null when the bucket is empty. */
  actual: number | null;
}

export interface ChanceTable {
  buckets: ChanceBucket[];
  /** Visitors shown a chance (the buckets' visitors summed). */
  visitors: number;
  /** Units sold to visitors never shown a chance (admitted before any figure, or without a position message). */
  soldUnshown: number;
}

const round = (x: number, places: number) => Math.round(x * 10 ** places) / 10 ** places;

/** The calibration table from the ledger's hashes (chance-ledger.ts) and checkout's buyers. */
export function chanceTable(admittedShown: Record<string, string>, waiting: Record<string, string>, buyers: ReadonlySet<string>): ChanceTable {
  const acc = CHANCE_BUCKETS.map((_, k) => ({ visitors: Number(waiting[`n${k}`] ?? 0), sum: Number(waiting[`s${k}`] ?? 0), admitted: 0, gotUnit: 0 }));
  let boughtShown = 0;
  for (const [vid, raw] of Object.entries(admittedShown)) {
    const c = Number(raw);
    const b = acc[chanceBucket(c)]!;
    b.visitors++;
    b.sum += c;
    b.admitted++;
    if (buyers.has(vid)) { b.gotUnit++; boughtShown++; }
  }
  return {
    buckets: acc.map((b, k) => ({
      from: CHANCE_BUCKETS[k]![0], to: CHANCE_BUCKETS[k]![1], visitors: b.visitors,
      shownMean: b.visitors ? round(b.sum / b.visitors, 3) : null, admitted: b.admitted, gotUnit: b.gotUnit,
      actual: b.visitors ? round(b.gotUnit / b.visitors, 4) : null,
    })),
    visitors: acc.reduce((n, b) => n + b.visitors, 0),
    soldUnshown: buyers.size - boughtShown,
  };
}

export async function buildReport(ctx: GatewayContext, view: RoomView): Promise<{ report: FairnessReport; jws: string; kid: string }> {
  const room = view.cfg.room;
  const k = roomKeys(ctx.prefix, room);
  const [q, stats, sample, end, flagged, soldToFlagged, draw, admittedShown, waiting, buyers] = await Promise.all([
    ctx.redis.hmget(k.q, 'opened', 'N', 'next'),
    ctx.redis.hgetall(k.stats),
    ctx.redis.lrange(k.fairPost, 0, -1),
    ctx.redis.hmget(endKey(ctx.prefix, room), 'endedAt', 'endState'),
    ctx.redis.scard(flaggedKey(ctx.prefix, room)),
    ctx.redis.call('SINTERCARD', 2, soldVisitorsKey(ctx.prefix, room), flaggedKey(ctx.prefix, room)) as Promise<number>,
    ctx.draws.publicView(room, k.q),
    // Bounded: one field per admission, one per bucket, one member per unit sold.
    ctx.redis.hgetall(chanceAdmittedKey(ctx.prefix, room)),
    ctx.redis.hgetall(chanceWaitingKey(ctx.prefix, room)),
    ctx.redis.smembers(soldVisitorsKey(ctx.prefix, room)),
  ]);
  const n = (f: string) => Number(stats[f] ?? 0);
  const N = q[0] === '1' ? Number(q[1] ?? 0) : 0;
  const next = q[0] === '1' ? Number(q[2] ?? 0) : 0;
  const endedAt = end[0] ? Number(end[0]) : null;
  const sold = view.stock ? view.stock.sold : null;
  const post = orderFairness(sample.map(Number));
  const report: FairnessReport = {
    room, sale: view.cfg.sale, state: view.state, generatedAt: new Date(ctx.clock()).toISOString(), opensAt: view.cfg.opensAt,
    endedAt: endedAt === null ? null : new Date(endedAt).toISOString(), endState: end[1] ?? null,
    openToSoldOutSeconds: endedAt !== null && end[1] === 'sold_out' ? Math.max(0, (endedAt - view.opensAtMs) / 1000) : null,
    entrants: { prequeue: N, afterOpen: next - N, total: next },
    draw: { commitment: draw.commitment, seed: 'seed' in draw ? draw.seed : null },
    admitted: n('admitted'),
    orderAfterOpen: { kendallTau: post.kendallTau, overtakes: post.overtakes, sample: post.sample },
    defences: {
      challenged: n('challenged'), captchaPassed: n('captcha_passed'), captchaFailed: n('captcha_failed'),
      rateLimited: n('rate_limited'), blocked: n('blocked'), flaggedVisitors: flagged,
    },
    units: { total: view.stock ? view.stock.total : null, sold, soldToFlagged: Number(soldToFlagged), flaggedShare: sold ? Number(soldToFlagged) / sold : null },
    chance: chanceTable(admittedShown, waiting, new Set(buyers)),
  };
  const { jws, kid } = ctx.keys.signJws(report, REPORT_JWS_TYP);
  return { report, jws, kid };
}
