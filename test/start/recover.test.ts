/**
 * `npm start` after a crash comes back by itself. The run is killed with SIGKILL (only its own
 * process: the embedded PostgreSQL and the redis-server it started are orphaned, as when a user
 * `kill -9`s it), and the next `npm start` on the same data folder must bring up the whole product
 * again: the demo room's URL printed, both services' /healthz 200, a join that works, the demo
 * sale served from Postgres. Real processes, real kills, this test's own ports and data folder.
 */
import t from 'tap';
import { answers } from '../../checkout/postgres.js';
import { redisAnswers } from '../../shared/redis.js';
import { eventually, executable, place, postmasterPid, processesMentioning, productAnswers, running, start, type Place, type Run } from './harness.js';

const PG_ADMIN = (port: number) => `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;

async function killRun(run: Run) {
  process.kill(run.pid, 'SIGKILL'); // the run's own process only, not its group
  await run.ended;
}

t.test('npm start killed with SIGKILL, then started again', async (t) => {
  const p: Place = await place(t);
  const first = start(p);
  await productAnswers(t, first);
  const pm1 = postmasterPid(p.dataDir);
  t.ok(pm1 && running(pm1), 'the first run started an embedded PostgreSQL');

  t.test('orphans left running (their watchdogs killed too): the next start stops them and comes back', async (t) => {
    // The worst case: nothing stops the orphans. Every helper process naming the data folder (its
    // watchdogs, not the servers) is killed first, then the run.
    for (const pid of processesMentioning(p.dataDir)) if (!executable(pid).startsWith('postgres')) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    await killRun(first);
    t.ok(running(pm1!), 'the embedded PostgreSQL outlived the killed run');
    t.ok(await answers(PG_ADMIN(p.pgPort)), 'and still answers');
    t.ok(await redisAnswers(p.redisUrl), 'so does the redis-server it started');

    const second = start(p);
    await productAnswers(t, second);
    t.notOk(running(pm1!), 'the orphaned postmaster was stopped');
    t.ok(postmasterPid(p.dataDir) !== pm1, 'and a new one runs');

    t.test('the run alone killed: what it started stops by itself, and the next start comes back', async (t) => {
      const pm2 = postmasterPid(p.dataDir)!;
      await killRun(second);
      t.ok(await eventually(() => !running(pm2), 20_000), 'the orphaned embedded PostgreSQL stops by itself');
      t.ok(await eventually(async () => !(await redisAnswers(p.redisUrl, 200)), 20_000), 'so does the orphaned redis-server');

      const third = start(p);
      await productAnswers(t, third);
      const pm3 = postmasterPid(p.dataDir)!;
      process.kill(third.pid, 'SIGINT'); // Ctrl-C
      await third.ended;
      t.notOk(running(pm3), 'Ctrl-C stopped the embedded PostgreSQL');
      t.notOk(await redisAnswers(p.redisUrl, 200), 'and the redis-server');
    });
  });
});
