/**
 * Reservations, group-committed. One hot sale row takes ~1,500 transactions/s at most, so
 * the requests for a sale that arrive together are decided in ONE transaction of ONE
 * statement, `checkout_reserve_batch` (see its migrations, the latest 20261121T2300): decide
 * the whole batch on a snapshot (docs/api.md section 3's order: jti, window, one per user,
 * stock), insert the winners with ON CONFLICT DO NOTHING, and only then lock the sale row to
 * take their units with one guarded UPDATE. Each request gets its own answer; one request's
 * error never fails the others.
 *
 * One batch per sale is in flight per process, up to RESERVE_IN_FLIGHT while requests pile
 * up: those decide and insert at the same time and queue only for the short stock update.
 * Requests arriving meanwhile form the next. A request whose user or jti is in a batch still
 * in flight waits for that batch to finish, so it is decided exactly as if it had come after
 * it. The constraints catch what other processes do at the same time.
 */
import type { AdmissionClaims } from '../shared/admission.js';
import type { StockCounters } from '../shared/stock.js';
import { poolOf, type Db } from './db.js';
import { bodyOf, ERRORS, type ErrorCode } from './errors.js';

export interface ReserveRequest {
  userId: string;
  claims: AdmissionClaims;
  idempotencyKey?: string;
}

export interface ReserveAnswer {
  status: number;
  body: Record<string, unknown>;
  /** The first answer of this idempotency key, given again. */
  stored?: boolean;
  /** A reservation made now: the stock version (sales.stock_version) of the commit that took its unit. */
  stockVersion?: number;
}

interface Pending extends ReserveRequest {
  resolve(a: ReserveAnswer): void;
  reject(e: unknown): void;
}

const MAX_BATCH = 256;
/**
 * Batches of one sale in flight at once (per process), at most, by default. They overlap in
 * Postgres except for the short stock update. A commit costs far more than a row (~1 ms of
 * Postgres time per batch here, ~35 µs per row), so a second batch starts only once
 * SPLIT_AT requests wait behind the one in flight: few buyers make few, bigger batches (less
 * CPU per reservation), a crowd gets overlap. Chosen with bench/checkout.ts on 2 cores
 * (`BENCH_RESERVE_IN_FLIGHT`): 1 in flight beat 2-4 at 8 buyers (4 vs 3 requests per
 * transaction, ~10% less machine CPU per reservation) and tied above.
 */
export const RESERVE_IN_FLIGHT = 3;
const SPLIT_AT = 16;


function err(code: ErrorCode, fields: Record<string, unknown> = {}, message?: string): ReserveAnswer {
  const body = bodyOf(code, fields);
  return { status: ERRORS[code].status, body: message ? { ...body, message } : body };
}

/**
 * The next batch: up to MAX_BATCH waiting requests, in arrival order, at most one per jti and
 * per user, and none whose jti or user is in a batch still in flight (a repeat waits for a
 * later batch, which then sees the first one's outcome in the database — exactly as if they
 * had come one after the other). A repeat of the same idempotency key rides along and gets
 * its first request's answer.
 */
function takeBatch(q: Queue): Pending[] {
  const batch: Pending[] = [];
  const rest: Pending[] = [];
  const keys = new Set<string>();
  for (const p of q.waiting) {
    const key = p.idempotencyKey === undefined ? null : `${p.userId} ${p.idempotencyKey}`;
    if (batch.length >= MAX_BATCH) rest.push(p);
    else if (key !== null && keys.has(key)) batch.push(p);
    else if (q.busyJtis.has(p.claims.jti) || q.busyUsers.has(p.userId)) rest.push(p);
    else {
      batch.push(p);
      q.busyJtis.add(p.claims.jti);
      q.busyUsers.add(p.userId);
      if (key !== null) keys.add(key);
    }
  }
  q.waiting = rest;
  return batch;
}

interface Queue {
  waiting: Pending[];
  running: Set<Promise<void>>;
  /** Jtis and users of the batches in flight. */
  busyJtis: Set<string>;
  busyUsers: Set<string>;
}

/** Could a batch be taken now: anyone waiting whose jti and user are not in flight? */
const takeable = (q: Queue, atLeast = 1) => {
  let n = 0;
  for (const p of q.waiting) if (!q.busyJtis.has(p.claims.jti) && !q.busyUsers.has(p.userId) && ++n >= atLeast) return true;
  return false;
};

