// Names nobody can borrow, and invites that can be listed and revoked, at desktop size and at
// 360 px: "Invite for" names the contact, the name a contact sends is shown beside it (never
// instead of it) and a rename is recorded in the conversation; two contacts shown under the same
// name are flagged until one is renamed; verified contacts carry a mark in the list and the
// header; a second invite between the same people continues their conversation; a revoked invite's
// answer makes no conversation and the joiner is told; an expired invite leaves the list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  useRelayAndBrowser, newPerson, onboard, openConversation, send, waitForText, texts, audit, pair, VIEWPORTS,
  connected,
} from '../lib/harness.mjs';

const env = useRelayAndBrowser();

/** "Invite for" `name` (or nobody), "New invite"; returns the link. */
async function inviteFor(page, name) {
  await showList(page);
  await page.getByRole('textbox', { name: 'Invite for' }).fill(name ?? '');
  const before = await page.getByRole('textbox', { name: 'Invite link' }).count()
    ? await page.getByRole('textbox', { name: 'Invite link' }).inputValue()
    : undefined;
  await page.getByRole('button', { name: 'New invite' }).click();
  const link = page.getByRole('textbox', { name: 'Invite link' });
  // The link of the new invite (not the one shown before it), once it is saved.
  await page.waitForFunction(
    (before) => {
      const input = [...document.querySelectorAll('label')].find((l) => l.textContent.startsWith('Invite link'))?.querySelector('input');
      return input && input.value !== before;
    },
    before,
  );
  return link.inputValue();
}

/** On a narrow screen an open conversation hides the list: go back to it. */
async function showList(page) {
  const back = page.getByRole('button', { name: 'Back to conversations' });
  if (await back.isVisible()) await back.click();
  await page.getByRole('navigation', { name: 'Conversations' }).waitFor();
}

/** The list entry whose name is exactly `name` (the harness's lookup ignores case). */
const entry = (page, name) =>
  page.getByRole('list', { name: 'Conversations' }).getByRole('listitem')
    .filter({ has: page.locator('.name', { hasText: new RegExp(`^${name}$`) }) });

/** The open conversation with exactly `name`. */
const conversation = (page, name) => page.getByRole('region', { name: `Conversation with ${name}`, exact: true });

/** Opens the conversation with exactly `name` from the list. */
async function open(page, name) {
  await showList(page);
  await entry(page, name).getByRole('button').click();
  await conversation(page, name).getByRole('log', { name: 'Messages' }).waitFor();
}

/** `who` opens `link`, starts a profile called `own` and accepts, naming the inviter `as` if given. */
async function join(who, link, own, as) {
  await who.page.goto(link);
  await onboard(who.page, own);
  const name = who.page.getByRole('textbox', { name: 'Name in your conversations' });
  await name.waitFor();
  if (as) await name.fill(as);
  await who.page.getByRole('button', { name: 'Accept invite' }).click();
}

