// Starts the real controller for the browser tests: a fresh PostgreSQL database, the three
// service binaries from target/debug (build them with `cargo build --workspace --bins`), the
// built dashboard behind `vite preview` with its /api proxy, and orchestrators that talk the
// real WebSocket protocol. Everything started here is stopped by `stop()`, even after a
// failure.
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import WebSocket from 'ws';

export const frontendDir = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const repoDir = join(frontendDir, '..');
const targetDir = process.env.CARGO_TARGET_DIR ?? join(repoDir, 'target');
const binDir = join(targetDir, process.env.PROFILE ?? 'debug');
const PSQL = ['-h', '127.0.0.1', '-U', 'postgres', '-v', 'ON_ERROR_STOP=1', '-qAt'];

export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export async function waitFor(what, check, { timeoutMs = 30_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      if (e?.fatal) throw e;
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const name = typeof what === 'function' ? what() : what;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${name}${lastError ? `: ${lastError.message}` : ''}`);
}

// Stacks still running, stopped if the test process is interrupted or exits early.
const running = new Set();
process.once('exit', () => {
  for (const stack of running) stack.killNow();
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    Promise.all([...running].map((s) => s.stop())).finally(() => process.exit(130));
  });
}

export class Stack {
  /**
   * `orchestratorAuth`: `open` (default: orchestrators connect without credentials) or
   * `token` (every hello needs an enrollment or orchestrator token, as in production).
   */
  constructor({ orchestratorAuth = 'open' } = {}) {
    this.orchestratorAuth = orchestratorAuth;
    this.id = randomUUID().replaceAll('-', '').slice(0, 16);
    this.database = `moolai_frontend_${this.id}`;
    this.prefix = `fe${this.id}`;
    this.logDir = join(tmpdir(), `moolai-frontend-${this.id}`);
    this.adminPassword = randomUUID();
    this.processes = [];
    this.orchestrators = [];
  }

  /** Every process and the database, ready for a browser. */
  async start() {
    for (const bin of ['moolai-state', 'moolai-ws-edge', 'moolai-api']) {
      if (!existsSync(join(binDir, bin))) {
        throw new Error(`${bin} not found in ${binDir}: run \`cargo build --workspace --bins\` first`);
      }
    }
    if (!existsSync(join(frontendDir, 'dist/index.html'))) {
      execFileSync('npm', ['run', 'build'], { cwd: frontendDir, stdio: 'inherit' });
    }
    mkdirSync(this.logDir, { recursive: true });
    running.add(this);
    execFileSync('psql', [...PSQL, '-c', `CREATE DATABASE "${this.database}"`]);
    this.databaseCreated = true;

    this.apiPort = await freePort();
    this.edgePort = await freePort();
    this.webPort = await freePort();
    this.env = {
      PATH: process.env.PATH,
      DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${this.database}`,
      NATS_URL: process.env.MOOLAI_TEST_NATS_URL ?? 'nats://127.0.0.1:4222',
      NATS_SUBJECT_PREFIX: this.prefix,
      CONTROLLER_HOST: '127.0.0.1',
      HEARTBEAT_TTL_SEC: '5',
      HEARTBEAT_INTERVAL_SEC: '1',
      HEARTBEAT_FLUSH_INTERVAL_MS: '50',
      SWEEP_INTERVAL_SEC: '1',
      // dashboard.test.mjs is about the dashboard, not orchestrator credentials: there the
      // simulated orchestrators connect without tokens. roles.test.mjs runs in token mode.
      ORCHESTRATOR_AUTH: this.orchestratorAuth,
      MOOLAI_ADMIN_USERNAME: 'admin',
      MOOLAI_ADMIN_PASSWORD: this.adminPassword,
      RUST_LOG: 'info',
    };

    const migrate = this.spawn('migrate', join(binDir, 'moolai-state'), ['migrate']);
    const code = await new Promise((resolve) => migrate.child.on('exit', resolve));
    if (code !== 0) throw new Error(`moolai-state migrate failed:\n${this.log('migrate')}`);

    this.spawn('state', join(binDir, 'moolai-state'), [], { STATE_METRICS_PORT: String(await freePort()) });
    this.spawn('edge', join(binDir, 'moolai-ws-edge'), [], {
      WS_EDGE_PORT: String(this.edgePort),
      WS_EDGE_METRICS_PORT: String(await freePort()),
      EDGE_ID: 'edge-browser-test',
    });
    this.spawn('api', join(binDir, 'moolai-api'), [], {
      CONTROLLER_PORT: String(this.apiPort),
      API_METRICS_PORT: String(await freePort()),
    });
    this.spawn(
      'web',
      join(frontendDir, 'node_modules/.bin/vite'),
      ['preview', '--host', '127.0.0.1', '--port', String(this.webPort), '--strictPort'],
      { MOOLAI_API_URL: this.apiUrl },
      frontendDir,
    );

    await waitFor('the api to become healthy', async () => (await fetch(`${this.apiUrl}/health`)).ok);
    await waitFor('the edge to listen', () => canConnect(this.edgePort));
    await waitFor('the dashboard to be served', async () => (await fetch(this.webUrl)).ok);
    await waitFor('the proxy to reach the api', async () => (await fetch(`${this.webUrl}/health`)).ok);
  }

  get apiUrl() {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  get webUrl() {
    return `http://127.0.0.1:${this.webPort}`;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.edgePort}/ws`;
  }

  spawn(name, command, args, extraEnv = {}, cwd = repoDir) {
    const log = join(this.logDir, `${name}.log`);
    const fd = openSync(log, 'a');
    const child = spawn(command, args, {
      cwd,
      env: { ...this.env, ...extraEnv, ...(name === 'web' ? { HOME: process.env.HOME } : {}) },
      stdio: ['ignore', fd, fd],
    });
    const entry = { name, child, log };
    this.processes.push(entry);
    return entry;
  }

  log(name) {
    const entry = this.processes.find((p) => p.name === name);
    try {
      return entry ? readFileSync(entry.log, 'utf8').split('\n').slice(-40).join('\n') : '';
    } catch {
      return '';
    }
  }

  logs() {
    return this.processes.map((p) => `---- ${p.name} ----\n${this.log(p.name)}`).join('\n');
  }

  /** Stops one process (SIGTERM, then SIGKILL after 5 s). */
  async stopProcess(name) {
    const entry = this.processes.find((p) => p.name === name && p.child.exitCode === null && !p.stopped);
    if (!entry) return;
    entry.stopped = true;
    await terminate(entry.child);
  }

  /** Logs in over HTTP (for set-up calls the test makes outside the browser). */
  async token() {
    if (this.cachedToken) return this.cachedToken;
    this.cachedToken = await this.login('admin', this.adminPassword);
    return this.cachedToken;
  }

  /** A session token for any operator account. */
  async login(username, password) {
    const body = await this.request('POST', '/api/v1/internal/auth/login', { username, password });
    return body.user.token;
  }

  async request(method, path, body, token) {
    const headers = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(`${this.apiUrl}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json();
    if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${JSON.stringify(json)}`);
    return json;
  }

  async api(method, path, body) {
    return this.request(method, path, body, await this.token());
  }

  /**
   * A simulated orchestrator that records every frame it receives. `options.token` is its
   * credential, sent as `Authorization: Bearer` on the upgrade (`options.tokenIn: 'header'`,
   * the default) or as `auth_token` in the hello (`'hello'`).
   */
  async orchestrator(id, organizationId, metadata, options) {
    const o = new FakeOrchestrator(this.wsUrl, id, organizationId, metadata, options);
    this.orchestrators.push(o);
    await o.connect();
    return o;
  }

  /** The moolai-simulator fleet (when built), so the listing has more than one row. */
  simulatorFleet(count, organizationId) {
    const bin = join(binDir, 'moolai-simulator');
    if (!existsSync(bin)) return false;
    this.spawn('simulator', bin, [
      '--url',
      this.wsUrl,
      '--count',
      String(count),
      '--organization-id',
      organizationId,
      '--id-prefix',
      'sim-',
      '--duration-sec',
      '0',
      '--report-every-sec',
      '60',
    ]);
    return true;
  }

  /** Last resort on process exit: no waiting possible. */
  killNow() {
    for (const { child } of this.processes) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    this.dropDatabase();
  }

  dropDatabase() {
    if (!this.databaseCreated) return;
    this.databaseCreated = false;
    try {
      execFileSync('psql', [...PSQL, '-d', 'postgres', '-c', `DROP DATABASE IF EXISTS "${this.database}" WITH (FORCE)`]);
    } catch (e) {
      console.error(`could not drop ${this.database}: ${e.message}`);
    }
  }

  async stop() {
    running.delete(this);
    for (const o of this.orchestrators) o.close();
    // Reverse order: the dashboard and simulator first, the state service last.
    for (const entry of [...this.processes].reverse()) {
      if (entry.child.exitCode === null && entry.child.signalCode === null) await terminate(entry.child);
    }
    this.dropDatabase();
  }
}

