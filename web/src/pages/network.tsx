// The network graph (cytoscape.js, loaded only on this page): containers and the
// outside world, edges in the baseline drawn solid and anomalous ones red and dashed,
// filters by namespace and workload, edge details on click, and an edge table for
// keyboard and screen-reader users. Above GROUP_AT nodes, nodes are grouped by
// namespace (else by workload name) into one node per group with the edges between
// groups summed, so 5,000 nodes stay usable; a group expands on click.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { get, qs, type GraphEdge, type GraphNode, type NetworkGraph } from '../api';
import { Empty, Show, Time, useLoad } from '../ui';

const GROUP_AT = 300;

function groupOf(n: GraphNode): string {
  if (n.id.startsWith('external:')) return 'external';
  if (n.namespace) return `ns:${n.namespace}`;
  // Replicas of one workload share their name up to the last dash.
  const label = n.label || n.id;
  return `wl:${label.replace(/[-_.]?[0-9a-f]{4,}$|[-_.]\d+$/i, '')}`;
}

interface View {
  nodes: { id: string; label: string; group: boolean; size: number; namespace: string }[];
  edges: { id: string; source: string; target: string; anomalous: boolean; blocked: boolean; label: string; edges: GraphEdge[] }[];
  grouped: boolean;
}

function buildView(g: NetworkGraph, ns: string, wl: string, expanded: Set<string>): View {
  const wlq = wl.trim().toLowerCase();
  let nodes = (g.nodes ?? []).filter((n) => (!ns || n.namespace === ns) && (!wlq || (n.label || n.id).toLowerCase().includes(wlq)));
  const keep = new Set(nodes.map((n) => n.id));
  let edges = (g.edges ?? []).filter((e) => keep.has(e.source) || keep.has(e.target));
  // Endpoints outside the filter are shown too, so an edge never points nowhere.
  const byId = new Map((g.nodes ?? []).map((n) => [n.id, n]));
  for (const e of edges)
    for (const id of [e.source, e.target])
      if (!keep.has(id)) {
        keep.add(id);
        nodes.push(byId.get(id) ?? { id, label: id });
      }
  const grouped = nodes.length > GROUP_AT;
  const rep = (n: GraphNode) => {
    if (!grouped) return n.id;
    const grp = groupOf(n);
    return expanded.has(grp) ? n.id : grp;
  };
  const repOf = new Map(nodes.map((n) => [n.id, rep(n)]));
  const outNodes = new Map<string, View['nodes'][number]>();
  for (const n of nodes) {
    const r = repOf.get(n.id)!;
    const cur = outNodes.get(r);
    if (cur) cur.size++;
    else
      outNodes.set(r, {
        id: r,
        label: r === n.id ? n.label || n.id : r.replace(/^(ns|wl):/, ''),
        group: r !== n.id,
        size: 1,
        namespace: n.namespace ?? '',
      });
  }
  const outEdges = new Map<string, View['edges'][number]>();
  for (const e of edges) {
    const s = repOf.get(e.source) ?? e.source;
    const t = repOf.get(e.target) ?? e.target;
    const key = `${s}->${t}`;
    const cur = outEdges.get(key);
    if (cur) {
      cur.edges.push(e);
      cur.anomalous ||= !!e.anomalous;
      cur.blocked ||= !!e.blocked;
    } else outEdges.set(key, { id: key, source: s, target: t, anomalous: !!e.anomalous, blocked: !!e.blocked, label: '', edges: [e] });
  }
  for (const e of outEdges.values())
    e.label = e.edges.length === 1 ? `${e.edges[0].protocol ?? ''}/${e.edges[0].port ?? ''}` : `${e.edges.length} flows`;
  return { nodes: [...outNodes.values()], edges: [...outEdges.values()], grouped };
}

function EdgeState({ e }: { e: GraphEdge }) {
  if (e.blocked) return <strong class="bad">blocked ({Number(e.blockedConnections ?? 0).toLocaleString()} refused)</strong>;
  return e.anomalous ? <strong class="bad">anomalous</strong> : <>in baseline</>;
}

