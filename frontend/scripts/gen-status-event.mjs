// Generates src/api/status-event.d.ts from the public JSON schema of the status event
// (docs/schemas/status.json, the payload of the SSE `status` event and of the NATS status
// subject). The OpenAPI document describes the SSE stream only as text, so this schema is the
// contract for its payload. openapi-typescript reads OpenAPI, so the schema is wrapped in a
// minimal OpenAPI 3.1 document first.
//
//   node scripts/gen-status-event.mjs [output-file]
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const output = process.argv[2] ?? join(root, 'src/api/status-event.d.ts');
const schema = JSON.parse(readFileSync(join(root, '../docs/schemas/status.json'), 'utf8'));

const { $defs = {}, $schema: _ignored, ...statusEvent } = schema;
const rewrite = (value) =>
  JSON.parse(JSON.stringify(value).replaceAll('"#/$defs/', '"#/components/schemas/'));
const document = {
  openapi: '3.1.0',
  info: { title: 'Moolai status event (from docs/schemas/status.json)', version: '1' },
  paths: {},
  components: { schemas: { ...rewrite($defs), StatusEvent: rewrite(statusEvent) } },
};

const dir = mkdtempSync(join(tmpdir(), 'moolai-status-event-'));
try {
  const input = join(dir, 'status-event.openapi.json');
  writeFileSync(input, JSON.stringify(document, null, 2));
  const bin = join(root, 'node_modules/.bin/openapi-typescript');
  execFileSync(bin, [input, '-o', output, '--empty-objects-unknown', '--silent'], {
    stdio: 'inherit',
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
