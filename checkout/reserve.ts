/**
 * Reservations, group-committed. One hot sale row takes ~1,500 transactions/s at most, so
 * the requests for a sale that arrive together are decided in ONE transaction of ONE
 * statement, `checkout_reserve_batch` (see its migration): lock the sale row, look up used
 * jtis and users' live orders for the whole batch, decide each request in arrival order
 * (CONTRACT.md section 3's order: jti, window, one per user, stock), insert the winners with
 * ON CONFLICT DO NOTHING, and take k units with one guarded UPDATE. Each request gets its own
 * answer; one request's error never fails the others.
 *
 * One batch per sale is in flight per process; requests arriving meanwhile form the next.
 * Several processes serialise on the sale row lock; the constraints catch anything else.
 */
import { sql } from 'kysely';
import type { AdmissionClaims } from '../shared/admission.js';
import type { Db } from './db.js';
import { bodyOf, ERRORS, type ErrorCode } from './errors.js';

export interface ReserveRequest {
  userId: string;
  claims: AdmissionClaims;
  idempotencyKey?: string;
}

export interface ReserveAnswer {
  status: number;
  body: Record<string, unknown>;
}

interface Pending extends ReserveRequest {
  resolve(a: ReserveAnswer): void;
  reject(e: unknown): void;
}

const MAX_BATCH = 256;

export interface StockCounters {
  total: number;
  available: number;
  reserved: number;
  sold: number;
}

function err(code: ErrorCode, fields: Record<string, unknown> = {}): ReserveAnswer {
  return { status: ERRORS[code].status, body: bodyOf(code, fields) };
}

export interface Reserver {
  reserve(sale: string, req: ReserveRequest): Promise<ReserveAnswer>;
  /** Resolves once every queued request has been answered. */
  drain(): Promise<void>;
}

export function createReserver(
  db: Db,
  clock: () => number,
  committed: (sale: string, counters: StockCounters, batchSize: number, taken: number) => void,
): Reserver {
  const queues = new Map<string, { waiting: Pending[]; running: Promise<void> | null }>();

  function kick(sale: string) {
    const q = queues.get(sale)!;
    if (q.running || q.waiting.length === 0) return;
    q.running = (async () => {
      await new Promise<void>((r) => setImmediate(r)); // gather what arrives in this turn
      while (q.waiting.length) {
        const batch = q.waiting.splice(0, MAX_BATCH);
        try {
          const answers = await decideBatch(db, sale, batch, clock());
          batch.forEach((p, i) => p.resolve(answers[i]!));
        } catch (e) {
          batch.forEach((p) => p.reject(e));
        }
      }
    })().finally(() => {
      q.running = null;
      if (q.waiting.length) kick(sale);
      else queues.delete(sale);
    });
  }

  async function decideBatch(db: Db, sale: string, batch: Pending[], now: number): Promise<ReserveAnswer[]> {
    const { answers, counters, taken } = await decide(db, sale, batch, now);
    if (counters) committed(sale, counters, batch.length, taken);
    return answers;
  }

  return {
    reserve(sale, req) {
      return new Promise<ReserveAnswer>((resolve, reject) => {
        let q = queues.get(sale);
        if (!q) queues.set(sale, (q = { waiting: [], running: null }));
        q.waiting.push({ ...req, resolve, reject });
        kick(sale);
      });
    },
    async drain() {
      while (queues.size) await Promise.all([...queues.values()].map((q) => q.running));
    },
  };
}

interface BatchRow {
  idx: number;
  code: string;
  reservation_id: string | null;
  expires_at: Date | null;
  stored_status: number | null;
  stored_body: Record<string, unknown> | null;
  total: number | null;
  available: number | null;
  reserved: number | null;
  sold: number | null;
}

async function decide(db: Db, sale: string, batch: ReserveRequest[], now: number) {
  // A key repeated inside this batch gets the answer of its first request.
  const firstOfKey = new Map<string, number>();
  const sent: number[] = [];
  const repeatOf = new Map<number, number>();
  batch.forEach((r, i) => {
    if (r.idempotencyKey !== undefined) {
      const k = `${r.userId} ${r.idempotencyKey}`;
      const first = firstOfKey.get(k);
      if (first !== undefined) return void repeatOf.set(i, first);
      firstOfKey.set(k, i);
    }
    sent.push(i);
  });
  const col = <T>(f: (r: ReserveRequest) => T) => sent.map((i) => f(batch[i]!));
  const { rows } = await sql<BatchRow>`
    SELECT * FROM checkout_reserve_batch(${sale}, ${new Date(now)},
      ${col((r) => r.userId)}::uuid[], ${col((r) => r.claims.jti)}::text[], ${col((r) => r.claims.room)}::text[],
      ${col((r) => r.claims.sub)}::text[], ${col((r) => r.idempotencyKey ?? null)}::text[])
  `.execute(db);
  const answers: ReserveAnswer[] = new Array(batch.length);
  for (const row of rows) answers[sent[row.idx - 1]!] = answerOf(row);
  for (const [i, first] of repeatOf) answers[i] = answers[first]!;
  const r0 = rows[0];
  const taken = rows.filter((r) => r.code === 'reserved').length;
  const counters = r0 && r0.total !== null ? { total: r0.total, available: r0.available!, reserved: r0.reserved!, sold: r0.sold! } : null;
  return { answers, counters, taken };
}

function answerOf(row: BatchRow): ReserveAnswer {
  switch (row.code) {
    case 'reserved':
      return { status: 201, body: { reservationId: row.reservation_id, status: 'reserved', expiresAt: row.expires_at!.toISOString() } };
    case 'stored': {
      const body = row.stored_body!;
      const code = body.error as ErrorCode | undefined;
      return { status: row.stored_status!, body: code && !body.message && code in ERRORS ? bodyOf(code) : body };
    }
    default:
      return err(row.code in ERRORS ? (row.code as ErrorCode) : 'internal');
  }
}
