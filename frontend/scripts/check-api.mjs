// Fails when the committed OpenAPI document or the TypeScript types generated from it (and
// from docs/schemas/status.json) differ from what the current backend produces.
// Fix with `npm run gen:api` and commit the result.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'moolai-check-api-'));
let failed = false;
try {
  const openapi = execFileSync('cargo', ['run', '-q', '-p', 'moolai-api', '--', 'openapi'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  });
  writeFileSync(join(dir, 'openapi.json'), openapi);
  const bin = join(root, 'node_modules/.bin/openapi-typescript');
  execFileSync(
    bin,
    [join(dir, 'openapi.json'), '-o', join(dir, 'schema.d.ts'), '--empty-objects-unknown', '--silent'],
    { stdio: 'inherit' },
  );
  execFileSync('node', [join(root, 'scripts/gen-status-event.mjs'), join(dir, 'status-event.d.ts')], {
    stdio: 'inherit',
  });
  const pairs = [
    ['openapi.json', 'openapi.json'],
    ['src/api/schema.d.ts', 'schema.d.ts'],
    ['src/api/status-event.d.ts', 'status-event.d.ts'],
  ];
  for (const [committed, fresh] of pairs) {
    let current = '';
    try {
      current = readFileSync(join(root, committed), 'utf8');
    } catch {
      current = '<missing>';
    }
    if (current !== readFileSync(join(dir, fresh), 'utf8')) {
      console.error(`check:api: frontend/${committed} is out of date with the backend`);
      failed = true;
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (failed) {
  console.error('check:api: run `npm run gen:api` in frontend/ and commit the result');
  process.exit(1);
}
console.log('check:api: openapi.json and the generated types are up to date');
