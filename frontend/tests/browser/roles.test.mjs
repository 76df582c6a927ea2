// Roles in a real browser against the real controller, with orchestrator authentication on
// (ORCHESTRATOR_AUTH=token): the superadmin manages accounts on the Users page; a viewer sees
// the fleet of its organization with no control to change anything and no Users page; an
// org_admin sees its organization only and operates it; an enrollment token created in the
// dashboard lets an orchestrator connect, and revoking it there closes that socket (4001).
// Screenshots go to target/screenshots/roles-*.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { FakeOrchestrator, Stack, repoDir, waitFor } from './stack.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = join(repoDir, 'target/screenshots');

const stack = new Stack({ orchestratorAuth: 'token' });
const VIEWER = { username: 'vera', password: 'vera-password-1' };
const ORG_ADMIN = { username: 'otto', password: 'otto-password-1' };
let browser;
let admin; // the superadmin's page
let orchA;
let orchB;
let secret;

async function shot(target, name) {
  await target.evaluate(() => window.scrollTo(0, 0));
  await target.screenshot({ path: join(SHOTS, `roles-${name}.png`), fullPage: true });
}

async function expectText(locator, pattern, timeoutMs = 10_000) {
  return waitFor(
    () => `text ${pattern} in ${locator}`,
    async () => pattern.test((await locator.first().textContent({ timeout: 1_000 })) ?? ''),
    { timeoutMs, intervalMs: 50 },
  );
}

/** A fresh browser context (its own localStorage, so its own session) signed in as `who`. */
async function signIn({ username, password }, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light', ...options });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  await page.goto(`${stack.webUrl}/`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
  return page;
}

function userRow(page, username) {
  return page.getByTestId('users-table').locator(`tr[data-user="${username}"]`);
}

function card(page, id) {
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
  await stack.api('POST', '/api/v1/controller/organizations', { organization_id: 'org-a', name: 'Acme', location: 'eu-central' });
  await stack.api('POST', '/api/v1/controller/organizations', { organization_id: 'org-b', name: 'Globex' });
  // org-b's orchestrator enrolls with a token made over the API, sent in its hello.
  const enrollB = await stack.api('POST', '/api/v1/internal/organizations/org-b/enrollment-tokens', { name: 'globex setup' });
  orchB = await stack.orchestrator('orch-b1', 'org-b', { name: 'Globex Gateway' }, { token: enrollB.token, tokenIn: 'hello' });
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
});

after(async () => {
  await browser?.close().catch(() => undefined);
  await stack.stop();
});

test('the superadmin creates a viewer and an org_admin on the Users page', async () => {
  admin = await signIn({ username: 'admin', password: stack.adminPassword });
  await expectText(admin.getByTestId('signed-in'), /admin\s*Superadmin/);
  await admin.getByRole('link', { name: 'Users', exact: true }).click();
  await userRow(admin, 'admin').getByText('you').waitFor();
  // Nobody deletes themselves.
  assert.equal(await userRow(admin, 'admin').getByRole('button', { name: 'Delete admin' }).isDisabled(), true);

  await admin.getByRole('button', { name: 'New user' }).click();
  const form = admin.getByRole('form', { name: 'New user' });
  // The form's own checks first.
  await form.getByLabel('User name').fill('vera smith');
  await form.getByLabel('Password').fill('short');
  await form.getByRole('button', { name: 'Create user' }).click();
  await form.getByText(/letters, digits/).waitFor();
  await form.getByText('At least 12 characters (5 so far).').waitFor();
  assert.equal(await form.getByLabel('User name').getAttribute('aria-invalid'), 'true');
  await shot(admin, '01-new-user-invalid');

  await form.getByLabel('User name').fill(VIEWER.username);
  await form.getByLabel('Password').fill(VIEWER.password);
  await form.getByLabel('Role').selectOption('viewer');
  await form.getByText('Without organizations this account can sign in but sees nothing').waitFor();
  await form.getByRole('checkbox', { name: /Acme/ }).check();
  await form.getByRole('button', { name: 'Create user' }).click();
  await admin.getByText('User vera created (Viewer)').waitFor();
  await expectText(userRow(admin, 'vera'), /Viewer.*org-a/);

  await admin.getByRole('button', { name: 'New user' }).click();
  await form.getByLabel('User name').fill(ORG_ADMIN.username);
  await form.getByLabel('Password').fill(ORG_ADMIN.password);
  await form.getByLabel('Role').selectOption('org_admin');
  await form.getByRole('checkbox', { name: /Acme/ }).check();
  await form.getByRole('button', { name: 'Create user' }).click();
  await expectText(userRow(admin, 'otto'), /Organization admin.*org-a/);

  // The API's refusal is shown as it is.
  await admin.getByRole('button', { name: 'New user' }).click();
  await form.getByLabel('User name').fill('vera');
  await form.getByLabel('Password').fill('another-password');
  await form.getByRole('button', { name: 'Create user' }).click();
  await expectText(form.getByRole('alert'), /Could not create the user: .*vera/);
  await form.getByRole('button', { name: 'Cancel' }).click();

  const users = (await stack.api('GET', '/api/v1/internal/users')).data.items;
  const byName = Object.fromEntries(users.map((u) => [u.username, u]));
  assert.deepEqual([byName.vera.role, byName.vera.organization_ids], ['viewer', ['org-a']]);
  assert.deepEqual([byName.otto.role, byName.otto.organization_ids], ['org_admin', ['org-a']]);
  await shot(admin, '02-users');
});

