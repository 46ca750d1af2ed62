/**
 * A redis-server of the test's own (test/gateway/redis-server.ts) with clients disconnected at
 * teardown, and a MONITOR trace of the script calls made on it.
 */
import { Redis } from 'ioredis';
import { ownRedis } from '../gateway/redis-server.js';
import type { Teardown } from '../gateway/helpers.js';

export interface PrivateRedis {
  url: string;
  /** A client of this server, disconnected at teardown. */
  connect(): Redis;
  /** Disconnect `c` at teardown too (a connection ioredis made, e.g. MONITOR's). */
  own<C extends { disconnect(): void }>(c: C): C;
}

/** Start a redis-server for this test. */
export async function privateRedis(t: Teardown): Promise<PrivateRedis> {
  const server = await ownRedis(t);
  const clients: { disconnect(): void }[] = [];
  t.teardown(() => { for (const c of clients) c.disconnect(); });
  const own = <C extends { disconnect(): void }>(c: C): C => { clients.push(c); return c; };
  return { url: server.url, connect: () => own(new Redis(server.url)), own };
}

/** One command as MONITOR saw it: who sent it (`lua` for a script's own commands) and its words. */
export interface Seen { source: string; args: string[] }

/**
 * One script call: its SHA-1 (EVALSHA) or the start of its source (EVAL: the source as MONITOR
 * prints it is escaped, so it is not hashed), the KEYS it declared, the commands it ran and the
 * keys those touched.
 */
export interface ScriptRun { sha: string | null; sourceHead: string | null; declared: string[]; commands: string[][]; touched: string[] }

export interface Trace {
  /** Every command run while `fn` ran (between two markers). */
  during(fn: () => Promise<unknown>): Promise<Seen[]>;
  /** The script calls made while `fn` ran, with the keys their commands touched (COMMAND GETKEYS). */
  scriptRuns(fn: () => Promise<unknown>): Promise<ScriptRun[]>;
}

/** MONITOR a private Redis for the rest of the test. */
export async function trace(server: PrivateRedis): Promise<Trace> {
  const control = server.connect();
  const monitor = server.own(await server.connect().monitor());
  const seen: Seen[] = [];
  const waiting = new Map<string, () => void>();
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    seen.push({ source, args });
    if (args[0]?.toLowerCase() === 'echo') waiting.get(args[1] ?? '')?.();
  });
  let n = 0;
  const mark = async (label: string) => {
    const seenIt = new Promise<void>((resolve) => waiting.set(label, resolve));
    await control.echo(label);
    await seenIt;
    waiting.delete(label);
    return seen.findIndex((s) => s.args[0]?.toLowerCase() === 'echo' && s.args[1] === label);
  };
  const during = async (fn: () => Promise<unknown>) => {
    const id = `trace-${n++}`;
    const from = await mark(`${id}-begin`);
    await fn();
    const to = await mark(`${id}-end`);
    return seen.slice(from + 1, to);
  };
  const keysOf = async (args: string[]): Promise<string[]> => {
    try {
      return (await control.call('COMMAND', 'GETKEYS', ...args)) as string[];
    } catch {
      return []; // a command without key arguments
    }
  };
  return {
    during,
    async scriptRuns(fn) {
      const runs: ScriptRun[] = [];
      for (const s of await during(fn)) {
        const cmd = s.args[0]!.toLowerCase();
        if (s.source !== 'lua' && (cmd === 'eval' || cmd === 'evalsha')) {
          const numKeys = Number(s.args[2]);
          const [sha, sourceHead] = cmd === 'evalsha' ? [s.args[1]!, null] : [null, s.args[1]!.slice(0, 200)];
          runs.push({ sha, sourceHead, declared: s.args.slice(3, 3 + numKeys), commands: [], touched: [] });
        } else if (s.source === 'lua') {
          const run = runs[runs.length - 1];
          if (!run) throw new Error(`a script command before any script call: ${s.args.join(' ')}`);
          run.commands.push(s.args);
        }
      }
      for (const run of runs) run.touched = [...new Set((await Promise.all(run.commands.map(keysOf))).flat())];
      return runs;
    },
  };
}

/** The part of a key Redis Cluster hashes: the first non-empty `{...}`, else the whole key. */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) return key.slice(open + 1, close);
  }
  return key;
}
