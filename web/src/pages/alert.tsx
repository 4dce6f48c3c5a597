// One alert: the rendered message, MITRE ids, the process tree with argv (from the
// triggering event's ancestry), the node's recorder timeline around it, the
// container's network edges, triage, an incident bundle to download, and response
// actions that go through the API after a confirmation and show their audit entry.
import { useState } from 'preact/hooks';
import {
  download,
  get,
  post,
  qs,
  type Alert,
  type AuditRecord,
  type NetworkGraph,
  type ProcessInfo,
  type RecordedEvent,
} from '../api';
import { href } from '../nav';
import { Confirm, Empty, Problem, SevBadge, Show, Time, enumName, nsToDate, shortId, useLoad } from '../ui';

const WINDOW_NS = 60n * 1_000_000_000n;

function timelineQuery(a: Alert) {
  const ts = BigInt(a.tsNs ?? '0');
  const first = BigInt(a.firstTsNs ?? a.tsNs ?? '0');
  return {
    filter: {
      container: a.container?.id ?? '',
      sinceNs: String(first > WINDOW_NS ? first - WINDOW_NS : 0n),
      untilNs: String(ts + WINDOW_NS),
    },
    limit: 500,
  };
}

/** Root first: the ancestry as the event carries it (nearest parent first), reversed. */
function chain(p: ProcessInfo | undefined): ProcessInfo[] {
  if (!p) return [];
  const up = [...(p.ancestry ?? [])].reverse();
  return [...up, p];
}