test('the superadmin changes a role and organizations, resets a password and deletes a user', async () => {
  await stack.api('POST', '/api/v1/internal/users', {
    username: 'temp',
    password: 'temp-password-1',
    role: 'viewer',
    organization_ids: ['org-b'],
  });
  await admin.reload();
  const row = userRow(admin, 'temp');
  await expectText(row, /Viewer.*org-b/);

  await row.getByRole('button', { name: 'Edit temp' }).click();
  const edit = admin.getByRole('dialog', { name: 'Edit temp' });
  assert.equal(await edit.getByRole('button', { name: 'No changes' }).isDisabled(), true);
  await edit.getByLabel('Role').selectOption('org_admin');
  await edit.getByRole('checkbox', { name: /Acme/ }).check();
  await edit.getByRole('checkbox', { name: /Globex/ }).uncheck();
  await shot(admin, '03-edit-user');
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await edit.waitFor({ state: 'hidden' });
  await expectText(row, /Organization admin.*org-a/);
  assert.equal(await row.getByText('org-b').count(), 0);

  await row.getByRole('button', { name: 'Reset the password of temp' }).click();
  const reset = admin.getByRole('dialog', { name: 'Reset the password of temp' });
  await reset.getByLabel('New password', { exact: true }).fill('a-new-password-1');
  await reset.getByLabel('Repeat the new password').fill('a-new-password-2');
  await reset.getByRole('button', { name: 'Reset password' }).click();
  await reset.getByText('The two passwords differ.').waitFor();
  await reset.getByLabel('Repeat the new password').fill('a-new-password-1');
  await reset.getByRole('button', { name: 'Reset password' }).click();
  await admin.getByText('Password of temp reset; their sessions ended').waitFor();
  assert.match(await stack.login('temp', 'a-new-password-1'), /\S+/);

  // Deleting asks first; Cancel keeps the account.
  await row.getByRole('button', { name: 'Delete temp' }).click();
  const confirm = admin.getByRole('dialog', { name: 'Delete temp?' });
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await confirm.waitFor({ state: 'hidden' });
  await row.getByRole('button', { name: 'Delete temp' }).click();
  await confirm.getByRole('button', { name: 'Delete user' }).click();
  await row.waitFor({ state: 'detached' });
  await admin.getByText('User temp deleted').waitFor();
});

test('an enrollment token created in the dashboard lets an orchestrator connect', async () => {
  await admin.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: stack.webUrl });
  await admin.goto(`${stack.webUrl}/organizations/org-a`);
  const tokens = admin.getByTestId('enrollment-tokens');
  await tokens.getByText('No enrollment tokens yet').waitFor();
  await tokens.getByRole('button', { name: 'New enrollment token' }).click();
  await tokens.getByLabel(/Name/).fill('eu rollout');
  await tokens.getByRole('button', { name: 'Create token' }).click();
  const value = tokens.getByTestId('enrollment-secret');
  await value.waitFor();
  secret = await value.inputValue();
  assert.match(secret, /^moo_enr_\S{20,}$/);
  await tokens.getByText('Copy this token now: you will not see it again.').waitFor();
  await tokens.getByRole('button', { name: 'Copy' }).click();
  await tokens.getByRole('button', { name: 'Copied ✓' }).waitFor();
  assert.equal(await admin.evaluate(() => navigator.clipboard.readText()), secret);
  await shot(admin, '04-enrollment-token-secret');
  await tokens.getByRole('button', { name: 'Done, I stored it' }).click();
  assert.equal(await tokens.getByTestId('enrollment-secret').count(), 0, 'the secret is still on the page');
  await expectText(tokens.locator('tbody tr'), /eu rollout.*active/);
  assert.equal((await admin.content()).includes(secret), false, 'the secret is still in the page');

  // Token mode: no token, no entry.
  const stranger = new FakeOrchestrator(stack.wsUrl, 'orch-x', 'org-a');
  await assert.rejects(stranger.connect(), /socket closed/);
  stranger.close();

  orchA = await stack.orchestrator('orch-a1', 'org-a', { name: 'Acme Gateway 1', version: '2.0.1' }, { token: secret });
  await expectText(card(admin, 'orch-a1').locator('.badge'), /^active \(heartbeat\)$/, 8_000);
  await shot(admin, '05-organization-with-token');
});