function Graph({ view, onEdge, onGroup }: { view: View; onEdge: (id: string) => void; onGroup: (id: string) => void }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    let cy: { destroy(): void } | null = null;
    let cancelled = false;
    void import('cytoscape').then(({ default: cytoscape }) => {
      if (cancelled || !box.current) return;
      const css = getComputedStyle(document.documentElement);
      const fg = css.getPropertyValue('--fg').trim() || '#222';
      const c = cytoscape({
        container: box.current,
        elements: [
          ...view.nodes.map((n) => ({ data: { id: n.id, label: n.group ? `${n.label} (${n.size})` : n.label, group: n.group ? 1 : 0, size: n.size } })),
          ...view.edges.map((e) => ({ data: { id: e.id, source: e.source, target: e.target, label: e.label, anomalous: e.anomalous ? 1 : 0, blocked: e.blocked ? 1 : 0 } })),
        ],
        style: [
          { selector: 'node', style: { label: 'data(label)', color: fg, 'font-size': 10, 'background-color': '#4a7bd0', width: 18, height: 18 } },
          { selector: 'node[group = 1]', style: { shape: 'round-rectangle', 'background-color': '#7a5cc4', width: 'mapData(size, 1, 500, 22, 70)', height: 'mapData(size, 1, 500, 22, 70)' } },
          { selector: 'edge', style: { width: 1.5, 'line-color': '#8a8f98', 'target-arrow-color': '#8a8f98', 'target-arrow-shape': 'triangle', 'curve-style': 'bezier', label: 'data(label)', 'font-size': 8, color: fg } },
          { selector: 'edge[anomalous = 1]', style: { 'line-color': '#d23c3c', 'target-arrow-color': '#d23c3c', 'line-style': 'dashed', width: 2.5 } },
          { selector: 'edge[blocked = 1]', style: { 'line-color': '#6b0f0f', 'target-arrow-color': '#6b0f0f', 'target-arrow-shape': 'tee', 'line-style': 'dotted', width: 3 } },
        ],
        layout: view.nodes.length <= 200 ? { name: 'cose', animate: false } : { name: 'grid' },
        wheelSensitivity: 0.3,
      });
      c.on('tap', 'edge', (ev) => onEdge(ev.target.id()));
      c.on('tap', 'node[group = 1]', (ev) => onGroup(ev.target.id()));
      cy = c;
    });
    return () => {
      cancelled = true;
      cy?.destroy();
    };
  }, [view]);
  return <div ref={box} class="graph" role="img" aria-label={`Network graph: ${view.nodes.length} nodes, ${view.edges.length} edges; the table below lists the edges`} data-testid="graph" />;
}

export function NetworkPage() {
  const [v] = useLoad(() => get<NetworkGraph>(`/v1/network/graph${qs({})}`), []);
  return (
    <section>
      <h1>Network</h1>
      <Show v={v} what="Network graph">
        {(g) => <NetworkView g={g} />}
      </Show>
    </section>
  );
}

function NetworkView({ g }: { g: NetworkGraph }) {
  const [ns, setNs] = useState('');
  const [wl, setWl] = useState('');
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const [picked, setPicked] = useState<string | null>(null);
  const namespaces = useMemo(() => [...new Set((g.nodes ?? []).map((n) => n.namespace ?? '').filter(Boolean))].sort(), [g]);
  const view = useMemo(() => buildView(g, ns, wl, expanded), [g, ns, wl, expanded]);
  const label = useMemo(() => new Map((g.nodes ?? []).map((n) => [n.id, n.label || n.id])), [g]);
  if ((g.nodes ?? []).length === 0) return <Empty>No flow seen yet.</Empty>;
  const edge = view.edges.find((e) => e.id === picked);
  return (
    <>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Graph filters">
        <label>
          Namespace
          <select value={ns} onChange={(e) => setNs((e.target as HTMLSelectElement).value)}>
            <option value="">all</option>
            {namespaces.map((n) => (
              <option key={n}>{n}</option>
            ))}
          </select>
        </label>
        <label>
          Workload
          <input value={wl} onInput={(e) => setWl((e.target as HTMLInputElement).value)} placeholder="name contains" />
        </label>
        {expanded.size ? (
          <button type="button" onClick={() => setExpanded(new Set())}>
            Collapse groups
          </button>
        ) : null}
      </form>
      <p class="muted">
        {(g.nodes ?? []).length.toLocaleString()} nodes, {(g.edges ?? []).length.toLocaleString()} edges
        {view.grouped ? ` · grouped (over ${GROUP_AT} nodes): click a group to open it` : ''} · solid: in the baseline, red dashed: anomalous, dark red dotted ending in a bar: blocked
      </p>
      <Graph view={view} onEdge={setPicked} onGroup={(id) => setExpanded(new Set([...expanded, id]))} />
      {edge ? (
        <div class="card" aria-live="polite">
          <h2>
            {label.get(edge.source) ?? edge.source} → {label.get(edge.target) ?? edge.target}
          </h2>
          <ul class="plain">
            {edge.edges.slice(0, 50).map((e, i) => (
              <li key={i}>
                {e.protocol}/{e.port}: {e.connections} connections, {e.bytes ?? 0} bytes, last <Time ns={e.lastSeenNs} />{' '}
                <EdgeState e={e} />
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      <table class="grid" data-testid="edges">
        <caption>Edges</caption>
        <thead>
          <tr>
            <th scope="col">From</th>
            <th scope="col">To</th>
            <th scope="col">Protocol/port</th>
            <th scope="col">Connections</th>
            <th scope="col">Baseline</th>
            <th scope="col">Blocked</th>
          </tr>
        </thead>
        <tbody>
          {view.edges.slice(0, 500).map((e) => (
            <tr key={e.id}>
              <td>{label.get(e.source) ?? e.source}</td>
              <td>{label.get(e.target) ?? e.target}</td>
              <td>{e.label}</td>
              <td>{e.edges.reduce((n, x) => n + Number(x.connections ?? 0), 0)}</td>
              <td>{e.blocked ? <strong class="bad">blocked</strong> : e.anomalous ? <strong class="bad">anomalous</strong> : 'in baseline'}</td>
              <td data-blocked={e.blocked ? 'true' : 'false'}>{e.blocked ? e.edges.reduce((n, x) => n + Number(x.blockedConnections ?? 0), 0) : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
