/**
 * Every Redis key and channel name the two services use, built here and nowhere else.
 *
 * Layout (unchanged since the first release, a running deployment's data depends on it, but for
 * the buckets: issue 16 made the room's a string, the ips' and subnets' fields of one hash per
 * generation, read with a few commands per join batch, under new names b:room, bi:*, bs:*, cf:*
 * so old and new processes never meet the other's type; the old tb:*, hv:* keys expire by
 * themselves, and buckets start full once, at the upgrade):
 *
 *   <prefix>:{<room>}:q           hash   queue counters {opened, N, next, at, credit, cts, fsum, fn, preJoined}
 *   <prefix>:{<room>}:tix         hash   visitor id -> ticket (joined after open)
 *   <prefix>:{<room>}:pre         zset   pre-queue: visitor id scored by its draw key
 *   <prefix>:{<room>}:preseq      hash   visitor id -> pre-queue join order (fairness figure)
 *   <prefix>:{<room>}:q:post      list   "<visitor id> <arrival ms>" of post-open tickets not yet admitted
 *   <prefix>:{<room>}:fair:post   list   arrival ms of admitted post-open tickets (fairness sample)
 *   <prefix>:{<room>}:active      zset   admitted visitors counting against maxActive (score = token expiry ms)
 *   <prefix>:{<room>}:tok         hash   visitor id -> admission token
 *   <prefix>:{<room>}:cfg         string the room's config JSON     <prefix>:{<room>}:audit  list of config changes
 *   <prefix>:{<room>}:stats       hash   running totals            <prefix>:{<room>}:sec:<epoch s>  hash, 120 s
 *   <prefix>:{<room>}:b:room      string the room's token bucket: tokens, ts as two doubles (struct '<dd')
 *   <prefix>:{<room>}:chance:adm  hash   admitted visitor id -> last chance shown (fairness report)
 *   <prefix>:{<room>}:chance:wait hash   per chance bucket k: n<k> visitors still waiting at the end, s<k> sum shown
 *   <prefix>:{<room>}:bi:<G>:<g>  hash   ip -> its token bucket and the visitor ids seen from it (10 min):
 *                                        doubles tokens, ts [, seen ms] then the first 8 chars of each id (at most 7),
 *                                        generation g = floor(now / G) (lua/joinBatch reads g-1..g+1)
 *   <prefix>:{<room>}:bs:<G>:<g>  hash   subnet (/24, /64) -> its token bucket (doubles tokens, ts), the same way
 *   <prefix>:{<room>}:cf:<ip>     string failed CAPTCHAs of an IP (a mirror of captcha-fail, for the score)
 *   <prefix>:sale:{<sale>}:stock  hash   the sale's stock signal (written by checkout)
 *   <prefix>:rooms                set    every room's name      <prefix>:keys  hash  the signing keys
 *   <prefix>:captcha-seen:<sha>   string a used hCaptcha token   <prefix>:captcha-fail:<ip>  failed-CAPTCHA window
 *   channels: <prefix>:cfg-changed, <prefix>:stock-changed, <prefix>:admitted
 *
 * Redis Cluster: all of one room's keys carry the hash tag `{room}`, so each room script touches one
 * slot and rooms spread over the slots. The sale's stock signal lives in the sale's own slot (a sale
 * may serve several rooms): the admitter reads it with a plain HGETALL and passes what the room's
 * scripts need of it in ARGV. The other keys are each touched alone (one command or a one-key
 * script), so they need no tag.
 */

/** The start of every key of one room: `<prefix>:{<room>}` (one hash tag, one cluster slot). */
export function roomPrefix(prefix: string, room: string): string {
  return `${prefix}:{${room}}`;
}

export function roomKey(prefix: string, room: string, part: string): string {
  return `${roomPrefix(prefix, room)}:${part}`;
}

/** Every key of one room, by name (see the layout above). */
export function roomKeys(prefix: string, room: string) {
  const k = (part: string) => roomKey(prefix, room, part);
  return {
    q: k('q'), tix: k('tix'), pre: k('pre'), preseq: k('preseq'), qpost: k('q:post'), fairPost: k('fair:post'),
    active: k('active'), tok: k('tok'), cfg: k('cfg'), audit: k('audit'), stats: k('stats'), tbRoom: k('b:room'),
    /** The per-second counters of the second that holds `nowMs`. */
    sec: (nowMs: number) => k(`sec:${Math.floor(nowMs / 1000)}`),
    /** The ip buckets (with the visitor ids seen from each ip) of generation `gen` of `genMs` (lua/joinBatch). */
    ipBuckets: (genMs: number, gen: number) => k(`bi:${genMs}:${gen}`),
    /** The subnet buckets of generation `gen` of `genMs`. */
    subnetBuckets: (genMs: number, gen: number) => k(`bs:${genMs}:${gen}`),
    /** Failed CAPTCHAs of an IP (waiting-room/defence/captcha.ts writes, lua/joinBatch reads). */
    ipCaptchaFailures: (ip: string) => k(`cf:${ip}`),
    claims: claimsKey(prefix, room), claimsUsed: claimsUsedKey(prefix, room), claimsRefused: claimsRefusedKey(prefix, room),
    /** Admissions whose token is not delivered yet, withdrawn ones, and those come back (lua/include/admissionCap.lua). */
    claimsUndelivered: k('claims:undelivered'), claimsWithdrawn: k('claims:withdrawn'), claimsReturned: k('claims:returned'),
    /** Visitor -> ms it was last seen polling (GET /me) near the front or admitted and undelivered: delivery grace (waiting-room/live.ts writes, lua/admitBatch reads). */
    claimsPolled: k('claims:polled'),
  };
}
export type RoomKeys = ReturnType<typeof roomKeys>;