test('a viewer sees its organization but nothing to change, and no Users page', async () => {
  await stack.api('POST', '/api/v1/internal/orchestrators/orch-a1/messages', {
    message_type: 'recommendation',
    content: 'Route long prompts to the cheaper model.',
  });
  const viewer = await signIn(VIEWER);
  try {
    await expectText(viewer.getByTestId('signed-in'), /vera\s*Viewer/);
    assert.equal(await viewer.getByRole('link', { name: 'Users', exact: true }).count(), 0, 'Users in the navigation');

    await viewer.getByRole('link', { name: 'Orchestrators', exact: true }).click();
    await viewer.locator('tr[data-orchestrator="orch-a1"]').waitFor();
    await expectText(viewer.locator('.pagination'), /of 1 orchestrators/);
    assert.equal(await viewer.locator('tr[data-orchestrator="orch-b1"]').count(), 0);

    await viewer.goto(`${stack.webUrl}/organizations/org-a`);
    const orchCard = card(viewer, 'orch-a1');
    await orchCard.getByText('Route long prompts').waitFor();
    assert.equal(await orchCard.getByRole('switch').count(), 0, 'the viewer has an independence switch');
    assert.equal(await orchCard.getByRole('button', { name: 'Accept' }).count(), 0, 'the viewer can accept');
    assert.equal(await orchCard.getByRole('button', { name: 'Dismiss' }).count(), 0, 'the viewer can dismiss');
    const tokens = viewer.getByTestId('enrollment-tokens');
    await expectText(tokens.locator('tbody tr'), /eu rollout/);
    await tokens.getByText('Your role can see these tokens but not create or revoke them.').waitFor();
    assert.equal(await tokens.getByRole('button').count(), 0, 'token management offered to a viewer');
    await shot(viewer, '06-viewer-organization');

    await orchCard.getByRole('link', { name: 'Acme Gateway 1' }).click();
    await viewer.getByRole('heading', { name: 'Connection history' }).waitFor();
    await viewer.getByText('Route long prompts').waitFor();
    assert.equal(await viewer.getByRole('heading', { name: 'Send a message' }).count(), 0);
    assert.equal(await viewer.getByRole('heading', { name: 'Send a config update' }).count(), 0);
    assert.equal(await viewer.getByRole('switch').count(), 0);
    assert.equal(await viewer.getByRole('button', { name: 'Accept' }).count(), 0);

    await viewer.getByRole('link', { name: 'Organizations', exact: true }).click();
    await viewer.locator('a[href="/organizations/org-a"]').first().waitFor();
    assert.equal(await viewer.getByRole('button', { name: 'New organization' }).count(), 0);
    assert.equal(await viewer.locator('a[href="/organizations/org-b"]').count(), 0);

    await viewer.getByRole('link', { name: 'Audit log' }).click();
    await viewer.getByTestId('audit-scope').waitFor();

    await viewer.goto(`${stack.webUrl}/users`);
    await expectText(viewer.getByTestId('not-allowed'), /Only superadmins manage operator accounts/);
    await shot(viewer, '07-viewer-users-not-allowed');
  } finally {
    await viewer.context().close();
  }
});

test('a refused write (403) is reported plainly and undone', async () => {
  // A session that claims more than it has (edited, or older than a change): the dashboard
  // offers the switch, the API refuses, and the operator is told so.
  const viewer = await signIn(VIEWER);
  try {
    await viewer.evaluate(() => {
      const session = JSON.parse(localStorage.getItem('moolai.session') ?? '{}');
      localStorage.setItem('moolai.session', JSON.stringify({ ...session, role: 'org_admin' }));
    });
    await viewer.goto(`${stack.webUrl}/organizations/org-a`);
    const orchCard = card(viewer, 'orch-a1');
    await orchCard.getByRole('switch', { name: 'Independence mode' }).click();
    await viewer.getByRole('dialog').getByRole('button', { name: 'Turn independence on' }).click();
    await expectText(viewer.locator('.toast-error'), /Could not switch independence of Acme Gateway 1: Not allowed — this needs the org_admin role/);
    await expectText(orchCard.locator('.badge'), /^active \(heartbeat\)$/, 2_000);
    assert.equal(await orchCard.getByRole('switch').getAttribute('aria-checked'), 'false');
    await shot(viewer, '08-forbidden');
    const state = await stack.api('GET', '/api/v1/internal/orchestrators/orch-a1/independence');
    assert.equal(state.data.is_independent, false);
  } finally {
    await viewer.context().close();
  }
});