async function terminate(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    socket.on('open', () => {
      socket.terminate();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/**
 * An HLD-dialect orchestrator: register, heartbeat every second, record frames and how the
 * socket closed (`closed`: { code, reason }).
 */
export class FakeOrchestrator {
  constructor(url, id, organizationId, metadata = {}, { token, tokenIn = 'header' } = {}) {
    this.url = url;
    this.id = id;
    this.organizationId = organizationId;
    this.metadata = { name: `Gateway ${id}`, version: '1.0', ...metadata };
    this.token = token;
    this.tokenIn = tokenIn;
    this.frames = [];
    this.heartbeats = 0;
    this.closed = null;
  }

  async connect() {
    const headers = this.token && this.tokenIn === 'header' ? { authorization: `Bearer ${this.token}` } : {};
    this.socket = new WebSocket(this.url, { headers });
    this.socket.on('close', (code, reason) => {
      clearInterval(this.timer);
      this.closed = { code, reason: String(reason) };
    });
    this.socket.on('message', (data) => {
      try {
        this.frames.push(JSON.parse(String(data)));
      } catch {
        this.frames.push({ type: '<unparsable>', raw: String(data) });
      }
    });
    await new Promise((resolve, reject) => {
      this.socket.once('open', resolve);
      this.socket.once('error', reject);
    });
    this.send({
      type: 'register',
      orchestrator_id: this.id,
      organization_id: this.organizationId,
      metadata: this.metadata,
      ...(this.token && this.tokenIn === 'hello' ? { auth_token: this.token } : {}),
    });
    await this.waitForFrame('handshake_ack');
    await this.waitForFrame('provisioning');
    this.timer = setInterval(() => {
      this.heartbeats += 1;
      this.send({ type: 'i_am_alive', orchestrator_id: this.id });
    }, 1_000);
  }

  send(frame) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  /** Waits for a frame of `type` (matching `predicate`) and returns it. */
  waitForFrame(type, predicate = () => true, timeoutMs = 10_000) {
    return waitFor(
      () =>
        `${this.id} to receive ${type} (got: ${this.frames.map((f) => f.type).join(', ')}${
          this.closed ? `; socket closed ${this.closed.code} ${this.closed.reason}` : ''
        })`,
      () => {
        const frame = this.frames.find((f) => f.type === type && predicate(f));
        if (!frame && this.closed) {
          // Waiting longer cannot help: fail now, with the controller's reason.
          throw Object.assign(new Error(`${this.id}: socket closed ${this.closed.code} ${this.closed.reason}`), {
            fatal: true,
          });
        }
        return frame;
      },
      { timeoutMs, intervalMs: 25 },
    );
  }

  /** Waits for the controller to close the socket; returns { code, reason }. */
  waitForClose(timeoutMs = 10_000) {
    return waitFor(`${this.id}'s socket to close`, () => this.closed, { timeoutMs, intervalMs: 25 });
  }

  close() {
    clearInterval(this.timer);
    this.socket?.terminate();
  }
}
