/**
 * `npm run cluster` (scripts/cluster.ts) as an operator runs it: a Redis Cluster of three masters
 * with a replica each, gateways sharing one port, checkout workers sharing one port, Postgres, the
 * demo room; it prints the URLs and every pid, the product answers through them, and Ctrl-C
 * (SIGINT) stops every process it started. Its own data folder, its own database on the shared
 * Postgres (dropped after), its own cluster ports: nothing shared is stopped.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { PROJECT_ROOT } from '../../shared/config.js';
import { running } from '../start/harness.js';

t.test('npm run cluster: the rehearsal starts, serves, and Ctrl-C stops everything it started', async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'wr-rehearsal-'));
  const database = `wr_rehearsal_${randomUUID().slice(0, 8)}`;
  t.teardown(async () => {
    rmSync(dataDir, { recursive: true, force: true });
    const c = new pg.Client({ connectionString: 'postgres://root@127.0.0.1:5432/postgres' });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    await c.end();
  });
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'scripts/cluster.ts')], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, DATA_DIR: dataDir, GATEWAY_PORT: '0', CHECKOUT_PORT: '0', GATEWAYS: '2', CHECKOUTS: '2', DATABASE_URL: `postgres://root@127.0.0.1:5432/${database}`, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const ended = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URLs within 120 s:\n${out}`)), 120_000);
    const check = () => { if (/Ctrl-C stops everything/.test(out)) { clearTimeout(timer); resolve(); } };
    child.stdout.on('data', check);
    child.once('exit', () => { clearTimeout(timer); reject(new Error(`ended before printing its URLs:\n${out}`)); });
  });
  const queue = /queue page\s+(http:\/\/\S+)\/rooms\/demo/.exec(out)?.[1];
  const sale = /checkout\s+(http:\/\/\S+)\/sales\/(\S+)/.exec(out);
  t.ok(queue && sale, 'prints the queue page and the checkout URLs');
  const pids = [...out.matchAll(/pids? ([\d ,]+)/g)].flatMap((m) => m[1]!.split(/[ ,]+/).filter(Boolean).map(Number));
  t.ok(pids.length >= 6 + 2 + 1, `prints every pid (6 Redis nodes, 2 gateways, the checkout primary)`);
  const workers = [...out.matchAll(/\(checkout, pid (\d+)\)/g)].map((m) => Number(m[1]));
  t.equal(workers.length, 2, 'two checkout workers listening on one port');
  pids.push(...workers);
  t.ok(pids.every(running), 'all running');

  const room = await fetch(`${queue}/api/rooms/demo`);
  t.equal(room.status, 200, 'the demo room answers through the shared gateway port');
  t.match(await room.json(), { name: 'Winter Sneaker Drop' });
  const joined = await fetch(`${queue}/api/rooms/demo/join`, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'Mozilla/5.0 rehearsal' }, body: '{}' });
  t.equal(joined.status, 200, 'a join is placed on the cluster');
  const s = await fetch(`${sale![1]}/api/sales/${sale![2]}`);
  t.equal(s.status, 200, 'checkout serves the demo sale');
  t.equal(((await s.json()) as { total: number }).total, 100);

  // A shopper goes all the way through: admitted in a room that is open now, it reserves at
  // checkout with the gateway's token (checkout trusts the JWKS of the gateways' port, also when
  // GATEWAY_PORT=0 picked it).
  const adminAuth = { authorization: 'Bearer dev-admin-token', 'content-type': 'application/json' };
  const saleId = sale![2]!;
  const put = await fetch(`${queue}/admin/rooms/now`, { method: 'PUT', headers: adminAuth, body: JSON.stringify({ sale: saleId, opensAt: new Date(Date.now() - 1000).toISOString(), prequeueSeconds: 0, admitRatePerMin: 6000, captcha: { mode: 'off' } }) });
  t.equal(put.status, 201, 'an open room for the demo sale');
  await fetch(`${sale![1]}/admin/sales/${saleId}`, { method: 'PUT', headers: adminAuth, body: JSON.stringify({ name: 'Now', priceCents: 4900, currency: 'EUR', total: 100, startsAt: new Date(Date.now() - 60_000).toISOString(), endsAt: new Date(Date.now() + 3_600_000).toISOString() }) });
  const shopper = async (): Promise<{ status: number; body: { error?: string } }> => {
    await new Promise((r) => setTimeout(r, 2500)); // every gateway has heard of the room
    const j = (await (await fetch(`${queue}/api/rooms/now/join`, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'Mozilla/5.0 rehearsal' }, body: '{}' })).json()) as { visitorId: string };
    for (let i = 0; i < 100; i++) {
      const c = await fetch(`${queue}/api/rooms/now/claim`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-visitor-id': j.visitorId }, body: '{}' });
      if (c.status === 200) {
        const { token } = (await c.json()) as { token: string };
        const u = (await (await fetch(`${sale![1]}/api/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `r-${randomUUID().slice(0, 8)}@example.com`, password: 'password123' }) })).json()) as { sessionToken: string };
        const res = await fetch(`${sale![1]}/api/sales/${saleId}/reservations`, { method: 'POST', headers: { authorization: `Bearer ${u.sessionToken}`, 'x-admission-token': token } });
        return { status: res.status, body: (await res.json()) as { error?: string } };
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error('not admitted within 20 s');
  };
  t.match(await shopper(), { status: 201 }, 'an admitted shopper reserves at checkout');

  child.kill('SIGINT');
  t.equal(await ended, 0, 'Ctrl-C: exits 0');
  const deadline = Date.now() + 20_000;
  while (pids.some(running) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  t.same(pids.filter(running), [], 'every process it started is gone');
});
