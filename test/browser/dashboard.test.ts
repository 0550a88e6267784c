import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import type { IDisconnectPacket } from 'mqtt';
import { type Browser, chromium, type Page } from 'playwright-core';
import { until } from '../helpers/broker.js';
import { connackOf, perTest } from '../helpers/mqtt-client.js';
import { ADMIN_TOKEN, httpBroker } from '../http/support.js';

/**
 * The web dashboard in a real browser (headless Chromium) against a real broker: sign in
 * with the admin token, see an MQTT.js client counted and the queue it publishes to listed on
 * the overview, see it in the client list and kick it, watch a topic filter in the topic
 * explorer while an MQTT.js client publishes, clear a retained message.
 * Screenshots go to test-artifacts/.
 */

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = new URL('../../../test-artifacts/', import.meta.url);

let browser: Browser | undefined;

before(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: install the Debian package \`chromium\` for the dashboard test`);
  await mkdir(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
});

after(async () => {
  await browser?.close();
});

const { cleanups, mqttClient } = perTest();

/** A 1280x800 page; script errors and refused resources (CSP) are collected in `problems`. */
async function openPage(): Promise<{ page: Page; problems: string[] }> {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 800 } });
  cleanups.push(() => page.close());
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`script error: ${error.message}`));
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) problems.push(`CSP: ${message.text()}`);
  });
  // The kick and clear buttons ask for confirmation.
  page.on('dialog', (dialog) => dialog.accept());
  return { page, problems };
}

/** Signs in on the login page the broker's root redirects to. */
async function signIn(page: Page, base: string): Promise<void> {
  await page.goto(`${base}/`);
  assert.equal(new URL(page.url()).pathname, '/dashboard/');
  await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: new URL(name, ARTIFACTS).pathname });
}

