// `cargo xtask bench web`, second part: what each additional relay costs the tab. Alice's tab uses
// one more relay after each move (her old inboxes stay in use, read until Bob, who is away,
// switches), so after k moves it talks to k + 1 relays. After each step the page is garbage
// collected and measured: open WebSockets (counted by a wrapper installed before the app loads),
// the JS heap (CDP Performance.getMetrics) and the resident memory of Alice's renderer processes
// (her own browser, so its renderers are hers; VmRSS from /proc). Prints one JSON object on stdout.
import { readFileSync } from 'node:fs';
import { startRelay, launchBrowser, newPerson, introduce, send, waitForText, connected } from '../lib/harness.mjs';

const MOVES = Number(process.env.BENCH_MOVES ?? 4);

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
}

function rssKib(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
}

const relays = [];
for (let i = 0; i <= MOVES; i++) relays.push(await startRelay());
const bobBrowser = await launchBrowser();
const aliceBrowser = await launchBrowser();
try {
  const alice = await newPerson(aliceBrowser);
  const bob = await newPerson(bobBrowser);
  await alice.page.addInitScript(() => {
    window.__sockets = new Set();
    const Real = window.WebSocket;
    window.WebSocket = class extends Real {
      constructor(...args) {
        super(...args);
        window.__sockets.add(this);
        this.addEventListener('close', () => window.__sockets.delete(this));
      }
    };
  });
  await introduce(alice, bob, relays[0]);
  await send(bob.page, 'hello from Bob');
  await waitForText(alice.page, 'hello from Bob');
  // Bob goes away: none of Alice's old inboxes is switched away from while he is gone.
  await bob.context.close();

  const page = alice.page;
  const cdp = await alice.context.newCDPSession(page);
  await cdp.send('Performance.enable');
  const browserCdp = await aliceBrowser.newBrowserCDPSession();
  const openSockets = () => page.evaluate(() => [...window.__sockets].filter((s) => s.readyState === 1).length);
  const measure = async (relaysInUse) => {
    await cdp.send('HeapProfiler.collectGarbage');
    const { metrics } = await cdp.send('Performance.getMetrics');
    const jsHeap = metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? NaN;
    const { processInfo } = await browserCdp.send('SystemInfo.getProcessInfo');
    const renderers = processInfo.filter((p) => p.type === 'renderer');
    const rss = renderers.reduce((sum, p) => sum + rssKib(p.id), 0);
    return { relays: relaysInUse, sockets: await openSockets(), js_heap_kib: jsHeap / 1024, renderer_rss_kib: rss };
  };

  const steps = [await measure(1)];
  const settings = page.getByRole('dialog', { name: 'Settings' });
  for (let k = 1; k <= MOVES; k++) {
    await page.getByRole('button', { name: 'Settings' }).click();
    await settings.getByRole('textbox', { name: 'Relay address' }).fill(`${relays[k].url}/`);
    await settings.getByRole('button', { name: 'Move to this relay' }).click();
    await settings.getByRole('list', { name: 'Relays' }).getByRole('listitem').filter({ hasText: `${new URL(relays[k].url).origin}: home` }).waitFor();
    await settings.getByRole('button', { name: 'Close' }).click();
    await connected(page);
    // The app opens the new home's socket itself; wait until the page reports it open.
    await page
      .waitForFunction((n) => [...window.__sockets].filter((s) => s.readyState === 1).length >= n, k + 1, { timeout: 30_000 })
      .catch(async () => {
        throw new Error(`after move ${k}, ${await openSockets()} sockets are open, not ${k + 1}`);
      });
    steps.push(await measure(k + 1));
  }
  const deltas = (key) => steps.slice(1).map((s, i) => s[key] - steps[i][key]);
  console.log(JSON.stringify({
    steps,
    per_additional_relay: {
      sockets: median(deltas('sockets')),
      js_heap_kib: median(deltas('js_heap_kib')),
      renderer_rss_kib: median(deltas('renderer_rss_kib')),
    },
  }));
} finally {
  await aliceBrowser.close();
  await bobBrowser.close();
  for (const relay of relays) await relay.stop();
}
