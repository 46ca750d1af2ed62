/**
 * A small HTTP client on node:http for the replay driver: it can bind a source address
 * (`localAddress`, so per-IP limits see many clients) and reuses keep-alive sockets per address.
 */
import http from 'node:http';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON body, or null when the body is empty or not JSON. */
  json: any;
  text: string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string | undefined>;
  body?: unknown;
  localAddress?: string;
  agent?: http.Agent;
  timeoutMs?: number;
}

const agents = new Map<string, http.Agent>();

/**
 * The agent for one source address. Requests from a bound address (a replayed visitor's join
 * or claim) close their connection afterwards: a visitor already holds a WebSocket, and an idle
 * keep-alive socket each would double the open files of a process. Requests without one
 * (checkout, operator calls) share a keep-alive pool.
 */
export function agentFor(localAddress: string | undefined): http.Agent {
  const key = localAddress ?? '';
  let a = agents.get(key);
  if (!a) {
    a = localAddress
      ? new http.Agent({ keepAlive: false, maxSockets: 4, timeout: 60_000 })
      : new http.Agent({ keepAlive: true, maxSockets: 256, timeout: 60_000 });
    agents.set(key, a);
  }
  return a;
}

export function closeAgents(): void {
  for (const a of agents.values()) a.destroy();
  agents.clear();
}

/**
 * One request. A keep-alive socket the server closed while idle fails with ECONNRESET before
 * the server saw the request; that case (and only that) is retried once, as Node's docs advise.
 */
export async function request(url: string, opts: RequestOptions = {}): Promise<Reply> {
  try {
    return await requestOnce(url, opts);
  } catch (e) {
    if ((e as { staleSocket?: boolean }).staleSocket) return requestOnce(url, opts);
    throw e;
  }
}

function requestOnce(url: string, opts: RequestOptions): Promise<Reply> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) headers[k] = v;
  let payload: Buffer | undefined;
  if (opts.body !== undefined) {
    payload = Buffer.from(JSON.stringify(opts.body));
    headers['content-type'] ??= 'application/json';
    headers['content-length'] = String(payload.length);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: opts.method ?? (payload ? 'POST' : 'GET'),
        headers,
        localAddress: opts.localAddress,
        agent: opts.agent ?? agentFor(opts.localAddress),
        timeout: opts.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: any = null;
          if (text) {
            try {
              json = JSON.parse(text);
            } catch {
              json = null;
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json, text });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${opts.timeoutMs ?? 30_000} ms: ${url}`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (req.reusedSocket && e.code === 'ECONNRESET') Object.assign(e, { staleSocket: true });
      reject(e);
    });
    req.end(payload);
  });
}

/** The error code of a reply (`body.error`), or `http_<status>` when the body has none. */
export function outcomeOf(r: Reply): string {
  if (r.status >= 200 && r.status < 300) return 'ok';
  return typeof r.json?.error === 'string' ? r.json.error : `http_${r.status}`;
}
