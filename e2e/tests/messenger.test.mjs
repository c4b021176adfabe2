// The one-to-one messenger as people use it: persistence, offline delivery, several tabs, trust.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ARTIFACTS, useRelayAndBrowser, newPerson, onboard, makeInvite, send, screenshot, pair,
  openConversation, texts, waitForText, launchProfile, introduce, sendBurst,
} from '../lib/harness.mjs';

const env = useRelayAndBrowser();

const connected = (page) => page.getByRole('status').filter({ hasText: 'Connected' }).waitFor();

test('delivery state reaches "delivered" and both sides reload and continue', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  await send(alice.page, 'before reload');
  await waitForText(bob.page, 'before reload');
  await alice.page.locator('.message.mine', { hasText: 'before reload' }).locator('.meta', { hasText: 'delivered' }).waitFor();

  await Promise.all([alice.page.reload(), bob.page.reload()]);
  await Promise.all([connected(alice.page), connected(bob.page)]);
  await openConversation(alice.page, 'Bob');
  await openConversation(bob.page, 'Alice');
  assert.deepEqual(await texts(bob.page), ['before reload']);

  await send(bob.page, 'after reload');
  await waitForText(alice.page, 'after reload');
  await send(alice.page, 'still here');
  await waitForText(bob.page, 'still here');
  assert.deepEqual(await texts(alice.page), ['before reload', 'after reload', 'still here']);
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
});

test('B closes the app, A sends three messages, B reopens and sees all three in order', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  await bob.page.close();
  for (const n of [1, 2, 3]) {
    await send(alice.page, `while you were away ${n}`);
    await alice.page.locator('.message.mine', { hasText: `while you were away ${n}` }).locator('.meta', { hasText: 'sent' }).waitFor();
  }
  const page = await bob.context.newPage();
  await page.goto(env.relay.url);
  await connected(page);
  await openConversation(page, 'Alice');
  await waitForText(page, 'while you were away 3');
  assert.deepEqual(await texts(page), ['while you were away 1', 'while you were away 2', 'while you were away 3']);
});

test('two tabs of A send alternately 100 times each; B gets all 200 in order, none undecryptable', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  const second = await alice.context.newPage();
  const secondErrors = [];
  second.on('pageerror', (e) => secondErrors.push(String(e)));
  await second.goto(env.relay.url);
  await connected(second);
  await openConversation(second, 'Bob');
  const tabs = [alice.page, second];
  const sent = [];
  for (let i = 0; i < 200; i++) {
    const tab = tabs[i % 2];
    const text = `tab ${i % 2} message ${i}`;
    // A person switches to the tab they type in (background tabs are throttled by the env.browser).
    await tab.bringToFront();
    await send(tab, text);
    // Each tab shows the owner's state, so the message appears in both before the next goes out.
    await waitForText(tab, text);
    sent.push(text);
  }
  await waitForText(bob.page, sent[199]);
  assert.deepEqual(await texts(bob.page), sent);
  await waitForText(alice.page, sent[199]);
  assert.deepEqual(await texts(alice.page), sent);

  await bob.page.getByRole('button', { name: 'Settings' }).click();
  await bob.page.getByText('Deliveries that failed to decrypt (tampered, replayed or foreign): 0').waitFor();
  assert.deepEqual(secondErrors, []);

  await bob.page.getByRole('dialog', { name: 'Settings' }).getByRole('button', { name: 'Close' }).click();

  // The owner tab closes; the other takes over the engine and keeps talking.
  await alice.page.close();
  await second.bringToFront();
  await send(second, 'after takeover');
  await waitForText(bob.page, 'after takeover');
  await waitForText(second, 'after takeover');
});

test('a long conversation: the newest messages are shown, earlier ones on request, all in order after a reload', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  const sent = Array.from({ length: 300 }, (_, i) => `long history ${i}`);
  // A burst typed in A's tab: each is sent without waiting for the previous one to arrive.
  await alice.page.bringToFront();
  await sendBurst(alice.page, sent);
  await bob.page.bringToFront();
  await waitForText(bob.page, sent[299]);

  const showAll = async (page) => {
    const earlier = page.getByRole('button', { name: 'Show earlier messages' });
    // Only the newest part of the history is in the page at first.
    const shown = await texts(page);
    assert.ok(shown.length < sent.length, `all ${shown.length} messages rendered at once`);
    assert.deepEqual(shown, sent.slice(sent.length - shown.length));
    while (await earlier.isVisible()) await earlier.click();
    assert.deepEqual(await texts(page), sent);
  };
  await showAll(bob.page);
  await waitForText(alice.page, sent[299]);
  await showAll(alice.page);

  // The history is stored in chunks; all of them come back after a reload.
  await bob.page.reload();
  await connected(bob.page);
  await openConversation(bob.page, 'Alice');
  await waitForText(bob.page, sent[299]);
  await showAll(bob.page);
  await send(bob.page, 'read them all');
  await waitForText(alice.page, 'read them all');
});

