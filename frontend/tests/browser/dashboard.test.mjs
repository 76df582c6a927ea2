// The dashboard in a real browser (Debian's chromium through playwright-core) against the
// real controller: login, live status, independence, messages, config, costs, audit log,
// session expiry, phone width, dark theme and the API-down state, as the superadmin.
// Screenshots of every page go to target/screenshots/ at the repository root. Roles (a viewer,
// an org_admin), the Users page and enrollment tokens are in roles.test.mjs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { Stack, repoDir, waitFor } from './stack.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = join(repoDir, 'target/screenshots');

const stack = new Stack();
let browser;
let context;
let page;
let orch1;
let orch2;

async function shot(name, target = page) {
  // Sticky headers land mid-page in a full-page capture of a scrolled page.
  await target.evaluate(() => window.scrollTo(0, 0));
  await target.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Waits until `locator`'s text matches. */
async function expectText(locator, pattern, timeoutMs = 10_000) {
  return waitFor(
    () => `text ${pattern} in ${locator}`,
    async () => pattern.test((await locator.first().textContent({ timeout: 1_000 })) ?? ''),
    { timeoutMs, intervalMs: 50 },
  );
}

function row(id) {
  return page.locator(`tr[data-orchestrator="${id}"]`);
}

function card(id) {
  return page.locator(`article[data-orchestrator="${id}"]`);
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  mkdirSync(SHOTS, { recursive: true });
  try {
    await stack.start();
  } catch (e) {
    throw new Error(`${e.message}\n${stack.logs()}`);
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
});

after(async () => {
  await browser?.close().catch(() => undefined);
  await stack.stop();
});

test('a wrong password is refused, the right one signs in', async () => {
  await page.goto(`${stack.webUrl}/orchestrators`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expectText(page.getByRole('alert'), /Wrong username or password/);
  await shot('01-login-error');
  await page.getByLabel('Password').fill(stack.adminPassword);
  await page.getByRole('button', { name: 'Sign in' }).click();
  // Back where the operator was going.
  await page.getByRole('heading', { name: 'Orchestrators', level: 1 }).waitFor();
  await page.getByText('No orchestrators yet').waitFor();
  await expectText(page.locator('.live'), /Live/);
  await shot('02-orchestrators-empty');
});

test('an orchestrator that connects appears live as active', async () => {
  const started = Date.now();
  orch1 = await stack.orchestrator('orch-1', 'org-1', { name: 'Gateway 1', version: '1.4.2', location: 'eu-central' });
  await expectText(row('orch-1').locator('.badge'), /^active \(heartbeat\)$/, 8_000);
  console.log(`orch-1 shown active ${Date.now() - started} ms after connecting`);
  await expectText(row('orch-1'), /1\.4\.2/);
  orch2 = await stack.orchestrator('orch-2', 'org-1', { name: 'Gateway 2', version: '1.4.1' });
  if (stack.simulatorFleet(12, 'org-sim')) {
    await expectText(page.locator('.pagination'), /of 14 orchestrators/, 20_000);
  } else {
    await expectText(page.locator('.pagination'), /of 2 orchestrators/, 10_000);
  }
  await expectText(row('orch-2').locator('.badge'), /^active \(heartbeat\)$/);
  // The heartbeat age ticks.
  await page.waitForTimeout(1_200);
  await expectText(row('orch-1').locator('time'), /ago|just now/);
  await shot('03-orchestrators');
});

test('a status change arrives over the stream without refetching the listing', async () => {
  const listings = [];
  const onRequest = (r) => {
    if (new URL(r.url()).pathname === '/api/v1/controller/orchestrators') listings.push(Date.now());
  };
  // Let the last scheduled refresh pass, then watch.
  await page.waitForTimeout(500);
  page.on('request', onRequest);
  const started = Date.now();
  orch2.close();
  await expectText(row('orch-2').locator('.badge'), /^inactive$/, 3_000);
  const elapsed = Date.now() - started;
  page.off('request', onRequest);
  console.log(`orch-2 shown inactive ${elapsed} ms after its socket closed; listing requests meanwhile: ${listings.length}`);
  assert.ok(elapsed < 2_000, `status change took ${elapsed} ms`);
  assert.equal(listings.length, 0, 'the listing was refetched instead of merged');
});

test('search and status filter go to the server', async () => {
  await page.getByLabel('Search').fill('orch-1');
  await waitFor('the search to apply', async () => (await page.locator('tbody tr').count()) === 1);
  await page.getByLabel('Search').fill('');
  await page.getByLabel('Status').selectOption('inactive');
  await waitFor('the status filter to apply', async () => {
    const rows = await page.locator('tbody tr').count();
    return rows === 1 && (await row('orch-2').count()) === 1;
  });
  await page.getByLabel('Status').selectOption('');
});

test('independence: confirm, badge, hidden messages, stop_monitoring, and back', async () => {
  const created = await stack.api('POST', '/api/v1/internal/orchestrators/orch-1/messages', {
    message_type: 'recommendation',
    content: 'Enable the semantic cache: 38% of prompts repeat within an hour.',
  });
  await stack.api('POST', '/api/v1/internal/orchestrators/orch-1/messages', {
    message_type: 'monitoring',
    content: 'p99 latency above 2 s for 5 minutes.',
  });
  await page.goto(`${stack.webUrl}/organizations/org-1`);
  await page.getByRole('heading', { name: 'org-1', level: 1 }).or(page.locator('h1')).first().waitFor();
  const orchCard = card('orch-1');
  await orchCard.getByText('Enable the semantic cache').waitFor();
  await shot('04-organization');

  // Cancel first: nothing changes.
  await orchCard.getByRole('switch', { name: 'Independence mode' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  await shot('05-independence-confirm');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await orchCard.getByRole('switch').getAttribute('aria-checked'), 'false');

  const before = orch1.frames.length;
  await orchCard.getByRole('switch', { name: 'Independence mode' }).click();
  await dialog.getByRole('button', { name: 'Turn independence on' }).click();
  await expectText(orchCard.locator('.badge'), /^independent$/, 1_000);
  await orchCard.getByText('This orchestrator operates independently').waitFor();
  assert.equal(await orchCard.getByText('Enable the semantic cache').count(), 0, 'messages still shown');
  const stop = await orch1.waitForFrame('stop_monitoring');
  assert.equal(stop.is_independent, true);
  assert.ok(orch1.frames.indexOf(stop) >= before);
  const state = await stack.api('GET', '/api/v1/internal/orchestrators/orch-1/independence');
  assert.equal(state.data.is_independent, true);
  await shot('06-organization-independent');

  // The listing shows it too.
  await page.getByRole('link', { name: 'Orchestrators', exact: true }).click();
  await expectText(row('orch-1').locator('.badge'), /^independent$/);
  await page.goBack();

  await card('orch-1').getByRole('switch', { name: 'Independence mode' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Turn independence off' }).click();
  await expectText(card('orch-1').locator('.badge'), /^active \(heartbeat\)$/, 5_000);
  await card('orch-1').getByText('Enable the semantic cache').waitFor();
  await orch1.waitForFrame('resume_monitoring');
  assert.ok(created.message_id.startsWith('msg_'));
});

test('accepting a message sends it to the orchestrator', async () => {
  const orchCard = card('orch-1');
  const message = orchCard.locator('li.message', { hasText: 'Enable the semantic cache' });
  await message.getByRole('button', { name: 'Accept' }).click();
  await message.waitFor({ state: 'detached' });
  const delivered = await orch1.waitForFrame('message');
  assert.match(JSON.stringify(delivered), /semantic cache/);
  const accepted = await stack.api('GET', '/api/v1/internal/messages?status=accepted&orchestrator_id=orch-1');
  assert.equal(accepted.data.length, 1);
  // Dismiss the other one.
  const other = orchCard.locator('li.message', { hasText: 'p99 latency' });
  await other.getByRole('button', { name: 'Dismiss' }).click();
  await other.waitFor({ state: 'detached' });
  await orchCard.getByText('No pending messages.').waitFor();
});

test('a refused toggle flips back and says why', async () => {
  const route = '**/api/v1/internal/orchestrators/orch-1/independence';
  await page.route(route, async (r) => {
    await new Promise((resolve) => setTimeout(resolve, 400));
    await r.fulfill({
      status: 503,
      contentType: 'application/json',
      body: JSON.stringify({ success: false, error: { code: 'unavailable', message: 'database unavailable' } }),
    });
  });
  try {
    const orchCard = card('orch-1');
    await orchCard.getByRole('switch', { name: 'Independence mode' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Turn independence on' }).click();
    await expectText(orchCard.locator('.badge'), /^independent$/, 1_000);
    await expectText(page.locator('.toast-error'), /Could not switch independence of Gateway 1: database unavailable/);
    await expectText(orchCard.locator('.badge'), /^active \(heartbeat\)$/, 1_000);
    assert.equal(await orchCard.getByRole('switch').getAttribute('aria-checked'), 'false');
    assert.equal(orch1.frames.filter((f) => f.type === 'stop_monitoring').length, 1);
  } finally {
    await page.unroute(route);
  }
});

test('orchestrator details: metadata, connections, message and config update', async () => {
  orch1.send({ type: 'o_config_snapshot', data: { cache: { enabled: true, ttl: 300 } }, timestamp: new Date().toISOString() });
  // Stored asynchronously by the state service; the page shows what the API has.
  await waitFor('the config snapshot to be stored', async () => {
    const r = await stack.api('GET', '/api/v1/controller/orchestrators/orch-1');
    return r.data.config_snapshot !== null && r.data.config_snapshot !== undefined;
  });
  await page.goto(`${stack.webUrl}/orchestrators/orch-1`);
  await page.getByRole('heading', { name: 'Gateway 1', level: 1 }).waitFor();
  await page.getByRole('heading', { name: 'Connection history' }).waitFor();
  await expectText(page.locator('section', { hasText: 'Connection history' }).locator('tbody'), /open/);
  await expectText(page.locator('section', { hasText: 'Last config snapshot' }), /"ttl": 300/);

  await page.getByLabel('Content').fill('Rotate the provider key before Friday.');
  await page.getByRole('button', { name: 'Create message' }).click();
  await page.locator('li.message', { hasText: 'Rotate the provider key' }).waitFor();

  await page.getByLabel('Session config (JSON object)').fill('{ "cache": { "enabled": false }');
  await page.getByText('Not valid JSON').waitFor();
  assert.equal(await page.getByRole('button', { name: 'Send config update' }).isDisabled(), true);
  await page.getByLabel('Session config (JSON object)').fill('{ "cache": { "enabled": false }, "rate_limit": 50 }');
  await page.getByRole('button', { name: 'Send config update' }).click();
  const update = await orch1.waitForFrame('config_update');
  assert.equal(update.data.session_config.rate_limit, 50);
  await page.getByText(/Configuration version \d+ sent/).waitFor();
  await shot('07-orchestrator-detail');
});

test('costs and overview show the usage the orchestrators reported', async () => {
  orch1.send({ type: 'usage', usage: { model: 'gpt-4o', requests: 12, input_tokens: 9000, output_tokens: 1500, cost: 1.25 } });
  orch1.send({
    type: 'usage',
    usage: { model: 'claude-3-5-sonnet', requests: 4, input_tokens: 3000, output_tokens: 800, cost: 0.5 },
  });
  await waitFor('usage to be stored', async () => {
    const r = await stack.api('GET', '/api/v1/controller/costs');
    return Math.abs(r.data.totals.cost - 1.75) < 1e-9;
  });
  await page.goto(`${stack.webUrl}/costs`);
  await expectText(page.getByTestId('costs-total'), /^\$1\.75$/);
  await expectText(page.getByTestId('costs-forecast'), /^\$\d/);
  await page.getByRole('region', { name: 'By model' }).getByText('gpt-4o').waitFor();
  await page.getByRole('region', { name: 'By organization' }).getByText('org-1').waitFor();
  await page.getByRole('img', { name: /Spend per day/ }).waitFor();
  await shot('08-costs');
  // The forecast explains itself on keyboard focus.
  await page.getByRole('button', { name: 'How is this computed?' }).focus();
  await expectText(page.getByRole('tooltip'), /spend/);
  await shot('08b-costs-forecast-explained');
  await page.getByRole('button', { name: 'How is this computed?' }).blur();

  await page.getByRole('link', { name: 'Overview' }).click();
  await expectText(page.getByTestId('cost-this-month'), /^\$1\.75$/);
  await expectText(page.getByTestId('stat-organizations'), /^\d+$/);
  const overview = await stack.api('GET', '/api/v1/controller/overview');
  await expectText(page.getByTestId('stat-active'), new RegExp(`^\\d+$`));
  await expectText(page.getByTestId('stat-orchestrators'), new RegExp(`^${overview.data.total_orchestrators}$`));
  await expectText(page.locator('.events'), /orch-1/);
  await shot('09-overview');
});

test('audit log lists the operator actions', async () => {
  await page.getByRole('link', { name: 'Audit log' }).click();
  await expectText(page.getByTestId('audit-table'), /orchestrator\.independence/);
  await page.getByLabel('Action').selectOption('message.status');
  await waitFor('the action filter', async () => {
    const texts = await page.locator('tbody tr td:nth-child(3)').allTextContents();
    return texts.length === 2 && texts.every((t) => t === 'message.status');
  });
  await page.getByLabel('Action').selectOption('');
  await shot('10-audit-log');
  await page.getByRole('link', { name: 'Users', exact: true }).click();
  await page.getByTestId('users-table').locator('tr[data-user="admin"]', { hasText: 'you' }).waitFor();
  await shot('11-users');
  await page.getByRole('link', { name: 'Organizations' }).click();
  await page.getByRole('link', { name: 'org-1' }).or(page.locator('a[href="/organizations/org-1"]')).first().waitFor();
  await shot('12-organizations');
});

test('phone width and dark theme', async () => {
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true });
  const storage = await context.storageState();
  await phone.addInitScript((origins) => {
    for (const o of origins) for (const { name, value } of o.localStorage) localStorage.setItem(name, value);
  }, storage.origins);
  const mobile = await phone.newPage();
  try {
    await mobile.goto(`${stack.webUrl}/`);
    await expectText(mobile.getByTestId('cost-this-month'), /^\$1\.75$/);
    await mobile.getByRole('heading', { name: 'Recent status events' }).waitFor();
    await expectText(mobile.locator('.live'), /Live/);
    await shot('13-phone-overview-dark', mobile);
    await mobile.goto(`${stack.webUrl}/organizations/org-1`);
    await mobile.locator('article[data-orchestrator="orch-1"]').waitFor();
    await shot('14-phone-organization-dark', mobile);
    await mobile.goto(`${stack.webUrl}/orchestrators`);
    await mobile.locator('tr[data-orchestrator="orch-1"]').waitFor();
    await shot('15-phone-orchestrators-dark', mobile);
    const overflow = await mobile.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at phone width`);
  } finally {
    await phone.close();
  }
  // The toggle pins a theme over prefers-color-scheme.
  await page.goto(`${stack.webUrl}/orchestrators`);
  await page.getByRole('button', { name: /Theme: system/ }).click();
  await page.getByRole('button', { name: /Theme: light/ }).click();
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
  await row('orch-1').waitFor();
  await shot('16-orchestrators-dark');
  await page.getByRole('button', { name: /Theme: dark/ }).click();
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), undefined);
});

test('keyboard: skip link and the independence dialog work without a mouse', async () => {
  await page.goto(`${stack.webUrl}/organizations/org-1`);
  await card('orch-1').waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
  await card('orch-1').getByRole('switch').focus();
  await page.keyboard.press('Enter');
  await page.getByRole('dialog').waitFor();
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'hidden' });
  assert.equal(await card('orch-1').getByRole('switch').getAttribute('aria-checked'), 'false');
});

test('an ended session sends the operator to the login page with a notice', async () => {
  await page.goto(`${stack.webUrl}/orchestrators`);
  await row('orch-1').waitFor();
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem('moolai.session') ?? '{}').token);
  // The session ends on the server (as when it expires); the next call gets 401.
  await stack.request('POST', '/api/v1/internal/auth/logout', undefined, token);
  await page.getByRole('link', { name: 'Costs' }).click();
  await page.getByText('Your session expired').waitFor({ timeout: 20_000 });
  await shot('17-session-expired');
  assert.equal(await page.evaluate(() => localStorage.getItem('moolai.session')), null);

  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(stack.adminPassword);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Costs', level: 1 }).waitFor();
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await page.getByText('Your session expired').count(), 0);
});

test('the API going down shows an error, not a blank page', async () => {
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(stack.adminPassword);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Costs', level: 1 }).waitFor();
  await page.getByRole('link', { name: 'Overview' }).click();
  await expectText(page.getByTestId('cost-this-month'), /^\$1\.75$/);
  await stack.stopProcess('api');
  await page.reload();
  await page.getByText('The controller is unreachable').first().waitFor({ timeout: 20_000 });
  await expectText(page.locator('.live'), /Reconnecting|Connecting/);
  await shot('18-api-down');
});