function ProcessTree({ p }: { p?: ProcessInfo }) {
  const procs = chain(p);
  if (procs.length === 0) return <Empty>The event carries no process.</Empty>;
  const node = (i: number) => {
    const x = procs[i];
    const leaf = i === procs.length - 1;
    return (
      <li>
        <span class={leaf ? 'proc leaf' : 'proc'}>
          <code class="exe">{x.exe || x.comm || '?'}</code> <span class="muted">pid {x.pid ?? '?'}</span>
          <br />
          <code class="argv">{(x.argv ?? []).map((s) => (/[\s"']/.test(s) ? JSON.stringify(s) : s)).join(' ')}</code>
        </span>
        {leaf ? null : <ul>{node(i + 1)}</ul>}
      </li>
    );
  };
  return (
    <ul class="tree" aria-label="Process tree, root first" data-testid="process-tree">
      {node(0)}
    </ul>
  );
}

function eventSummary(e: RecordedEvent): string {
  const ev = e.event ?? {};
  const d = (ev.data ?? {}) as Record<string, unknown>;
  const p = ev.process;
  const who = p ? `${p.comm ?? ''}[${p.pid ?? ''}]` : '';
  const what =
    (d.path as string) ??
    (d.filename as string) ??
    (Array.isArray(p?.argv) && e.kind === 'exec' ? p!.argv!.join(' ') : '') ??
    '';
  const addr = d.daddr ? `${d.daddr}:${d.dport ?? ''}` : '';
  return [who, what || addr].filter(Boolean).join(' ');
}

const ACTIONS = [
  { action: 'RESPONSE_ACTION_KILL_PROCESS', label: 'Kill process', verb: 'kill the process' },
  { action: 'RESPONSE_ACTION_FREEZE_CONTAINER', label: 'Freeze container', verb: 'freeze the container' },
  { action: 'RESPONSE_ACTION_QUARANTINE_CONTAINER', label: 'Quarantine container', verb: 'cut the container off the network' },
  { action: 'RESPONSE_ACTION_STOP_CONTAINER', label: 'Stop container', verb: 'stop the container' },
] as const;

type Outcome = { action: string; ok?: { auditId?: string; done?: boolean; detail?: string }; error?: unknown; audit?: AuditRecord[] };

function Respond({ a }: { a: Alert }) {
  const [pending, setPending] = useState<(typeof ACTIONS)[number] | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [busy, setBusy] = useState(false);
  const containerId = a.container?.id ?? '';
  const pid = a.event?.process?.pid;
  const run = async () => {
    const act = pending;
    setPending(null);
    if (!act) return;
    setBusy(true);
    const out: Outcome = { action: act.label };
    const since = String(BigInt(Date.now() - 5000) * 1_000_000n);
    try {
      out.ok = await post('/v1/responses', {
        action: act.action,
        node: a.node ?? '',
        containerId,
        pid: act.action === 'RESPONSE_ACTION_KILL_PROCESS' ? pid ?? 0 : 0,
        alertId: a.id,
        reason: `from the console, alert ${a.id}`,
      });
    } catch (e) {
      out.error = e;
    }
    // The API audits every request, done or refused: show the entry it wrote.
    try {
      const target = act.action === 'RESPONSE_ACTION_KILL_PROCESS' && !containerId ? `pid:${pid}` : containerId;
      const r = await get<{ records?: AuditRecord[] }>(`/v1/audit${qs({ sinceNs: since, target, limit: 50 })}`);
      out.audit = (r.records ?? []).filter((x) => (x.action ?? '').startsWith('response.'));
    } catch (e) {
      out.audit = [];
      if (!out.error) out.error = e;
    }
    setOutcome(out);
    setBusy(false);
  };
  return (
    <section aria-labelledby="respond-h">
      <h2 id="respond-h">Response</h2>
      <div class="buttons">
        {ACTIONS.map((x) => (
          <button
            type="button"
            class="danger"
            key={x.action}
            disabled={busy || (!containerId && x.action !== 'RESPONSE_ACTION_KILL_PROCESS')}
            onClick={() => setPending(x)}
            data-action={x.action}
          >
            {x.label}
          </button>
        ))}
      </div>
      <Confirm
        open={pending !== null}
        title={pending ? `${pending.label}?` : ''}
        confirmLabel={pending ? pending.label : 'Confirm'}
        onConfirm={run}
        onCancel={() => setPending(null)}
      >
        <p>
          This asks node <strong>{a.node}</strong> to {pending?.verb} (
          {a.container?.name || shortId(containerId)}
          {pending?.action === 'RESPONSE_ACTION_KILL_PROCESS' ? `, pid ${pid}` : ''}). The request is audited.
        </p>
      </Confirm>
      {outcome ? (
        <div class="outcome" data-testid="response-outcome" aria-live="polite">
          {outcome.ok ? (
            <div class="notice ok" role="status" data-state="done">
              {outcome.action}: {outcome.ok.done ? 'done' : 'not done'}
              {outcome.ok.detail ? ` — ${outcome.ok.detail}` : ''}
            </div>
          ) : (
            <Problem error={outcome.error} what={outcome.action} />
          )}
          <h3>Audit entry</h3>
          {outcome.audit && outcome.audit.length ? (
            <AuditTable records={outcome.audit.slice(-3)} />
          ) : (
            <Empty>No audit entry found for this request.</Empty>
          )}
        </div>
      ) : null}
    </section>
  );
}

export function AuditTable({ records }: { records: AuditRecord[] }) {
  return (
    <table class="grid" data-testid="audit-table">
      <thead>
        <tr>
          <th scope="col">Time</th>
          <th scope="col">Actor</th>
          <th scope="col">Action</th>
          <th scope="col">Target</th>
          <th scope="col">Origin</th>
          <th scope="col">Detail</th>
        </tr>
      </thead>
      <tbody>
        {records.map((r) => (
          <tr key={r.id}>
            <td>
              <Time ns={r.tsNs} />
            </td>
            <td>{r.actor}</td>
            <td>
              <code>{r.action}</code>
            </td>
            <td>{r.target}</td>
            <td>{r.origin}</td>
            <td class="detail">{r.detail}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Triage({ a, onChange }: { a: Alert; onChange: (a: Alert) => void }) {
  const [error, setError] = useState<unknown>(null);
  const [text, setText] = useState('');
  const act = async (verb: string, body: unknown = {}) => {
    setError(null);
    try {
      onChange(await post<Alert>(`/v1/alerts/${encodeURIComponent(a.id)}:${verb}`, body));
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section aria-labelledby="triage-h">
      <h2 id="triage-h">Triage</h2>
      <div class="buttons">
        <button type="button" onClick={() => act('acknowledge')} disabled={a.status === 'ALERT_STATUS_ACKNOWLEDGED'}>
          Acknowledge
        </button>
        <button type="button" onClick={() => act('resolve')} disabled={a.status === 'ALERT_STATUS_RESOLVED'}>
          Resolve
        </button>
        <button type="button" onClick={() => act('reopen')} disabled={a.status === 'ALERT_STATUS_OPEN'}>
          Reopen
        </button>
      </div>
      <form
        class="comment"
        onSubmit={(e) => {
          e.preventDefault();
          if (text.trim()) void act('comment', { text: text.trim() }).then(() => setText(''));
        }}
      >
        <label for="comment">Comment</label>
        <input id="comment" value={text} onInput={(e) => setText((e.target as HTMLInputElement).value)} />
        <button type="submit">Add</button>
      </form>
      {(a.comments ?? []).length ? (
        <ul class="comments">
          {(a.comments ?? []).map((c, i) => (
            <li key={i}>
              <Time ns={c.tsNs} /> <strong>{c.author}</strong>: {c.text}
            </li>
          ))}
        </ul>
      ) : null}
      {error ? <Problem error={error} /> : null}
    </section>
  );
}

/**
 * The incident bundle comes from the server (the node's recorder builds it, as
 * `rampart incident` does): a tar.gz with summary.md, the events, the process tree,
 * connections and files written, 60 s either side of the alert. Analysts and admins only.
 */
function BundleButton({ a }: { a: Alert }) {
  const [state, setState] = useState<{ busy: boolean; error?: unknown; saved?: string }>({ busy: false });
  const run = async () => {
    setState({ busy: true });
    try {
      const { blob, filename } = await download(`/v1/alerts/${encodeURIComponent(a.id ?? '')}/incident${qs({ before: '60s', after: '60s' })}`);
      const url = URL.createObjectURL(blob);
      const link = document.createElement('a');
      link.href = url;
      link.download = filename;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      setState({ busy: false, saved: `${filename} (${blob.size.toLocaleString()} bytes)` });
    } catch (e) {
      setState({ busy: false, error: e });
    }
  };
  return (
    <>
      <button type="button" onClick={() => void run()} disabled={state.busy} data-testid="bundle">
        {state.busy ? 'Building the incident bundle…' : 'Download incident bundle'}
      </button>
      {state.saved ? (
        <span class="muted" role="status" data-testid="bundle-saved">
          {' '}
          saved {state.saved}
        </span>
      ) : null}
      {state.error ? (
        <div data-testid="bundle-error">
          <Problem error={state.error} what="Incident bundle" />
        </div>
      ) : null}
    </>
  );
}

function Timeline({ a }: { a: Alert }) {
  const [v] = useLoad(
    () => post<{ events?: RecordedEvent[]; truncated?: boolean }>('/v1/events:query', timelineQuery(a)),
    [a.id],
  );
  const trigger = nsToDate(a.tsNs)?.getTime();
  return (
    <Show v={v} what="recorder timeline">
      {(r) =>
        (r.events ?? []).length === 0 ? (
          <Empty>The recorder holds no events of this container around the alert.</Empty>
        ) : (
          <>
            <table class="grid timeline" data-testid="timeline">
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Process · object</th>
                </tr>
              </thead>
              <tbody>
                {(r.events ?? []).map((e, i) => (
                  <tr key={i} class={nsToDate(e.tsNs)?.getTime() === trigger ? 'hit' : ''}>
                    <td>
                      <Time ns={e.tsNs} short />
                    </td>
                    <td>{e.kind}</td>
                    <td>
                      <code>{eventSummary(e)}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {r.truncated ? <p class="muted">More events matched than shown (500).</p> : null}
          </>
        )
      }
    </Show>
  );
}

function Edges({ a }: { a: Alert }) {
  const cid = a.container?.id ?? '';
  const [v] = useLoad(() => get<NetworkGraph>('/v1/network/graph'), [a.id]);
  return (
    <Show v={v} what="Network edges">
      {(g) => {
        const edges = (g.edges ?? []).filter((e) => e.source === cid || e.target === cid);
        const label = new Map((g.nodes ?? []).map((n) => [n.id, n.label || n.id]));
        return edges.length === 0 ? (
          <Empty>No network edges of this container.</Empty>
        ) : (
          <table class="grid">
            <thead>
              <tr>
                <th scope="col">From</th>
                <th scope="col">To</th>
                <th scope="col">Port</th>
                <th scope="col">Connections</th>
                <th scope="col">Baseline</th>
              </tr>
            </thead>
            <tbody>
              {edges.map((e, i) => (
                <tr key={i}>
                  <td>{label.get(e.source) ?? e.source}</td>
                  <td>{label.get(e.target) ?? e.target}</td>
                  <td>
                    {e.protocol}/{e.port}
                  </td>
                  <td>{e.connections}</td>
                  <td>{e.anomalous ? <strong class="bad">anomalous</strong> : 'in baseline'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        );
      }}
    </Show>
  );
}

export function AlertDetail({ id }: { id: string }) {
  const [override, setOverride] = useState<Alert | null>(null);
  const [v] = useLoad(() => get<Alert>(`/v1/alerts/${encodeURIComponent(id)}`), [id]);
  return (
    <section class="alert-detail">
      <p>
        <a href="#/alerts">← Alerts</a>
      </p>
      <Show v={v} what="alert">
        {(loaded) => {
          const a = override && override.id === loaded.id ? override : loaded;
          const c = a.container ?? {};
          return (
            <>
              <h1>
                <SevBadge s={a.severity} /> {a.rule}
              </h1>
              <p class="message" data-testid="alert-message">
                {a.message}
              </p>
              <dl class="facts">
                <dt>Time</dt>
                <dd>
                  <Time ns={a.tsNs} />
                  {Number(a.count ?? 1) > 1 ? (
                    <>
                      {' '}
                      ({a.count} events since <Time ns={a.firstTsNs} />)
                    </>
                  ) : null}
                </dd>
                <dt>Status</dt>
                <dd>{enumName(a.status, 'ALERT_STATUS_')}</dd>
                <dt>Priority</dt>
                <dd>{enumName(a.priority, 'PRIORITY_')}</dd>
                <dt>MITRE ATT&amp;CK</dt>
                <dd data-testid="mitre">
                  {(a.mitre ?? []).length
                    ? (a.mitre ?? []).map((m) => (
                        <span class="chip" key={m}>
                          {m}
                        </span>
                      ))
                    : '—'}
                </dd>
                <dt>Node</dt>
                <dd>{a.node}</dd>
                <dt>Container</dt>
                <dd>
                  {c.id ? (
                    <a href={href('containers', c.id)}>{c.name || shortId(c.id)}</a>
                  ) : (
                    'host'
                  )}
                  {c.image ? <span class="muted"> · {c.image}</span> : null}
                  {c.pod ? <span class="muted"> · pod {c.namespace}/{c.pod}</span> : null}
                </dd>
                <dt>Tags</dt>
                <dd>{(a.tags ?? []).join(', ') || '—'}</dd>
              </dl>
              <div class="buttons">
                <BundleButton a={a} />
              </div>
              <section aria-labelledby="tree-h">
                <h2 id="tree-h">Process tree</h2>
                <ProcessTree p={a.event?.process} />
              </section>
              <Triage a={a} onChange={setOverride} />
              <Respond a={a} />
              <section aria-labelledby="timeline-h">
                <h2 id="timeline-h">Recorder timeline (±60 s)</h2>
                {c.id ? <Timeline a={a} /> : <Empty>Host alerts have no container timeline.</Empty>}
              </section>
              <section aria-labelledby="edges-h">
                <h2 id="edges-h">Network edges of the container</h2>
                <Edges a={a} />
              </section>
              {a.outputFields && Object.keys(a.outputFields).length ? (
                <section aria-labelledby="fields-h">
                  <h2 id="fields-h">Output fields</h2>
                  <dl class="facts">
                    {Object.entries(a.outputFields).map(([k, val]) => (
                      <>
                        <dt key={`k${k}`}>{k}</dt>
                        <dd key={`v${k}`}>
                          <code>{typeof val === 'string' ? val : JSON.stringify(val)}</code>
                        </dd>
                      </>
                    ))}
                  </dl>
                </section>
              ) : null}
            </>
          );
        }}
      </Show>
    </section>
  );
}
