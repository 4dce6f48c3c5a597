// Shared pieces of every page: times in the viewer's zone, severity badges, the
// "not available from this server yet" state for 501 answers, a data-loading hook,
// and the confirmation dialog.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type Severity } from './api';

/** Nanoseconds since the epoch (a decimal string in the JSON mapping) as a Date. */
export function nsToDate(ns: string | number | undefined): Date | null {
  if (ns === undefined || ns === null || ns === '' || ns === '0' || ns === 0) return null;
  const ms = typeof ns === 'number' ? ns / 1e6 : Number(BigInt(ns) / 1000000n);
  return new Date(ms);
}

const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;
const timeFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  timeZoneName: 'short',
});
const shortFmt = new Intl.DateTimeFormat(undefined, {
  month: 'short',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

export function viewerZone(): string {
  return ZONE;
}

/** A time in the viewer's zone, with the zone named; the UTC instant in the tooltip. */
export function Time({ ns, short }: { ns?: string | number; short?: boolean }) {
  const d = nsToDate(ns);
  if (!d) return <span class="muted">—</span>;
  return (
    <time dateTime={d.toISOString()} title={d.toISOString()}>
      {(short ? shortFmt : timeFmt).format(d)}
    </time>
  );
}

export const SEVERITIES: Severity[] = [
  'SEVERITY_CRITICAL',
  'SEVERITY_HIGH',
  'SEVERITY_MEDIUM',
  'SEVERITY_LOW',
];

export function sevName(s?: string): string {
  return (s ?? 'SEVERITY_UNSPECIFIED').replace('SEVERITY_', '').toLowerCase();
}

export function SevBadge({ s }: { s?: string }) {
  const n = sevName(s);
  return <span class={`sev sev-${n}`}>{n}</span>;
}

export function enumName(v: string | undefined, prefix: string): string {
  return (v ?? '').replace(prefix, '').toLowerCase().replace(/_/g, ' ');
}

/** What a failed call shows: 501 as "not yet", the rest as an error with its status. */
export function Problem({ error, what }: { error: unknown; what?: string }) {
  if (error instanceof ApiError && error.unimplemented) {
    return (
      <div class="notice unavailable" role="status" data-state="unimplemented">
        {what ? <strong>{what}: </strong> : null}
        not available from this server yet (HTTP 501: {error.message})
      </div>
    );
  }
  const msg =
    error instanceof ApiError
      ? `HTTP ${error.status || 'error'} ${error.code}: ${error.message}`
      : String(error);
  return (
    <div class="notice error" role="alert" data-state="error">
      {what ? <strong>{what}: </strong> : null}
      {msg}
    </div>
  );
}

export type Loaded<T> =
  | { state: 'loading' }
  | { state: 'error'; error: unknown }
  | { state: 'ok'; value: T };

/** Runs `load` whenever `deps` change; the latest answer wins. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): [Loaded<T>, () => void] {
  const [v, setV] = useState<Loaded<T>>({ state: 'loading' });
  const [tick, setTick] = useState(0);
  const seq = useRef(0);
  useEffect(() => {
    const mine = ++seq.current;
    load().then(
      (value) => mine === seq.current && setV({ state: 'ok', value }),
      (error) => mine === seq.current && setV({ state: 'error', error }),
    );
  }, [...deps, tick]);
  return [v, () => setTick((t) => t + 1)];
}

export function Show<T>({
  v,
  what,
  children,
}: {
  v: Loaded<T>;
  what?: string;
  children: (value: T) => ComponentChildren;
}) {
  if (v.state === 'loading') return <p class="muted" aria-busy="true">Loading{what ? ` ${what}` : ''}…</p>;
  if (v.state === 'error') return <Problem error={v.error} what={what} />;
  return <>{children(v.value)}</>;
}

/** A modal confirmation (the native <dialog>: focus is trapped, Escape cancels). */
export function Confirm({
  open,
  title,
  children,
  confirmLabel,
  onConfirm,
  onCancel,
}: {
  open: boolean;
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} aria-labelledby="confirm-title" onCancel={onCancel} class="confirm">
      <h2 id="confirm-title">{title}</h2>
      <div>{children}</div>
      <div class="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="button" class="danger" onClick={onConfirm} data-testid="confirm">
          {confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

export function shortId(id?: string): string {
  return (id ?? '').slice(0, 12);
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="muted empty">{children}</p>;
}
