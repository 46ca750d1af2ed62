/**
 * compose.yaml without a Docker engine (README "Running it with Docker Compose"): the file parsed
 * as Compose reads it (YAML merge keys, `${VAR:-default}` / `${VAR:?message}` / `$$`), then
 * - every variable it gives the app is one shared/config.ts reads, and loadConfig takes the whole
 *   environment in production (no secret missing, six cluster seeds, Postgres as the postgres
 *   service is set up);
 * - every app command is an npm script of package.json whose file exists;
 * - ports agree: each service listens where its healthcheck, nginx's upstreams, JWKS_URL and
 *   REDIS_CLUSTER_NODES say; nginx proxies to exactly the gateway and checkout services;
 * - the Redis nodes' command and redis-init's script, run for real: six redis-server from the
 *   node command as written (only the port replaced by one of this test's own, each node on its own
 *   127.0.0.x), then redis-init's script as written, with `getent` and redis-cli's `-h redis-N`
 *   resolving to those addresses: three masters with a replica each, every slot served,
 *   cluster-require-full-coverage no; run again, it leaves the cluster as it is.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { loadConfig, PROJECT_ROOT } from '../../shared/config.js';
import { redisAnswers } from '../../shared/redis.js';
import { portIsFree } from '../../shared/ports.js';

type Service = {
  image?: string; build?: string; command?: string[]; environment?: Record<string, string>; hostname?: string;
  depends_on?: Record<string, { condition: string }> | string[]; healthcheck?: { test: string[] }; ports?: string[];
};

const SECRETS = {
  ADMIN_TOKEN: 'a'.repeat(32), VISITOR_SECRET: 'v'.repeat(32), SESSION_SECRET: 's'.repeat(32), HCAPTCHA_SITEKEY: 'site',
  HCAPTCHA_SECRET: 'h'.repeat(32), PAYMENT_WEBHOOK_SECRET: 'p'.repeat(32),
};

/** Compose's interpolation: `$$` is a literal `$`; `${X:-d}` X or d; `${X:?m}` X or an error; `${X}`. */
function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\{([A-Z_][A-Z0-9_]*)(?::([-?])([^}]*))?\}/g, (all, name?: string, op?: string, arg?: string) => {
    if (all === '$$') return '$';
    const v = env[name!];
    if (v) return v;
    if (op === '-') return arg!;
    if (op === '?') throw new Error(`compose.yaml needs ${name}: ${arg}`);
    return '';
  });
}

function compose(env: Record<string, string>): { services: Record<string, Service>; volumes: Record<string, unknown> } {
  return parse(interpolate(readFileSync(path.join(PROJECT_ROOT, 'compose.yaml'), 'utf8'), env), { merge: true });
}

/** Every environment variable shared/config.ts reads (env.NAME, env[...'NAME'], secret('NAME'), port(env, 'NAME', ...)). */
function configVariables(): Set<string> {
  const src = readFileSync(path.join(PROJECT_ROOT, 'shared/config.ts'), 'utf8');
  const names = new Set<string>();
  for (const m of src.matchAll(/\benv\.([A-Z][A-Z0-9_]+)|\benv, '([A-Z][A-Z0-9_]+)'|secret\('([A-Z][A-Z0-9_]+)'\)/g)) names.add(m[1] ?? m[2] ?? m[3]!);
  return names;
}

const { services, volumes } = compose(SECRETS);
const apps = Object.entries(services).filter(([, s]) => s.image === 'waiting-room:latest');
const byCommand = (script: string) => apps.filter(([, s]) => s.command?.join(' ') === `npm run ${script}`).map(([n]) => n);
const redisNodes = Object.keys(services).filter((n) => /^redis-\d+$/.test(n)).sort();
const nginx = readFileSync(path.join(PROJECT_ROOT, 'deploy/nginx.conf'), 'utf8');
const upstream = (name: string) => [...(new RegExp(`upstream ${name} \\{([^}]*)\\}`).exec(nginx)?.[1] ?? '').matchAll(/server (\S+):(\d+);/g)].map((m) => ({ host: m[1]!, port: Number(m[2]) }));
const healthPort = (s: Service) => Number(/127\.0\.0\.1:(\d+)\/healthz/.exec(s.healthcheck?.test.join(' ') ?? '')?.[1]);

