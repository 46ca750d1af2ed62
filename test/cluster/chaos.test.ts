/**
 * `npm run chaos` small (in `npm test`; it starts a whole rehearsal, ~1 minute): a few hundred
 * visitors and a small stock on the rehearsal while a gateway, the room's Redis master, Postgres
 * and a checkout worker die in turn. It exits 0 having printed what it did and that every check
 * held, and every process it started is gone afterwards.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from '../../shared/config.js';
import { running } from '../start/harness.js';

t.test('npm run chaos, small: the drop survives a gateway, a Redis master, Postgres and a checkout dying in turn', { timeout: 170_000 }, async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'scripts/chaos.ts')], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, VISITORS: '200', STOCK: '12', JOIN_MS: '12000', ADMIT_RATE_PER_MIN: '48', CHAOS_DEADLINE_MS: '120000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGINT'); });
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.comment(out.split('\n').filter((l) => /what it|^ {2}|PASSED|FAILED/.test(l)).join('\n'));
  t.equal(code, 0, 'exits 0');
  for (const fault of [/SIGKILL gateway-\d/, /SIGKILL the Redis master of the room/, /Redis Cluster ok again/, /SIGKILL Postgres/, /Postgres started again/, /SIGKILL checkout worker/]) {
    t.match(out, fault, `did: ${fault.source}`);
  }
  for (const check of ['the audit is ok', 'units sold', 'every ticket unique', 'every visitor answered', 'every shopper answered', 'no 5xx but 503 unavailable']) {
    t.match(out, new RegExp(`\\n {2}ok: ${check}`), `saw: ${check}`);
  }
  t.notMatch(out, /NOT OK/, 'no check failed');
  const pids = [...out.matchAll(/\bpids? ([\d ,]+)/g), ...out.matchAll(/workers ([\d ]+) on/g), ...out.matchAll(/primary (\d+)/g)]
    .flatMap((m) => m[1]!.split(/[ ,]+/).filter(Boolean).map(Number));
  t.ok(pids.length >= 6 + 3 + 3, `it printed the pids it started (${pids.length})`);
  const deadline = Date.now() + 20_000;
  while (pids.some(running) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  t.same(pids.filter(running), [], 'every process it started is gone');
});
