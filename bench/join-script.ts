/**
 * bench/join-script: Redis CPU of lua/joinBatch alone, this version against another, side by
 * side: batches of new visitors (each from its own ip, one /24, defences on: captcha suspicious,
 * large buckets) sent straight to a redis-server of the bench's own, rounds alternating A and B,
 * each on a prefix of its own; used_cpu_* and commands per join. A is this tree's script called
 * through waiting-room/scripts.ts; B a revision's (or a file's) lua/joinBatch-8.lua, called with
 * that version's arguments (8 fixed keys; per ip a bucket key and a second key, per subnet a key).
 *
 *   npx tsx bench/join-script.ts [--base <git rev, default cc8b881, the start> | --base-file <lua> [--same-args]]
 *                                [--batch 20] [--rounds 5] [--joins 40000] [--ips K (joins from K addresses in turn)]
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { roomKeys } from '../shared/keys.js';
import { PROJECT_ROOT } from '../shared/config.js';
import { defineScripts, scripts } from '../shared/scripts.js';
import { Gate, joinBatch } from '../waiting-room/scripts.js';
import { median, fmt } from './lib/table.js';
import { perAnswer, startBenchRedis } from './lib/redis-server.js';

const args = process.argv.slice(2);
const opt = (name: string, d: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1]! : d; };
const base = opt('base', 'cc8b881');
const batch = Number(opt('batch', '20'));
const rounds = Number(opt('rounds', '5'));
const joins = Number(opt('joins', '40000'));
/** Side B from a file instead of a revision (to try a variant). */
const baseFile = opt('base-file', '');
/** B takes this tree's arguments (a variant of this tree's script), not lua/joinBatch-8's. */
const sameArgs = args.includes('--same-args');
/** --ips K: the joins come from K addresses in turn (bench/join's 64 connections), not a new one each. */
const ips = Number(opt('ips', '0'));

function luaAt(rev: string): string {
  const show = (p: string) => execFileSync('git', ['show', `${rev}:${p}`], { cwd: PROJECT_ROOT, encoding: 'utf8' });
  return show('lua/joinBatch-8.lua').replace(/^--@include (\w+)\s*$/gm, (_m, inc: string) => show(`lua/include/${inc}.lua`));
}

async function main() {
  const redis = await startBenchRedis();
  const client = new Redis(redis.url);
  const sides = { A: { label: 'this tree' }, B: baseFile ? { label: baseFile, lua: readFileSync(baseFile, 'utf8') } : { label: base, lua: luaAt(base) } };
  const shaB = (await client.script('LOAD', sides.B.lua)) as string;
  defineScripts(client);
  // --same-args: B is this tree's caller on a client whose joinBatch command runs B's text.
  const clientB = new Redis(redis.url);
  if (sameArgs) clientB.defineCommand(scripts().joinBatch.command, { lua: sides.B.lua! });
  const res: Record<string, { cpu: number[]; cmds: number[] }> = { A: { cpu: [], cmds: [] }, B: { cpu: [], cmds: [] } };
  let ipSeq = 0;
  const limits = { room: { capacity: 1e7, refillPerSec: 1e7 }, subnet: { capacity: 1e7, refillPerSec: 1e7 }, ip: { capacity: 1e6, refillPerSec: 1e5 } };
  const vidOf = () => `${randomBytes(16).toString('base64url')}.${randomBytes(16).toString('base64url')}`;
  const ipOf = () => { const s = ips > 0 ? ipSeq++ % ips : ipSeq++; return `10.${(s >> 16) & 255}.${(s >> 8) & 255}.${s & 255}`; };
  const call = async (side: string, prefix: string) => {
    const now = Date.now();
    if (side === 'A' || sameArgs) {
      await joinBatch(side === 'A' ? client : clientB, prefix, 'r', {
        now, opensAtMs: now - 60_000, gate: Gate.open, limits, captcha: { mode: 'suspicious', threshold: 50 },
        entries: Array.from({ length: batch }, () => ({ vid: vidOf(), ip: ipOf(), subnet: '10.0.0.0/24', allowListed: false, headerScore: 0, captchaPassed: false, preMember: '', arrivedAt: now })),
      });
      return;
    }
    const k = roomKeys(prefix, 'r');
    const keys = [k.q, k.tix, k.pre, k.preseq, k.stats, k.sec(now), k.tbRoom, k.qpost];
    const argv: (string | number)[] = [now, now - 60_000, 0, 1e7, 1e7, 1e7, 1e7, 1e6, 1e5, 1, 50, batch];
    for (let i = 0; i < batch; i++) {
      const ip = ipOf();
      const j = keys.length + 1;
      // (with --ips, an address twice in a batch gets two key slots: the old script reads each once anyway)
      keys.push(`${k.tbRoom}:i:${ip}`, `${k.tbRoom}:hv:${ip}`);
      if (i === 0) keys.push(`${k.tbRoom}:s:10.0.0.0/24`);
      argv.push(vidOf(), 0, 0, 0, '', now, j, 9 + 2);
    }
    await client.evalsha(shaB, keys.length, ...keys, ...argv);
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
  clientB.disconnect();
  await redis.stop();
}
// Run only as a command: bench/run.ts imports every bench/*.ts (this one exports no run()).
if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(() => process.exit(0), (e: unknown) => { console.error(e); process.exit(1); });
}