test('notifications: opt-in, only while the tab is hidden, with the sender but never the text', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  await bob.context.grantPermissions(['notifications']);
  // What the app asks the browser to show (the system notification itself is outside the page),
  // and the page's visibility under the test's control: headless Chromium keeps every tab visible.
  await bob.page.addInitScript(() => {
    window.__notifications = [];
    const Real = window.Notification;
    window.Notification = class extends Real {
      constructor(title, options) {
        super(title, options);
        window.__notifications.push({ title, body: options?.body, hidden: document.hidden });
      }
    };
    let hidden = false;
    Object.defineProperty(document, 'hidden', { get: () => hidden });
    Object.defineProperty(document, 'visibilityState', { get: () => (hidden ? 'hidden' : 'visible') });
    window.__setHidden = (value) => {
      hidden = value;
      document.dispatchEvent(new Event('visibilitychange'));
    };
    // Every title the page sets, in order, even one replaced within the same task.
    window.__titles = [];
    const title = Object.getOwnPropertyDescriptor(Document.prototype, 'title');
    Object.defineProperty(document, 'title', {
      get() { return title.get.call(this); },
      set(value) { window.__titles.push(value); title.set.call(this, value); },
    });
  });
  await bob.page.reload();
  await connected(bob.page);
  await openConversation(bob.page, 'Alice');
  const notified = () => bob.page.evaluate(() => window.__notifications);
  const hideBob = () => bob.page.evaluate(() => window.__setHidden(true));
  const showBob = () => bob.page.evaluate(() => window.__setHidden(false));

  // Not opted in: nothing, even while hidden.
  await hideBob();
  await send(alice.page, 'before opting in');
  await waitForText(bob.page, 'before opting in');
  await showBob();
  await bob.page.getByRole('button', { name: 'Settings' }).click();
  const dialog = bob.page.getByRole('dialog', { name: 'Settings' });
  await dialog.getByRole('checkbox', { name: 'Notify me of new messages when this tab is hidden' }).check();
  await dialog.getByRole('button', { name: 'Close' }).click();

  // Opted in, tab visible: nothing; and the conversation on screen never shows an unread count,
  // not even for the moment before it is marked read.
  await bob.page.evaluate(() => { window.__titles = []; });
  await send(alice.page, 'while you look');
  await waitForText(bob.page, 'while you look');
  assert.deepEqual(await notified(), []);
  assert.equal(await bob.page.locator('.conversations .badge').count(), 0);
  assert.deepEqual(
    (await bob.page.evaluate(() => window.__titles)).filter((t) => t !== 'Doorless'),
    [],
  );

  // Opted in, tab hidden: one notification, naming the sender, without the text.
  await hideBob();
  await send(alice.page, 'secret words 42');
  await waitForText(bob.page, 'secret words 42');
  await bob.page.waitForFunction(() => window.__notifications.length > 0);
  assert.deepEqual(await notified(), [{ title: 'Doorless', body: 'New message from Alice', hidden: true }]);
  // Unseen while hidden: the count is in the tab title until the person looks again.
  await bob.page.waitForFunction(() => document.title === '(1) Doorless');
  // (The title recorder sees this, so its silence above means something.)
  assert.ok((await bob.page.evaluate(() => window.__titles)).includes('(1) Doorless'));
  await showBob();
  await bob.page.waitForFunction(() => document.title === 'Doorless');
});

