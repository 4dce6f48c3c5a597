// Policies: the detection rules (enable or disable by deploying, validate a rules
// file) and the response policies (list, validate, deploy).
import { useState } from 'preact/hooks';
import { get, post } from '../api';
import { Empty, Problem, Show, useLoad } from '../ui';

interface RuleSummary {
  name?: string;
  priority?: string;
  mitre?: string[];
  tags?: string[];
  enabled?: boolean;
  sourceFile?: string;
}
interface Validation {
  valid?: boolean;
  count?: number;
  diagnostics?: { file?: string; line?: number; column?: number; message?: string }[];
}

function Validator({ what, path, deployPath }: { what: string; path: string; deployPath: string }) {
  const [text, setText] = useState('');
  const [name, setName] = useState(what === 'rules' ? 'console-rules.yaml' : 'response-policy.yaml');
  const [result, setResult] = useState<Validation | null>(null);
  const [deployed, setDeployed] = useState<{ nodes?: string[]; failed?: string[] } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const id = `yaml-${what.replace(/\s/g, '-')}`;
  const run = async (deploy: boolean) => {
    setError(null);
    setResult(null);
    setDeployed(null);
    try {
      if (deploy) setDeployed(await post(deployPath, { fileName: name, yaml: text }));
      else setResult(await post<Validation>(path, { fileName: name, yaml: text }));
    } catch (e) {
      setError(e);
    }
  };
  return (
    <form class="validator" onSubmit={(e) => e.preventDefault()} aria-label={`Validate ${what}`}>
      <label for={`${id}-name`}>File name</label>
      <input id={`${id}-name`} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      <label for={id}>YAML</label>
      <textarea id={id} rows={10} value={text} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} spellcheck={false} />
      <div class="buttons">
        <button type="button" onClick={() => run(false)}>
          Validate
        </button>
        <button type="button" class="danger" onClick={() => run(true)}>
          Deploy to every node
        </button>
      </div>
      {result ? (
        result.valid ? (
          <div class="notice ok" role="status">
            Valid: {result.count ?? 0} defined.
          </div>
        ) : (
          <div class="notice error" role="alert">
            <ul>
              {(result.diagnostics ?? []).map((d, i) => (
                <li key={i}>
                  {d.file}:{d.line}:{d.column}: {d.message}
                </li>
              ))}
            </ul>
          </div>
        )
      ) : null}
      {deployed ? (
        <div class="notice ok" role="status">
          Deployed to {(deployed.nodes ?? []).join(', ') || 'no node'}
          {(deployed.failed ?? []).length ? `; failed on ${(deployed.failed ?? []).join(', ')}` : ''}
        </div>
      ) : null}
      {error ? <Problem error={error} /> : null}
    </form>
  );
}

export function PoliciesPage() {
  const [rules] = useLoad(() => get<{ rules?: RuleSummary[] }>('/v1/rules'), []);
  const [policies] = useLoad(() => get<{ policies?: { name?: string; yaml?: string }[] }>('/v1/response-policies'), []);
  const [filter, setFilter] = useState('');
  return (
    <section>
      <h1>Policies</h1>
      <h2>Detection rules</h2>
      <Show v={rules} what="Rules">
        {(r) => {
          const all = r.rules ?? [];
          const shown = all.filter((x) => !filter || (x.name ?? '').toLowerCase().includes(filter.toLowerCase()) || (x.mitre ?? []).some((m) => m.includes(filter)));
          return all.length === 0 ? (
            <Empty>No rule loaded.</Empty>
          ) : (
            <>
              <label>
                Filter rules{' '}
                <input value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} placeholder="name or MITRE id" />
              </label>
              <p class="muted">
                {shown.length} of {all.length} rules; {all.filter((x) => x.enabled).length} enabled. Enabling or disabling a rule is a deploy of
                its file with <code>enabled: false</code> (below).
              </p>
              <table class="grid" data-testid="rules">
                <thead>
                  <tr>
                    <th scope="col">Rule</th>
                    <th scope="col">Priority</th>
                    <th scope="col">MITRE</th>
                    <th scope="col">Enabled</th>
                    <th scope="col">File</th>
                  </tr>
                </thead>
                <tbody>
                  {shown.map((x) => (
                    <tr key={x.name}>
                      <td>{x.name}</td>
                      <td>{(x.priority ?? '').toLowerCase()}</td>
                      <td>{(x.mitre ?? []).join(', ')}</td>
                      <td>{x.enabled ? 'yes' : 'no'}</td>
                      <td>{x.sourceFile}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          );
        }}
      </Show>
      <h3>Validate or deploy a rules file</h3>
      <Validator what="rules" path="/v1/rules:validate" deployPath="/v1/rules:deploy" />
      <h2>Response policies</h2>
      <Show v={policies} what="Response policies">
        {(r) =>
          (r.policies ?? []).length === 0 ? (
            <Empty>No response policy.</Empty>
          ) : (
            <>
              {(r.policies ?? []).map((p) => (
                <details key={p.name}>
                  <summary>{p.name}</summary>
                  <pre>{p.yaml}</pre>
                </details>
              ))}
            </>
          )
        }
      </Show>
      <h3>Validate or deploy a response policy</h3>
      <Validator what="response policy" path="/v1/response-policies:validate" deployPath="/v1/response-policies:deploy" />
    </section>
  );
}
