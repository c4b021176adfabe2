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
  connected, audit, VIEWPORTS,
} from '../lib/harness.mjs';

/** Waits until the worker controls the page: from then on the app's files come from its cache. */
const controlled = (page) => page.waitForFunction(() => navigator.serviceWorker?.controller != null);

const sri = (bytes) => `sha384-${createHash('sha384').update(bytes).digest('base64')}`;

for (const [label, viewport] of VIEWPORTS) {
  test(`a reload while the relay is stopped shows the history, and what is written goes out when the relay is back (${label})`, async () => {
    let relay = await startRelay();
    const browser = await launchBrowser();
    try {
      const { alice, bob } = await pair(browser, relay, { viewport });
      await send(alice.page, 'before the outage');
      await waitForText(bob.page, 'before the outage');
      await send(bob.page, 'an answer before the outage');
      await waitForText(alice.page, 'an answer before the outage');
      await controlled(alice.page);

      await relay.stop();
      const loaded = await alice.page.reload();
      assert.ok(loaded.fromServiceWorker(), 'the page came from the worker, not the network');
      const offline = alice.page.getByRole('status').filter({ hasText: 'Offline' });
      await offline.waitFor();
      // Said where a person sees it, without scrolling.
      const box = await offline.boundingBox();
      assert.ok(box.y >= 0 && box.y + box.height <= viewport.height && box.x + box.width <= viewport.width, `status off screen: ${JSON.stringify(box)}`);
      await openConversation(alice.page, 'Bob');
      await waitForText(alice.page, 'before the outage');
      await waitForText(alice.page, 'an answer before the outage');

      await send(alice.page, 'written during the outage');
      const mine = alice.page.getByRole('log', { name: 'Messages' }).locator('.message', { hasText: 'written during the outage' });
      await mine.filter({ hasText: 'waiting to send' }).waitFor();
      await audit(alice.page, `offline after a reload (${label})`);

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
}

test('the worker serves only the pinned build; a changed build is installed, announced and taken on "Reload to update"; one whose files do not match is not', async () => {
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
    // The browser's reload does not take it: the page comes back with the same build and note.
    await alice.page.reload();
    await ready.waitFor();
    assert.equal(await marker.count(), 0, 'a plain reload keeps the build in use');
    await audit(alice.page, 'update ready');
    await alice.page.getByRole('button', { name: 'Reload to update' }).click();
    await marker.waitFor({ state: 'attached' });
    await connected(alice.page);
    assert.equal(await ready.count(), 0);
    // The profile is the same one.
    await alice.page.getByRole('button', { name: 'Settings' }).click();
    const settings = alice.page.getByRole('dialog', { name: 'Settings' });
    assert.equal(await settings.getByRole('textbox', { name: 'Display name' }).inputValue(), 'Alice');
    await settings.getByRole('button', { name: 'Close' }).click();

    // A worker that pins a file the relay does not serve (a tampered build, or a half-deployed one)
    // never installs: the build in use stays, and nothing is announced.
    const pinned = readFileSync(join(dir, 'sw.js'), 'utf8');
    writeFileSync(join(dir, 'sw.js'), pinned.replace(sri(changed), sri(Buffer.from('some other index.html'))));
    const outcome = await alice.page.evaluate(async () => {
      const registration = await navigator.serviceWorker.getRegistration();
      await registration.update();
      const installing = registration.installing;
      if (!installing) return 'nothing to install';
      return new Promise((resolve) => {
        const settled = () => ['installed', 'redundant'].includes(installing.state) && resolve(installing.state);
        installing.addEventListener('statechange', settled);
        settled();
      });
    });
    assert.equal(outcome, 'redundant', 'the worker with a wrong pin was discarded');
    assert.equal(await ready.count(), 0, 'no update is announced');
    await alice.page.reload();
    await connected(alice.page);
    assert.equal(await marker.count(), 1, 'the build in use is still served');
  } finally {
    await browser.close();
    await relay.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