test('a browser restart with an on-disk profile: the conversation, its keys and the outbox survive', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'doorless-profile-'));
  let bob = await launchProfile(dir);
  // A browser of its own: closed even when the test fails, or it would keep the test file running.
  t.after(() => bob.context.close().catch(() => {}));
  // Keep hold of the page's sockets, to cut them later.
  await bob.context.addInitScript(() => {
    const Real = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Real {
      constructor(...args) {
        super(...args);
        window.__sockets.push(this);
      }
    };
  });
  const alice = await newPerson(env.browser);
  await introduce(alice, bob, env.relay);
  await send(bob.page, 'before the restart');
  await waitForText(alice.page, 'before the restart');
  // Written while the relay is unreachable for Bob's browser: it waits in the stored outbox.
  // (Playwright's offline mode leaves open WebSockets alone, so the page loses its network here:
  // the socket closes and every reconnection attempt goes to a closed port.)
  await bob.page.evaluate(() => {
    const Real = window.WebSocket;
    for (const ws of window.__sockets ?? []) ws.close();
    window.WebSocket = class extends Real {
      constructor(url, protocols) {
        super('ws://127.0.0.1:9/', protocols);
      }
    };
  });
  await bob.page.getByRole('status').filter({ hasText: 'Offline' }).waitFor();
  await send(bob.page, 'written offline');
  await bob.page.locator('.message', { hasText: 'written offline' }).getByText('waiting to send').waitFor();
  await bob.context.close();

  await send(alice.page, 'while the browser was closed');
  bob = await launchProfile(dir);
  await bob.page.goto(env.relay.url);
  await connected(bob.page);
  await openConversation(bob.page, 'Alice');
  await waitForText(bob.page, 'while the browser was closed');
  await waitForText(alice.page, 'written offline');
  // Each side shows messages in the order they were written or received there.
  assert.deepEqual(await texts(alice.page), ['before the restart', 'while the browser was closed', 'written offline']);
  assert.deepEqual(await texts(bob.page), ['before the restart', 'written offline', 'while the browser was closed']);
  await bob.context.close();
});

test('a verified contact whose key changes: A is warned and blocked until accepting', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  await alice.page.getByRole('button', { name: 'Safety number' }).click();
  const aliceDialog = alice.page.getByRole('dialog', { name: 'Verify safety number' });
  const aliceNumber = await aliceDialog.getByLabel('Safety number', { exact: true }).textContent();
  await bob.page.getByRole('button', { name: 'Safety number' }).click();
  const bobNumber = await bob.page.getByRole('dialog', { name: 'Verify safety number' }).getByLabel('Safety number', { exact: true }).textContent();
  assert.match(aliceNumber, /^(\d{5} ){11}\d{5}$/);
  assert.equal(aliceNumber, bobNumber);
  await aliceDialog.getByRole('img', { name: 'Safety number QR code' }).waitFor();
  await screenshot(alice.page, 'safety-number');
  await aliceDialog.getByRole('button', { name: 'Mark as verified' }).click();
  await aliceDialog.getByText('You have verified Bob.').waitFor();
  await aliceDialog.getByRole('button', { name: 'Close' }).click();

  // B deletes everything and comes back with a new identity through a re-invite.
  await bob.page.getByRole('dialog').getByRole('button', { name: 'Close' }).click();
  await bob.page.getByRole('button', { name: 'Settings' }).click();
  await bob.page.getByRole('button', { name: 'Delete all data' }).click();
  await Promise.all([
    bob.page.waitForEvent('load'),
    bob.page.getByRole('button', { name: 'Really delete everything' }).click(),
  ]);
  await bob.page.getByRole('textbox', { name: 'Your name' }).waitFor();

  await alice.page.getByText('Lost contact? Invite them again').click();
  await alice.page.getByRole('button', { name: 'Invite again' }).click();
  const link = await alice.page.getByRole('textbox', { name: 'Invite link' }).inputValue();
  await bob.page.goto(link);
  await onboard(bob.page, 'Bob');
  await bob.page.getByRole('button', { name: 'Accept invite' }).click();
  await openConversation(bob.page, 'Alice');

  const warning = alice.page.getByRole('alert').filter({ hasText: 'safety number changed' });
  await warning.waitFor();
  assert.equal(await alice.page.getByRole('button', { name: 'Send' }).isDisabled(), true);
  assert.equal(await alice.page.getByRole('textbox', { name: 'Message' }).isDisabled(), true);
  await alice.page.getByText("Bob's safety number changed. Compare it again").waitFor();

  await warning.getByRole('button', { name: 'Accept new safety number' }).click();
  await send(alice.page, 'welcome back, new Bob');
  await waitForText(bob.page, 'welcome back, new Bob');
});

