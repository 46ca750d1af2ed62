/**
 * Servers that `npm start` runs as its own children (the embedded PostgreSQL, a redis-server) must
 * not outlive it, and what a killed run left behind must not stop the next one. Each such child
 * gets a record next to its data (`<name>.run.json`: who started it, and its pid) and a watchdog
 * (watchdog.cjs): a tiny detached Node process holding a pipe from the starter, which stops the child when the pipe
 * closes, i.e. when the starter is gone, however it ended (even `kill -9`). The next start reads
 * the record: a child still running whose starter is dead is stopped cleanly before a new one
 * starts. A process is known by its pid and its start time (Linux `/proc/<pid>/stat`), so a pid the
 * system has reused for another process is never taken for it.
 */
import { spawn } from 'node:child_process';
import { openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** From Linux `/proc/<pid>/stat`: state, parent, process group, start time; null elsewhere or when gone. */
function procStat(pid: number): { state: string; ppid: number; pgrp: number; start: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: f[0] ?? '', ppid: Number(f[1]), pgrp: Number(f[2]), start: f[19] ?? '' };
  } catch {
    return null;
  }
}

/**
 * A running process's identity: its start time on Linux (elsewhere '' when it runs), or null when
 * no process has that pid (a zombie counts as gone).
 */
export function processIdentity(pid: number): string | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  if (process.platform === 'linux') {
    const st = procStat(pid);
    return st && st.state !== 'Z' && st.state !== 'X' ? st.start : null;
  }
  try {
    process.kill(pid, 0);
    return '';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? '' : null;
  }
}

/**
 * Calls `onGone` (once) if a process between this one and the leader of its job dies: `npm start`
 * runs npm → sh → tsx → node in one process group, and a `kill -9` of npm or tsx would otherwise
 * leave this process serving on its ports, so that the next `npm start` could not listen. A
 * process that leads its own group (started directly, by a service manager) watches nothing.
 * Linux only; polls once a second.
 */
export function onLauncherGone(onGone: (pid: number) => void): void {
  const self = procStat(process.pid);
  if (!self) return;
  const chain: { pid: number; start: string }[] = [];
  for (let pid = self.ppid, st = procStat(pid); st && pid > 1 && st.pgrp === self.pgrp; pid = st.ppid, st = procStat(pid)) {
    chain.push({ pid, start: st.start });
  }
  if (!chain.length) return;
  const timer = setInterval(() => {
    const gone = chain.find((c) => processIdentity(c.pid) !== c.start);
    if (!gone) return;
    clearInterval(timer);
    onGone(gone.pid);
  }, 1000);
  timer.unref();
}

/** Is the process `pid` with this identity (from processIdentity) still running? */
export function stillRuns(pid: number, identity: string): boolean {
  const now = processIdentity(pid);
  return now !== null && (identity === '' || now === identity);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Sends `signal`, waits up to `graceMs` for the process to end, then SIGKILLs it and waits 5 s
 * more. Throws, saying so, if it still runs.
 */
export async function stopProcess(pid: number, signal: NodeJS.Signals, graceMs = 15_000): Promise<void> {
  const identity = processIdentity(pid);
  if (identity === null) return;
  const gone = async (ms: number) => {
    for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (!stillRuns(pid, identity)) return true;
    return !stillRuns(pid, identity);
  };
  const send = (s: NodeJS.Signals) => {
    try { process.kill(pid, s); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e; }
  };
  send(signal);
  if (await gone(graceMs)) return;
  send('SIGKILL');
  if (await gone(5000)) return;
  throw new Error(`process ${pid} still runs after ${signal} and, ${graceMs} ms later, SIGKILL`);
}

interface RunRecord { owner: number; ownerIdentity: string; pid: number; identity: string }

function readRecord(file: string): RunRecord | null {
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as Partial<RunRecord>;
    if (typeof r.owner !== 'number' || typeof r.pid !== 'number') return null;
    return { owner: r.owner, ownerIdentity: String(r.ownerIdentity ?? ''), pid: r.pid, identity: String(r.identity ?? '') };
  } catch {
    return null;
  }
}

export interface Leftover {
  pid: number;
  /** The pid of the process that started it. */
  owner: number;
  /** That process still runs (another `npm start` on the same data folder). */
  ownerRuns: boolean;
}

/** The child that the record names, if it still runs; null (and the record removed) if not. */
export function leftover(recordFile: string): Leftover | null {
  const r = readRecord(recordFile);
  if (!r || !stillRuns(r.pid, r.identity)) {
    rmSync(recordFile, { force: true });
    return null;
  }
  return { pid: r.pid, owner: r.owner, ownerRuns: r.owner !== process.pid && stillRuns(r.owner, r.ownerIdentity) };
}

const WATCHDOG = fileURLToPath(new URL('./watchdog.cjs', import.meta.url));

export interface Guard {
  /** The child ended as planned: stop watching it and drop its record. */
  release(): void;
}

/**
 * Writes the record of `pid` (a child of this process) to `recordFile` and starts its watchdog:
 * if this process ends without `release()`, the child gets `signal`.
 */
export function guardChild(recordFile: string, pid: number, signal: NodeJS.Signals): Guard {
  const record: RunRecord = { owner: process.pid, ownerIdentity: processIdentity(process.pid) ?? '', pid, identity: processIdentity(pid) ?? '' };
  writeFileSync(recordFile, JSON.stringify(record) + '\n');
  const dog = spawn(process.execPath, [WATCHDOG, String(pid), record.identity, signal, recordFile], {
    detached: true, // its own session: a Ctrl-C or hang-up of the terminal is not the starter ending
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  dog.on('error', () => {}); // no watchdog: the next start still stops the leftover by its record
  dog.stdin!.on('error', () => {});
  dog.unref();
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      dog.kill('SIGKILL');
      dog.stdin!.destroy();
      const r = readRecord(recordFile);
      if (r && r.owner === process.pid && r.pid === pid) rmSync(recordFile, { force: true });
    },
  };
}

/**
 * A child server's output: written to `file` (one per run; best effort) and its last lines kept
 * for an error message, so a server that fails to start says why.
 */
export function childLog(file: string): { write(chunk: string | Buffer): void; tail(): string } {
  const lines: string[] = [];
  let fd: number | null = null;
  try { fd = openSync(file, 'w'); } catch { /* no log file: the tail still goes into the error */ }
  return {
    write: (chunk) => {
      const text = chunk.toString();
      if (fd !== null) try { writeSync(fd, text); } catch { /* a full disk must not stop the server */ }
      lines.push(...text.split('\n').filter((l) => l.trim()));
      if (lines.length > 20) lines.splice(0, lines.length - 20);
    },
    tail: () => (lines.length ? lines.map((l) => `  ${l}`).join('\n') : '  (nothing)'),
  };
}