t.test('the shape: a Redis Cluster of 3 masters + 3 replicas with a one-shot init, Postgres, several gateways, two checkouts, a balancer', async (t) => {
  t.equal(redisNodes.length, 6, 'six Redis nodes');
  t.match(services['redis-init']!.command!.join(' '), /redis-cli --cluster create \$nodes --cluster-replicas 1 --cluster-yes/, 'redis-init creates the cluster, one replica per master');
  t.same(Object.keys(services['redis-init']!.depends_on ?? {}).sort(), redisNodes, 'redis-init waits for every node');
  t.ok(Object.values(services['redis-init']!.depends_on as Record<string, { condition: string }>).every((d) => d.condition === 'service_healthy'), '... to be healthy');
  t.ok(byCommand('gateway').length >= 2, `several gateways: ${byCommand('gateway').join(', ')}`);
  t.equal(byCommand('checkout').length, 2, `two checkouts: ${byCommand('checkout').join(', ')}`);
  t.ok(services.postgres, 'Postgres');
  for (const [name, s] of apps) {
    const deps = s.depends_on as Record<string, { condition: string }>;
    t.equal(deps?.['redis-init']?.condition, 'service_completed_successfully', `${name} starts once redis-init has made the cluster`);
    t.equal(deps?.postgres?.condition, 'service_healthy', `${name} starts once Postgres is healthy`);
  }
  for (const n of redisNodes) {
    t.equal(services[n]!.hostname, n, `${n}: its hostname is its service name (the name it announces)`);
    t.ok((services[n] as { volumes?: string[] }).volumes?.some((v) => v.startsWith(`${n}:/data`)) && n in volumes, `${n}: its own volume for /data`);
  }
});

t.test('every variable the app gets is one shared/config.ts reads, and the whole environment loads in production', async (t) => {
  const known = configVariables();
  t.ok(known.has('REDIS_CLUSTER_NODES') && known.has('GATEWAY_PORT') && known.has('ADMIN_TOKEN'), `config.ts's variables found (${known.size})`);
  for (const [name, s] of apps) {
    const env = s.environment ?? {};
    t.same(Object.keys(env).filter((k) => !known.has(k)), [], `${name}: no variable shared/config.ts does not read`);
    const config = loadConfig(env);
    t.ok(config.production, `${name}: NODE_ENV=production, and no secret is missing`);
    t.same(config.redisClusterNodes.map((n) => `${n.host}:${n.port}`), redisNodes.map((n) => `${n}:6379`), `${name}: REDIS_CLUSTER_NODES names every Redis node on its port`);
    const db = new URL(config.databaseUrl);
    const pg = services.postgres!.environment!;
    t.same([db.hostname, db.port, decodeURIComponent(db.username), decodeURIComponent(db.password), db.pathname.slice(1)],
      ['postgres', '5432', pg.POSTGRES_USER, pg.POSTGRES_PASSWORD, pg.POSTGRES_DB], `${name}: DATABASE_URL is the postgres service's user, password and database`);
    const jwks = new URL(config.jwksUrl);
    t.equal(jwks.hostname, 'lb', `${name}: JWKS_URL goes through the balancer`);
    t.ok(services.lb!.ports!.some((p) => p.split(':').at(-1) === (jwks.port || '80')) && new RegExp(`listen ${jwks.port || '80'};`).test(nginx), `${name}: ... on the port nginx listens on`);
  }
  t.throws(() => compose({}), /needs ADMIN_TOKEN/, 'without the secrets Compose refuses to start (${VAR:?})');
});

