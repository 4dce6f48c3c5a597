// The console is built into crates/console/assets, which the rampart-console crate
// embeds (rust-embed): `npm run build` here, or scripts/build-console.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: '../crates/console/assets',
    emptyOutDir: true,
    target: 'es2020',
    // Source maps would double the binary's share; the sources are in the repo.
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
});
