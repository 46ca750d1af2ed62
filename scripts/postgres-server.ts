/**
 * A PostgreSQL server of the caller's own, from the system's binaries (/usr/lib/postgresql/<v>/bin):
 * initdb in a fresh directory, then start / SIGKILL / start again as often as needed, on a free
 * port. For the fault tests and `npm run chaos`, which kill Postgres: never the shared one.
 * `stop()` SIGKILLs it and deletes its directory.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { answers } from '../checkout/postgres.js';
import { freePort } from '../shared/ports.js';

/** The newest PostgreSQL bin directory installed, or null. */
export const POSTGRES_BIN = (() => {
  const root = '/usr/lib/postgresql';
  const v = existsSync(root) ? readdirSync(root).sort().reverse().find((d) => existsSync(path.join(root, d, 'bin', 'postgres'))) : undefined;
  return v ? path.join(root, v, 'bin') : null;
})();

export interface PostgresServer {
  /** postgres://…/checkout on this server (the database is created by checkout when missing). */
  url: string;
  adminUrl: string;
  pid(): number | null;
  start(): Promise<void>;
  /** SIGKILL the postmaster and every backend (its process group): a crash, not a shutdown. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

async function waitFor(check: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startPostgresServer(): Promise<PostgresServer> {
  if (!POSTGRES_BIN) throw new Error('no PostgreSQL binaries in /usr/lib/postgresql (Debian/Ubuntu: `sudo apt-get install postgresql`)');
  const bin = POSTGRES_BIN;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wr-pg-'));
  const data = path.join(dir, 'data');
  // Postgres refuses to run as root: run it as the `postgres` user when we are root.
  const id = (f: string) => Number(spawnSync('id', [f, 'postgres']).stdout.toString().trim());
  const asUser: { uid?: number; gid?: number } = process.getuid?.() === 0 ? { uid: id('-u'), gid: id('-g') } : {};
  if (asUser.uid !== undefined) chownSync(dir, asUser.uid, asUser.gid!);
  const init = spawnSync(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], { ...asUser, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let proc: ChildProcess | null = null;
  const running = () => proc !== null && proc.exitCode === null && proc.signalCode === null;
  const server: PostgresServer = {
    url: `postgres://postgres@127.0.0.1:${port}/checkout`,
    adminUrl,
    pid: () => (running() ? proc!.pid! : null),
    async start() {
      proc = spawn(path.join(bin, 'postgres'), ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'], {
        ...asUser, detached: true, stdio: 'ignore',
      });
      await waitFor(() => answers(adminUrl), 20_000, 'our postgres to answer');
    },
    async kill() {
      const p = proc;
      if (!p || !running()) return;
      const gone = new Promise((r) => p.once('exit', r));
      try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone already */ }
      await gone;
      // Backends of the group exit with it; wait until no process holds the data directory.
      await waitFor(() => spawnSync('pgrep', ['-g', String(p.pid)]).status !== 0, 10_000, 'the backends to exit');
    },
    async stop() {
      await server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}