export interface Reserver {
  reserve(sale: string, req: ReserveRequest): Promise<ReserveAnswer>;
  /** Resolves once every queued request has been answered. */
  drain(): Promise<void>;
}

export function createReserver(
  db: Db,
  clock: () => number,
  committed: (sale: string, counters: StockCounters, batchSize: number, taken: number) => void,
  inFlight = RESERVE_IN_FLIGHT,
): Reserver {
  const queues = new Map<string, Queue>();

  /**
   * Starts batches while slots and takeable requests allow. `gather`: wait one event-loop
   * turn first so the requests arriving together form one batch; a batch started as another
   * finishes takes at once what queued meanwhile.
   */
  function kick(sale: string, gather = true) {
    const q = queues.get(sale)!;
    while (q.running.size < inFlight && takeable(q, q.running.size ? SPLIT_AT : 1)) {
      let run!: Promise<void>;
      run = (async () => {
        if (gather) await new Promise<void>((r) => setImmediate(r)); // gather what arrives in this turn
        const batch = takeBatch(q);
        if (!batch.length) return;
        let answers: ReserveAnswer[] | undefined;
        let error: unknown;
        try {
          answers = await decideBatch(db, sale, batch, clock());
        } catch (e) {
          error = e;
        }
        for (const p of batch) {
          q.busyJtis.delete(p.claims.jti);
          q.busyUsers.delete(p.userId);
        }
        // Send the next batch to Postgres before answering this one: its round trip then
        // overlaps the writing of these answers.
        q.running.delete(run);
        if (q.waiting.length) kick(sale, false);
        if (answers) batch.forEach((p, i) => p.resolve(answers[i]!));
        else batch.forEach((p) => p.reject(error));
      })().finally(() => {
        q.running.delete(run);
        if (q.waiting.length) kick(sale);
        else if (!q.running.size) queues.delete(sale);
      });
      q.running.add(run);
    }
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
        if (!q) queues.set(sale, (q = { waiting: [], running: new Set(), busyJtis: new Set(), busyUsers: new Set() }));
        q.waiting.push({ ...req, resolve, reject });
        kick(sale);
      });
    },
    async drain() {
      while (queues.size) await Promise.all([...queues.values()].flatMap((q) => [...q.running]));
    },
  };
}

interface BatchRow {
  idx: number;
  code: string;
  reservation_id: string | null;
  expires_at: Date | null;
  stored_code: string | null;
  stored_body: Record<string, unknown> | null;
  total: number | null;
  available: number | null;
  reserved: number | null;
  sold: number | null;
  stock_version: number | null;
}

/** Deadlock, serialization failure: nothing was committed, the batch can simply run again. */
const RETRYABLE = new Set(['40P01', '40001']);
const MAX_ATTEMPTS = 5;
const sqlState = (e: unknown) => (e as { code?: unknown })?.code;

/** The first field of a request that Postgres cannot store (a NUL byte in a text), if any. */
export function unstorableField(r: ReserveRequest): string | null {
  for (const [field, v] of [['claims.jti', r.claims.jti], ['claims.room', r.claims.room], ['claims.sub', r.claims.sub], ['idempotency-key', r.idempotencyKey]] as const) {
    if (typeof v === 'string' && v.includes('\u0000')) return field;
  }
  return null;
}

type Decided = { answers: ReserveAnswer[]; counters: StockCounters | null; taken: number };

/**
 * Decides a batch. A request Postgres could not take is answered on its own and never fails
 * the others: one with a NUL byte is refused before the call; if the call still fails on the
 * data (SQLSTATE class 22), the batch is split in halves, each decided by itself, until the
 * bad request stands alone. A deadlock or serialization failure is retried (the function
 * takes its locks in one order, so this is a backstop).
 */