test('an org_admin sees its organization only, operates it, and revokes its token', async () => {
  const orgAdmin = await signIn(ORG_ADMIN);
  try {
    await expectText(orgAdmin.getByTestId('signed-in'), /otto\s*Organization admin/);
    assert.equal(await orgAdmin.getByRole('link', { name: 'Users', exact: true }).count(), 0);
    await orgAdmin.getByRole('link', { name: 'Orchestrators', exact: true }).click();
    await orgAdmin.locator('tr[data-orchestrator="orch-a1"]').waitFor();
    await expectText(orgAdmin.locator('.pagination'), /of 1 orchestrators/);
    assert.equal(await orgAdmin.locator('tr[data-orchestrator="orch-b1"]').count(), 0);
    // Another organization looks like none at all.
    await orgAdmin.goto(`${stack.webUrl}/organizations/org-b`);
    await orgAdmin.getByText('Not found', { exact: true }).waitFor();

    await orgAdmin.goto(`${stack.webUrl}/organizations/org-a`);
    const orchCard = card(orgAdmin, 'orch-a1');
    await orchCard.getByRole('switch', { name: 'Independence mode' }).waitFor();
    const message = orchCard.locator('li.message', { hasText: 'Route long prompts' });
    await message.getByRole('button', { name: 'Accept' }).click();
    await message.waitFor({ state: 'detached' });
    await orchA.waitForFrame('message');

    const tokens = orgAdmin.getByTestId('enrollment-tokens');
    await tokens.getByRole('button', { name: 'New enrollment token' }).waitFor();
    await tokens.getByRole('button', { name: 'Revoke eu rollout' }).click();
    const dialog = orgAdmin.getByRole('dialog', { name: 'Revoke eu rollout?' });
    await dialog.getByText(/closed \(code 4001\)/).waitFor();
    await shot(orgAdmin, '09-revoke-confirm');
    await dialog.getByRole('button', { name: 'Revoke token' }).click();
    const closed = await orchA.waitForClose();
    assert.equal(closed.code, 4001, `closed with ${closed.code} ${closed.reason}`);
    await expectText(tokens.locator('tbody tr', { hasText: 'eu rollout' }), /revoked/);
    assert.equal(await tokens.getByRole('button', { name: 'Revoke eu rollout' }).count(), 0);
    await expectText(orchCard.locator('.badge'), /^inactive$/, 8_000);
    await shot(orgAdmin, '10-org-admin-token-revoked');

    // The revoked token lets nobody in any more.
    const again = new FakeOrchestrator(stack.wsUrl, 'orch-a1', 'org-a', {}, { token: secret });
    await assert.rejects(again.connect(), /socket closed/);
    again.close();
  } finally {
    await orgAdmin.context().close();
  }
  // org-b's orchestrator, with its own token, was not affected.
  assert.equal(orchB.closed, null);
});

test('users and tokens at phone width, dark', async () => {
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true });
  const storage = await admin.context().storageState();
  await phone.addInitScript((origins) => {
    for (const o of origins) for (const { name, value } of o.localStorage) localStorage.setItem(name, value);
  }, storage.origins);
  const mobile = await phone.newPage();
  try {
    await mobile.goto(`${stack.webUrl}/users`);
    await userRow(mobile, 'otto').waitFor();
    await expectText(mobile.getByTestId('signed-in'), /admin\s*Superadmin/);
    await shot(mobile, '11-phone-users-dark');
    let overflow = await mobile.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the users page scrolls sideways by ${overflow}px at phone width`);
    await mobile.getByRole('button', { name: 'New user' }).click();
    await mobile.getByRole('form', { name: 'New user' }).getByLabel('Role').selectOption('org_admin');
    await mobile.getByRole('checkbox', { name: /Acme/ }).waitFor();
    await shot(mobile, '12-phone-new-user-dark');

    await mobile.goto(`${stack.webUrl}/organizations/org-a`);
    const tokens = mobile.getByTestId('enrollment-tokens');
    await tokens.getByRole('button', { name: 'New enrollment token' }).click();
    await tokens.getByRole('button', { name: 'Create token' }).click();
    await tokens.getByTestId('enrollment-secret').waitFor();
    await shot(mobile, '13-phone-token-secret-dark');
    overflow = await mobile.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the organization page scrolls sideways by ${overflow}px at phone width`);
  } finally {
    await phone.close();
  }
  // And the viewer's phone: who is signed in stays visible.
  const viewer = await signIn(VIEWER, { viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true });
  try {
    await viewer.goto(`${stack.webUrl}/organizations/org-a`);
    await card(viewer, 'orch-a1').waitFor();
    assert.ok(await viewer.getByTestId('signed-in').isVisible());
    await shot(viewer, '14-phone-viewer-organization-dark');
  } finally {
    await viewer.context().close();
  }
});