t.test('every command is an npm script that exists, and every port agrees', async (t) => {
  const scripts = (JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  for (const [name, s] of apps) {
    const [npm, run, script, ...rest] = s.command ?? [];
    t.same([npm, run, rest], ['npm', 'run', []], `${name}: its command is \`npm run <script>\``);
    t.ok(scripts[script!], `${name}: npm script "${script}" exists (${scripts[script!]})`);
    const file = /tsx (\S+)/.exec(scripts[script!] ?? '')?.[1];
    t.ok(file && existsSync(path.join(PROJECT_ROOT, file)), `${name}: ... and its file ${file} too`);
    const config = loadConfig(s.environment ?? {});
    const port = script === 'gateway' ? config.gatewayPort : config.checkoutPort;
    t.equal(healthPort(s), port, `${name}: the healthcheck asks the port it listens on (${port})`);
    t.equal(script === 'gateway' ? config.gatewayHost : config.checkoutHost, '0.0.0.0', `${name}: listens on every interface (the balancer is another container)`);
  }
  const ups = { gateways: byCommand('gateway'), checkout: byCommand('checkout') };
  for (const [up, names] of Object.entries(ups)) {
    const servers = upstream(up);
    t.same(servers.map((x) => x.host).sort(), names.sort(), `nginx upstream ${up}: exactly the services ${names.join(', ')}`);
    for (const x of servers) t.equal(x.port, healthPort(services[x.host]!), `nginx upstream ${up}: ${x.host}:${x.port} is the port it listens on`);
  }
  t.same((services.lb!.depends_on as string[]).sort(), [...ups.gateways, ...ups.checkout].sort(), 'the balancer starts after every gateway and checkout');
});

/** A node's redis-server command line, as compose.yaml runs it (`sh -c "exec redis-server ..."`). */
function nodeScript(node: string): string {
  const c = services[node]!.command!;
  if (c[0] !== 'sh' || c[1] !== '-c') throw new Error(`${node}: expected sh -c "exec redis-server ...", got ${JSON.stringify(c)}`);
  return c[2]!;
}

async function pickPort(addrs: string[]): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const p = 20000 + Math.floor(Math.random() * 9000);
    // portIsFree checks 127.0.0.1; these nodes bind 127.0.0.x: ask each address.
    const free = await Promise.all(addrs.flatMap((a) => [p, p + 10000].map((q) => new Promise<boolean>((resolve) => {
      const s = spawnSync('ss', ['-Hltn', `( sport = :${q} )`], { encoding: 'utf8' });
      resolve(!s.stdout.includes(`${a}:${q}`) && !s.stdout.includes(`*:${q}`) && !s.stdout.includes(`0.0.0.0:${q}`));
    }))));
    if (free.every(Boolean) && (await portIsFree(p)) && (await portIsFree(p + 10000))) return p;
  }
  throw new Error('no free port for the compose Redis nodes');
}

