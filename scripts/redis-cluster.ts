/**
 * A real Redis Cluster on this machine, from the `redis-server` on the PATH: `masters` masters with
 * `replicas` replicas each, on ports picked at run time (each port and its bus port, port + 10000,
 * free), data under `dir`. Used by `npm run cluster` and by the cluster and fault tests.
 * `stop()` ends every node it started, by process id; `kill(port)` SIGKILLs one (fault tests).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { portIsFree } from '../shared/ports.js';
import { redisAnswers } from '../shared/redis.js';

export interface ClusterNode { port: number; pid: number }

export interface RedisCluster {
  /** Every node started, masters first (as created; a failover changes roles, see `roles()`). */
  nodes: ClusterNode[];
  /** `host:port` seeds for REDIS_CLUSTER_NODES. */
  seeds: string;
  /** The port of the master that serves `key`'s slot now. */
  masterOf(key: string): Promise<number>;
  /** SIGKILL the node on `port`. */
  kill(port: number): void;
  /** Resolves once every slot is served again (`cluster_state:ok` seen from every live node). */
  waitOk(timeoutMs?: number): Promise<void>;
  /** Ports of the live masters (from the cluster's own view). */
  masters(): Promise<number[]>;
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  dir: string;
  masters?: number;
  replicas?: number;
  /** First port to try (default a random one in 20000-29999); bus ports are port + 10000. */
  basePort?: number;
  binary?: string;
  log?: (line: string) => void;
}

/** `count` ports whose bus ports (port + 10000) are free too. */
async function pickPorts(count: number, start: number): Promise<number[]> {
  const out: number[] = [];
  for (let p = start; out.length < count && p < 30000; p++) {
    if ((await portIsFree(p)) && (await portIsFree(p + 10000))) out.push(p);
  }
  if (out.length < count) throw new Error(`could not find ${count} free Redis Cluster ports from ${start}`);
  return out;
}

