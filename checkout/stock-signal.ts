/**
 * The stock signal to the gateway (shared/keys.ts): after every change of stock the sale's
 * hash is rewritten and its id published; when an order ends its visitor leaves the room's
 * active set. The sweeper also rewrites the hash every second, so a crash between a commit
 * and this write heals by itself.
 */
import type { Redis } from 'ioredis';
import { activeKey, saleStockKey, stockChannel } from '../shared/keys.js';
import type { Ended } from './orders.js';
import { saleState, type SaleRow, type SaleState } from './sales.js';

export interface StockSignal {
  /** Writes the sale's counters (as read inside the committing transaction) and announces them. */
  publish(row: SaleRow): Promise<void>;
  /** The same from counters alone, with the state the caller knows. */
  publishCounters(sale: string, c: { total: number; available: number; reserved: number; sold: number; version?: number }, state: SaleState): Promise<void>;
  /** The visitor's order ended (paid, failed, expired, cancelled): it no longer counts as active. */
  released(visitors: { room: string; visitor_id: string }[]): Promise<void>;
  /** Orders ended: the sale's new counters, and their visitors leave the active set. */
  ended(e: Ended): Promise<void>;
}

export function createStockSignal(redis: Redis, prefix: string, clock: () => number, onError: (e: unknown) => void): StockSignal {
  const publishCounters: StockSignal['publishCounters'] = async (sale, c, state) => {
    const now = clock();
    try {
      await redis
        .multi()
        .hset(saleStockKey(prefix, sale), { total: c.total, available: c.available, reserved: c.reserved, sold: c.sold, state, updatedAt: now, version: c.version ?? 0 })
        .publish(stockChannel(prefix), sale)
        .exec();
    } catch (e) {
      onError(e); // the sweeper rewrites it within a second
    }
  };
  const publish: StockSignal['publish'] = (row) => publishCounters(row.id, { ...row, version: row.updated_at.getTime() }, saleState(row, clock()));
  const released: StockSignal['released'] = async (visitors) => {
    if (!visitors.length) return;
    try {
      await Promise.all(visitors.map((v) => redis.zrem(activeKey(prefix, v.room), v.visitor_id)));
    } catch (e) {
      onError(e); // the gateway also drops a visitor when its token expires
    }
  };
  return {
    publishCounters,
    publish,
    released,
    async ended(e) {
      await Promise.all([publish(e.row), released(e.visitors)]);
    },
  };
}
