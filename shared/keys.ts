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
 * Outstanding admissions (CONTRACT.md section 7), in the room's slot. `claims`: a sorted set of
 * visitors admitted and not yet reserved, score = claim deadline (admission + claimSeconds, ms);
 * the admitter adds them, checkout removes a visitor when it reserves or is refused `sold_out`.
 */
export function claimsKey(prefix: string, room: string): string {
  return roomKey(prefix, room, 'claims');
}

/**
 * Reservations checkout has told the room about: member visitor id, score = the stock version
 * (ms, `version` of the stock signal) of the commit that took its unit. Until the stock signal
 * reaches that version its unit still shows as available, so the admitter counts it as taken.
 */
export function claimsUsedKey(prefix: string, room: string): string {
  return roomKey(prefix, room, 'claims:used');
}

/**
 * Admitted visitors checkout refused `sold_out`: member visitor id, score = ms of the latest
 * refusal. They count as outstanding for claimSeconds after it, so a unit that comes back goes to
 * them before anyone new is admitted; they no longer count against `maxActive`.
 */
export function claimsRefusedKey(prefix: string, room: string): string {
  return roomKey(prefix, room, 'claims:refused');
}

/**
 * The stock signal checkout publishes for a sale: a hash
 * `{total, available, reserved, sold, state, updatedAt, version}` (numbers as strings, updatedAt ms;
 * version = when Postgres wrote these counters, ms: the counters show every reservation whose
 * stock version is at most this, and none after it; 0 when unknown).
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
  /** Stock version of these counters (ms), 0 when the writer did not say. */
  version: number;
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
    version: Number(h.version ?? 0) || 0,
  };
}
