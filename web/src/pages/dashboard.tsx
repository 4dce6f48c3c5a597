// The dashboard: alerts by severity over the last 24 hours (hourly, stacked), a MITRE
// ATT&CK heat map of what fired (tactics from the rules' `mitre_*` tags), the top
// risky workloads with their breakdown, node health (version, kernel, hooks, drops),
// and vulnerabilities.
import { get, qs, type Alert, type ListAlertsResponse, type NodeHealth, type VulnerabilityList, type WorkloadRisk } from '../api';
import { href } from '../nav';
import { Empty, SEVERITIES, SevBadge, Show, Time, nsToDate, sevName, useLoad } from '../ui';

const HOURS = 24;
const DASH_PAGES = 10;

async function recentAlerts(): Promise<{ alerts: Alert[]; truncated: boolean }> {
  const since = BigInt(Date.now() - HOURS * 3600_000) * 1_000_000n;
  const out: Alert[] = [];
  let token = '';
  for (let i = 0; i < DASH_PAGES; i++) {
    const r = await get<ListAlertsResponse>(`/v1/alerts${qs({ sinceNs: String(since), limit: 1000, pageToken: token })}`);
    out.push(...(r.alerts ?? []));
    token = r.nextPageToken ?? '';
    if (!token) return { alerts: out, truncated: false };
  }
  return { alerts: out, truncated: true };
}

function SeverityChart({ alerts }: { alerts: Alert[] }) {
  const now = Date.now();
  const start = now - HOURS * 3600_000;
  const sevs = [...SEVERITIES].reverse().map(sevName);
  const buckets = Array.from({ length: HOURS }, () => Object.fromEntries(sevs.map((s) => [s, 0])) as Record<string, number>);
  for (const a of alerts) {
    const t = nsToDate(a.tsNs)?.getTime() ?? 0;
    const b = Math.floor((t - start) / 3600_000);
    const s = sevName(a.severity);
    if (b >= 0 && b < HOURS && s in buckets[b]) buckets[b][s]++;
  }
  const max = Math.max(1, ...buckets.map((b) => sevs.reduce((n, s) => n + b[s], 0)));
  const W = 720;
  const H = 160;
  const bw = W / HOURS;
  const hourFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  return (
    <figure>
      <svg viewBox={`0 0 ${W} ${H + 20}`} class="chart" role="img" aria-label={`Alerts per hour by severity, last ${HOURS} hours; at most ${max} in an hour`}>
        {buckets.map((b, i) => {
          let y = H;
          return (
            <g key={i}>
              {sevs.map((s) => {
                const h = (b[s] / max) * H;
                y -= h;
                return h > 0 ? (
                  <rect key={s} x={i * bw + 1} y={y} width={bw - 2} height={h} class={`bar-${s}`}>
                    <title>
                      {hourFmt.format(start + i * 3600_000)}: {b[s]} {s}
                    </title>
                  </rect>
                ) : null;
              })}
            </g>
          );
        })}
        {[0, 6, 12, 18, 23].map((i) => (
          <text key={i} x={i * bw + 2} y={H + 14} class="axis">
            {hourFmt.format(start + i * 3600_000)}
          </text>
        ))}
      </svg>
      <figcaption>
        {sevs
          .slice()
          .reverse()
          .map((s) => (
            <span key={s} class="legend">
              <span class={`swatch bar-${s}`} /> {s}
            </span>
          ))}
      </figcaption>
    </figure>
  );
}

const TACTICS = [
  'initial_access',
  'execution',
  'persistence',
  'privilege_escalation',
  'defense_evasion',
  'credential_access',
  'discovery',
  'lateral_movement',
  'collection',
  'command_and_control',
  'exfiltration',
  'impact',
];

