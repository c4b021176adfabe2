// Works without the relay: a service worker keeps the hash-pinned release build, so a reload while
// the relay (which also serves the app) is stopped opens the profile and its history, and what is
// written meanwhile goes out when the relay is back. A changed build is taken as an update.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DIST, launchBrowser, startRelay, newPerson, onboard, pair, send, waitForText, openConversation,
  connected, audit,
} from '../lib/harness.mjs';

/** Waits until the worker controls the page: from then on the app's files come from its cache. */
const controlled = (page) => page.waitForFunction(() => navigator.serviceWorker?.controller != null);

const sri = (bytes) => `sha384-${createHash('sha384').update(bytes).digest('base64')}`;

test('a reload while the relay is stopped shows the history, and what is written goes out when the relay is back', async () => {
  let relay = await startRelay();
  const browser = await launchBrowser();
  try {
    const { alice, bob } = await pair(browser, relay);
    await send(alice.page, 'before the outage');
    await waitForText(bob.page, 'before the outage');
    await send(bob.page, 'an answer before the outage');
    await waitForText(alice.page, 'an answer before the outage');
    await controlled(alice.page);

    await relay.stop();
    const loaded = await alice.page.reload();
    assert.ok(loaded.fromServiceWorker(), 'the page came from the worker, not the network');
    await alice.page.getByRole('status').filter({ hasText: 'Offline' }).waitFor();
    await openConversation(alice.page, 'Bob');
    await waitForText(alice.page, 'before the outage');
    await waitForText(alice.page, 'an answer before the outage');

    await send(alice.page, 'written during the outage');
    const mine = alice.page.getByRole('log', { name: 'Messages' }).locator('.message', { hasText: 'written during the outage' });
    await mine.filter({ hasText: 'waiting to send' }).waitFor();
    await audit(alice.page, 'offline after a reload');

    // The relay comes back on the same address with the same data: both tabs reconnect by themselves.
    relay = await startRelay([], { listen: new URL(relay.url).host, dataDir: relay.dataDir });
    await connected(alice.page);
    await waitForText(bob.page, 'written during the outage');
    await mine.filter({ hasText: 'delivered' }).waitFor();
  } finally {
    await browser.close();
    await relay.stop();
  }
});

test('the worker serves only the pinned build; a changed build is installed, announced and taken on "Reload to update"', async () => {
  // A copy of the build that the test can change; precompressed siblings would serve the old bytes.
  const dir = mkdtempSync(join(tmpdir(), 'doorless-dist-'));
  cpSync(DIST, dir, { recursive: true });
  for (const name of ['index.html', 'sw.js']) {
    for (const suffix of ['.br', '.gz']) rmSync(join(dir, name + suffix), { force: true });
  }
  const relay = await startRelay([], { dist: dir });
  const browser = await launchBrowser();
  try {
    const alice = await newPerson(browser);
    await alice.page.goto(relay.url);
    await onboard(alice.page, 'Alice');
    await controlled(alice.page);
    const marker = alice.page.locator('meta[name="doorless-test-build"]');

    // The relay serves a changed index.html but the same worker: the pinned one is still served.
    const index = readFileSync(join(dir, 'index.html'));
    const changed = Buffer.from(index.toString('utf8').replace('<title>', '<meta name="doorless-test-build" content="2"><title>'));
    assert.notDeepEqual(changed, index, 'the test changed index.html');
    writeFileSync(join(dir, 'index.html'), changed);
    await alice.page.reload();
    await connected(alice.page);
    assert.equal(await marker.count(), 0, 'a file that the worker does not pin is not served');

    // A changed build: the worker script pins the new index.html.
    const worker = readFileSync(join(dir, 'sw.js'), 'utf8');
    assert.ok(worker.includes(sri(index)), 'the worker pins index.html by its SHA-384');
    writeFileSync(join(dir, 'sw.js'), worker.replace(sri(index), sri(changed)));
    await alice.page.reload();
    await connected(alice.page);
    const ready = alice.page.getByRole('status').filter({ hasText: 'A new version of Doorless is ready' });
    await ready.waitFor();
    assert.equal(await marker.count(), 0, 'the update waits until the person takes it');
    await audit(alice.page, 'update ready');
    await alice.page.getByRole('button', { name: 'Reload to update' }).click();
    await marker.waitFor({ state: 'attached' });
    await connected(alice.page);
    assert.equal(await ready.count(), 0);
    // The profile is the same one.
    await alice.page.getByRole('button', { name: 'Settings' }).click();
    assert.equal(await alice.page.getByRole('textbox', { name: 'Display name' }).inputValue(), 'Alice');
  } finally {
    await browser.close();
    await relay.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
