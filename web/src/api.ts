// The console's only way to the server: the HTTP/JSON API (canonical proto3 JSON:
// lowerCamelCase fields, enums by name, 64-bit integers as decimal strings), each call
// with the bearer token the user logged in with. Live streams are server-sent events
// read through fetch, because EventSource cannot send an Authorization header.

const TOKEN_KEY = 'rampart.token';

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
  /** The server answers 501 for services it does not provide yet. */
  get unimplemented(): boolean {
    return this.status === 501;
  }
}

// The token lives for the browser tab only (sessionStorage): closing the tab logs out.
export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}
export function setToken(t: string | null) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

let onUnauthorized: () => void = () => {};
export function whenUnauthorized(f: () => void) {
  onUnauthorized = f;
}

async function errorOf(r: Response): Promise<ApiError> {
  let code = r.statusText || 'ERROR';
  let message = `HTTP ${r.status}`;
  try {
    const j = await r.json();
    if (j && typeof j.message === 'string') message = j.message;
    if (j && typeof j.code === 'string') code = j.code;
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(r.status, code, message);
}

export async function call<T>(
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  tokenOverride?: string,
): Promise<T> {
  const t = tokenOverride ?? token();
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (!r.ok) {
    const e = await errorOf(r);
    if (r.status === 401 && tokenOverride === undefined) onUnauthorized();
    throw e;
  }
  return (await r.json()) as T;
}

export const get = <T>(path: string) => call<T>('GET', path);

/** A file the API serves as itself (not JSON), e.g. an incident bundle's tar.gz. */
export async function download(path: string): Promise<{ blob: Blob; filename: string }> {
  const t = token();
  const r = await fetch(path, {
    headers: t ? { Authorization: `Bearer ${t}` } : {},
    cache: 'no-store',
  });
  if (!r.ok) {
    const e = await errorOf(r);
    if (r.status === 401) onUnauthorized();
    throw e;
  }
  const disposition = r.headers.get('Content-Disposition') ?? '';
  const filename = /filename="([^"]+)"/.exec(disposition)?.[1] ?? 'download';
  return { blob: await r.blob(), filename };
}
export const post = <T>(path: string, body: unknown = {}) => call<T>('POST', path, body);