/**
 * The set of admitted visitors still counting against `maxActive`:
 * a sorted set, member = visitor id, score = token expiry (ms since epoch).
 * Checkout removes a visitor (ZREM) when its order ends (paid, failed, expired, cancelled).
 */
export function activeKey(prefix: string, room: string): string {
  return roomKey(prefix, room, 'active');
}

/** The set of every room's name (the registry every gateway process reloads). */
export function roomsSetKey(prefix: string): string {
  return `${prefix}:rooms`;
}

/** The admission-token signing keys shared by every gateway process (lua/putSigningKey-1.lua). */
export function signingKeysKey(prefix: string): string {
  return `${prefix}:keys`;
}

/** Marks an hCaptcha token as used (SET NX EX); `digest` is the token's SHA-256, base64url. */
export function captchaSeenKey(prefix: string, digest: string): string {
  return `${prefix}:captcha-seen:${digest}`;
}

/** rate-limiter-flexible's `keyPrefix` for failed CAPTCHAs per IP (it appends `:<ip>`). */
export function captchaFailKeyPrefix(prefix: string): string {
  return `${prefix}:captcha-fail`;
}

/** SCAN pattern of every key under `prefix` (tests and start-up clean-up only: never a hot path). */
export function keyPattern(prefix: string): string {
  return `${prefix}:*`;
}

/** Pub/sub channel on which a gateway announces a changed room config (message = room). */
export function configChannel(prefix: string): string {
  return `${prefix}:cfg-changed`;
}

/**
 * The room's admitted-notice channel (message = AdmittedNotice JSON), in the room's slot: sent with
 * SPUBLISH and read with SSUBSCRIBE (sharded pub/sub), so on a Redis Cluster a notice travels only
 * through the master that holds the room; on one Redis (7+) the same commands work as they are.
 */
export function admittedChannel(prefix: string, room: string): string {
  return roomKey(prefix, room, 'admitted');
}

/**
 * The visitors of a room who bought (a set of visitor ids): checkout adds one when its payment
 * succeeds; the gateway's fairness report counts how many of them the defences had flagged.
 */
export function soldVisitorsKey(prefix: string, room: string): string {
  return roomKey(prefix, room, 'sold');
}

/** Admitted visitor id -> the last chance it was shown while waiting (waiting-room/chance-ledger.ts). */
export function chanceAdmittedKey(prefix: string, room: string): string {
  return roomKey(prefix, room, 'chance:adm');
}

/** Per chance bucket k, `n<k>` visitors still waiting when the room ended and `s<k>` the chances they were shown, summed. */
export function chanceWaitingKey(prefix: string, room: string): string {
  return roomKey(prefix, room, 'chance:wait');
}

/**
 * Outstanding admissions (docs/api.md section 7), in the room's slot. `claims`: a sorted set of
 * visitors admitted and not yet reserved, score = claim deadline (admission + claimSeconds, ms);
 * the admitter adds them, checkout removes a visitor when it reserves or is refused `sold_out`.
 */
export function claimsKey(prefix: string, room: string): string {
  return roomKey(prefix, room, 'claims');
}

/**
 * Reservations checkout has told the room about: member visitor id, score = the stock version
 * (`version` of the stock signal, shared/stock.ts) of the commit that took its unit. Until the stock signal
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
 * `{version, total, available, reserved, sold, state, updatedAt}` (numbers as strings, updatedAt
 * ms; shared/stock.ts). Written after every change of stock and at least every second by the
 * sweeper, through lua/publishStock-1.lua, which keeps the newest version only.
 * No key means checkout does not know the sale: the room admits as configured.
 */
export function saleStockKey(prefix: string, sale: string): string {
  return `${prefix}:sale:{${sale}}:stock`;
}

/** Pub/sub channel on which checkout announces a stock change for a sale (message = sale id). */
export function stockChannel(prefix: string): string {
  return `${prefix}:stock-changed`;
}

// The signal's type and parser live with its states in shared/stock.ts.
export { parseStockSignal, type StockSignal } from './stock.js';
