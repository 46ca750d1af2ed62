/**
 * The watchdog of a server that `npm start` runs (shared/leftovers.ts): `node watchdog.cjs <pid>
 * <identity> <signal> <record>`. Plain CommonJS without a loader, so it is up in tens of
 * milliseconds. Its stdin is a pipe from the starter: when that ends (the starter is gone, however
 * it ended), it sends <signal> to <pid> if that is still the same process (same start time, from
 * /proc on Linux), then exits. <record> is only there so that `ps` shows what it watches.
 */
'use strict';
const fs = require('node:fs');

const pid = Number(process.argv[2]);
const identity = process.argv[3] || '';
const signal = process.argv[4];

function currentIdentity() {
  if (process.platform === 'linux') {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return f[0] === 'Z' || f[0] === 'X' ? null : (f[19] || '');
    } catch {
      return null;
    }
  }
  try {
    process.kill(pid, 0);
    return '';
  } catch {
    return null;
  }
}

function fire() {
  const now = currentIdentity();
  if (now !== null && (identity === '' || now === identity)) {
    try { process.kill(pid, signal); } catch { /* gone meanwhile */ }
  }
  process.exit(0);
}

// Its own session already (spawned detached); a stray signal must not end the watch either.
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => {});
process.stdin.on('end', fire).on('close', fire).on('error', fire).resume();
