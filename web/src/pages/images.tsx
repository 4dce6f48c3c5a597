// Images and vulnerabilities: the images seen running, their scans (with the SBOM),
// and findings with severity, fix version, in-use status and the layer that brought
// the package in (when the scan names it).
import { useState } from 'preact/hooks';
import { get, qs, type VulnerabilityList } from '../api';
import { Empty, Problem, SEVERITIES, SevBadge, Show, Time, sevName, shortId, useLoad } from '../ui';

interface Image {
  image?: string;
  digest?: string;
  firstSeenNs?: string;
  lastSeenNs?: string;
  containers?: string;
}
interface ScanResult {
  id?: string;
  target?: string;
  tsNs?: string;
  packages?: string;
  vulnerabilities?: string;
  secrets?: string;
  malware?: string;
}

function Sbom({ id }: { id: string }) {
  const [v] = useLoad(() => get<{ format?: string; document?: string }>(`/v1/scans/${encodeURIComponent(id)}/sbom`), [id]);
  return (
    <Show v={v} what="SBOM">
      {(s) => {
        let comps: { name?: string; version?: string; purl?: string }[] = [];
        try {
          const doc = JSON.parse(s.document ?? '{}');
          comps = doc.components ?? doc.packages?.map((p: { name?: string; versionInfo?: string }) => ({ name: p.name, version: p.versionInfo })) ?? [];
        } catch {
          return <Problem error="The SBOM document is not JSON." />;
        }
        return (
          <table class="grid">
            <caption>
              {comps.length} packages ({s.format})
            </caption>
            <thead>
              <tr>
                <th scope="col">Package</th>
                <th scope="col">Version</th>
                <th scope="col">purl</th>
              </tr>
            </thead>
            <tbody>
              {comps.slice(0, 2000).map((c, i) => (
                <tr key={i}>
                  <td>{c.name}</td>
                  <td>{c.version}</td>
                  <td>
                    <code>{c.purl}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        );
      }}
    </Show>
  );
}

export function ImagesPage() {
  const [images] = useLoad(() => get<{ images?: Image[] }>('/v1/images'), []);
  const [scans] = useLoad(() => get<{ results?: ScanResult[] }>('/v1/scans?limit=200'), []);
  const [severity, setSeverity] = useState('');
  const [fixable, setFixable] = useState(false);
  const [image, setImage] = useState('');
  const [vulns] = useLoad(
    () => get<VulnerabilityList>(`/v1/vulnerabilities${qs({ severity, fixableOnly: fixable, image, limit: 1000 })}`),
    [severity, fixable, image],
  );
  const [sbom, setSbom] = useState<string | null>(null);
  return (
    <section>
      <h1>Images and vulnerabilities</h1>
      <h2>Images</h2>
      <Show v={images} what="images">
        {(r) =>
          (r.images ?? []).length === 0 ? (
            <Empty>No image seen yet.</Empty>
          ) : (
            <table class="grid" data-testid="images">
              <thead>
                <tr>
                  <th scope="col">Image</th>
                  <th scope="col">Digest</th>
                  <th scope="col">Containers</th>
                  <th scope="col">First seen</th>
                  <th scope="col">Last seen</th>
                  <th scope="col">Findings</th>
                </tr>
              </thead>
              <tbody>
                {(r.images ?? []).map((i) => (
                  <tr key={`${i.image}${i.digest}`}>
                    <td>{i.image}</td>
                    <td>
                      <code title={i.digest}>{shortId(i.digest?.replace('sha256:', ''))}</code>
                    </td>
                    <td>{i.containers}</td>
                    <td>
                      <Time ns={i.firstSeenNs} />
                    </td>
                    <td>
                      <Time ns={i.lastSeenNs} />
                    </td>
                    <td>
                      <button type="button" onClick={() => setImage(i.image ?? '')}>
                        Show findings
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Show>
      <h2>Scans</h2>
      <Show v={scans} what="Scan results">
        {(r) =>
          (r.results ?? []).length === 0 ? (
            <Empty>No scan yet.</Empty>
          ) : (
            <table class="grid">
              <thead>
                <tr>
                  <th scope="col">Target</th>
                  <th scope="col">Time</th>
                  <th scope="col">Packages</th>
                  <th scope="col">Vulnerabilities</th>
                  <th scope="col">Secrets</th>
                  <th scope="col">Malware</th>
                  <th scope="col">SBOM</th>
                </tr>
              </thead>
              <tbody>
                {(r.results ?? []).map((s) => (
                  <tr key={s.id}>
                    <td>{s.target}</td>
                    <td>
                      <Time ns={s.tsNs} />
                    </td>
                    <td>{s.packages}</td>
                    <td>{s.vulnerabilities}</td>
                    <td>{s.secrets}</td>
                    <td>{s.malware}</td>
                    <td>
                      <button type="button" onClick={() => setSbom(s.id ?? null)}>
                        SBOM
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Show>
      {sbom ? <Sbom id={sbom} /> : null}
      <h2>Vulnerabilities{image ? ` in ${image}` : ''}</h2>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Vulnerability filters">
        <label>
          Severity
          <select value={severity} onChange={(e) => setSeverity((e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {SEVERITIES.map((s) => (
              <option key={s} value={s}>
                {sevName(s)} or higher
              </option>
            ))}
          </select>
        </label>
        <label class="inline">
          <input type="checkbox" checked={fixable} onChange={(e) => setFixable((e.target as HTMLInputElement).checked)} /> fixable
          only
        </label>
        {image ? (
          <button type="button" onClick={() => setImage('')}>
            All images
          </button>
        ) : null}
      </form>
      <Show v={vulns} what="Vulnerabilities">
        {(r) =>
          (r.vulnerabilities ?? []).length === 0 ? (
            <Empty>No vulnerability matches.</Empty>
          ) : (
            <table class="grid" data-testid="vulns">
              <thead>
                <tr>
                  <th scope="col">Severity</th>
                  <th scope="col">Id</th>
                  <th scope="col">Package</th>
                  <th scope="col">Fixed in</th>
                  <th scope="col">In use</th>
                  <th scope="col">Introduced in layer</th>
                  <th scope="col">Images</th>
                  <th scope="col">Summary</th>
                </tr>
              </thead>
              <tbody>
                {(r.vulnerabilities ?? []).map((x) => (
                  <tr key={`${x.id}${x.package}${x.version}`}>
                    <td>
                      <SevBadge s={x.severity} />
                    </td>
                    <td>
                      <code>{x.id}</code>
                    </td>
                    <td>
                      {x.package} {x.version} <span class="muted">{x.ecosystem}</span>
                    </td>
                    <td>{x.fixedVersion || '—'}</td>
                    <td>{x.inUse ? <strong>in use</strong> : 'no'}</td>
                    <td data-testid="vuln-layer">
                      {x.layerDigest ? (
                        <>
                          {/* The canonical JSON leaves 0 (the base layer) out; -1 is unknown. */}
                          {(x.layerIndex ?? 0) >= 0 ? `#${x.layerIndex ?? 0} ` : ''}
                          <code title={x.layerDigest}>{x.layerDigest.replace(/^sha256:/, '').slice(0, 12)}</code>
                          {x.layerCommand ? <div class="muted">{x.layerCommand}</div> : null}
                        </>
                      ) : (
                        '—'
                      )}
                      {x.newSinceDbUpdate ? <strong> new</strong> : null}
                    </td>
                    <td>{(x.images ?? []).join(', ')}</td>
                    <td>{x.summary}</td>
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
