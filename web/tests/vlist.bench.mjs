// The alert list's scroll, measured A/B in one run: the VirtualList of a baseline
// revision (VLIST_BASELINE, default HEAD) against the working tree's, each rendering
// 100k rows shaped like the alerts page's, in Debian's headless Chromium, through the
// same frame loop as console.e2e.mjs (a flick down the whole list, a jump to the end,
// back up). Rounds alternate baseline and current on fresh pages, so the machine's
// load falls on both alike. Per round: the renderer main thread's CPU per task (from a
// Chromium trace: other processes do not inflate it), its total CPU while scrolling,
// and frame times.
//
//   cd web && node tests/vlist.bench.mjs [rounds]
//
// Needs web/'s npm packages (esbuild comes with vite) and /usr/bin/chromium.
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const web = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const rounds = Number(process.argv[2] ?? 3);
const baselineRev = process.env.VLIST_BASELINE ?? 'HEAD';
const ROWS = 100_000;

const tmp = mkdtempSync(join(tmpdir(), 'vlist-bench-'));
writeFileSync(
  join(tmp, 'vlist-baseline.tsx'),
  execFileSync('git', ['show', `${baselineRev}:web/src/vlist.tsx`], { cwd: web }),
);
writeFileSync(
  join(tmp, 'entry.tsx'),
  `
import { render } from 'preact';
import { VirtualList as Current } from ${JSON.stringify(join(web, 'src/vlist.tsx'))};
import { VirtualList as Baseline } from ${JSON.stringify(join(tmp, 'vlist-baseline.tsx'))};
const fmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
const SEV = ['critical', 'high', 'medium', 'low'];
const T0 = Date.now();
const row = (i: number) => {
  const s = SEV[i % 4];
  return (
    <>
      <span class="c-time">{fmt.format(T0 - i * 800)}</span>
      <span class="c-sev"><span class={'sev sev-' + s}>{s}</span></span>
      <span class="c-rule" title={'Rule ' + (i % 37) + ' fired in container ' + (i % 500)}>
        {i % 9 === 0 ? <span class="new">new </span> : null}
        {'Rule number ' + (i % 37)}
        {i % 5 === 0 ? <span class="muted"> ×{i % 7}</span> : null}
      </span>
      <span class="c-where" data-container={'c' + (i % 500)}>{'container-' + (i % 500)} · {'node-' + (i % 3)}</span>
      <span class="c-status">open</span>
    </>
  );
};
(window as any).mount = (which: string) => {
  const List = which === 'baseline' ? Baseline : Current;
  render(
    <List count={${ROWS}} rowHeight={30} label="Alerts" idPrefix="alert-row" testId="alert-list" renderRow={row} onOpen={() => {}} />,
    document.getElementById('root')!,
  );
};
`,
);
const bundle = await build({
  entryPoints: [join(tmp, 'entry.tsx')],
  bundle: true,
  write: false,
  format: 'iife',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  nodePaths: [join(web, 'node_modules')],
  minify: true,
  logLevel: 'error',
});
const script = bundle.outputFiles[0].text;
const css = readFileSync(join(web, 'src/style.css'), 'utf8');
const html = `<!doctype html><html><head><style>${css}</style></head><body><main><div id="root"></div></main></body></html>`;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});

async function measure(which) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.setContent(html);
  await page.addScriptTag({ content: script });
  await page.evaluate((w) => window.mount(w), which);
  await page.waitForSelector('[data-testid="alert-list"] [role="option"]');
  await browser.startTracing(page, { categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline'] });
  const r = await page.evaluate(async () => {
    const list = document.querySelector('[data-testid="alert-list"]');
    const frames = [];
    let last = performance.now();
    const step = (f) =>
      new Promise((res) =>
        requestAnimationFrame(() => {
          const now = performance.now();
          frames.push(now - last);
          last = now;
          f();
          res();
        }),
      );
    const max = list.scrollHeight - list.clientHeight;
    for (let i = 0; i < 240; i++) await step(() => (list.scrollTop = Math.min(max, list.scrollTop + max / 200)));
    await step(() => (list.scrollTop = max));
    for (let i = 0; i < 60; i++) await step(() => (list.scrollTop = Math.max(0, list.scrollTop - 4000)));
    await step(() => (list.scrollTop = 0));
    await new Promise((r) => setTimeout(r, 300));
    frames.sort((a, b) => a - b);
    return {
      frameP50Ms: Math.round(frames[Math.floor(frames.length / 2)]),
      frameP99Ms: Math.round(frames[Math.floor(frames.length * 0.99)]),
      domRows: list.querySelectorAll('[role="option"]').length,
    };
  });
  const trace = JSON.parse((await browser.stopTracing()).toString('utf8'));
  const events = trace.traceEvents ?? trace;
  const mains = new Set(
    events.filter((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain').map((e) => `${e.pid}:${e.tid}`),
  );
  const cpu = events
    .filter((e) => e.name === 'RunTask' && e.ph === 'X' && mains.has(`${e.pid}:${e.tid}`))
    .map((e) => (e.tdur ?? e.dur) / 1000)
    .sort((a, b) => b - a);
  // Where the main thread's time went: script, style, layout, paint (wall ms).
  const phases = {};
  for (const e of events) {
    if (e.ph !== 'X' || !mains.has(`${e.pid}:${e.tid}`)) continue;
    const phase = {
      FunctionCall: 'script',
      FireAnimationFrame: 'script',
      UpdateLayoutTree: 'style',
      Layout: 'layout',
      PrePaint: 'paint',
      Paint: 'paint',
      Layerize: 'paint',
      HitTest: 'hitTest',
    }[e.name];
    if (phase) phases[phase] = (phases[phase] ?? 0) + e.dur / 1000;
  }
  for (const k of Object.keys(phases)) phases[k] = Math.round(phases[k]);
  await page.close();
  return {
    which,
    phases,
    longestTaskCpuMs: Math.round(cpu[0] ?? 0),
    tasksOver16CpuMs: cpu.filter((x) => x > 16).length,
    totalCpuMs: Math.round(cpu.reduce((a, b) => a + b, 0)),
    ...r,
  };
}

const results = [];
for (let i = 0; i < rounds; i++) {
  for (const which of ['baseline', 'current']) {
    const r = await measure(which);
    r.load = loadavg()[0].toFixed(1);
    results.push(r);
    console.log(JSON.stringify(r));
  }
}
await browser.close();
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const which of ['baseline', 'current']) {
  const rs = results.filter((r) => r.which === which);
  console.log(
    `${which}: median longest task ${median(rs.map((r) => r.longestTaskCpuMs))} ms CPU, median total ${median(rs.map((r) => r.totalCpuMs))} ms CPU, median frame p99 ${median(rs.map((r) => r.frameP99Ms))} ms (baseline ${baselineRev})`,
  );
}
