/**
 * Many idle WebSocket visitors spread over child processes (bench/lib/ws-worker.ts), each
 * holding at most `perProcess` sockets, each socket from its own 127.0.0.0/8 source address.
 */
import { Child } from './child.js';
import type { FleetTarget, MessageMatch } from './ws-worker.js';

export type { FleetTarget, MessageMatch };

export class WsFleet {
  private workers: Child[] = [];

  constructor(readonly total: number, readonly perProcess = 5000) {
    const n = Math.ceil(total / perProcess);
    for (let k = 0; k < n; k++) this.workers.push(new Child(new URL('./ws-worker.ts', import.meta.url)));
  }

  /** Join `total` new visitors over HTTP (no sockets yet); answers how many and how long. */
  async join(target: FleetTarget, addressBase = 2_000_000): Promise<{ joined: number; ms: number }> {
    const n = this.workers.length;
    const res = await Promise.all(this.workers.map((w, k) => {
      const count = Math.min(this.perProcess, this.total - k * Math.ceil(this.total / n), Math.ceil(this.total / n));
      return w.call<{ joined: number; ms: number }>({ type: 'join', target, count, addressOffset: addressBase + k * 100_000 }, 300_000);
    }));
    return { joined: res.reduce((s, r) => s + r.joined, 0), ms: Math.max(...res.map((r) => r.ms)) };
  }

  /** Open one idle WebSocket per joined visitor. */
  async open(): Promise<{ opened: number; failed: number; firstError?: string; ms: number }> {
    const res = await Promise.all(this.workers.map((w) =>
      w.call<{ opened: number; failed: number; firstError?: string; ms: number }>({ type: 'open' }, 300_000)));
    return {
      opened: res.reduce((s, r) => s + r.opened, 0),
      failed: res.reduce((s, r) => s + r.failed, 0),
      firstError: res.find((r) => r.firstError)?.firstError,
      ms: Math.max(...res.map((r) => r.ms)),
    };
  }

  /** From now on each socket notes when the first message matching any of `match` arrived. */
  async watch(match: MessageMatch[]): Promise<void> {
    await Promise.all(this.workers.map((w) => w.call({ type: 'watch', match })));
  }

  /** Arrival times (wall-clock ms) of the watched message on every socket; 0 where none came, -1 where admitted before. */
  async collect(): Promise<{ arrivals: number[]; open: number; received: number }> {
    const res = await Promise.all(this.workers.map((w) => w.call<{ arrivals: number[]; open: number; received: number }>({ type: 'collect' })));
    return {
      arrivals: res.flatMap((r) => r.arrivals),
      open: res.reduce((s, r) => s + r.open, 0),
      received: res.reduce((s, r) => s + r.received, 0),
    };
  }

  /** Close every socket; the fleet can join and open again (against another server). */
  async disconnect(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.call({ type: 'close' }, 10_000).catch(() => undefined)));
  }

  async close(): Promise<void> {
    await this.disconnect();
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}
