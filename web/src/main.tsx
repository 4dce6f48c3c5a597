// The console's shell: login with an API token, the navigation, hash routes (deep
// links to every alert, workload and container: #/alerts/ID, #/workloads/KIND/NS/NAME,
// #/containers/ID), light and dark themes, and keyboard shortcuts (g then a letter).
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, call, setToken, token, whenUnauthorized } from './api';
import { AlertsPage } from './pages/alerts';
import { AlertDetail } from './pages/alert';
import { Dashboard } from './pages/dashboard';
import { WorkloadsPage, WorkloadDetail, ContainersPage, ContainerDetail } from './pages/inventory';
import { ImagesPage } from './pages/images';
import { NetworkPage } from './pages/network';
import { PoliciesPage } from './pages/policies';
import { AuditPage } from './pages/audit';
import { Problem, viewerZone } from './ui';
import { go } from './nav';
import './style.css';

function useHash(): string[] {
  const parse = () =>
    location.hash
      .replace(/^#\/?/, '')
      .split('?')[0]
      .split('/')
      .filter((s) => s !== '')
      .map(decodeURIComponent);
  const [parts, setParts] = useState(parse());
  useEffect(() => {
    // The same route keeps its array, so nothing that depends on it runs again.
    const f = () => {
      const next = parse();
      setParts((prev) => (JSON.stringify(prev) === JSON.stringify(next) ? prev : next));
    };
    window.addEventListener('hashchange', f);
    // The hash may have changed between the first render and this listener (a link
    // followed, or a script setting it, just after the page loaded): read it again.
    f();
    return () => window.removeEventListener('hashchange', f);
  }, []);
  return parts;
}


type Theme = 'light' | 'dark';
function initialTheme(): Theme {
  const saved = localStorage.getItem('rampart.theme');
  if (saved === 'light' || saved === 'dark') return saved;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

const NAV: [string, string, string][] = [
  ['dashboard', 'Dashboard', 'd'],
  ['alerts', 'Alerts', 'a'],
  ['workloads', 'Workloads', 'w'],
  ['containers', 'Containers', 'c'],
  ['images', 'Images', 'i'],
  ['network', 'Network', 'n'],
  ['policies', 'Policies', 'p'],
  ['audit', 'Audit log', 'l'],
];

function Login({ onLogin }: { onLogin: () => void }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const t = value.trim();
    try {
      // Any read proves the token; the node list is small.
      await call('GET', '/v1/nodes', undefined, t);
      setToken(t);
      onLogin();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="login">
      <form onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Rampart</h1>
        <p>
          Log in with an API token (<code>rampart up</code> writes the admin token to{' '}
          <code>/var/lib/rampart/admin-token</code>).
        </p>
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="current-password"
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          required
          autofocus
        />
        <button type="submit" disabled={busy}>
          Log in
        </button>
        {error ? (
          error instanceof ApiError && error.status === 401 ? (
            <div class="notice error" role="alert" data-testid="login-error">
              The server refused this token (HTTP 401: {error.message}).
            </div>
          ) : (
            <div data-testid="login-error">
              <Problem error={error} />
            </div>
          )
        ) : null}
      </form>
    </main>
  );
}

function Page({ parts }: { parts: string[] }) {
  const [head, ...rest] = parts;
  switch (head ?? 'dashboard') {
    case 'dashboard':
      return <Dashboard />;
    case 'alerts':
      return rest[0] ? <AlertDetail id={rest[0]} /> : <AlertsPage />;
    case 'workloads':
      return rest.length >= 3 ? (
        <WorkloadDetail kind={rest[0]} namespace={rest[1] === '-' ? '' : rest[1]} name={rest.slice(2).join('/')} />
      ) : (
        <WorkloadsPage />
      );
    case 'containers':
      return rest[0] ? <ContainerDetail id={rest[0]} /> : <ContainersPage />;
    case 'images':
      return <ImagesPage />;
    case 'network':
      return <NetworkPage />;
    case 'policies':
      return <PoliciesPage />;
    case 'audit':
      return <AuditPage />;
    default:
      return (
        <section>
          <h1>Not found</h1>
          <p>
            No page <code>#/{parts.join('/')}</code>. <a href="#/dashboard">Dashboard</a>
          </p>
        </section>
      );
  }
}

function App() {
  const [loggedIn, setLoggedIn] = useState(token() !== null);
  const [theme, setTheme] = useState<Theme>(initialTheme());
  const parts = useHash();
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem('rampart.theme', theme);
  }, [theme]);
  useEffect(() => {
    whenUnauthorized(() => {
      setToken(null);
      setLoggedIn(false);
    });
  }, []);
  useEffect(() => {
    const page = NAV.find((n) => n[0] === (parts[0] ?? 'dashboard'));
    document.title = `${page ? page[1] : 'Rampart'} · Rampart`;
  }, [parts.join('/')]);
  // "g" then a page's letter moves there, as in many consoles; not while typing.
  useEffect(() => {
    let pending = false;
    const f = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT')) return;
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (pending) {
        pending = false;
        const n = NAV.find((x) => x[2] === e.key);
        if (n) {
          go(n[0]);
          e.preventDefault();
        }
        return;
      }
      if (e.key === 'g') pending = true;
    };
    window.addEventListener('keydown', f);
    return () => window.removeEventListener('keydown', f);
  }, []);

  if (!loggedIn) return <Login onLogin={() => setLoggedIn(true)} />;
  const current = parts[0] ?? 'dashboard';
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Rampart</span>
        <nav aria-label="Pages">
          <ul>
            {NAV.map(([k, label, key]) => (
              <li key={k}>
                <a href={`#/${k}`} aria-current={current === k ? 'page' : undefined} title={`g ${key}`}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="spacer" />
        <span class="muted zone" title="Times are shown in this zone">{viewerZone()}</span>
        <button
          type="button"
          onClick={() => setTheme(theme === 'dark' ? 'light' : 'dark')}
          aria-label={`Switch to the ${theme === 'dark' ? 'light' : 'dark'} theme`}
          data-testid="theme"
        >
          {theme === 'dark' ? 'Light' : 'Dark'} theme
        </button>
        <button
          type="button"
          onClick={() => {
            setToken(null);
            setLoggedIn(false);
          }}
        >
          Log out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <Page parts={parts} />
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
