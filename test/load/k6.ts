/**
 * Running the k6 scripts with a real k6 binary in tests: where it is (K6_BIN, else `k6` on the
 * PATH), the skip reason when there is none, and one bounded run of a script.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** The k6 binary to use, or null: K6_BIN when it names an executable, else `k6` on the PATH. */
export function findK6(env: NodeJS.ProcessEnv = process.env): string | null {
  const exe = (p: string) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (env.K6_BIN) return exe(env.K6_BIN) ? env.K6_BIN : null;
  for (const dir of (env.PATH ?? '').split(path.delimiter)) if (dir && exe(path.join(dir, 'k6'))) return path.join(dir, 'k6');
  return null;
}

export const K6 = findK6();
/** tap's `skip` for a test that needs k6: false when there is one, else the reason (CI's log shows it). */
export const NEEDS_K6: false | string = K6 ? false
  : 'no k6 binary: neither K6_BIN nor k6 on the PATH (load-tests/README.md says where one comes from); the k6 scripts were not run';

export interface K6Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `k6 <args> load-tests/<script>` with `-e` for each of `vars`; killed after `timeoutSec`
 * (code null then). Resolves what it printed and its exit code (99: a threshold crossed;
 * 108: aborted, e.g. by the health check; 104: options k6 refuses).
 */
export function runK6(args: string[], script: string, vars: Record<string, string | number>, timeoutSec = 150): Promise<K6Run> {
  if (!K6) throw new Error('no k6 binary');
  const e = Object.entries(vars).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  return new Promise((resolve, reject) => {
    const child = spawn(K6, [...args, ...e, path.resolve('load-tests', script)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, K6_NO_USAGE_REPORT: 'true' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const kill = setTimeout(() => child.kill('SIGKILL'), timeoutSec * 1000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `k6 run --quiet` of a script against a product. */
export function k6Run(script: string, product: { gateway: string; checkout: string; adminToken: string }, vars: Record<string, string | number>, timeoutSec?: number): Promise<K6Run> {
  return runK6(['run', '--quiet', '--no-usage-report'], script, { GATEWAY_URL: product.gateway, CHECKOUT_URL: product.checkout, ADMIN_TOKEN: product.adminToken, ...vars }, timeoutSec);
}

/** The summary line of one metric (summaryText in load-tests/lib/common.js). */
export function metricLine(stdout: string, metric: string): string {
  return stdout.split('\n').find((l) => l.trim().startsWith(`${metric} `)) ?? `(no ${metric} line)`;
}
