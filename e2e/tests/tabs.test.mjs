// Tabs of one profile and the state they share: who may run the ratchet, and what crosses
// between tabs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useRelayAndBrowser, pair, send, waitForText, openConversation, texts } from '../lib/harness.mjs';

const env = useRelayAndBrowser();

const connected = (page) => page.getByRole('status').filter({ hasText: 'Connected' }).waitFor();

/** Records every BroadcastChannel message a page posts, as byte arrays. */
function recordTabMessages() {
  window.__posted = [];
  const original = BroadcastChannel.prototype.postMessage;
  BroadcastChannel.prototype.postMessage = function (data) {
    window.__posted.push(Array.from(data instanceof Uint8Array ? data : new Uint8Array(0)));
    return original.call(this, data);
  };
}

/** True if `haystack` (bytes) contains `needle` (bytes). */
function contains(haystack, needle) {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

async function postedContaining(page, text) {
  const needle = Array.from(new TextEncoder().encode(text));
  const posted = await page.evaluate(() => window.__posted);
  return { count: posted.length, leaks: posted.filter((m) => contains(m, needle)).length };
}

test('a passphrase typed in a second tab reaches the tab that runs the profile sealed, never in clear', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  await send(bob.page, 'under lock');
  await waitForText(alice.page, 'under lock');
  await alice.context.addInitScript(recordTabMessages);

  // Set the lock from a second tab (a follower: the first tab holds the engine).
  const second = await alice.context.newPage();
  await second.goto(env.relay.url);
  await connected(second);
  await second.getByRole('button', { name: 'Settings' }).click();
  const settings = second.getByRole('dialog', { name: 'Settings' });
  await settings.getByLabel('Passphrase lock').fill('purple elephant marmalade');
  await settings.getByLabel('Confirm passphrase').fill('purple elephant marmalade');
  await settings.getByRole('button', { name: 'Set passphrase' }).click();
  await second.getByRole('alert').filter({ hasText: 'Passphrase lock is on.' }).waitFor();
  const setting = await postedContaining(second, 'purple elephant marmalade');
  assert.ok(setting.count > 0, 'the second tab spoke to the first');
  assert.equal(setting.leaks, 0, 'the passphrase never went to the other tab in clear');

  // Both tabs reload: the first to open holds the engine again, the second unlocks it.
  await alice.page.reload();
  await alice.page.getByRole('button', { name: 'Unlock' }).waitFor();
  await second.reload();
  await second.getByLabel('Passphrase', { exact: true }).fill('purple elephant marmalade');
  await second.getByRole('button', { name: 'Unlock' }).click();
  await openConversation(second, 'Bob');
  assert.deepEqual(await texts(second), ['under lock']);
  await openConversation(alice.page, 'Bob');
  for (const page of [alice.page, second]) {
    const unlocking = await postedContaining(page, 'purple elephant marmalade');
    assert.equal(unlocking.leaks, 0, 'no tab posted the passphrase in clear');
  }
  await send(second, 'unlocked from the second tab');
  await waitForText(bob.page, 'unlocked from the second tab');
});

test('without Web Locks a second tab does not run the ratchet: it follows the first and says to keep one tab', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  await alice.context.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined, configurable: true });
  });
  // The first tab, reloaded without Web Locks, takes the engine (no other tab answers it).
  await alice.page.reload();
  await connected(alice.page);
  assert.equal(await alice.page.evaluate(() => navigator.locks), undefined);

  const second = await alice.context.newPage();
  await second.goto(env.relay.url);
  await second.getByRole('alert').filter({ hasText: 'This browser cannot coordinate Doorless tabs' }).waitFor();
  // It still works, through the first tab: one engine, one ratchet.
  await openConversation(second, 'Bob');
  await send(second, 'from the second tab');
  await openConversation(bob.page, 'Alice');
  await waitForText(bob.page, 'from the second tab');
  // The first tab was reloaded: the person opens the conversation there too.
  await openConversation(alice.page, 'Bob');
  await send(alice.page, 'from the first tab');
  await waitForText(bob.page, 'from the first tab');
  assert.deepEqual(await texts(bob.page), ['from the second tab', 'from the first tab']);
  await send(bob.page, 'both of you');
  await waitForText(second, 'both of you');
  await waitForText(alice.page, 'both of you');
});

test('a tab whose stored profile was changed under it stops and sends nothing it could not save', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  await send(alice.page, 'saved and sent');
  await waitForText(bob.page, 'saved and sent');
  // Another writer (or an older copy put back) moves the stored generation on.
  await alice.page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const open = indexedDB.open('doorless');
        open.onsuccess = () => {
          const tx = open.result.transaction(['kv'], 'readwrite');
          tx.objectStore('kv').put(1_000_000, 'generation');
          tx.oncomplete = () => {
            open.result.close();
            resolve();
          };
          tx.onerror = () => reject(tx.error);
        };
        open.onerror = () => reject(open.error);
      }),
  );
  // Whatever the tab saves next is refused: this message, or a save it was already making (then
  // the tab may stop before the message can be written, and the composer is gone).
  try {
    await alice.page.getByRole('textbox', { name: 'Message' }).fill('never leaves this tab', { timeout: 5_000 });
    await alice.page.getByRole('button', { name: 'Send' }).click({ timeout: 5_000 });
  } catch {
    assert.ok(await alice.page.getByRole('heading', { name: 'Doorless stopped in this tab' }).isVisible());
  }
  await alice.page.getByRole('heading', { name: 'Doorless stopped in this tab' }).waitFor();
  // Bob's side answers and goes on; nothing from the stopped tab arrives.
  await send(bob.page, 'are you there?');
  await bob.page.locator('.message.mine', { hasText: 'are you there?' }).locator('.meta', { hasText: 'sent' }).waitFor();
  assert.deepEqual(await texts(bob.page), ['saved and sent', 'are you there?']);
});
