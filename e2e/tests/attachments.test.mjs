// Attachments (issue 14): a file sealed in A's tab, uploaded in segments to A's relay over HTTP,
// announced in an encrypted message, downloaded, verified and decrypted by B's tab, and saved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { useRelayAndBrowser, pair, openConversation } from '../lib/harness.mjs';

const env = useRelayAndBrowser();
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
// A 2×2 PNG, red.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGP4z8AARAwQCgAf7gP9i18U1AAAAABJRU5ErkJggg==',
  'base64',
);

const attach = (page, name, mimeType, buffer) =>
  page.getByLabel('Attach file').setInputFiles({ name, mimeType, buffer });
const log = (page) => page.getByRole('log', { name: 'Messages' });

test('a file of a few MiB goes from A to B, and B saves exactly the same bytes', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  // Not a multiple of 64 KiB, and more than one 4 MiB segment.
  const file = randomBytes(5 * 1024 * 1024 + 12_345);
  await attach(alice.page, 'random data.bin', 'application/x-whatever', file);
  const save = log(bob.page).getByRole('link', { name: 'Save random data.bin' });
  await save.waitFor({ timeout: 60_000 });
  assert.equal(await save.getAttribute('download'), 'random data.bin');
  assert.match(await save.getAttribute('href'), /^blob:/);
  const [download] = await Promise.all([bob.page.waitForEvent('download'), save.click()]);
  const saved = readFileSync(await download.path());
  assert.equal(saved.length, file.length);
  assert.equal(sha256(saved), sha256(file));
  // Not an allow-listed type: offered as a plain download, nothing shown inline.
  assert.equal(await log(bob.page).locator('img, audio, video').count(), 0);
  // A's side shows the file as sent, and no transfer is left.
  await log(alice.page).getByText('random data.bin').waitFor();
  assert.equal(await alice.page.getByRole('progressbar').count(), 0);
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('an image is shown inline, with its name as alt text', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  await attach(alice.page, 'red dot.png', 'image/png', PNG);
  const img = log(bob.page).getByRole('img', { name: 'red dot.png' });
  await img.waitFor();
  // Decoded (so decrypted, and allowed by the page's policy), not a broken image.
  await bob.page.waitForFunction((el) => el.complete && el.naturalWidth === 2, await img.elementHandle());
  await log(bob.page).getByRole('link', { name: 'Save red dot.png' }).waitFor();
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('Cancel stops an upload, deletes the blob, and sends nothing', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  // The relay's answers to segment uploads are held back, so the upload is still running.
  const held = [];
  await alice.page.route('**/blobs/*/*', (route) => {
    if (route.request().method() === 'PUT') held.push(route);
    else route.continue();
  });
  const deleted = alice.page.waitForRequest((r) => r.method() === 'DELETE' && r.url().includes('/blobs/'));
  await attach(alice.page, 'big.bin', 'application/octet-stream', randomBytes(9 * 1024 * 1024));
  const bar = alice.page.getByRole('progressbar', { name: 'Upload big.bin' });
  await bar.waitFor();
  await alice.page.getByRole('button', { name: 'Cancel' }).click();
  await deleted;
  await bar.waitFor({ state: 'detached' });
  for (const route of held) await route.abort().catch(() => {});
  // A text sent afterwards arrives; the file never does.
  await alice.page.getByRole('textbox', { name: 'Message' }).fill('after the cancel');
  await alice.page.getByRole('button', { name: 'Send' }).click();
  await log(bob.page).getByText('after the cancel').waitFor();
  assert.equal(await log(bob.page).getByText('big.bin').count(), 0);
  assert.equal(await log(alice.page).getByText('big.bin').count(), 0);
});

test('a relay that changes one segment is reported as an integrity error, and nothing is saved', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  // What B's tab receives for segment 1 has one bit flipped (a relay or a network that corrupts).
  let corrupted = 0;
  await bob.page.route('**/blobs/*/1', async (route) => {
    if (route.request().method() !== 'GET') return route.continue();
    const response = await route.fetch();
    const body = Buffer.from(await response.body());
    body[1000] ^= 1;
    corrupted += 1;
    await route.fulfill({ response, body });
  });
  await attach(alice.page, 'changed.bin', 'application/octet-stream', randomBytes(4 * 1024 * 1024 + 100));
  const alert = log(bob.page).getByRole('alert').filter({ hasText: 'Integrity error' });
  await alert.waitFor({ timeout: 60_000 });
  assert.match(await alert.textContent(), /changed\.bin/);
  assert.ok(corrupted >= 2, `the segment was fetched again before giving up (${corrupted})`);
  assert.equal(await log(bob.page).getByRole('link', { name: 'Save changed.bin' }).count(), 0);
  // Not mistaken for a network problem or a decryption failure.
  assert.doesNotMatch(await alert.textContent(), /Network|decrypt/);
});

test('a download stopped by a reload resumes by itself, fetching only the segments not yet saved', async () => {
  const { alice, bob } = await pair(env.browser, env.relay);
  // Three segments; B's tab gets segment 0, and the relay's answers for the others are held back.
  const file = randomBytes(8 * 1024 * 1024 + 777);
  const later = /\/blobs\/[^/]+\/[12]$/;
  const hold = () => {};
  await bob.page.route(later, hold);
  await attach(alice.page, 'resume.bin', 'application/octet-stream', file);
  await log(bob.page).getByRole('progressbar', { name: 'Download resume.bin' }).waitFor({ timeout: 60_000 });
  // Segment 0 is saved: the bar shows its 4 MiB.
  await bob.page.waitForFunction(
    () => Number(document.querySelector('progress[aria-label="Download resume.bin"]')?.value) >= 4 * 1024 * 1024,
    null,
    { timeout: 60_000 },
  );
  await bob.page.unroute(later, hold);
  const fetched = [];
  bob.page.on('request', (r) => {
    const index = new URL(r.url()).pathname.match(/^\/blobs\/[^/]+\/(\d+)$/);
    if (index && r.method() === 'GET') fetched.push(index[1]);
  });
  await bob.page.reload();
  await openConversation(bob.page, 'Alice');
  const save = log(bob.page).getByRole('link', { name: 'Save resume.bin' });
  await save.waitFor({ timeout: 60_000 });
  assert.deepEqual([...new Set(fetched)].sort(), ['1', '2'], 'segment 0 was not fetched again');
  const [download] = await Promise.all([bob.page.waitForEvent('download'), save.click()]);
  assert.equal(sha256(readFileSync(await download.path())), sha256(file));
});
