/**
 * Room configs and states as this process sees them. Configs live in Redis (JSON at
 * `roomKeys(prefix, room).cfg`, names in `roomsSetKey(prefix)`); every process reloads them every
 * second and on a pub/sub nudge, with the sale's stock signal, so a change applies everywhere
 * within 2 s. The state is derived from clock + config + stock, never stored.
 */
import type { Redis } from 'ioredis';
import { roomKeys, roomsSetKey, saleStockKey } from '../shared/keys.js';
import { isHeld as held, isSoldOut as soldOut, parseStockSignal, type StockSignal } from '../shared/stock.js';
import { withNewDefaults, type RoomConfig } from './room-config.js';

export type RoomState = 'scheduled' | 'prequeue' | 'open' | 'paused' | 'sold_out' | 'closed';

export interface RoomView {
  cfg: RoomConfig;
  opensAtMs: number;
  prequeueOpensAtMs: number;
  closesAtMs: number | null;
  stock: StockSignal | null;
  state: RoomState;
  /** No unit available but some reserved: admit nobody for now. */
  held: boolean;
}

/** The sale is sold out (shared/stock.ts says what that means, for both services). */
export function isSoldOut(stock: StockSignal | null): boolean {
  return !!stock && (soldOut(stock) || stock.state === 'sold_out');
}

/** No unit available but some reserved: admit nobody for now (shared/stock.ts). */
export function isHeld(stock: StockSignal | null): boolean {
  return !!stock && !isSoldOut(stock) && held(stock);
}

/** The state machine: scheduled → prequeue → open ⇄ paused → sold_out | closed. */
export function roomState(cfg: RoomConfig, now: number, stock: StockSignal | null): RoomState {
  return stateAt(cfg, Date.parse(cfg.opensAt), cfg.closesAt ? Date.parse(cfg.closesAt) : null, now, stock);
}

/** roomState with the config's times already parsed (a view keeps them: no Date.parse per join). */
export function stateAt(cfg: RoomConfig, opensAtMs: number, closesAtMs: number | null, now: number, stock: StockSignal | null): RoomState {
  if (cfg.closed || (closesAtMs !== null && now >= closesAtMs) || stock?.state === 'ended') return 'closed';
  if (isSoldOut(stock)) return 'sold_out';
  if (now < opensAtMs - cfg.prequeueSeconds * 1000) return 'scheduled';
  if (now < opensAtMs) return 'prequeue';
  return cfg.paused ? 'paused' : 'open';
}

function view(cfg: RoomConfig, now: number, stock: StockSignal | null): RoomView {
  const opensAtMs = Date.parse(cfg.opensAt);
  const closesAtMs = cfg.closesAt ? Date.parse(cfg.closesAt) : null;
  return {
    cfg, opensAtMs, prequeueOpensAtMs: opensAtMs - cfg.prequeueSeconds * 1000, closesAtMs,
    stock, state: stateAt(cfg, opensAtMs, closesAtMs, now, stock), held: isHeld(stock),
  };
}


export type RoomChangeListener = (room: string, next: RoomView, prev: RoomView | undefined) => void;

/** How often every room's config and stock are reloaded from Redis whatever pub/sub said. */
export const RELOAD_MS = 10_000;

/**
 * The room registry. It calls nobody: whoever needs to hear of a change (live updates) listens
 * with `onChange`.
 */
export class Rooms {
  private readonly views = new Map<string, RoomView>();
  private readonly listeners: RoomChangeListener[] = [];
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly clock: () => number,
    listener?: RoomChangeListener,
  ) {
    if (listener) this.listeners.push(listener);
  }

  /** Be told when a room's state or held flag changes in this process's view. */
  onChange(listener: RoomChangeListener): void { this.listeners.push(listener); }

  /** The room as of now (its state recomputed from the clock). */
  get(room: string): RoomView | undefined {
    const v = this.views.get(room);
    return v && this.set(v.cfg, v.stock);
  }

  list(): RoomView[] { return [...this.views.values()].map((v) => this.set(v.cfg, v.stock)); }

  /** The room from the cache, else from Redis (a room created a moment ago on another process). */
  async find(room: string): Promise<RoomView | undefined> {
    const v = this.get(room);
    if (v) return v;
    const raw = await this.redis.get(roomKeys(this.prefix, room).cfg);
    if (!raw) return undefined;
    const cfg = withNewDefaults(JSON.parse(raw) as RoomConfig);
    const stock = parseStockSignal(await this.redis.hgetall(saleStockKey(this.prefix, cfg.sale)));
    return this.set(cfg, stock);
  }

  private set(cfg: RoomConfig, stock: StockSignal | null): RoomView {
    const prev = this.views.get(cfg.room);
    const now = this.clock();
    if (prev && prev.cfg === cfg && prev.stock === stock && prev.state === stateAt(cfg, prev.opensAtMs, prev.closesAtMs, now, stock)) return prev;
    const next = view(cfg, now, stock);
    this.views.set(cfg.room, next);
    if (!prev || prev.state !== next.state || prev.held !== next.held) for (const l of this.listeners) l(cfg.room, next, prev);
    return next;
  }

  /** Store a config this process just saved (seen at once here, elsewhere within 1 s). */
  put(cfg: RoomConfig): RoomView { return this.set(cfg, this.views.get(cfg.room)?.stock ?? null); }

  /** Reload every room's config and stock; recompute states. Concurrent calls share one run. */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => { this.refreshing = null; });
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const names = await this.redis.smembers(roomsSetKey(this.prefix));
    if (!names.length) return;
    const raws = await Promise.all(names.map((n) => this.redis.get(roomKeys(this.prefix, n).cfg)));
    const cfgs = raws.filter((r): r is string => !!r).map((r) => withNewDefaults(JSON.parse(r) as RoomConfig));
    const stocks = await Promise.all(cfgs.map((c) => this.redis.hgetall(saleStockKey(this.prefix, c.sale))));
    cfgs.forEach((c, i) => this.set(c, parseStockSignal(stocks[i]!)));
  }

  /** Re-read one sale's stock signal (on a stock-changed message) and update its rooms. */
  async refreshSale(sale: string): Promise<void> {
    const rooms = this.list().filter((v) => v.cfg.sale === sale);
    if (!rooms.length) return;
    const stock = parseStockSignal(await this.redis.hgetall(saleStockKey(this.prefix, sale)));
    for (const v of rooms) this.set(v.cfg, stock);
  }

  /**
   * Every `intervalMs` the states are recomputed from the clock (a room opens or closes on time;
   * listeners hear it), with no Redis call. Configs and stock signals arrive by pub/sub (a saved
   * config, a stock change: `refresh`, `refreshSale`); a full reload from Redis every `reloadMs`
   * is the safety net for a message lost while the subscriber reconnected. Idle rooms then cost
   * no Redis command per second (bench/idle-rooms.ts).
   */
  start(intervalMs = 1000, reloadMs = RELOAD_MS): void {
    let reloadedAt = performance.now();
    this.timer = setInterval(() => {
      if (performance.now() - reloadedAt < reloadMs) { this.list(); return; }
      reloadedAt = performance.now();
      this.refresh().catch(() => {});
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void { if (this.timer) clearInterval(this.timer); this.timer = null; }
}