for (const [label, viewport] of VIEWPORTS) {
  test(`names (${label}): "Invite for", the name they send beside it, a rename, the same name twice, the verified mark`, async () => {
    const alice = await newPerson(env.browser, { viewport });
    const robert = await newPerson(env.browser, { viewport });
    const carol = await newPerson(env.browser, { viewport });
    await alice.page.goto(env.relay.url);
    await onboard(alice.page, 'Alice');

    // Alice invites "Bob"; he calls himself Robert. The invite is listed until answered.
    const link = await inviteFor(alice.page, 'Bob');
    const pending = alice.page.getByRole('list', { name: 'Pending invites' });
    await pending.getByRole('listitem').filter({ hasText: 'For Bob' }).getByRole('button', { name: 'Revoke' }).waitFor();
    await audit(alice.page, `invite panel with a pending invite (${label})`);
    await robert.page.goto(link);
    await onboard(robert.page, 'Robert');
    // The accept screen offers the invite's name, which he may change.
    const given = robert.page.getByRole('textbox', { name: 'Name in your conversations' });
    assert.equal(await given.inputValue(), 'Alice');
    await audit(robert.page, `accepting an invite (${label})`);
    await given.fill('Ally');
    await robert.page.getByRole('button', { name: 'Accept invite' }).click();

    // Alice's side: the contact is "Bob", who calls himself Robert; not verified yet.
    await openConversation(alice.page, 'Bob');
    const aliceHead = conversation(alice.page, 'Bob');
    await aliceHead.getByText('calls themselves Robert').waitFor();
    await aliceHead.getByText('Not verified', { exact: true }).waitFor();
    // A new conversation says where it starts and how to be sure who is on the other side.
    const aliceLog = alice.page.getByRole('log', { name: 'Messages' });
    await aliceLog.getByText('To be sure it is really Bob, compare safety numbers with them').waitFor();
    await pending.waitFor({ state: 'detached' });
    // Robert's side: "Ally", who calls herself Alice.
    await openConversation(robert.page, 'Ally');
    await robert.page.getByRole('region', { name: 'Conversation with Ally' }).getByText('calls themselves Alice').waitFor();
    await send(robert.page, 'hello from Robert');
    await waitForText(alice.page, 'hello from Robert');

    // Robert renames himself "Alice": Alice's contact stays "Bob", and the log records it.
    await robert.page.getByRole('button', { name: 'Settings' }).click();
    const settings = robert.page.getByRole('dialog', { name: 'Settings' });
    await settings.getByRole('textbox', { name: 'Display name' }).fill('Alice');
    await settings.getByRole('button', { name: 'Save name' }).click();
    await settings.getByRole('button', { name: 'Close' }).click();
    await alice.page.getByRole('log', { name: 'Messages' }).getByText('Bob now calls themselves Alice').waitFor();
    await aliceHead.locator('.chat-head').getByText('calls themselves Alice').waitFor();
    assert.equal(await alice.page.getByRole('heading', { name: 'Bob', exact: true }).count(), 1);

    // Carol calls herself "bob": a plain invite names her so, and both are flagged.
    const second = await inviteFor(alice.page, '');
    await join(carol, second, 'bob');
    await openConversation(carol.page, 'Alice');
    await showList(alice.page);
    for (const name of ['Bob', 'bob']) {
      await entry(alice.page, name).getByText('Same name as another contact').waitFor();
    }
    await open(alice.page, 'bob');
    await conversation(alice.page, 'bob').getByText('Same name as another contact').waitFor();
    await audit(alice.page, `a contact flagged for a shared name (${label})`);

    // Alice renames Carol's "bob" (only on her side): both flags go.
    await conversation(alice.page, 'bob').getByRole('button', { name: 'Conversation menu' }).click();
    await alice.page.getByRole('menuitem', { name: 'Rename' }).click();
    const rename = alice.page.getByRole('dialog', { name: 'Rename bob' });
    await rename.getByRole('textbox', { name: 'Name' }).fill('Carol');
    await audit(alice.page, `renaming a contact (${label})`);
    await rename.getByRole('button', { name: 'Rename' }).click();
    await conversation(alice.page, 'Carol').locator('.chat-head').getByText('calls themselves bob').waitFor();
    await showList(alice.page);
    await entry(alice.page, 'Carol').waitFor();
    assert.equal(await alice.page.getByText('Same name as another contact').count(), 0);

    // Alice verifies Bob: the mark shows in the list and in his header, not on Carol's entry.
    await open(alice.page, 'Bob');
    await aliceHead.getByRole('button', { name: 'Safety number' }).click();
    const dialog = alice.page.getByRole('dialog', { name: 'Verify safety number' });
    await dialog.getByRole('button', { name: 'Mark as verified' }).click();
    await dialog.getByText('You have verified Bob.').waitFor();
    await alice.page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    await aliceHead.getByText('Verified', { exact: true }).waitFor();
    assert.equal(await aliceHead.getByText('Not verified').count(), 0);
    await aliceLog.getByText('You compared safety numbers: it is really them.').waitFor();
    await showList(alice.page);
    await entry(alice.page, 'Bob').getByText('Verified', { exact: true }).waitFor();
    assert.equal(await entry(alice.page, 'Carol').getByText('Verified', { exact: true }).count(), 0);

    // All of it survives a reload.
    await alice.page.reload();
    await connected(alice.page);
    await showList(alice.page);
    await entry(alice.page, 'Bob').getByText('Verified', { exact: true }).waitFor();
    await entry(alice.page, 'Bob').getByText('calls themselves Alice').waitFor();
    await entry(alice.page, 'Carol').getByText('calls themselves bob').waitFor();
    for (const p of [alice, robert, carol]) assert.deepEqual(p.errors, []);
    await Promise.all([alice, robert, carol].map((p) => p.context.close()));
  });

  test(`invites (${label}): listed, revoked (the joiner is told), expired ones leave the list`, async () => {
    const alice = await newPerson(env.browser, { viewport });
    const dan = await newPerson(env.browser, { viewport });
    const erin = await newPerson(env.browser, { viewport });
    await alice.page.clock.install();
    await dan.page.clock.install();
    await alice.page.goto(env.relay.url);
    await onboard(alice.page, 'Alice');

    // Two invites: both listed, each with who it is for and when it expires.
    const forDan = await inviteFor(alice.page, 'Dan');
    await inviteFor(alice.page, '');
    const pending = alice.page.getByRole('list', { name: 'Pending invites' });
    const items = pending.getByRole('listitem');
    await items.nth(1).waitFor();
    assert.equal(await items.count(), 2);
    const dansItem = items.filter({ hasText: 'For Dan' });
    assert.match(await dansItem.textContent(), /Expires/);
    await items.filter({ hasText: 'For anyone with the link' }).waitFor();

    // Revoke Dan's: it leaves the list.
    await dansItem.getByRole('button', { name: 'Revoke' }).click();
    await dansItem.waitFor({ state: 'detached' });
    assert.equal(await items.count(), 1);

    // Dan opens the revoked link anyway: revoking deleted the invite at Alice's relay, so his tab
    // finds nothing to accept and says so.
    await dan.page.goto(forDan);
    await onboard(dan.page, 'Dan');
    await dan.page.getByRole('alert').filter({ hasText: 'This invite was already used, revoked or has expired.' }).waitFor();
    assert.equal(await dan.page.getByRole('button', { name: 'Accept invite' }).count(), 0);
    await audit(dan.page, `a revoked invite (${label})`);

    // Alice: no conversation came of it. Erin answers afterwards through a new invite.
    const forErin = await inviteFor(alice.page, 'Erin');
    await join(erin, forErin, 'Erin');
    await openConversation(alice.page, 'Erin');
    await showList(alice.page);
    const conversations = alice.page.getByRole('list', { name: 'Conversations' }).getByRole('listitem');
    assert.deepEqual(await conversations.locator('.name').allTextContents(), ['Erin']);
    await alice.page.reload();
    await connected(alice.page);
    await showList(alice.page);
    assert.deepEqual(await conversations.locator('.name').allTextContents(), ['Erin']);

    // The unnamed invite is still listed; eight days on, it has expired and leaves the list.
    assert.equal(await items.count(), 1);
    await alice.page.clock.fastForward(8 * 24 * 60 * 60 * 1000);
    await pending.waitFor({ state: 'detached' });
    for (const p of [alice, dan, erin]) assert.deepEqual(p.errors, []);
    await Promise.all([alice, dan, erin].map((p) => p.context.close()));
  });
}

test('a second invite between the same two people continues their conversation on both sides', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  await send(bob.page, 'before the second invite');
  await waitForText(alice.page, 'before the second invite');
  // This time Bob, who was invited, invites Alice; she opens the link in her running app.
  const link = await inviteFor(bob.page, 'Alice again');
  await alice.page.goto(link);
  await alice.page.getByRole('button', { name: 'Accept invite' }).click();
  await openConversation(alice.page, 'Bob');
  await send(alice.page, 'after the second invite');
  await waitForText(bob.page, 'after the second invite');
  // One conversation each, under the name it had, with its history.
  for (const [p, name] of [[alice, 'Bob'], [bob, 'Alice']]) {
    await showList(p.page);
    const names = await p.page.getByRole('list', { name: 'Conversations' }).locator('.name').allTextContents();
    assert.deepEqual(names, [name]);
    await open(p.page, name);
    assert.deepEqual(await texts(p.page), ['before the second invite', 'after the second invite']);
  }
  assert.equal(await bob.page.getByRole('list', { name: 'Pending invites' }).count(), 0);
  for (const p of [alice, bob]) assert.deepEqual(p.errors, []);
  await Promise.all([alice, bob].map((p) => p.context.close()));
});
