// The audit log: every API write, response and node-side action, newest first, with
// filters by actor, action and target.
import { useState } from 'preact/hooks';
import { get, qs, type AuditRecord } from '../api';
import { Empty, Show, useLoad } from '../ui';
import { AuditTable } from './alert';

export function AuditPage() {
  const [draft, setDraft] = useState({ actor: '', action: '', target: '' });
  const [f, setF] = useState(draft);
  const [v, reload] = useLoad(() => get<{ records?: AuditRecord[] }>(`/v1/audit${qs({ ...f, limit: 1000 })}`), [f]);
  const field = (k: keyof typeof draft) => (e: Event) => setDraft({ ...draft, [k]: (e.target as HTMLInputElement).value });
  return (
    <section>
      <h1>Audit log</h1>
      <form
        class="filters"
        aria-label="Audit filters"
        onSubmit={(e) => {
          e.preventDefault();
          setF({ ...draft });
        }}
      >
        <label>
          Actor
          <input value={draft.actor} onInput={field('actor')} />
        </label>
        <label>
          Action
          <input value={draft.action} onInput={field('action')} placeholder="e.g. alert.acknowledge" />
        </label>
        <label>
          Target
          <input value={draft.target} onInput={field('target')} />
        </label>
        <button type="submit">Apply</button>
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </form>
      <Show v={v} what="audit log">
        {(r) =>
          (r.records ?? []).length === 0 ? <Empty>No audit record matches.</Empty> : <AuditTable records={[...(r.records ?? [])].reverse()} />
        }
      </Show>
    </section>
  );
}
