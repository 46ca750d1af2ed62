/**
 * A private copy of the whole product for tests and benchmarks: its own Redis key prefix and
 * its own Postgres database, the gateway started first (checkout trusts its JWKS), then
 * checkout; `inProcess: false` runs each in its own child process (serve.ts) so they get their
 * own core. `close()` stops both, deletes the prefix's keys and drops the database.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../shared/config.js';
import { dropPrefix } from '../../shared/redis.js';

export interface Product {
  gateway: string;
  checkout: string;
  adminToken: string;
  prefix: string;
  database: string;
  config: Config;
  close(): Promise<void>;
}

export interface ProductOptions {
  /** Run gateway and checkout in this process (default) or one child process each. */
  inProcess?: boolean;
  /** Extra environment (LOG_LEVEL, ...). */
  env?: Record<string, string>;
  /** Data directory (recordings go under it). */
  dataDir?: string;
}

const PG_ADMIN = 'postgres://root@127.0.0.1:5432/postgres';

async function pgAdmin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export async function deletePrefix(redisUrl: string, prefix: string): Promise<void> {
  const r = new Redis(redisUrl, { lazyConnect: true });
  await r.connect();
  try {
    await dropPrefix(r, prefix);
  } finally {
    r.disconnect();
  }
}

const SERVE = fileURLToPath(new URL('./serve.ts', import.meta.url));

interface Started {
  url: string;
  close(): Promise<void>;
}

function startChild(kind: 'gateway' | 'checkout', env: Record<string, string>): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = fork(SERVE, [kind], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${kind} did not start within 60 s`));
    }, 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${kind} exited with code ${code} while starting`));
    });
    child.on('message', (m: any) => {
      if (m.type === 'ready') {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve({
          url: m.url,
          close: () => new Promise<void>((res) => {
            if (child.exitCode !== null) return res();
            const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
            child.once('exit', () => {
              clearTimeout(kill);
              res();
            });
            child.send({ type: 'close' });
          }),
        });
      } else if (m.type === 'error') {
        clearTimeout(timer);
        reject(new Error(`${kind} failed to start: ${m.message}`));
      }
    });
    child.send({ type: 'start', env });
  });
}

async function startHere(kind: 'gateway' | 'checkout', env: Record<string, string>): Promise<Started> {
  const config = loadConfig(env);
  if (kind === 'gateway') {
    const { startGateway } = await import('../../waiting-room/server.js');
    const g = await startGateway(config, { port: 0 });
    return { url: g.url, close: () => g.close() };
  }
  const { startCheckout } = await import('../../checkout/main.js');
  const c = await startCheckout(config, { port: 0 });
  return { url: c.url, close: () => c.close() };
}

export async function startProduct(opts: ProductOptions = {}): Promise<Product> {
  const id = randomUUID().slice(0, 8);
  const prefix = `t-${id}`;
  const database = `load_${id}`;
  const env: Record<string, string> = {
    REDIS_PREFIX: prefix,
    DATABASE_URL: `postgres://root@127.0.0.1:5432/${database}`,
    LOG_LEVEL: 'warn',
    ...(opts.dataDir ? { DATA_DIR: opts.dataDir } : {}),
    ...opts.env,
  };
  const start = opts.inProcess === false ? startChild : startHere;
  await pgAdmin(`CREATE DATABASE ${database}`);
  const undo: (() => Promise<void>)[] = [
    () => pgAdmin(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`),
    () => deletePrefix(loadConfig(env).redisUrl, prefix),
  ];
  const close = async () => {
    for (const f of undo.splice(0).reverse()) await f().catch(() => {});
  };
  try {
    const gw = await start('gateway', env);
    undo.push(() => gw.close());
    env.GATEWAY_URL = gw.url;
    env.JWKS_URL = `${gw.url}/.well-known/jwks.json`;
    const co = await start('checkout', env);
    undo.push(() => co.close());
    env.CHECKOUT_URL = co.url;
    const config = loadConfig(env);
    return { gateway: gw.url, checkout: co.url, adminToken: config.adminToken, prefix, database, config, close };
  } catch (e) {
    await close();
    throw e;
  }
}