async function nodeCommand(port: number, ...args: string[]): Promise<unknown> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500, commandTimeout: 1000 });
  r.on('error', () => {});
  try {
    await r.connect();
    return await r.call(args[0]!, ...args.slice(1));
  } finally {
    r.disconnect();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startRedisCluster(opts: RedisClusterOptions): Promise<RedisCluster> {
  const binary = opts.binary ?? 'redis-server';
  const masters = opts.masters ?? 3;
  const replicas = opts.replicas ?? 0;
  const log = opts.log ?? (() => {});
  if (spawnSync(binary, ['--version']).status !== 0) {
    throw new Error('There is no redis-server on the PATH (Debian/Ubuntu: `sudo apt-get install redis-server`).');
  }
  if (spawnSync('redis-cli', ['--version']).status !== 0) throw new Error('There is no redis-cli on the PATH (it comes with redis-server).');
  const ports = await pickPorts(masters * (1 + replicas), opts.basePort ?? 20000 + Math.floor(Math.random() * 9000));
  const children = new Map<number, ChildProcess>();
  const nodes: ClusterNode[] = [];
  const stop = async () => {
    await Promise.all([...children.values()].map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      const t = setTimeout(() => c.kill('SIGKILL'), 3000);
      c.once('exit', () => { clearTimeout(t); resolve(); });
      c.kill('SIGTERM');
    })));
  };
  try {
    for (const port of ports) {
      const dir = path.join(opts.dir, String(port));
      mkdirSync(dir, { recursive: true });
      const child = spawn(binary, [
        '--bind', '127.0.0.1', '--port', String(port), '--dir', dir,
        '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`,
        '--cluster-node-timeout', '2000', '--cluster-replica-validity-factor', '0',
        // A master down takes down its own slots only: the rooms on the other masters go on
        // serving (the default, yes, answers CLUSTERDOWN for every slot until the failover).
        // cluster-allow-reads-when-down stays no: it would only let a node that sees the whole
        // cluster down serve reads (stale positions) while every write 503s.
        '--cluster-require-full-coverage', 'no',
        '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '',
        '--logfile', path.join(dir, 'redis.log'),
      ], { stdio: 'ignore' });
      children.set(port, child);
      nodes.push({ port, pid: child.pid! });
    }
    for (const port of ports) {
      let up = false;
      for (let i = 0; i < 100 && !up; i++) { up = await redisAnswers(`redis://127.0.0.1:${port}`, 300); if (!up) await sleep(50); }
      if (!up) throw new Error(`redis-server on port ${port} did not answer within 5 s (log: ${path.join(opts.dir, String(port), 'redis.log')})`);
    }
    // A node restarted on its old data directory already knows its cluster: create it only once.
    const slotsAssigned = /cluster_slots_assigned:16384/.test(String(await nodeCommand(ports[0]!, 'CLUSTER', 'INFO')));
    if (!slotsAssigned) {
      const create = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { encoding: 'utf8' });
      if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}\n${create.stderr}`);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  const cluster: RedisCluster = {
    nodes,
    seeds: ports.map((p) => `127.0.0.1:${p}`).join(','),
    async masterOf(key) {
      const slot = Number(await nodeCommand(ports.find((p) => children.get(p)?.exitCode === null && children.get(p)?.signalCode === null)!, 'CLUSTER', 'KEYSLOT', key));
      for (const m of await cluster.masters()) {
        const slots = (await nodeCommand(m, 'CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
        for (const [from, to, [, port]] of slots) if (slot >= from && slot <= to) return Number(port);
      }
      throw new Error(`no master serves slot ${slot}`);
    },
    kill(port) {
      const c = children.get(port);
      if (!c) throw new Error(`no node on port ${port}`);
      c.kill('SIGKILL');
    },
    async masters() {
      for (const port of ports) {
        const c = children.get(port)!;
        if (c.exitCode !== null || c.signalCode !== null) continue;
        try {
          const lines = String(await nodeCommand(port, 'CLUSTER', 'NODES')).trim().split('\n');
          return lines
            .map((l) => l.split(' '))
            .filter((f) => /master/.test(f[2]!) && !/fail/.test(f[2]!) && f[8] !== undefined)
            .map((f) => Number(f[1]!.split('@')[0]!.split(':')[1]));
        } catch { /* try the next node */ }
      }
      return [];
    },
    async waitOk(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const live = ports.filter((p) => children.get(p)!.exitCode === null && children.get(p)!.signalCode === null);
        const states = await Promise.all(live.map((p) => nodeCommand(p, 'CLUSTER', 'INFO').then(String, () => '')));
        if (states.every((s) => /cluster_state:ok/.test(s))) {
          // And every slot has a live master.
          const ms = await cluster.masters();
          let covered = 0;
          for (const m of ms) {
            const slots = (await nodeCommand(m, 'CLUSTER', 'SLOTS').catch(() => [])) as [number, number, [string, number]][];
            for (const [from, to, [, port]] of slots) if (live.includes(Number(port))) covered += to - from + 1;
            break;
          }
          // And every live replica has finished its sync with its master (a replica promoted
          // before its first sync completed would come up empty, losing everything, not the last
          // moment's writes).
          const replicasSynced = replicas === 0 || (await Promise.all(live.map((p) => nodeCommand(p, 'INFO', 'replication').then(String, () => ''))))
            .every((info) => !/role:slave/.test(info) || (/master_link_status:up/.test(info) && /master_sync_in_progress:0/.test(info)));
          if (covered === 16384 && replicasSynced) return;
        }
        if (Date.now() > deadline) throw new Error(`Redis Cluster not ok within ${timeoutMs} ms`);
        await sleep(100);
      }
    },
    stop,
  };
  await cluster.waitOk().catch(async (e: unknown) => { await stop(); throw e; });
  log(`Redis Cluster: ${masters} masters, ${replicas} replica(s) each, on ${cluster.seeds} (pids ${nodes.map((n) => n.pid).join(', ')}, data in ${opts.dir})`);
  return cluster;
}
