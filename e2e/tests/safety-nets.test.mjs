// No single mistake loses everything: the passphrase lock needs a confirmation and a minimum
// strength and says it cannot be recovered; Settings says whether the browser keeps the data for
// good, and what "Delete all data" and clearing the site's data do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useRelayAndBrowser, newPerson, onboard, audit, VIEWPORTS } from '../lib/harness.mjs';

const env = useRelayAndBrowser();

async function openSettings(page) {
  await page.getByRole('button', { name: 'Settings' }).click();
  const settings = page.getByRole('dialog', { name: 'Settings' });
  await settings.waitFor();
  return settings;
}

for (const [label, viewport] of VIEWPORTS) {
  test(`a weak or mistyped passphrase is refused, and the lock says it cannot be recovered (${label})`, async () => {
    const alice = await newPerson(env.browser, { viewport });
    await alice.page.goto(env.relay.url);
    await onboard(alice.page, 'Alice');
    const settings = await openSettings(alice.page);
    await settings.getByText('A forgotten passphrase cannot be recovered').waitFor();

    const passphrase = settings.getByLabel('Passphrase lock');
    const confirm = settings.getByLabel('Confirm passphrase');
    const set = settings.getByRole('button', { name: 'Set passphrase' });
    const refusal = settings.getByRole('alert');

    await passphrase.fill('a');
    await confirm.fill('a');
    await set.click();
    await refusal.filter({ hasText: 'at least 12 characters' }).waitFor();
    // A long run of one character, or a keyboard row, is as weak as a short one.
    await passphrase.fill('aaaaaaaaaaaaaaaa');
    await confirm.fill('aaaaaaaaaaaaaaaa');
    await set.click();
    await refusal.filter({ hasText: 'too easy to guess' }).waitFor();

    await passphrase.fill('correct horse battery');
    await confirm.fill('correct horse batery');
    await set.click();
    await refusal.filter({ hasText: 'The two passphrases differ' }).waitFor();
    await audit(alice.page, `passphrase refused (${label})`);
    assert.equal(await alice.page.getByText('Passphrase lock is on.').count(), 0, 'no lock was set');

    await confirm.fill('correct horse battery');
    await set.click();
    await alice.page.getByRole('alert').filter({ hasText: 'Passphrase lock is on.' }).waitFor();
    await alice.context.close();
  });

  test(`Settings says whether storage is persistent and what deleting data does (${label})`, async () => {
    const alice = await newPerson(env.browser, { viewport });
    await alice.page.goto(env.relay.url);
    await onboard(alice.page, 'Alice');
    const settings = await openSettings(alice.page);
    const persisted = await alice.page.evaluate(() => navigator.storage.persisted());
    const line = persisted
      ? 'This browser has agreed to keep Doorless\'s data'
      : 'This browser has not agreed to keep Doorless\'s data';
    await settings.getByText(line).waitFor();
    await settings.getByText('Delete all data removes your identity, contacts and messages from this browser').waitFor();
    await settings.getByText('Clearing this site\'s data in the browser does the same').waitFor();
    await audit(alice.page, `settings (${label})`);
    await alice.context.close();
  });
}
