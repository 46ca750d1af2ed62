/**
 * `npm run checkout`: one production checkout from the environment: no demo sale, no Postgres or
 * Redis started (the database named in DATABASE_URL is created when missing, and migrated).
 * Prints `listening on HOST:PORT`; CHECKOUT_PORT=0 picks a free port.
 *
 * Several checkouts on one port: Node 20's `net` has no `reusePort` (it arrived in Node 22.12), so
 * CHECKOUT_WORKERS=N (default 1) makes this process a `node:cluster` primary that forks N workers
 * sharing one listening socket (each accepts for itself, SCHED_NONE), and starts a new worker when
 * one dies. Separate `npm run checkout` processes need separate ports
 * (behind a balancer, as in compose.yaml). SIGTERM/SIGINT: finish in-flight requests, exit.
 */
import cluster from 'node:cluster';
import closeWithGrace from 'close-with-grace';
import { ConfigError, loadConfig } from '../shared/config.js';
import { startCheckout } from '../checkout/main.js';
import { createDatabaseIfMissing } from '../checkout/postgres.js';

const log = (msg: string) => process.stderr.write(`checkout ${process.pid}: ${msg}\n`);

async function worker(): Promise<void> {
  const config = loadConfig(process.env);
  const u = new URL(config.databaseUrl);
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres';
  u.pathname = '/postgres';
  await createDatabaseIfMissing(u.toString(), database);
  const host = config.checkoutHost ?? '0.0.0.0';
  const app = await startCheckout(config, { host });
  // Workers of one primary all get the same port, also with CHECKOUT_PORT=0.
  console.log(`listening on ${host}:${app.port} (checkout, pid ${process.pid})`);
  closeWithGrace({ delay: 10_000 }, async ({ err, signal }) => {
    if (err) log(`stopping after an error: ${err.stack ?? err.message}`);
    else log(`stopping (${signal ?? 'exit'})`);
    await app.close();
  });
}

function primary(workers: number): void {
  let stopping = false;
  // SCHED_NONE: workers accept from the one shared listening socket themselves. With the default
  // round-robin the primary hands each connection to a worker over IPC, and a connection handed to a
  // worker that was just SIGKILLed is lost (the client hangs); here a dead worker simply stops
  // accepting and the others take every new connection.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const fork = () => cluster.fork();
  for (let i = 0; i < workers; i++) fork();
  cluster.on('exit', (w, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    log(`worker ${w.process.pid} ended (${signal ?? `code ${code}`}); starting another`);
    setTimeout(fork, 500);
  });
  const stop = () => {
    if (stopping) return;
    stopping = true;
    const live = Object.values(cluster.workers ?? {});
    if (live.length === 0) process.exit(0);
    for (const w of live) w?.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 12_000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

try {
  const config = loadConfig(process.env);
  if (cluster.isPrimary && config.checkoutWorkers > 1) primary(config.checkoutWorkers);
  else await worker();
} catch (err) {
  console.error(`checkout did not start: ${err instanceof ConfigError ? err.message : err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exit(1);
}