t.test('the Redis nodes and redis-init, run as compose.yaml writes them, make a cluster that keeps serving without full coverage', async (t) => {
  if (spawnSync('redis-server', ['--version']).status !== 0) { t.comment('no redis-server on the PATH: skipped'); return; }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wr-compose-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const base = 100 + Math.floor(Math.random() * 100);
  const addr = (n: string) => `127.0.0.${base + Number(n.split('-')[1])}`;
  const port = await pickPort(redisNodes.map(addr));
  const children: ChildProcess[] = [];
  t.teardown(() => Promise.all(children.map((c) => new Promise<void>((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    c.once('exit', () => resolve());
    c.kill('SIGKILL');
  }))));
  for (const n of redisNodes) {
    const data = path.join(dir, n);
    mkdirSync(data);
    // As written, with this test's port for 6379 and, as Docker gives a container, its own address
    // (bind-source-addr too: on one loopback a node's cluster-bus connections would otherwise come
    // from 127.0.0.1, and the others would take that for its address).
    const script = `${nodeScript(n).replaceAll('6379', String(port))} --bind ${addr(n)} --bind-source-addr ${addr(n)} --dir ${data} --logfile ${path.join(data, 'redis.log')}`;
    children.push(spawn('sh', ['-c', script], { env: { PATH: process.env.PATH, HOSTNAME: n }, stdio: 'ignore' }));
  }
  for (const n of redisNodes) {
    let up = false;
    for (let i = 0; i < 100 && !up; i++) { up = await redisAnswers(`redis://${addr(n)}:${port}`, 300); if (!up) await new Promise((r) => setTimeout(r, 50)); }
    t.ok(up, `${n} (redis-server from compose.yaml's command) answers`);
    if (!up) return;
  }
  // Docker's DNS for the service names: getent, and redis-cli's -h.
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  const realCli = spawnSync('sh', ['-c', 'command -v redis-cli'], { encoding: 'utf8' }).stdout.trim();
  const resolve = `name() { case "$1" in ${redisNodes.map((n) => `${n}) echo ${addr(n)};;`).join(' ')} *) echo "$1";; esac; }`;
  writeFileSync(path.join(bin, 'getent'), `#!/bin/sh\n${resolve}\n[ "$1" = hosts ] && echo "$(name "$2")  $2"\n`);
  writeFileSync(path.join(bin, 'redis-cli'), `#!/bin/bash\n${resolve}\na=(); prev=; for x in "$@"; do [ "$prev" = -h ] && x=$(name "$x"); a+=("$x"); prev=$x; done\nexec ${realCli} "\${a[@]}"\n`);
  chmodSync(path.join(bin, 'getent'), 0o755);
  chmodSync(path.join(bin, 'redis-cli'), 0o755);
  const init = services['redis-init']!.command!;
  t.same(init.slice(0, 2), ['sh', '-ec'], 'redis-init is one shell script that stops at the first failure');
  const runInit = () => spawnSync('timeout', ['60', 'sh', '-ec', init[2]!.replaceAll('6379', String(port))], { env: { PATH: `${bin}:${process.env.PATH}` }, encoding: 'utf8' });
  const first = runInit();
  t.equal(first.status, 0, `redis-init's script succeeds${first.status ? `:\n${first.stdout}\n${first.stderr}` : ''}`);
  const cli = (n: string, ...args: string[]) => spawnSync(realCli, ['-h', addr(n), '-p', String(port), ...args], { encoding: 'utf8' }).stdout;
  t.match(cli('redis-1', 'cluster', 'info'), /cluster_state:ok/, 'cluster_state:ok');
  t.match(cli('redis-1', 'cluster', 'info'), /cluster_slots_assigned:16384/, 'every slot assigned');
  // Each replica's role reaches redis-1 by gossip, within a second or so of the create.
  const roles = () => {
    const lines = cli('redis-1', 'cluster', 'nodes').trim().split('\n');
    const has = (role: string) => lines.filter((l) => l.split(' ')[2]!.split(',').includes(role)).length;
    return { lines, masters: has('master'), replicas: has('slave') };
  };
  let seen = roles();
  for (let i = 0; i < 100 && (seen.masters !== 3 || seen.replicas !== 3); i++) { await new Promise((r) => setTimeout(r, 100)); seen = roles(); }
  const lines = seen.lines;
  t.equal(seen.masters, 3, 'three masters');
  t.equal(seen.replicas, 3, 'three replicas');
  t.ok(lines.every((l) => /,redis-\d+ /.test(l)), 'each node announces its hostname (clients are told names, not container addresses)');
  for (const n of redisNodes) {
    t.same(cli(n, 'config', 'get', 'cluster-require-full-coverage').trim().split('\n'), ['cluster-require-full-coverage', 'no'], `${n}: cluster-require-full-coverage no`);
  }
  const again = runInit();
  t.equal(again.status, 0, 'redis-init run again (a restart) succeeds');
  t.match(again.stdout, /Redis Cluster exists/, '... and leaves the cluster as it is');
});
