/**
 * A sale's stock signal (checkout → gateway): the one type both services read and write, and
 * the one definition of each stock state. Checkout writes it (checkout/stock-signal.ts, the only
 * writer) as the hash at shared/keys.ts `saleStockKey`, through lua/publishStock-1.lua, which
 * keeps the newest `version` only.
 */

/** A sale's counters as one committed transaction left them. */
export interface StockCounters {
  total: number;
  available: number;
  reserved: number;
  sold: number;
  /**
   * `sales.stock_version`: bumped by every change of stock under the sale row's lock, so of two
   * counters of one sale the larger version is the newer (across every checkout process).
   */
  version: number;
}

/** The signal as stored: the counters, checkout's sale state, and when it was written (ms). */
export interface StockSignal extends StockCounters {
  state: string;
  updatedAt: number;
}

/** Every unit is sold (or the sale has none): nothing is available and nothing may come back. */
export function isSoldOut(c: Pick<StockCounters, 'available' | 'reserved'>): boolean {
  return c.available <= 0 && c.reserved <= 0;
}

/** No unit is available but some are reserved: one may still come back (lapse, cancel, failed payment). */
export function isHeld(c: Pick<StockCounters, 'available' | 'reserved'>): boolean {
  return c.available <= 0 && c.reserved > 0;
}

/** The stored hash as a StockSignal, or null when checkout never wrote one (an unknown sale). */
export function parseStockSignal(h: Record<string, string>): StockSignal | null {
  if (!h || h.total === undefined) return null;
  return {
    total: Number(h.total),
    available: Number(h.available),
    reserved: Number(h.reserved),
    sold: Number(h.sold),
    version: Number(h.version ?? 0),
    state: h.state ?? 'active',
    updatedAt: Number(h.updatedAt ?? 0),
  };
}
