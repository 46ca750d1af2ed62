/**
 * The sweeper: every `tickMs` it returns the units of lapsed reservations (so a unit is back
 * within a second of expiry), and at least every second it rewrites the stock signal of every
 * sale that is not long over, so a crash between a commit and its Redis write heals.
 * When given `reconcile`, it first asks the provider about the payments of reservations about to
 * lapse, and at most every `reconcileEveryMs` about every payment whose webhook is overdue
 * (payments/reconcile.ts), so a paid unit is sold rather than lapsing back to stock.
 * Several checkout processes may sweep at once: each sale's sweep holds the sale row lock and
 * takes reservations with FOR UPDATE SKIP LOCKED, so a unit is returned exactly once.
 */
import type { Db } from './db.js';
import { expireLapsed, type Ended } from './orders.js';
import { SALE_COLUMNS } from './sales.js';
import type { StockSignal } from './stock-signal.js';

export interface Sweeper {
  /** One pass now (tests call it directly with an injected clock). */
  sweep(): Promise<number>;
  stop(): Promise<void>;
}

export function startSweeper(
  db: Db,
  signal: StockSignal,
  clock: () => number,
  opts: {
    tickMs?: number;
    signalEveryMs?: number;
    /** Settles payments before their reservations lapse; `full` (at most every `reconcileEveryMs`): every overdue one. */
    reconcile?: (now: number, full: boolean) => Promise<Ended[]>;
    reconcileEveryMs?: number;
    onExpired?: (n: number) => void;
    onError?: (e: unknown) => void;
    run?: boolean;
  } = {},
): Sweeper {
  const tickMs = opts.tickMs ?? 250;
  const signalEveryMs = opts.signalEveryMs ?? 1000;
  const reconcileEveryMs = opts.reconcileEveryMs ?? 2000;
  let lastSignal = 0;
  let lastReconcile = -Infinity;
  let running: Promise<number> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;

  async function pass(): Promise<number> {
    const now = clock();
    if (opts.reconcile) {
      const full = now - lastReconcile >= reconcileEveryMs;
      if (full) lastReconcile = now;
      for (const e of await opts.reconcile(now, full)) await signal.ended(e);
    }
    const ended = await expireLapsed(db, now);
    let n = 0;
    for (const e of ended) {
      n += e.visitors.length;
      await signal.ended(e);
    }
    if (n) opts.onExpired?.(n);
    if (now - lastSignal >= signalEveryMs) {
      lastSignal = now;
      const rows = await db.selectFrom('sales').select(SALE_COLUMNS).where('ends_at', '>', new Date(now - 3600_000)).execute();
      await Promise.all(rows.map((r) => signal.publish(r)));
    }
    return n;
  }

  function sweep(): Promise<number> {
    running ??= pass().finally(() => (running = null));
    return running;
  }

  const loop = () => {
    if (stopped) return;
    sweep()
      .catch((e) => opts.onError?.(e))
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, tickMs);
      });
  };
  if (opts.run !== false) timer = setTimeout(loop, tickMs);

  return {
    sweep,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running?.catch(() => {});
    },
  };
}
