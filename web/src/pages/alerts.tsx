// The alert list: server-side filters (severity, status, rule, container, node), pages
// of 1,000 loaded in the background up to MAX_ROWS, live arrival over the alert stream
// (SSE), grouping by rule or by workload, and a virtualised list so 100k rows scroll
// smoothly. The list is kept per filter while the page is left for an alert's detail.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, get, qs, stream, type Alert, type ListAlertsResponse } from '../api';
import { go } from '../nav';
import { Problem, SEVERITIES, SevBadge, enumName, nsToDate, sevName } from '../ui';
import { VirtualList } from '../vlist';

const PAGE = 1000;
const MAX_ROWS = 250_000;
const ROW_HEIGHT = 34;

/** What the list keeps of an alert (the detail page fetches the whole alert). */
interface Row {
  id: string;
  ms: number;
  sev: string;
  rule: string;
  message: string;
  container: string;
  containerId: string;
  workload: string;
  node: string;
  status: string;
  count: number;
  live: boolean;
}

export interface Filters {
  severity: string;
  status: string;
  rule: string;
  containerId: string;
  node: string;
}

const NO_FILTERS: Filters = { severity: '', status: '', rule: '', containerId: '', node: '' };

/** The workload an alert's container belongs to: the pod's owner-ish name, else the image. */
export function workloadOf(a: Alert): string {
  const c = a.container ?? {};
  if (c.namespace && c.pod) return `${c.namespace}/${c.pod.replace(/-[a-z0-9]{5,10}(-[a-z0-9]{5})?$/, '')}`;
  if (c.image) return c.image.replace(/@sha256:.*/, '');
  return c.name || (c.id ? 'container' : 'host');
}

function slim(a: Alert, live: boolean): Row {
  const d = nsToDate(a.tsNs);
  return {
    id: a.id,
    ms: d ? d.getTime() : 0,
    sev: sevName(a.severity),
    rule: a.rule ?? '',
    message: a.message ?? '',
    container: a.container?.name || (a.container?.id ?? '').slice(0, 12) || 'host',
    containerId: a.container?.id ?? '',
    workload: workloadOf(a),
    node: a.node ?? '',
    status: enumName(a.status, 'ALERT_STATUS_'),
    count: Number(a.count ?? 1),
    live,
  };
}

const SEV_RANK: Record<string, number> = { critical: 4, high: 3, medium: 2, low: 1, unspecified: 0 };

/** One filter's list: loaded page by page, kept while the user looks at a detail. */
class AlertList {
  rows: Row[] = [];
  ids = new Map<string, Row>();
  error: unknown = null;
  done = false;
  live: 'connecting' | 'live' | 'reconnecting' | ApiError = 'connecting';
  version = 0;
  arrived = 0;
  private closed = false;
  private stopStream: () => void = () => {};
  private listeners = new Set<() => void>();
  private pending: Row[] = [];
  private flushQueued = false;

  constructor(readonly filters: Filters) {
    void this.load();
    const f = filters;
    this.stopStream = stream<Alert>(
      `/v1/alerts:stream${qs({ severity: f.severity, rule: f.rule, node: f.node })}`,
      (a) => {
        if (f.status && a.status !== f.status) return;
        if (f.containerId && a.container?.id !== f.containerId) return;
        this.pending.push(slim(a, true));
        this.queueFlush();
      },
      (s) => {
        // Back after a break: what was stored meanwhile comes from the list's first
        // page (the stream starts from now).
        if (s === 'live' && this.live === 'reconnecting') void this.catchUp();
        this.live = s;
        this.changed();
      },
    );
  }

  close() {
    this.closed = true;
    this.stopStream();
  }

