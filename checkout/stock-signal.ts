/**
 * The stock signal to the gateway (shared/stock.ts): the ONE writer of every sale's signal.
 * Every path that commits a change of stock goes through here with the counters its
 * transaction wrote and their `stock_version` (bumped under the sale row lock): reserve
 * batches (`committed`, coalesced to one write per sale every 50 ms under load), cancels,
 * lapses, payment outcomes (`ended`), the operator's stock change and the sweeper's
 * once-a-second rewrite (`publish`). lua/publishStock-1.lua keeps the newest version only, so a
 * write that arrives late (a throttled reserve batch, another process) never replaces newer
 * counters. The sweeper's rewrite heals a crash between a commit and its write.
 * When an order ends its visitor also leaves the room's active set.
 */
import type { Redis } from 'ioredis';
import { activeKey, saleStockKey, soldVisitorsKey, stockChannel } from '../shared/keys.js';
import { runScript } from '../shared/scripts.js';
import type { StockCounters } from '../shared/stock.js';
import type { Ended } from './orders.js';
import { saleState, type SaleRow, type SaleState } from './sales.js';

/** How long reserve batches' counters are coalesced before one write (ms). */
export const RESERVE_SIGNAL_EVERY_MS = 50;

export type WriteResult = 'written' | 'unchanged' | 'older';

export interface StockSignal {
  /** Writes the sale's counters as read inside the committing transaction, now. */
  publish(row: SaleRow): Promise<WriteResult | null>;
  /** Counters with the state the caller knows, now (null: Redis did not answer). */
  write(sale: string, c: StockCounters, state: SaleState): Promise<WriteResult | null>;
  /** A reserve batch committed: its counters are written within RESERVE_SIGNAL_EVERY_MS, the newest of the window. */
  committed(sale: string, c: StockCounters): void;
  /** The visitor's order ended (paid, failed, expired, cancelled): it no longer counts as active. */
  released(visitors: { room: string; visitor_id: string }[]): Promise<void>;
  /** Orders ended: the sale's new counters, and their visitors leave the active set. */
  ended(e: Ended): Promise<void>;
  /** Writes what is still coalescing and stops the timers. */
  flush(): Promise<void>;
}

const RESULTS: Record<number, WriteResult> = { 1: 'written', 0: 'unchanged', [-1]: 'older' };

export function createStockSignal(redis: Redis, prefix: string, clock: () => number, onError: (e: unknown) => void): StockSignal {
  const channel = stockChannel(prefix);
  const write: StockSignal['write'] = async (sale, c, state) => {
    try {
      // lua/publishStock-1.lua: 1 written, 0 same version and state, -1 older than stored.
      const r = Number(await runScript<number>(redis, 'publishStock', [saleStockKey(prefix, sale)], [c.version, c.total, c.available, c.reserved, c.sold, state, clock(), channel, sale]));
      return RESULTS[r] ?? null;
    } catch (e) {
      onError(e); // the sweeper rewrites it within a second
      return null;
    }
  };
  const publish: StockSignal['publish'] = (row) =>
    write(row.id, { total: row.total, available: row.available, reserved: row.reserved, sold: row.sold, version: row.stock_version }, saleState(row, clock()));

  /** Per sale: the newest counters of reserve batches not yet written, and the timer that writes them. */
  const pending = new Map<string, { c: StockCounters; timer: NodeJS.Timeout }>();
  const writing = new Set<Promise<unknown>>();
  const writePending = (sale: string) => {
    const p = pending.get(sale);
    if (!p) return;
    pending.delete(sale);
    clearTimeout(p.timer);
    // Units were just reserved, so the window is open and some are held: the sale is active.
    const w = write(sale, p.c, 'active').finally(() => writing.delete(w));
    writing.add(w);
  };

  /** These visitors' orders were paid: noted for the room's fairness report (best effort). */
  const sold = async (visitors: Ended['visitors']) => {
    try {
      await Promise.all(visitors.map((v) => redis.sadd(soldVisitorsKey(prefix, v.room), v.visitor_id)));
    } catch (e) {
      onError(e); // only the report's share of units to flagged visitors is lower
    }
  };

  const released: StockSignal['released'] = async (visitors) => {
    if (!visitors.length) return;
    try {
      await Promise.all(visitors.map((v) => redis.zrem(activeKey(prefix, v.room), v.visitor_id)));
    } catch (e) {
      onError(e); // the gateway also drops a visitor when its token expires
    }
  };
  return {
    publish,
    write,
    committed(sale, c) {
      const p = pending.get(sale);
      if (p) {
        if (c.version > p.c.version) p.c = c;
        return;
      }
      pending.set(sale, { c, timer: setTimeout(() => writePending(sale), RESERVE_SIGNAL_EVERY_MS) });
    },
    released,
    async ended(e) {
      // Who bought is noted before the stock signal can say sold out (the fairness report reads it then).
      if (e.paid) await sold(e.visitors);
      await Promise.all([publish(e.row), released(e.visitors)]);
    },
    async flush() {
      for (const sale of [...pending.keys()]) writePending(sale);
      await Promise.all([...writing]);
    },
  };
}