test('keyboard only: reach the conversation, write two lines with Shift+Enter, send with Enter', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  const page = alice.page;
  await page.locator('body').click({ position: { x: 1, y: 1 } });
  const focusOn = async (predicate) => {
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(predicate)) return;
    }
    throw new Error('could not reach the element with Tab');
  };
  await focusOn(() => document.activeElement?.getAttribute('aria-label') === 'Message');
  await page.keyboard.type('first line');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('second line');
  await page.keyboard.press('Enter');
  await waitForText(bob.page, 'second line');
  assert.deepEqual(await texts(bob.page), ['first line\nsecond line']);
  assert.equal(await page.getByRole('textbox', { name: 'Message' }).inputValue(), '');
});

test('the invite QR code decodes with an ordinary reader to the invite link', async () => {
  const alice = await newPerson(env.browser);
  await alice.page.goto(env.relay.url);
  await onboard(alice.page, 'Alice');
  const link = await makeInvite(alice.page);
  const file = join(ARTIFACTS, 'invite-qr.png');
  await alice.page.getByRole('img', { name: 'Invite QR code' }).screenshot({ path: file });
  const decoded = execFileSync('zbarimg', ['--raw', '-q', file], { encoding: 'utf8' }).trim();
  assert.equal(decoded, link);
});

test('screenshots of the main screens: light and dark, desktop and 360 px', async () => {
  for (const colorScheme of ['light', 'dark']) {
    for (const [label, viewport] of [['desktop', { width: 1200, height: 760 }], ['360px', { width: 360, height: 740 }]]) {
      const { alice, bob } = await pair(env.browser, env.relay, { colorScheme, viewport });
      // A long conversation: the header and the composer stay put, the log scrolls.
      await sendBurst(bob.page, Array.from({ length: 40 }, (_, i) => `Earlier message ${i + 1}`));
      await waitForText(alice.page, 'Earlier message 40');
      await send(alice.page, 'Hi Bob! This conversation is end-to-end encrypted.');
      await waitForText(bob.page, 'end-to-end encrypted');
      await send(bob.page, 'Hi Alice. The relay only sees padded ciphertext.\nEven the name is inside the encryption. Details: https://example.org/doorless');
      await waitForText(alice.page, 'padded ciphertext');
      await screenshot(alice.page, `chat-${colorScheme}-${label}`);
      const fresh = await newPerson(env.browser, { colorScheme, viewport });
      await fresh.page.goto(env.relay.url);
      await screenshot(fresh.page, `start-${colorScheme}-${label}`);
      await onboard(fresh.page, 'Carol');
      await makeInvite(fresh.page);
      await screenshot(fresh.page, `invite-${colorScheme}-${label}`);
      for (const p of [alice, bob, fresh]) await p.context.close();
    }
  }
});

test('a passphrase lock: after a reload the profile opens only with the passphrase', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  await send(bob.page, 'kept under lock');
  await waitForText(alice.page, 'kept under lock');
  await alice.page.getByRole('button', { name: 'Settings' }).click();
  const settings = alice.page.getByRole('dialog', { name: 'Settings' });
  // The build hash shown is the SRI hash of the wasm the page actually loaded.
  const served = await alice.page.evaluate(() => document.querySelector('link[as=fetch][href$=".wasm"]').integrity);
  assert.match(served, /^sha384-/);
  assert.equal(await settings.getByLabel('Build hash').textContent(), served);
  await settings.getByLabel('Passphrase lock').fill('correct horse battery');
  await settings.getByLabel('Confirm passphrase').fill('correct horse battery');
  await settings.getByRole('button', { name: 'Set passphrase' }).click();
  await alice.page.getByRole('alert').filter({ hasText: 'Passphrase lock is on.' }).waitFor();

  await alice.page.reload();
  const passphrase = alice.page.getByLabel('Passphrase', { exact: true });
  await passphrase.fill('wrong guess');
  await alice.page.getByRole('button', { name: 'Unlock' }).click();
  await alice.page.getByRole('alert').filter({ hasText: 'Wrong passphrase.' }).waitFor();
  assert.equal(await alice.page.getByRole('list', { name: 'Conversations' }).count(), 0);

  await passphrase.fill('correct horse battery');
  await alice.page.getByRole('button', { name: 'Unlock' }).click();
  await openConversation(alice.page, 'Bob');
  assert.deepEqual(await texts(alice.page), ['kept under lock']);
  await send(alice.page, 'unlocked and talking');
  await waitForText(bob.page, 'unlocked and talking');
});