  subscribe(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  private changed() {
    this.version++;
    for (const l of this.listeners) l();
  }

  // Live alerts are applied once per frame, newest first.
  private queueFlush() {
    if (this.flushQueued) return;
    this.flushQueued = true;
    requestAnimationFrame(() => {
      this.flushQueued = false;
      const fresh: Row[] = [];
      for (const r of this.pending) {
        const old = this.ids.get(r.id);
        if (old) {
          // An aggregated alert counted again: update it where it is.
          Object.assign(old, { ...r, live: true });
        } else {
          this.ids.set(r.id, r);
          fresh.push(r);
        }
      }
      this.pending = [];
      if (fresh.length) {
        fresh.sort((a, b) => b.ms - a.ms);
        this.rows = fresh.concat(this.rows);
        this.arrived += fresh.length;
      }
      this.changed();
    });
  }

  // A network blip (fetch throws a TypeError, e.g. ERR_NETWORK_CHANGED when an interface
  // comes or goes) or a busy server (5xx, 429) would otherwise end the load with the list
  // short: such a page is tried again after 0.5, 1, 2, 4 and 8 s, unless the list is
  // closed meanwhile. Other errors (401, 403, 400, ...) will not change by retrying.
  private async getRetried<T>(path: string): Promise<T> {
    for (let retry = 0; ; retry++) {
      try {
        return await get<T>(path);
      } catch (e) {
        const transient = e instanceof TypeError || (e instanceof ApiError && (e.status >= 500 || e.status === 429));
        if (!transient || retry >= 5 || this.closed) throw e;
        await new Promise((res) => setTimeout(res, 500 * 2 ** retry));
        if (this.closed) throw e;
      }
    }
  }

  private async catchUp() {
    try {
      const page = await this.getRetried<ListAlertsResponse>(`/v1/alerts${qs({ ...this.filters, limit: PAGE })}`);
      if (this.closed) return;
      for (const a of page.alerts ?? []) if (!this.ids.has(a.id)) this.pending.push(slim(a, true));
      this.queueFlush();
    } catch {
      // The next reconnect tries again.
    }
  }

  private async load() {
    const f = this.filters;
    let token = '';
    try {
      for (;;) {
        const page = await this.getRetried<ListAlertsResponse>(
          `/v1/alerts${qs({ ...f, limit: PAGE, pageToken: token })}`,
        );
        if (this.closed) return;
        const add: Row[] = [];
        for (const a of page.alerts ?? []) {
          if (this.ids.has(a.id)) continue;
          const r = slim(a, false);
          this.ids.set(r.id, r);
          add.push(r);
        }
        // Pages come newest first; appended in place (no copy of what is loaded).
        for (const r of add) this.rows.push(r);
        token = page.nextPageToken ?? '';
        if (!token || this.rows.length >= MAX_ROWS) break;
        this.changed();
        // Let the page breathe between pages (input, scrolling).
        await new Promise((res) => setTimeout(res, 0));
      }
      this.done = true;
    } catch (e) {
      this.error = e;
    }
    this.changed();
  }
}

let current: AlertList | null = null;
function listFor(f: Filters): AlertList {
  const same =
    current && (Object.keys(f) as (keyof Filters)[]).every((k) => current!.filters[k] === f[k]);
  if (!same) {
    current?.close();
    current = new AlertList({ ...f });
  }
  return current!;
}

type GroupBy = 'none' | 'rule' | 'workload';
type Item = { kind: 'row'; row: Row } | { kind: 'group'; key: string; count: number; sev: string; rows: Row[]; latest: number };

function filtersFromHash(): Filters {
  const q = new URLSearchParams(location.hash.split('?')[1] ?? '');
  return {
    severity: q.get('severity') ?? '',
    status: q.get('status') ?? '',
    rule: q.get('rule') ?? '',
    containerId: q.get('containerId') ?? '',
    node: q.get('node') ?? '',
  };
}

export function AlertsPage() {
  const [filters, setFilters] = useState<Filters>(() => ({ ...NO_FILTERS, ...filtersFromHash() }));
  const [draft, setDraft] = useState<Filters>(filters);
  const [groupBy, setGroupBy] = useState<GroupBy>(
    () => (sessionStorage.getItem('rampart.groupBy') as GroupBy) || 'none',
  );
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const list = listFor(filters);
  const [, setVersion] = useState(0);
  useEffect(() => list.subscribe(() => setVersion(list.version)), [list]);
  useEffect(() => sessionStorage.setItem('rampart.groupBy', groupBy), [groupBy]);

  // Ungrouped, the list reads the loaded rows in place (no copy of 100k rows per page
  // loaded); grouped, the groups are built once per change.
  const grouped: Item[] | null = useMemo(() => {
    if (groupBy === 'none') return null;
    const groups = new Map<string, Item & { kind: 'group' }>();
    for (const r of list.rows) {
      const key = groupBy === 'rule' ? r.rule : r.workload;
      let g = groups.get(key);
      if (!g) {
        g = { kind: 'group', key, count: 0, sev: r.sev, rows: [], latest: r.ms };
        groups.set(key, g);
      }
      g.count++;
      g.rows.push(r);
      if (SEV_RANK[r.sev] > SEV_RANK[g.sev]) g.sev = r.sev;
      if (r.ms > g.latest) g.latest = r.ms;
    }
    const out: Item[] = [];
    const sorted = [...groups.values()].sort((a, b) => b.latest - a.latest);
    for (const g of sorted) {
      out.push(g);
      if (expanded.has(g.key)) for (const row of g.rows) out.push({ kind: 'row', row });
    }
    return out;
  }, [list, list.version, groupBy, expanded]);
  const count = grouped ? grouped.length : list.rows.length;
  const itemAt = (i: number): Item | undefined => (grouped ? grouped[i] : list.rows[i] && { kind: 'row', row: list.rows[i] });

  const apply = (e: Event) => {
    e.preventDefault();
    setFilters({ ...draft, rule: draft.rule.trim(), containerId: draft.containerId.trim(), node: draft.node.trim() });
  };
  const field = (k: keyof Filters) => (e: Event) =>
    setDraft({ ...draft, [k]: (e.target as HTMLInputElement).value });

  const liveLabel =
    list.live instanceof ApiError
      ? `live updates off: HTTP ${list.live.status} ${list.live.message}`
      : list.live === 'live'
        ? 'live'
        : list.live;

  return (
    <section class="alerts-page">
      <h1>Alerts</h1>
      <form class="filters" onSubmit={apply} aria-label="Alert filters">
        <label>
          Severity
          <select value={draft.severity} onChange={field('severity')}>
            <option value="">any</option>
            {SEVERITIES.map((s) => (
              <option value={s} key={s}>
                {sevName(s)} or higher
              </option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select value={draft.status} onChange={field('status')}>
            <option value="">any</option>
            <option value="ALERT_STATUS_OPEN">open</option>
            <option value="ALERT_STATUS_ACKNOWLEDGED">acknowledged</option>
            <option value="ALERT_STATUS_RESOLVED">resolved</option>
          </select>
        </label>
        <label>
          Rule
          <input value={draft.rule} onInput={field('rule')} placeholder="exact rule name" />
        </label>
        <label>
          Container id
          <input value={draft.containerId} onInput={field('containerId')} />
        </label>
        <label>
          Node
          <input value={draft.node} onInput={field('node')} />
        </label>
        <button type="submit">Apply</button>
        <label>
          Group by
          <select
            value={groupBy}
            onChange={(e) => setGroupBy((e.target as HTMLSelectElement).value as GroupBy)}
            data-testid="group-by"
          >
            <option value="none">nothing</option>
            <option value="rule">rule</option>
            <option value="workload">workload</option>
          </select>
        </label>
      </form>
      <p class="status-line" aria-live="polite">
        <span data-testid="alert-count">{list.rows.length.toLocaleString()}</span> alerts
        {list.done ? '' : ' (loading more…)'} · <span class={`live live-${typeof list.live === 'string' ? list.live : 'off'}`}>{liveLabel}</span>
        {list.arrived ? ` · ${list.arrived} arrived live` : ''}
      </p>
      {list.error ? <Problem error={list.error} what="Alert list" /> : null}
      <div class="vhead" aria-hidden="true">
        <span class="c-time">Time</span>
        <span class="c-sev">Severity</span>
        <span class="c-rule">{groupBy === 'none' ? 'Rule' : 'Group'}</span>
        <span class="c-where">Container · node</span>
        <span class="c-status">Status</span>
      </div>
      <VirtualList
        count={count}
        rowHeight={ROW_HEIGHT}
        label="Alerts, newest first"
        idPrefix="alert-row"
        testId="alert-list"
        onOpen={(i) => {
          const it = itemAt(i);
          if (!it) return;
          if (it.kind === 'row') go('alerts', it.row.id);
          else {
            const next = new Set(expanded);
            if (next.has(it.key)) next.delete(it.key);
            else next.add(it.key);
            setExpanded(next);
          }
        }}
        renderRow={(i) => {
          const it = itemAt(i);
          if (!it) return null;
          if (it.kind === 'group') {
            return (
              <>
                <span class="c-time">
                  <Clock ms={it.latest} />
                </span>
                <span class="c-sev">
                  <SevBadge s={`SEVERITY_${it.sev.toUpperCase()}`} />
                </span>
                <span class="c-rule group-key">
                  {expanded.has(it.key) ? '▾' : '▸'} {it.key || '(none)'}
                </span>
                <span class="c-where">{it.count.toLocaleString()} alerts</span>
                <span class="c-status" />
              </>
            );
          }
          const r = it.row;
          return (
            <>
              <span class="c-time">
                <Clock ms={r.ms} />
              </span>
              <span class="c-sev">
                <SevBadge s={`SEVERITY_${r.sev.toUpperCase()}`} />
              </span>
              <span class="c-rule" title={r.message}>
                {r.live ? <span class="new">new </span> : null}
                {r.rule}
                {r.count > 1 ? <span class="muted"> ×{r.count}</span> : null}
              </span>
              <span class="c-where" data-container={r.container}>
                {r.container} · {r.node}
              </span>
              <span class="c-status">{r.status}</span>
            </>
          );
        }}
      />
      <p class="muted hint">
        Arrows or j/k move, Enter opens (or expands a group), Page Up/Down and Home/End jump.
      </p>
    </section>
  );
}

const clockFmt = new Intl.DateTimeFormat(undefined, {
  month: 'short',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});
function Clock({ ms }: { ms: number }) {
  if (!ms) return <span class="muted">—</span>;
  return <>{clockFmt.format(ms)}</>;
}
