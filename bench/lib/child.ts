/**
 * Child processes for benchmarks: fork a TypeScript module under tsx and talk to it with
 * request/response messages over IPC. Every child dies with its parent (IPC disconnect).
 */
import { fork, type ChildProcess } from 'node:child_process';

const TSX = import.meta.resolve('tsx');

export class Child {
  private seq = 0;
  private waiting = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private exited: Promise<number | null>;
  readonly proc: ChildProcess;

  constructor(file: string | URL, opts: { execArgv?: string[]; env?: NodeJS.ProcessEnv; args?: string[] } = {}) {
    this.proc = fork(file, opts.args ?? [], {
      execArgv: ['--import', TSX, ...(opts.execArgv ?? [])],
      env: opts.env ?? process.env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.proc.on('message', (m: { id: number; result?: unknown; error?: string }) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.error !== undefined) w.reject(new Error(m.error));
      else w.resolve(m.result);
    });
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => {
      for (const w of this.waiting.values()) w.reject(new Error(`child ${String(file)} (pid ${this.proc.pid}) exited (${signal ?? code})`));
      this.waiting.clear();
      resolve(code);
    }));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** Send a request and wait for its answer (`timeoutMs` bounds the wait). */
  call<T>(msg: Record<string, unknown>, timeoutMs = 120_000): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`child call ${JSON.stringify(msg).slice(0, 80)} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.proc.send({ ...msg, id });
    });
  }

  /** Ask politely (IPC disconnect), then SIGKILL after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    if (this.proc.connected) this.proc.disconnect();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Serve IPC requests in a child: `handlers[msg.type](msg)` answers `{id, result}` or `{id, error}`. */
export function serveIpc(handlers: Record<string, (msg: any) => unknown>, onDisconnect: () => void | Promise<void>): void {
  process.on('message', (msg: { id: number; type: string }) => {
    const h = handlers[msg.type];
    Promise.resolve()
      .then(() => {
        if (!h) throw new Error(`unknown message type ${msg.type}`);
        return h(msg);
      })
      .then(
        (result) => process.send!({ id: msg.id, result }),
        (e: Error) => process.send!({ id: msg.id, error: String(e?.stack ?? e) }),
      );
  });
  process.on('disconnect', () => {
    Promise.resolve(onDisconnect()).finally(() => process.exit(0));
  });
}