async function decide(db: Db, sale: string, batch: ReserveRequest[], now: number): Promise<Decided> {
  const answers: ReserveAnswer[] = new Array(batch.length);
  const good: number[] = [];
  batch.forEach((r, i) => {
    const field = unstorableField(r);
    if (field) answers[i] = err('bad_request', { field }, `${field} must not contain a NUL character.`);
    else good.push(i);
  });
  const out: Decided = { answers, counters: null, taken: 0 };
  const settle = async (idx: number[]): Promise<void> => {
    if (!idx.length) return;
    let d: Decided;
    try {
      d = await decideStored(db, sale, idx.map((i) => batch[i]!), now);
    } catch (e) {
      const code = sqlState(e);
      if (typeof code !== 'string' || !code.startsWith('22')) throw e;
      if (idx.length === 1) {
        answers[idx[0]!] = err('bad_request', {}, 'A field of this request cannot be stored.');
        return;
      }
      const half = Math.ceil(idx.length / 2);
      await settle(idx.slice(0, half));
      await settle(idx.slice(half));
      return;
    }
    idx.forEach((i, j) => (answers[i] = d.answers[j]!));
    out.taken += d.taken;
    if (d.counters && (!out.counters || d.counters.version > out.counters.version)) out.counters = d.counters;
  };
  await settle(good);
  return out;
}

async function decideStored(db: Db, sale: string, batch: ReserveRequest[], now: number): Promise<Decided> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await decideOnce(db, sale, batch, now);
    } catch (e) {
      if (!RETRYABLE.has(sqlState(e) as string) || attempt >= MAX_ATTEMPTS) throw e;
      await new Promise((r) => setTimeout(r, attempt * (2 + Math.random() * 8)));
    }
  }
}

async function decideOnce(db: Db, sale: string, batch: ReserveRequest[], now: number): Promise<Decided> {
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
  const { rows } = await poolOf(db).query<BatchRow>({
    name: 'checkout_reserve_batch',
    text: `SELECT * FROM checkout_reserve_batch($1, $2, $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[])`,
    values: [sale, new Date(now), col((r) => r.userId), col((r) => r.claims.jti), col((r) => r.claims.room), col((r) => r.claims.sub), col((r) => r.idempotencyKey ?? null)],
  });
  const answers: ReserveAnswer[] = new Array(batch.length);
  for (const row of rows) answers[sent[row.idx - 1]!] = answerOf(row);
  // A repeat of a key in the same batch is answered as a retry would be: the first one's answer, stored.
  for (const [i, first] of repeatOf) answers[i] = { ...answers[first]!, stored: true };
  const r0 = rows[0];
  const taken = rows.filter((r) => r.code === 'reserved').length;
  const counters =
    r0 && r0.total !== null
      ? { total: r0.total, available: r0.available!, reserved: r0.reserved!, sold: r0.sold!, version: Number(r0.stock_version) }
      : null;
  return { answers, counters, taken };
}

/**
 * An answer stored under an idempotency key, as sent again: its code (the status and message
 * come from the error table), and for a reservation the body it was given.
 */
function storedAnswer(code: string, body: Record<string, unknown> | null): ReserveAnswer {
  if (code === 'reserved' && body) return { status: 201, body, stored: true };
  return { ...err(code in ERRORS ? (code as ErrorCode) : 'internal'), stored: true };
}

/**
 * The first answer of `key` for this user, for a request that the batch will not see (its
 * token is missing, refused or its keys unreachable): null when there is none; a key first
 * used for another sale is `idempotency_key_reused`.
 */
export async function storedAnswerOf(db: Db, userId: string, sale: string, key: string | undefined): Promise<ReserveAnswer | null> {
  if (key === undefined) return null;
  const hit = await db
    .selectFrom('idempotency_keys')
    .select(['sale_id', 'code', 'body'])
    .where('user_id', '=', userId)
    .where('key', '=', key)
    .executeTakeFirst();
  if (!hit) return null;
  if (hit.sale_id !== sale) return err('idempotency_key_reused');
  return storedAnswer(hit.code, hit.body as Record<string, unknown> | null);
}

function answerOf(row: BatchRow): ReserveAnswer {
  switch (row.code) {
    case 'reserved':
      return {
        status: 201,
        body: { reservationId: row.reservation_id, status: 'reserved', expiresAt: row.expires_at!.toISOString() },
        ...(row.stock_version !== null ? { stockVersion: Number(row.stock_version) } : {}),
      };
    case 'stored':
      return storedAnswer(row.stored_code!, row.stored_body);
    default:
      return err(row.code in ERRORS ? (row.code as ErrorCode) : 'internal');
  }
}