describe('the web dashboard in Chromium', { timeout: 90_000 }, () => {
  test('a wrong token is refused on the login page', async () => {
    const { base } = await httpBroker();
    const { page, problems } = await openPage();
    await page.goto(`${base}/dashboard/`);
    await page.getByLabel('Admin token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'That token is not valid.' }).waitFor();
    assert.equal(await page.getByRole('heading', { name: 'Overview' }).isVisible(), false);
    assert.deepEqual(problems, []);
  });

  test('sign in, see and kick an MQTT.js client, watch a filter, clear a retained message', async () => {
    const { base, mqttUrl, cicada } = await httpBroker();
    const victimId = `dashboard-victim-${process.pid}`;
    const victim = mqttClient(mqttUrl, { clientId: victimId, protocolVersion: 5 });
    await connackOf(victim);
    let kickedWith: IDisconnectPacket | undefined;
    let victimClosed = false;
    victim.on('disconnect', (packet) => {
      kickedWith = packet;
    });
    victim.on('close', () => {
      victimClosed = true;
    });

    const { page, problems } = await openPage();
    await signIn(page, base);
    // The overview's tiles come from /api/v1/stats: the MQTT.js client is counted.
    await page.locator('[data-stat="connections"]').filter({ hasText: /^1$/ }).waitFor();
    // Queues: counted in the tiles and listed with their depth (GET /api/v1/queues).
    for (const job of ['job-1', 'job-2']) await victim.publishAsync('$queue/dashboard-jobs', job, { qos: 1 });
    await page.locator('[data-stat="queues"]').filter({ hasText: /^1$/ }).waitFor();
    await page.locator('[data-stat="queueMessages"]').filter({ hasText: /^2$/ }).waitFor();
    const queueRow = page.getByRole('table', { name: 'Queues' }).getByRole('row', { name: /dashboard-jobs/ });
    assert.deepEqual(await queueRow.getByRole('cell').allTextContents(), ['dashboard-jobs', '2', '0', '0']);
    await screenshot(page, 'dashboard-overview.png');

    // Clients: the MQTT.js client is listed, a search for something else hides it, then kick.
    await page.getByRole('link', { name: 'Clients' }).click();
    const clients = page.getByRole('region', { name: 'Clients' });
    await clients.getByRole('cell', { name: victimId, exact: true }).waitFor();
    await clients.getByLabel('Search client id or username').fill('nobody-has-this-id');
    await clients.getByText('No connected clients match.').waitFor();
    await clients.getByLabel('Search client id or username').fill('victim');
    await clients.getByRole('cell', { name: victimId, exact: true }).waitFor();
    await screenshot(page, 'dashboard-clients.png');
    await clients.getByRole('button', { name: `Kick ${victimId}` }).click();
    await until(() => victimClosed, 'the kicked MQTT.js client to see its connection close');
    assert.equal(kickedWith?.reasonCode, 0x98, 'DISCONNECT 0x98 administrative action');
    await clients.getByRole('cell', { name: victimId, exact: true }).waitFor({ state: 'detached' });

    // Topic explorer: subscribe to a filter over SSE and see what an MQTT.js client publishes.
    const publisher = mqttClient(mqttUrl, {
      clientId: `dashboard-publisher-${process.pid}`,
      protocolVersion: 5,
    });
    await connackOf(publisher);
    await page.getByRole('link', { name: 'Topic explorer' }).click();
    const explorer = page.getByRole('region', { name: 'Topic explorer' });
    await explorer.getByLabel('Topic filter').fill('dash/+/reading');
    await explorer.getByRole('button', { name: 'Subscribe' }).click();
    await explorer.getByText('Live: dash/+/reading').waitFor();
    await publisher.publishAsync('dash/other/topic', 'not for this filter', { qos: 1 });
    const payloadCell = explorer.getByRole('cell', { name: 'twenty-one degrees', exact: true }).first();
    // The stream is open once its headers arrive; publishing until the row shows does not
    // depend on when the broker's subscription starts.
    const deadline = Date.now() + 15_000;
    while (!(await payloadCell.isVisible())) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the message in the topic explorer');
      await publisher.publishAsync('dash/kitchen/reading', 'twenty-one degrees', { qos: 1 });
      await page.waitForTimeout(200);
    }
    const oldestRow = explorer.locator('tbody tr').last();
    assert.equal(await oldestRow.locator('td').nth(1).textContent(), 'dash/kitchen/reading');
    assert.equal(await oldestRow.locator('td').nth(4).textContent(), 'twenty-one degrees');
    assert.equal(await explorer.getByText('not for this filter').count(), 0);
    await screenshot(page, 'dashboard.png');

    // Retained browser: list by filter, clear one.
    await publisher.publishAsync('dash/retained/one', 'kept for later', { qos: 1, retain: true });
    await publisher.publishAsync('dash/retained/two', 'also kept', { qos: 1, retain: true });
    await until(() => cicada.broker.retainedCount === 2, 'two retained messages');
    await page.getByRole('link', { name: 'Retained' }).click();
    const retained = page.getByRole('region', { name: 'Retained messages' });
    await retained.getByLabel('Topic filter').fill('dash/retained/#');
    await retained.getByRole('button', { name: 'List' }).click();
    await retained.getByRole('cell', { name: 'kept for later', exact: true }).waitFor();
    await screenshot(page, 'dashboard-retained.png');
    await retained.getByRole('button', { name: 'Clear retained message on dash/retained/one' }).click();
    await retained
      .getByRole('cell', { name: 'dash/retained/one', exact: true })
      .waitFor({ state: 'detached' });
    await retained.getByRole('cell', { name: 'dash/retained/two', exact: true }).waitFor();
    assert.equal(cicada.broker.retainedCount, 1);

    // Signing out clears the cookie: a reload asks for the token again.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Admin token').waitFor();
    await page.reload();
    await page.getByLabel('Admin token').waitFor();
    assert.equal(await page.getByRole('navigation', { name: 'Sections' }).isVisible(), false);

    assert.deepEqual(problems, [], 'no script errors or CSP violations in the page');
  });
});
