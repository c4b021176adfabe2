// The conversation menu: clear history, block and delete, each confirmed first, at desktop size
// and at 360 px; what each leaves behind after a reload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  useRelayAndBrowser, pair, send, texts, waitForText, openConversation, audit, VIEWPORTS, connected,
} from '../lib/harness.mjs';

const env = useRelayAndBrowser();

/** Opens the conversation menu and picks `item`; returns the confirmation dialog (if it asks). */
async function choose(page, item) {
  const button = page.getByRole('button', { name: 'Conversation menu' });
  await button.click();
  const menu = page.getByRole('menu', { name: 'Conversation menu' });
  await menu.waitFor();
  assert.equal(await button.getAttribute('aria-expanded'), 'true');
  await menu.getByRole('menuitem', { name: item, exact: true }).click();
  await menu.waitFor({ state: 'detached' });
}

/** The last outgoing entry with `text` shows `state` ("sent", "delivered"). */
const stateOf = (page, text, state) =>
  page.locator('.message.mine', { hasText: text }).locator('.meta', { hasText: state }).waitFor();

for (const [label, viewport] of VIEWPORTS) {
  test(`conversation menu (${label}): clear history, block and unblock, delete; each confirmed and kept after a reload`, async () => {
    const { alice, bob } = await pair(env.browser, env.relay, { viewport });
    await send(bob.page, 'first words');
    await waitForText(alice.page, 'first words');
    await send(alice.page, 'a reply');
    await waitForText(bob.page, 'a reply');

    // The menu by keyboard: focus goes to the first item, arrows move, Escape returns.
    const menuButton = alice.page.getByRole('button', { name: 'Conversation menu' });
    await menuButton.focus();
    await alice.page.keyboard.press('Enter');
    const menu = alice.page.getByRole('menu', { name: 'Conversation menu' });
    await menu.waitFor();
    assert.deepEqual(await menu.getByRole('menuitem').allTextContents(), ['Rename', 'Clear history', 'Block', 'Delete conversation']);
    const focusedItem = () => alice.page.evaluate(() => document.activeElement?.textContent);
    assert.equal(await focusedItem(), 'Rename');
    await alice.page.keyboard.press('ArrowDown');
    assert.equal(await focusedItem(), 'Clear history');
    await alice.page.keyboard.press('ArrowUp');
    await alice.page.keyboard.press('ArrowUp');
    assert.equal(await focusedItem(), 'Delete conversation');
    await audit(alice.page, `conversation menu (${label})`);
    await alice.page.keyboard.press('Escape');
    await menu.waitFor({ state: 'detached' });
    assert.equal(await alice.page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Conversation menu');

    // Clear history: Cancel keeps everything; confirmed, the log is empty and stays so.
    await choose(alice.page, 'Clear history');
    let dialog = alice.page.getByRole('dialog', { name: 'Clear the history with Bob?' });
    await dialog.waitFor();
    await audit(alice.page, `confirming "Clear history" (${label})`);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached' });
    assert.deepEqual(await texts(alice.page), ['first words', 'a reply']);
    await choose(alice.page, 'Clear history');
    await dialog.getByRole('button', { name: 'Clear history' }).click();
    await alice.page.getByRole('log', { name: 'Messages' }).locator('.text').first().waitFor({ state: 'detached' });
    await alice.page.reload();
    await connected(alice.page);
    await openConversation(alice.page, 'Bob');
    assert.deepEqual(await texts(alice.page), []);
    await send(bob.page, 'after the clear');
    await waitForText(alice.page, 'after the clear');
    assert.deepEqual(await texts(alice.page), ['after the clear']);

    // Block: Bob's next message is neither shown nor acknowledged with a receipt, and Alice
    // cannot write to him.
    await choose(alice.page, 'Block');
    dialog = alice.page.getByRole('dialog', { name: 'Block Bob?' });
    await dialog.getByRole('button', { name: 'Block' }).click();
    await alice.page.getByRole('status').filter({ hasText: 'You blocked Bob.' }).waitFor();
    assert.equal(await alice.page.getByRole('button', { name: 'Send' }).isDisabled(), true);
    await send(bob.page, 'let me in');
    await stateOf(bob.page, 'let me in', 'sent');
    // Unblocked: the next message arrives; the one sent while blocked never does (delivery is
    // in order, so it was handled, and dropped, before this one).
    await choose(alice.page, 'Unblock');
    await send(bob.page, 'hello again');
    await waitForText(alice.page, 'hello again');
    assert.deepEqual(await texts(alice.page), ['after the clear', 'hello again']);
    await stateOf(bob.page, 'hello again', 'delivered');
    assert.equal(await bob.page.locator('.message.mine', { hasText: 'let me in' }).locator('.meta', { hasText: 'delivered' }).count(), 0);

    // Delete: gone from the list, and still gone after a reload.
    await choose(alice.page, 'Delete conversation');
    dialog = alice.page.getByRole('dialog', { name: 'Delete the conversation with Bob?' });
    await dialog.getByRole('button', { name: 'Delete conversation' }).click();
    const list = alice.page.getByRole('list', { name: 'Conversations' });
    await list.getByRole('listitem').first().waitFor({ state: 'detached' });
    // What the person sees is already saved: once the list shows the deletion, the conversation's
    // records are gone from storage (a message arriving during the save must not show it early).
    const stored = await alice.page.evaluate(async () => {
      const db = await new Promise((resolve, reject) => {
        const open = indexedDB.open('doorless');
        open.onsuccess = () => resolve(open.result);
        open.onerror = () => reject(open.error);
      });
      const keys = await new Promise((resolve, reject) => {
        const all = db.transaction('kv').objectStore('kv').getAllKeys();
        all.onsuccess = () => resolve(all.result);
        all.onerror = () => reject(all.error);
      });
      db.close();
      return keys.map(String).filter((key) => key.startsWith('log/'));
    });
    assert.deepEqual(stored, [], 'the deleted conversation is still stored while the list shows it gone');
    await alice.page.reload();
    await connected(alice.page);
    // Bob writes in his own window (a tab in the background gets no animation frames, and the log
    // follows new messages in one).
    await bob.page.bringToFront();
    await send(bob.page, 'anyone there?');
    await stateOf(bob.page, 'anyone there?', 'sent');
    assert.equal(await list.getByRole('listitem').count(), 0);
    await alice.page.getByText('No conversations yet.').waitFor();
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
    await Promise.all([alice.context.close(), bob.context.close()]);
  });
}
