/**
 * `npm run gateway` / `npm run checkout` as real processes: any number at once, port 0 picks a
 * free port, gateways share one port and the kernel spreads connections over them (SO_REUSEPORT),
 * checkout workers share one port through node:cluster. Which process holds a connection is read
 * from the kernel (`ss -tnp`), not from the services.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import t from 'tap';
import { spawnService, type Service } from '../../scripts/procs.js';
import { freePort } from '../../shared/ports.js';
import { dropKeys } from '../gateway/helpers.js';
import { testDatabase } from '../checkout/helpers.js';
import { randomUUID } from 'node:crypto';

const CONNECTIONS = 240;

function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'warn', ADMIN_TOKEN: 'test-admin-token', ...extra };
}

/** Open `n` keep-alive connections, each answered once (so each is accepted by some process). */
async function openConnections(port: number, n: number): Promise<net.Socket[]> {
  const socks: net.Socket[] = [];
  for (let i = 0; i < n; i += 40) {
    socks.push(...(await Promise.all(Array.from({ length: Math.min(40, n - i) }, () => new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('error', reject);
      s.once('connect', () => s.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n'));
      s.once('data', () => resolve(s));
    })))));
  }
  return socks;
}

/** How many established connections on local `port` each pid holds, as the kernel says. */
function connectionsByPid(port: number): Map<number, number> {
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  const by = new Map<number, number>();
  for (const m of out.matchAll(/pid=(\d+)/g)) by.set(Number(m[1]), (by.get(Number(m[1])) ?? 0) + 1);
  return by;
}

t.test('three gateway processes on one port: the kernel spreads connections over all three', async (t) => {
  const prefix = `t-${randomUUID().slice(0, 8)}`;
  const env = baseEnv({ REDIS_PREFIX: prefix, GATEWAY_HOST: '127.0.0.1' });
  const started: Service[] = [];
  t.teardown(async () => {
    await Promise.all(started.map((s) => s.stop()));
    await dropKeys({ redisUrl: 'redis://127.0.0.1:6379', redisClusterNodes: [], redisPrefix: prefix });
  });
  // uWS sets SO_REUSEPORT only on a named port (a socket bound to port 0 is exclusive), so the
  // shared port is picked here and given to all three.
  const port = await freePort();
  const spawned = await Promise.allSettled([1, 2, 3].map((i) => spawnService(`gateway-${i}`, 'scripts/gateway.ts', { env: { ...env, GATEWAY_PORT: String(port) } })));
  for (const r of spawned) if (r.status === 'fulfilled') started.push(r.value);
  for (const r of spawned) if (r.status === 'rejected') throw r.reason;
  for (const s of started) t.equal(s.port, port, `${s.name} listens on port ${port}`);
  const first = started[0]!;

  const socks = await openConnections(first.port, CONNECTIONS);
  t.teardown(() => socks.forEach((s) => s.destroy()));
  const by = connectionsByPid(first.port);
  const counts = started.map((s) => by.get(s.pid) ?? 0);
  t.comment(`${CONNECTIONS} connections over 3 gateway processes: ${counts.join(' / ')}`);
  t.equal(counts.reduce((a, b) => a + b, 0), CONNECTIONS, 'every connection is held by one of the three');
  for (const [i, c] of counts.entries()) t.ok(c > 0, `gateway-${i + 1} (pid ${started[i]!.pid}) served ${c}`);

  // One dies: the others keep the port.
  await started[0]!.kill();
  const again = await openConnections(first.port, 40);
  t.teardown(() => again.forEach((s) => s.destroy()));
  t.equal(again.length, 40, 'after one is SIGKILLed, new connections are all answered by the other two');
});

t.test('GATEWAY_PORT=0: a free port, printed', async (t) => {
  const prefix = `t-${randomUUID().slice(0, 8)}`;
  const gw = await spawnService('gateway', 'scripts/gateway.ts', { env: baseEnv({ REDIS_PREFIX: prefix, GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: '0' }) });
  t.teardown(async () => { await gw.stop(); await dropKeys({ redisUrl: 'redis://127.0.0.1:6379', redisClusterNodes: [], redisPrefix: prefix }); });
  t.ok(gw.port > 0, `listening on 127.0.0.1:${gw.port}`);
  t.equal((await fetch(`http://127.0.0.1:${gw.port}/healthz`, { signal: AbortSignal.timeout(5000) })).status, 200, 'and it answers there');
});

t.test('checkout with CHECKOUT_WORKERS=2: two workers on one port, a killed worker is replaced', async (t) => {
  const prefix = `t-${randomUUID().slice(0, 8)}`;
  const databaseUrl = await testDatabase(t, 'procs');
  const env = baseEnv({ REDIS_PREFIX: prefix, CHECKOUT_HOST: '127.0.0.1', CHECKOUT_PORT: '0', CHECKOUT_WORKERS: '2', DATABASE_URL: databaseUrl });
  const lines: string[] = [];
  const svc = await spawnService('checkout', 'scripts/checkout.ts', { env, onLine: (l) => lines.push(l) });
  t.teardown(async () => {
    await svc.stop();
    await dropKeys({ redisUrl: 'redis://127.0.0.1:6379', redisClusterNodes: [], redisPrefix: prefix });
  });
  // Both workers print their line (the same port: node:cluster shares the primary's handle).
  const workers = async () => {
    for (let i = 0; i < 600; i++) {
      const pids = [...svc.output().matchAll(/listening on \S+:(\d+) \(checkout, pid (\d+)\)/g)];
      if (pids.length >= 2) return pids;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`second worker never listened:\n${svc.output()}`);
  };
  const listening = await workers();
  t.equal(new Set(listening.map((m) => m[1])).size, 1, `both workers on port ${svc.port}`);
  const socks = await openConnections(svc.port, 60);
  t.teardown(() => socks.forEach((s) => s.destroy()));
  const by = connectionsByPid(svc.port);
  const workerPids = listening.map((m) => Number(m[2]));
  const counts = workerPids.map((p) => by.get(p) ?? 0);
  t.comment(`60 connections over 2 checkout workers: ${counts.join(' / ')}`);
  for (const c of counts) t.ok(c > 0, 'each worker served some');

  process.kill(workerPids[0]!, 'SIGKILL');
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`http://127.0.0.1:${svc.port}/healthz`, { signal: AbortSignal.timeout(5000) });
    t.equal(res.status, 200, `request ${i + 1} after the kill is answered (by the other worker)`);
  }
  for (let i = 0; i < 600 && [...svc.output().matchAll(/\(checkout, pid \d+\)/g)].length < 3; i++) await new Promise((r) => setTimeout(r, 100));
  t.match(svc.output(), /worker \d+ ended \(SIGKILL\); starting another/, 'the primary says so and starts another');
  t.equal([...svc.output().matchAll(/\(checkout, pid \d+\)/g)].length, 3, 'and the new worker listens');
});
