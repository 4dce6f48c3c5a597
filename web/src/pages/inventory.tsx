// Workloads and containers (removed ones included): the inventory, each workload with
// its containers, images, risk, baseline (mode switchable, lock) and alerts, each
// container with its lifecycle history and alerts.
import { useState } from 'preact/hooks';
import { get, post, qs, type Alert, type Container, type ListAlertsResponse, type Workload, type WorkloadRisk } from '../api';
import { href } from '../nav';
import { Empty, Problem, SevBadge, Show, Time, enumName, shortId, useLoad } from '../ui';

function workloadHref(w: Workload): string {
  return href('workloads', w.kind ?? 'Image', w.namespace || '-', w.name ?? '');
}

/** The workload name the baseline and risk services key on: `namespace/name` or the name. */
function workloadKey(w: Workload): string {
  return w.namespace ? `${w.namespace}/${w.name}` : w.name ?? '';
}

export function WorkloadsPage() {
  const [removed, setRemoved] = useState(true);
  const [v] = useLoad(() => get<{ workloads?: Workload[] }>(`/v1/workloads${qs({ includeRemoved: removed, limit: 1000 })}`), [removed]);
  return (
    <section>
      <h1>Workloads</h1>
      <label class="inline">
        <input type="checkbox" checked={removed} onChange={(e) => setRemoved((e.target as HTMLInputElement).checked)} /> include
        workloads whose containers are gone
      </label>
      <Show v={v} what="workloads">
        {(r) =>
          (r.workloads ?? []).length === 0 ? (
            <Empty>No workload yet.</Empty>
          ) : (
            <table class="grid" data-testid="workloads">
              <thead>
                <tr>
                  <th scope="col">Workload</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Namespace</th>
                  <th scope="col">Running</th>
                  <th scope="col">Containers</th>
                  <th scope="col">Images</th>
                  <th scope="col">Nodes</th>
                  <th scope="col">Last seen</th>
                </tr>
              </thead>
              <tbody>
                {(r.workloads ?? []).map((w) => (
                  <tr key={workloadHref(w)}>
                    <td>
                      <a href={workloadHref(w)}>{w.name}</a>
                    </td>
                    <td>{w.kind}</td>
                    <td>{w.namespace || '—'}</td>
                    <td>{w.running ?? '0'}</td>
                    <td>{(w.containerIds ?? []).length}</td>
                    <td>{(w.images ?? []).join(', ')}</td>
                    <td>{(w.nodes ?? []).join(', ')}</td>
                    <td>
                      <Time ns={w.lastSeenNs} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Show>
    </section>
  );
}

function AlertsOf({ containerIds }: { containerIds: string[] }) {
  const [v] = useLoad(async () => {
    const out: Alert[] = [];
    for (const id of containerIds.slice(0, 20)) {
      const r = await get<ListAlertsResponse>(`/v1/alerts${qs({ containerId: id, limit: 20 })}`);
      out.push(...(r.alerts ?? []));
    }
    return out.sort((a, b) => Number(BigInt(b.tsNs ?? '0') - BigInt(a.tsNs ?? '0'))).slice(0, 50);
  }, [containerIds.join(',')]);
  return (
    <Show v={v} what="alerts">
      {(alerts) =>
        alerts.length === 0 ? (
          <Empty>No alert.</Empty>
        ) : (
          <ul class="plain">
            {alerts.map((a) => (
              <li key={a.id}>
                <Time ns={a.tsNs} short /> <SevBadge s={a.severity} /> <a href={href('alerts', a.id)}>{a.rule}</a>{' '}
                <span class="muted">{a.container?.name}</span>
              </li>
            ))}
          </ul>
        )
      }
    </Show>
  );
}

const MODES = ['BASELINE_MODE_LEARN', 'BASELINE_MODE_DETECT', 'BASELINE_MODE_ENFORCE'];

interface Baseline {
  workload?: string;
  mode?: string;
  locked?: boolean;
  processes?: string[];
  files?: string[];
  connections?: string[];
  updatedNs?: string;
}

function BaselineView({ workload }: { workload: string }) {
  const [override, setOverride] = useState<Baseline | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [v] = useLoad(() => get<Baseline>(`/v1/baselines/${encodeURIComponent(workload)}`), [workload]);
  const change = async (verb: string, body: unknown) => {
    setError(null);
    try {
      setOverride(await post<Baseline>(`/v1/baselines/${encodeURIComponent(workload)}:${verb}`, body));
    } catch (e) {
      setError(e);
    }
  };
  return (
    <Show v={v} what="Baseline">
      {(loaded) => {
        const b = override ?? loaded;
        return (
          <>
            <p>
              Mode:{' '}
              {MODES.map((m) => (
                <button type="button" key={m} aria-pressed={b.mode === m} onClick={() => change('setMode', { mode: m })}>
                  {enumName(m, 'BASELINE_MODE_')}
                </button>
              ))}{' '}
              <button type="button" onClick={() => change('lock', { locked: !b.locked })}>
                {b.locked ? 'Unlock' : 'Lock'}
              </button>{' '}
              <span class="muted">
                {b.locked ? 'locked' : 'not locked'} · updated <Time ns={b.updatedNs} />
              </span>
            </p>
            {error ? <Problem error={error} /> : null}
            <div class="cols">
              {(
                [
                  ['Processes', b.processes],
                  ['Files', b.files],
                  ['Connections', b.connections],
                ] as [string, string[] | undefined][]
              ).map(([t, xs]) => (
                <div key={t}>
                  <h3>{t}</h3>
                  {(xs ?? []).length ? (
                    <ul class="plain">
                      {(xs ?? []).slice(0, 200).map((x) => (
                        <li key={x}>
                          <code>{x}</code>
                        </li>
                      ))}
                    </ul>
                  ) : (
                    <Empty>none</Empty>
                  )}
                </div>
              ))}
            </div>
          </>
        );
      }}
    </Show>
  );
}

function RiskOf({ workload }: { workload: string }) {
  const [v] = useLoad(() => get<{ risks?: WorkloadRisk[] }>('/v1/risks?limit=1000'), [workload]);
  return (
    <Show v={v} what="Risk">
      {(r) => {
        const w = (r.risks ?? []).find((x) => x.workload === workload);
        if (!w) return <Empty>No risk score for this workload.</Empty>;
        return (
          <p>
            Score <strong>{(w.score ?? 0).toFixed(1)}</strong>:{' '}
            {(w.factors ?? []).map((f) => `${f.name} ${(f.weight ?? 0).toFixed(1)}${f.detail ? ` (${f.detail})` : ''}`).join('; ')}
          </p>
        );
      }}
    </Show>
  );
}

function VulnsOf({ images }: { images: string[] }) {
  const [v] = useLoad(async () => {
    const out = [];
    for (const image of images.slice(0, 5)) {
      const r = await get<{ vulnerabilities?: import('../api').Vulnerability[] }>(`/v1/vulnerabilities${qs({ image, limit: 100 })}`);
      out.push(...(r.vulnerabilities ?? []));
    }
    return out;
  }, [images.join(',')]);
  return (
    <Show v={v} what="Vulnerabilities">
      {(vs) =>
        vs.length === 0 ? (
          <Empty>No vulnerability found in its images.</Empty>
        ) : (
          <ul class="plain">
            {vs.map((x) => (
              <li key={`${x.id}${x.package}`}>
                <SevBadge s={x.severity} /> <code>{x.id}</code> {x.package} {x.version}
                {x.fixedVersion ? ` → ${x.fixedVersion}` : ''}
                {x.inUse ? <strong> in use</strong> : null}
              </li>
            ))}
          </ul>
        )
      }
    </Show>
  );
}

export function WorkloadDetail({ kind, namespace, name }: { kind: string; namespace: string; name: string }) {
  const [v] = useLoad(
    () => get<{ workloads?: Workload[] }>(`/v1/workloads${qs({ includeRemoved: true, limit: 1000, namespace, kind })}`),
    [kind, namespace, name],
  );
  return (
    <section>
      <p>
        <a href="#/workloads">← Workloads</a>
      </p>
      <h1>
        {kind} {namespace ? `${namespace}/` : ''}
        {name}
      </h1>
      <Show v={v} what="workload">
        {(r) => {
          const w = (r.workloads ?? []).find((x) => x.name === name && (x.namespace ?? '') === namespace && x.kind === kind);
          if (!w) return <Problem error={`No workload ${kind} ${namespace}/${name} in the inventory.`} />;
          const key = workloadKey(w);
          return (
            <>
              <dl class="facts">
                <dt>Running containers</dt>
                <dd>{w.running ?? 0}</dd>
                <dt>Images</dt>
                <dd>{(w.images ?? []).join(', ')}</dd>
                <dt>Nodes</dt>
                <dd>{(w.nodes ?? []).join(', ')}</dd>
                <dt>Seen</dt>
                <dd>
                  <Time ns={w.firstSeenNs} /> – <Time ns={w.lastSeenNs} />
                </dd>
              </dl>
              <h2>Containers</h2>
              <ul class="plain">
                {(w.containerIds ?? []).map((id) => (
                  <li key={id}>
                    <a href={href('containers', id)}>
                      <code>{shortId(id)}</code>
                    </a>
                  </li>
                ))}
              </ul>
              <h2>Risk</h2>
              <RiskOf workload={key} />
              <h2>Baseline</h2>
              <BaselineView workload={key} />
              <h2>Alerts</h2>
              <AlertsOf containerIds={w.containerIds ?? []} />
              <h2>Vulnerabilities</h2>
              <VulnsOf images={w.images ?? []} />
            </>
          );
        }}
      </Show>
    </section>
  );
}

export function ContainersPage() {
  const [removed, setRemoved] = useState(true);
  const [v] = useLoad(() => get<{ containers?: Container[] }>(`/v1/containers${qs({ includeRemoved: removed, limit: 1000 })}`), [removed]);
  return (
    <section>
      <h1>Containers</h1>
      <label class="inline">
        <input type="checkbox" checked={removed} onChange={(e) => setRemoved((e.target as HTMLInputElement).checked)} /> include
        stopped and exited containers
      </label>
      <Show v={v} what="containers">
        {(r) =>
          (r.containers ?? []).length === 0 ? (
            <Empty>No container yet.</Empty>
          ) : (
            <table class="grid" data-testid="containers">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Id</th>
                  <th scope="col">State</th>
                  <th scope="col">Image</th>
                  <th scope="col">Node</th>
                  <th scope="col">Started</th>
                  <th scope="col">Finished</th>
                </tr>
              </thead>
              <tbody>
                {(r.containers ?? []).map((c) => (
                  <tr key={c.id}>
                    <td>
                      <a href={href('containers', c.id)}>{c.name || shortId(c.id)}</a>
                    </td>
                    <td>
                      <code>{shortId(c.id)}</code>
                    </td>
                    <td>
                      {enumName(c.state, 'CONTAINER_STATE_')}
                      {c.hasExitCode ? ` (exit ${c.exitCode ?? 0})` : ''}
                    </td>
                    <td>{c.image}</td>
                    <td>{c.node}</td>
                    <td>
                      <Time ns={c.startedNs || c.firstSeenNs} />
                    </td>
                    <td>
                      <Time ns={c.finishedNs} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Show>
    </section>
  );
}

export function ContainerDetail({ id }: { id: string }) {
  const [v] = useLoad(async () => {
    const [list, history] = await Promise.all([
      get<{ containers?: Container[] }>(`/v1/containers${qs({ includeRemoved: true, limit: 1000 })}`),
      get<{ changes?: { tsNs?: string; action?: string; exitCode?: string }[] }>(`/v1/containers/${encodeURIComponent(id)}/history`),
    ]);
    return { c: (list.containers ?? []).find((x) => x.id === id || x.id.startsWith(id)), history: history.changes ?? [] };
  }, [id]);
  return (
    <section>
      <p>
        <a href="#/containers">← Containers</a>
      </p>
      <Show v={v} what="container">
        {({ c, history }) => (
          <>
            <h1>{c?.name || shortId(id)}</h1>
            {c ? (
              <dl class="facts">
                <dt>Id</dt>
                <dd>
                  <code>{c.id}</code>
                </dd>
                <dt>State</dt>
                <dd>{enumName(c.state, 'CONTAINER_STATE_')}</dd>
                <dt>Image</dt>
                <dd>
                  {c.image} <span class="muted">{c.imageDigest}</span>
                </dd>
                <dt>Node</dt>
                <dd>{c.node}</dd>
                <dt>Seen</dt>
                <dd>
                  <Time ns={c.firstSeenNs} /> – <Time ns={c.lastSeenNs} />
                </dd>
              </dl>
            ) : (
              <Empty>Not in the inventory.</Empty>
            )}
            <h2>Lifecycle</h2>
            {history.length === 0 ? (
              <Empty>No lifecycle change recorded.</Empty>
            ) : (
              <ul class="plain">
                {history.map((h, i) => (
                  <li key={i}>
                    <Time ns={h.tsNs} /> {h.action}
                    {h.action !== 'start' && h.exitCode !== undefined ? ` (exit ${h.exitCode})` : ''}
                  </li>
                ))}
              </ul>
            )}
            <h2>Alerts</h2>
            <AlertsOf containerIds={[c?.id ?? id]} />
          </>
        )}
      </Show>
    </section>
  );
}
