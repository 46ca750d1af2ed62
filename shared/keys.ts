/**
 * Every Redis key the two services share, in one place.
 *
 * All of one room's keys carry the hash tag `{room}` so each script touches one
 * Redis Cluster slot. The sale's stock signal lives in its own slot: the admitter
 * reads it with a plain HGETALL before its script and passes it in as ARGV.
 */
export function roomKey(prefix: string, room: string, part: string): string {
  return `${prefix}:{${room}}:${part}`;
}

/**
 * The set of admitted visitors still counting against `maxActive`:
 * a sorted set, member = visitor id, score = token expiry (ms since epoch).
 * Checkout removes a visitor (ZREM) when its order ends (paid, failed, expired, cancelled).
 */
export function activeKey(prefix: string, room: string): string {
  return roomKey(prefix, room, 'active');
}

/**
 * The visitors of a room who bought (a set of visitor ids): checkout adds one when its payment
 * succeeds; the gateway's fairness report counts how many of them the defences had flagged.
 */
export function soldVisitorsKey(prefix: string, room: string): string {
  return roomKey(prefix, room, 'sold');
}

/**
 * The stock signal checkout publishes for a sale: a hash
 * `{total, available, reserved, sold, state, updatedAt}` (numbers as strings, updatedAt ms).
 * Written after every change of stock and at least every second by the sweeper.
 * No key means checkout does not know the sale: the room admits as configured.
 */
export function saleStockKey(prefix: string, sale: string): string {
  return `${prefix}:sale:{${sale}}:stock`;
}

/** Pub/sub channel on which checkout announces a stock change for a sale (message = sale id). */
export function stockChannel(prefix: string): string {
  return `${prefix}:stock-changed`;
}

export interface StockSignal {
  total: number;
  available: number;
  reserved: number;
  sold: number;
  state: string;
  updatedAt: number;
}

export function parseStockSignal(h: Record<string, string>): StockSignal | null {
  if (!h || h.total === undefined) return null;
  return {
    total: Number(h.total),
    available: Number(h.available),
    reserved: Number(h.reserved),
    sold: Number(h.sold),
    state: h.state ?? 'active',
    updatedAt: Number(h.updatedAt ?? 0),
  };
}
