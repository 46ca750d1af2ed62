/**
 * bench/join-script: Redis CPU of lua/joinBatch alone, this version against another (a git
 * revision's), side by side: batches of new visitors (each from its own ip, one /24, defences on:
 * captcha suspicious, large buckets) sent straight to a redis-server of the bench's own, rounds
 * alternating A and B, each on a prefix of its own; used_cpu_* and commandstats per join.
 *
 *   npx tsx bench/join-script.ts [--base <git rev, default HEAD> | --base-file <lua>] [--batch 20] [--rounds 5] [--joins 40000]
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { roomKeys } from '../shared/keys.js';
import { PROJECT_ROOT } from '../shared/config.js';
import { loadLua } from '../shared/scripts.js';
import { median, fmt } from './lib/table.js';
import { perAnswer, startBenchRedis } from './lib/redis-server.js';

const args = process.argv.slice(2);
const opt = (name: string, d: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1]! : d; };
const base = opt('base', 'HEAD');
const batch = Number(opt('batch', '20'));
const rounds = Number(opt('rounds', '5'));
const joins = Number(opt('joins', '40000'));
/** Side B from a file instead of a revision (to try a variant). */
const baseFile = opt('base-file', '');

function luaAt(rev: string): string {
  const show = (p: string) => execFileSync('git', ['show', `${rev}:${p}`], { cwd: PROJECT_ROOT, encoding: 'utf8' });
  return show('lua/joinBatch-8.lua').replace(/^--@include (\w+)\s*$/gm, (_m, inc: string) => show(`lua/include/${inc}.lua`));
}

async function main() {
  const redis = await startBenchRedis();
  const client = new Redis(redis.url);
  const sides = { A: { label: 'this tree', lua: loadLua('joinBatch-8') }, B: baseFile ? { label: baseFile, lua: readFileSync(baseFile, 'utf8') } : { label: base, lua: luaAt(base) } };
  const shas: Record<string, string> = {};
  for (const [k, s] of Object.entries(sides)) shas[k] = (await client.script('LOAD', s.lua)) as string;
  const res: Record<string, { cpu: number[]; cmds: number[] }> = { A: { cpu: [], cmds: [] }, B: { cpu: [], cmds: [] } };
  let ipSeq = 0;
  const call = async (side: string, prefix: string) => {
    const now = Date.now();
    const k = roomKeys(prefix, 'r');
    const keys = [k.q, k.tix, k.pre, k.preseq, k.stats, k.sec(now), k.tbRoom, k.qpost];
    const argv: (string | number)[] = [now, now - 60_000, 0, 1e7, 1e7, 1e7, 1e7, 1e6, 1e5, 1, 50, batch];
    for (let i = 0; i < batch; i++) {
      const ip = `10.${(ipSeq >> 16) & 255}.${(ipSeq >> 8) & 255}.${ipSeq & 255}`;
      ipSeq++;
      const j = keys.length + 1;
      keys.push(k.ipBucket(ip), side === 'A' ? k.ipCaptchaFailures(ip) : `${k.ipBucket(ip)}:hv`);
      if (i === 0) keys.push(k.subnetBucket('10.0.0.0/24'));
      const vid = `${randomBytes(16).toString('base64url')}.${randomBytes(16).toString('base64url')}`;
      argv.push(vid, 0, 0, 0, '', now, j, 9 + 2);
    }
    await client.evalsha(shas[side]!, keys.length, ...keys, ...argv);
  };
  for (let r = 0; r < rounds; r++) {
    for (const side of r % 2 ? ['B', 'A'] : ['A', 'B']) {
      const prefix = `js-${side}-${r}`;
      const meter = await redis.meter();
      const inflight: Promise<void>[] = [];
      for (let i = 0; i < joins / batch; i++) {
        inflight.push(call(side, prefix));
        if (inflight.length >= 8) await inflight.shift();
      }
      await Promise.all(inflight);
      const use = await meter();
      const per = perAnswer(use, joins);
      res[side]!.cpu.push(per.cpuUs);
      res[side]!.cmds.push(per.commands);
      console.log(`round ${r + 1} ${sides[side as 'A'].label}: Redis ${fmt(per.cpuUs, 2)} µs CPU per join, ${fmt(per.commands, 2)} commands per join; evalsha ${fmt((use.commands.evalsha?.usec ?? 0) / joins, 2)} µs per join`);
      await client.flushall();
    }
  }
  for (const side of ['A', 'B']) console.log(`${sides[side as 'A'].label}: median Redis ${fmt(median(res[side]!.cpu), 2)} µs CPU per join, ${fmt(median(res[side]!.cmds), 2)} commands (batch ${batch})`);
  client.disconnect();
  await redis.stop();
}
main().then(() => process.exit(0), (e: unknown) => { console.error(e); process.exit(1); });
