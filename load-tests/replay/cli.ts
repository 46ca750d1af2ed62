/**
 * `npm run replay -- --file arrivals.ndjson --speed 10 --out DIR`
 * `npm run replay -- --profile spike|prequeue|bots30 --visitors N --stock N --out DIR`
 * against a running product (--gateway, --checkout, --admin-token; defaults are the local ones).
 * Exit code 0 when every check of the report passes, 1 when one fails, 2 on a usage error.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { replay } from './driver.js';
import { parseRecording } from './ndjson.js';
import { isProfile, makeProfile, PROFILES } from './profiles.js';
import { buildReport, DEFAULT_MAX_BOT_SHARE } from './report.js';
import { renderText, writeReport } from './render.js';

const USAGE = `usage: npm run replay -- (--file FILE | --profile ${PROFILES.join('|')} --visitors N) [options]
  --file FILE            a recording (NDJSON from GET /admin/rooms/:room/recording)
  --profile NAME         a synthetic profile: ${PROFILES.join(', ')}
  --visitors N           visitors of a profile (default 2000)
  --seed N               profile seed (default 1)
  --stock N              units on sale (default 100)
  --speed X              replay X times faster than recorded (default 1)
  --out DIR              where report.json and report.html go (default load-tests/out/<room>)
  --gateway URL          default http://127.0.0.1:8080
  --checkout URL         default http://127.0.0.1:8081
  --admin-token TOKEN    default dev-admin-token (or $ADMIN_TOKEN)
  --admit-rate N         room admitRatePerMin (default 6000)
  --max-active N         room maxActive (default 1000)
  --room-config FILE     JSON merged into the room's PUT (limits, captcha, trustedProxies, ...)
  --ordered              send joins one after another (exact order; one process)
  --processes N          worker processes (default: one per 15,000 visitors)
  --timeout S            give up on waiting visitors S seconds after the last arrival (default 120)
  --answer-grace S       a visitor still waiting S seconds after the room says sold_out or closed
                         was never told: stop waiting for it and report it (default 10)
  --ghosts X             share (0..1) of visitors who walk away once admitted, never reserving
                         (default 0): the room sees their claims lapse and lowers the chance shown
  --record               turn arrival recording on for the replay's room
  --hold-admission       admit nobody until every attempt is sent (outcomes independent of sell-out timing)
  --max-bot-share X      the check on who got the units fails when bots got more than this share (0..1)
                         of the units sold (default ${DEFAULT_MAX_BOT_SHARE}; profiles with bots only)`;

async function main(): Promise<number> {
  let a;
  try {
    a = parseArgs({
      options: {
        file: { type: 'string' }, profile: { type: 'string' }, visitors: { type: 'string' }, seed: { type: 'string' },
        stock: { type: 'string' }, speed: { type: 'string' }, out: { type: 'string' }, gateway: { type: 'string' },
        checkout: { type: 'string' }, 'admin-token': { type: 'string' }, 'admit-rate': { type: 'string' },
        'max-active': { type: 'string' }, 'room-config': { type: 'string' }, ordered: { type: 'boolean' },
        processes: { type: 'string' }, timeout: { type: 'string' }, 'answer-grace': { type: 'string' }, ghosts: { type: 'string' }, record: { type: 'boolean' }, 'hold-admission': { type: 'boolean' },
        'max-bot-share': { type: 'string' }, help: { type: 'boolean' },
      },
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (a.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const num = (v: string | undefined, d: number, name: string) => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
    return n;
  };
  const maxBotShare = a['max-bot-share'] === undefined ? DEFAULT_MAX_BOT_SHARE : Number(a['max-bot-share'].trim() || NaN);
  if (!(maxBotShare >= 0 && maxBotShare <= 1)) {
    process.stderr.write(`--max-bot-share must be a number from 0 to 1\n${USAGE}\n`);
    return 2;
  }
  const ghostShare = a.ghosts === undefined ? 0 : Number(a.ghosts.trim() || NaN);
  if (!(ghostShare >= 0 && ghostShare <= 1)) {
    process.stderr.write(`--ghosts must be a number from 0 to 1\n${USAGE}\n`);
    return 2;
  }
  if (!a.file === !a.profile) {
    process.stderr.write(`give exactly one of --file or --profile\n${USAGE}\n`);
    return 2;
  }
  let arrivals;
  let open;
  let source;
  if (a.file) {
    const rec = parseRecording(await readFile(a.file, 'utf8'));
    ({ arrivals, open } = rec);
    source = `file:${a.file}`;
  } else {
    if (!isProfile(a.profile!)) {
      process.stderr.write(`unknown profile "${a.profile}"\n${USAGE}\n`);
      return 2;
    }
    const p = makeProfile(a.profile, num(a.visitors, 2000, 'visitors'), num(a.seed, 1, 'seed'));
    ({ arrivals, open } = p);
    source = `profile:${p.name}`;
  }
  const data = await replay({
    targets: {
      gateway: (a.gateway ?? 'http://127.0.0.1:8080').replace(/\/$/, ''),
      checkout: (a.checkout ?? 'http://127.0.0.1:8081').replace(/\/$/, ''),
      adminToken: a['admin-token'] ?? process.env.ADMIN_TOKEN ?? 'dev-admin-token',
    },
    source, arrivals, open,
    stock: num(a.stock, 100, 'stock'),
    speed: num(a.speed, 1, 'speed'),
    admitRatePerMin: num(a['admit-rate'], 6000, 'admit-rate'),
    maxActive: num(a['max-active'], 1000, 'max-active'),
    roomConfig: a['room-config'] ? JSON.parse(await readFile(a['room-config'], 'utf8')) : undefined,
    ordered: a.ordered ?? false,
    processes: a.processes ? num(a.processes, 1, 'processes') : undefined,
    timeoutSec: num(a.timeout, 120, 'timeout'),
    answerGraceSec: num(a['answer-grace'], 10, 'answer-grace'),
    record: a.record ?? false,
    ghostShare,
    holdAdmission: a['hold-admission'] ?? false,
  });
  const report = buildReport(data, { maxBotShare });
  const files = await writeReport(a.out ?? `load-tests/out/${data.room}`, report);
  process.stdout.write(renderText(report) + `\n\nreport: ${files.html}\n        ${files.json}\n`);
  return report.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`replay failed: ${e.message}\n`);
    process.exit(1);
  },
);