function MitreHeatMap({ alerts }: { alerts: Alert[] }) {
  const cells = new Map<string, Map<string, number>>();
  for (const a of alerts) {
    const tactics = (a.tags ?? []).filter((t) => t.startsWith('mitre_')).map((t) => t.slice(6));
    const n = Number(a.count ?? 1);
    for (const tactic of tactics.length ? tactics : ['unmapped']) {
      for (const tech of a.mitre ?? []) {
        let row = cells.get(tactic);
        if (!row) cells.set(tactic, (row = new Map()));
        row.set(tech, (row.get(tech) ?? 0) + n);
      }
    }
  }
  if (cells.size === 0) return <Empty>No alert with MITRE ids in the last {HOURS} hours.</Empty>;
  const max = Math.max(...[...cells.values()].flatMap((r) => [...r.values()]));
  const order = [...TACTICS, 'unmapped'].filter((t) => cells.has(t)).concat([...cells.keys()].filter((t) => !TACTICS.includes(t) && t !== 'unmapped'));
  return (
    <table class="heat" aria-label="MITRE ATT&CK techniques that fired, by tactic">
      <tbody>
        {order.map((tactic) => (
          <tr key={tactic}>
            <th scope="row">{tactic.replace(/_/g, ' ')}</th>
            <td>
              {[...(cells.get(tactic) ?? new Map()).entries()]
                .sort((a, b) => b[1] - a[1])
                .map(([tech, n]) => (
                  <span
                    key={tech}
                    class="heat-cell"
                    style={{ '--heat': String(0.15 + 0.85 * (n / max)) }}
                    title={`${tech}: ${n} alerts`}
                  >
                    {tech} <small>{n}</small>
                  </span>
                ))}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Risks() {
  const [v] = useLoad(() => get<{ risks?: WorkloadRisk[] }>('/v1/risks?limit=10'), []);
  return (
    <Show v={v} what="Top risky workloads">
      {(r) =>
        (r.risks ?? []).length === 0 ? (
          <Empty>No workload has a risk score yet.</Empty>
        ) : (
          <ol class="risks">
            {(r.risks ?? []).map((w) => (
              <li key={w.workload}>
                <strong>{w.workload}</strong> <span class="score">{(w.score ?? 0).toFixed(1)}</span>
                <ul>
                  {(w.factors ?? []).map((f, i) => (
                    <li key={i}>
                      {f.name} ({(f.weight ?? 0).toFixed(1)}){f.detail ? `: ${f.detail}` : ''}
                    </li>
                  ))}
                </ul>
              </li>
            ))}
          </ol>
        )
      }
    </Show>
  );
}

export function NodeHealthTable() {
  const [v] = useLoad(() => get<{ nodes?: NodeHealth[] }>('/v1/health/sensors'), []);
  return (
    <Show v={v} what="Node health">
      {(r) =>
        (r.nodes ?? []).length === 0 ? (
          <Empty>No node has reported yet.</Empty>
        ) : (
          <table class="grid" data-testid="node-health">
            <thead>
              <tr>
                <th scope="col">Node</th>
                <th scope="col">State</th>
                <th scope="col">Version</th>
                <th scope="col">Kernel</th>
                <th scope="col">Hooks</th>
                <th scope="col">Drops</th>
                <th scope="col">Last seen</th>
              </tr>
            </thead>
            <tbody>
              {(r.nodes ?? []).map((n) => {
                const drops = (n.drops ?? []).reduce((s, d) => s + Number(d.count ?? 0), 0);
                return (
                  <tr key={n.node}>
                    <td>{n.node}</td>
                    <td>{n.alive ? <span class="good">alive</span> : <span class="bad">silent</span>}</td>
                    <td>{n.version}</td>
                    <td>{n.detailReported ? n.kernel : <span class="muted">not reported</span>}</td>
                    <td>
                      {n.detailReported
                        ? (n.hooks ?? []).map((h) => `${h.name}: ${h.kind}${h.attached ? '' : ' (detached)'}`).join(', ')
                        : '—'}
                    </td>
                    <td title={(n.drops ?? []).map((d) => `${d.source}: ${d.count}`).join(', ')}>
                      {n.detailReported ? drops.toLocaleString() : '—'}
                    </td>
                    <td>
                      <Time ns={n.lastSeenNs} />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )
      }
    </Show>
  );
}

function Vulns() {
  // Every severity: what the last database update (or a new image since) brought is
  // the point, whatever its severity; the list shows the new ones first.
  const [v] = useLoad(() => get<VulnerabilityList>('/v1/vulnerabilities?limit=1000'), []);
  return (
    <Show v={v} what="Vulnerabilities">
      {(r) => {
        const all = r.vulnerabilities ?? [];
        const newOnes = all.filter((x) => x.newSinceDbUpdate);
        const shown = [...newOnes, ...all.filter((x) => !x.newSinceDbUpdate && ['SEVERITY_HIGH', 'SEVERITY_CRITICAL'].includes(String(x.severity)))].slice(0, 10);
        return (
          <>
            <p data-testid="vulns-new">
              <strong>{Number(r.newSinceDbUpdate ?? 0).toLocaleString()}</strong> new since the last database update
              {r.dbUpdatedNs && r.dbUpdatedNs !== '0' ? (
                <>
                  {' '}
                  (<Time ns={r.dbUpdatedNs} />)
                </>
              ) : (
                ' (no update reported)'
              )}
              {' · '}
              {all.length.toLocaleString()} findings in all
            </p>
            {shown.length === 0 ? (
              <Empty>No new, high or critical vulnerability.</Empty>
            ) : (
              <ul>
                {shown.map((x) => (
                  <li key={`${x.id}${x.package}${x.version}`}>
                    <SevBadge s={x.severity} /> <code>{x.id}</code> {x.package} {x.version}
                    {x.fixedVersion ? ` (fixed in ${x.fixedVersion})` : ''}
                    {x.inUse ? <strong> in use</strong> : null}
                    {x.newSinceDbUpdate ? <strong> new</strong> : null}
                  </li>
                ))}
              </ul>
            )}
          </>
        );
      }}
    </Show>
  );
}

export function Dashboard() {
  const [v] = useLoad(recentAlerts, []);
  return (
    <section class="dashboard">
      <h1>Dashboard</h1>
      <div class="cards">
        <section class="card wide" aria-labelledby="sev-h">
          <h2 id="sev-h">Alerts by severity, last {HOURS} hours</h2>
          <Show v={v} what="alerts">
            {(r) => (
              <>
                <SeverityChart alerts={r.alerts} />
                <p class="muted">
                  {r.alerts.length.toLocaleString()} alerts{r.truncated ? ' (the newest 10,000)' : ''} ·{' '}
                  <a href={href('alerts')}>all alerts</a>
                </p>
              </>
            )}
          </Show>
        </section>
        <section class="card wide" aria-labelledby="mitre-h">
          <h2 id="mitre-h">MITRE ATT&amp;CK, last {HOURS} hours</h2>
          <Show v={v} what="alerts">
            {(r) => <MitreHeatMap alerts={r.alerts} />}
          </Show>
        </section>
        <section class="card" aria-labelledby="risk-h">
          <h2 id="risk-h">Top risky workloads</h2>
          <Risks />
        </section>
        <section class="card" aria-labelledby="vuln-h">
          <h2 id="vuln-h">Vulnerabilities: new since the last database update, high and critical</h2>
          <Vulns />
        </section>
        <section class="card wide" aria-labelledby="health-h">
          <h2 id="health-h">Node health</h2>
          <NodeHealthTable />
        </section>
      </div>
    </section>
  );
}