/** `?a=1&b=x` from the non-empty entries. */
export function qs(params: Record<string, string | number | boolean | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    p.append(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

/**
 * Follows a server-sent event stream; `onItem` gets each `data:` JSON. Returns a
 * function that closes it. Reconnects after a second when the stream ends or fails
 * (not after 401/403/501: those will not change by retrying).
 */
export function stream<T>(
  path: string,
  onItem: (item: T) => void,
  onState: (state: 'live' | 'reconnecting' | ApiError) => void,
): () => void {
  const ctl = new AbortController();
  let closed = false;
  const run = async () => {
    while (!closed) {
      try {
        const r = await fetch(path, {
          headers: { Authorization: `Bearer ${token() ?? ''}`, Accept: 'text/event-stream' },
          signal: ctl.signal,
          cache: 'no-store',
        });
        if (!r.ok || !r.body) {
          const e = await errorOf(r);
          onState(e);
          if ([401, 403, 404, 501].includes(r.status)) return;
        } else {
          onState('live');
          const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let sep: number;
            while ((sep = buf.indexOf('\n\n')) >= 0) {
              const block = buf.slice(0, sep);
              buf = buf.slice(sep + 2);
              let event = 'message';
              const data: string[] = [];
              for (const line of block.split('\n')) {
                if (line.startsWith('event:')) event = line.slice(6).trim();
                else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
              }
              if (data.length === 0) continue;
              if (event === 'error') {
                try {
                  const j = JSON.parse(data.join('\n'));
                  onState(new ApiError(0, j.code ?? 'ERROR', j.message ?? 'stream error'));
                } catch {
                  onState(new ApiError(0, 'ERROR', data.join('\n')));
                }
                continue;
              }
              try {
                onItem(JSON.parse(data.join('\n')) as T);
              } catch {
                // A malformed item is skipped; the stream goes on.
              }
            }
          }
        }
      } catch (e) {
        if (closed) return;
        onState(e instanceof ApiError ? e : new ApiError(0, 'NETWORK', String(e)));
      }
      if (closed) return;
      onState('reconnecting');
      await new Promise((res) => setTimeout(res, 1000));
    }
  };
  void run();
  return () => {
    closed = true;
    ctl.abort();
  };
}

// ---- the contract's messages, as the JSON mapping writes them ----

export type Severity =
  | 'SEVERITY_UNSPECIFIED'
  | 'SEVERITY_LOW'
  | 'SEVERITY_MEDIUM'
  | 'SEVERITY_HIGH'
  | 'SEVERITY_CRITICAL';

export interface ContainerRef {
  id?: string;
  name?: string;
  image?: string;
  imageDigest?: string;
  pod?: string;
  namespace?: string;
}

export interface Comment {
  tsNs?: string;
  author?: string;
  text?: string;
}

export interface Alert {
  id: string;
  tsNs?: string;
  firstTsNs?: string;
  count?: string;
  rule?: string;
  priority?: string;
  severity?: Severity;
  mitre?: string[];
  tags?: string[];
  message?: string;
  node?: string;
  status?: string;
  updatedNs?: string;
  comments?: Comment[];
  container?: ContainerRef;
  retro?: boolean;
  outputFields?: Record<string, unknown>;
  event?: RawEvent;
}

export interface ProcessInfo {
  pid?: number;
  ppid?: number;
  exe?: string;
  argv?: string[];
  comm?: string;
  uid?: number;
  cwd?: string;
  exec_id?: string;
  ancestry?: ProcessInfo[];
}

export interface RawEvent {
  ts_ns?: number | string;
  kind?: string;
  process?: ProcessInfo;
  container?: Record<string, unknown>;
  data?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface ListAlertsResponse {
  alerts?: Alert[];
  nextPageToken?: string;
}

export interface RecordedEvent {
  tsNs?: string;
  kind?: string;
  event?: RawEvent;
}

export interface AuditRecord {
  id?: string;
  tsNs?: string;
  origin?: string;
  actor?: string;
  action?: string;
  target?: string;
  detail?: string;
}

export interface Container {
  id: string;
  node?: string;
  name?: string;
  image?: string;
  imageDigest?: string;
  state?: string;
  firstSeenNs?: string;
  lastSeenNs?: string;
  startedNs?: string;
  finishedNs?: string;
  hasExitCode?: boolean;
  exitCode?: string;
}

export interface Workload {
  namespace?: string;
  kind?: string;
  name?: string;
  containerIds?: string[];
  running?: string;
  nodes?: string[];
  images?: string[];
  firstSeenNs?: string;
  lastSeenNs?: string;
}

export interface GraphNode {
  id: string;
  label?: string;
  node?: string;
  namespace?: string;
}
export interface GraphEdge {
  source: string;
  target: string;
  protocol?: string;
  port?: number;
  connections?: string;
  bytes?: string;
  lastSeenNs?: string;
  anomalous?: boolean;
  /** Refused in the kernel (protect mode). */
  blocked?: boolean;
  blockedConnections?: string;
}
export interface NetworkGraph {
  nodes?: GraphNode[];
  edges?: GraphEdge[];
}

export interface WorkloadRisk {
  workload?: string;
  score?: number;
  factors?: { name?: string; detail?: string; weight?: number }[];
}

export interface Vulnerability {
  id?: string;
  aliases?: string[];
  package?: string;
  version?: string;
  ecosystem?: string;
  fixedVersion?: string;
  severity?: Severity;
  summary?: string;
  images?: string[];
  inUse?: boolean;
  /** The image layer that introduced the package: diff id, position (-1 unknown), command. */
  layerDigest?: string;
  layerIndex?: number;
  layerCommand?: string;
  firstSeenNs?: string;
  newSinceDbUpdate?: boolean;
}

export interface VulnerabilityList {
  vulnerabilities?: Vulnerability[];
  dbUpdatedNs?: string;
  newSinceDbUpdate?: string;
}

export interface NodeHealth {
  node?: string;
  version?: string;
  lastSeenNs?: string;
  alive?: boolean;
  kernel?: string;
  hooks?: { name?: string; kind?: string; attached?: boolean }[];
  drops?: { source?: string; count?: string }[];
  detailReported?: boolean;
}
