import { defineConfig } from 'vitest/config';

// The api (services/api) serves /api/v1 and /health; in development and in the browser tests
// the dashboard is served by Vite and every API call goes through this proxy, so the browser
// sees one origin and the api needs no CORS. MOOLAI_API_URL points the proxy elsewhere.
const api = process.env.MOOLAI_API_URL ?? 'http://127.0.0.1:8765';
const proxy = {
  '/api': { target: api, changeOrigin: false },
  '/health': { target: api, changeOrigin: false },
};

export default defineConfig({
  // JSX through Vite's own transformer (no React plugin: no fast refresh, one dependency less).
  oxc: { jsx: { runtime: 'automatic' } },
  server: { proxy },
  preview: { proxy },
  build: {
    sourcemap: true,
    chunkSizeWarningLimit: 400,
    rolldownOptions: {
      onwarn(warning, warn) {
        // React Server Components markers in react-router / TanStack Query; meaningless here.
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        warn(warning);
      },
    },
  },
  test: {
    include: ['src/**/*.test.ts', 'src/**/*.test.tsx'],
    environment: 'node',
  },
});
