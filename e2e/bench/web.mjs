// `cargo xtask bench web`: first render, tab -> relay -> tab latency, and attachment throughput in
// real Chromium, on the release build served by a real relay. Prints one JSON object on stdout.
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { startRelay, launchBrowser, newPerson, pair } from '../lib/harness.mjs';

const LOADS = Number(process.env.BENCH_LOADS ?? 25);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 1000);
/** Size of the attachment sent A -> B, in MiB (1 GiB by default, the case). */
const ATTACHMENT_MIB = Number(process.env.BENCH_ATTACHMENT_MIB ?? 1024);

/**
 * A sends a file of random bytes to B. Upload: from handing A's page the file to A's log showing
 * it sent (read, encrypt, upload, complete, message). Download: from then to B's "Save" link
 * (message delivery, then fetch, verify, decrypt, write into OPFS). MB/s in decimal megabytes.
 */
async function attachmentThroughput(alice, bob) {
  const path = join(tmpdir(), `doorless-bench-${process.pid}.bin`);
  const bytes = ATTACHMENT_MIB * 1024 * 1024;
  const fd = openSync(path, 'w');
  for (let left = bytes; left > 0; left -= 16 * 1024 * 1024) writeSync(fd, randomBytes(Math.min(left, 16 * 1024 * 1024)));
  closeSync(fd);
  try {
    const name = basename(path);
    const start = performance.now();
    await alice.page.getByLabel('Attach file').setInputFiles(path);
    await alice.page.getByRole('log', { name: 'Messages' }).getByText(name).waitFor({ timeout: 0 });
    const sent = performance.now();
    await bob.page.getByRole('link', { name: `Save ${name}` }).waitFor({ timeout: 0 });
    const saved = performance.now();
    const rate = (ms) => bytes / 1e6 / (ms / 1000);
    return { mib: ATTACHMENT_MIB, upload_mb_s: rate(sent - start), download_mb_s: rate(saved - sent) };
  } finally {
    rmSync(path, { force: true });
  }
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const relay = await startRelay();
const browser = await launchBrowser();
try {
  // First render: navigation start to the first screen ("Your name") being in the DOM, fresh profile.
  const renders = [];
  for (let i = 0; i < LOADS; i++) {
    const person = await newPerson(browser);
    await person.page.addInitScript(() => {
      new MutationObserver((_, observer) => {
        if (document.querySelector('input[autocomplete="nickname"]')) {
          window.__firstRender = performance.now();
          observer.disconnect();
        }
      }).observe(document, { childList: true, subtree: true });
    });
    await person.page.goto(relay.url);
    await person.page.getByRole('textbox', { name: 'Your name' }).waitFor();
    renders.push(await person.page.evaluate(() => window.__firstRender));
    await person.context.close();
  }
  renders.sort((a, b) => a - b);

  // Latency: A's send button is clicked inside the page (no driver round trip in the measurement);
  // B's page notes when the text appears. Both pages share the browser's clock (timeOrigin + now).
  const { alice, bob } = await pair(browser, relay);
  // Where the time goes: each page notes when a WebSocket frame leaves or arrives (a wrapper around
  // the page's WebSocket, installed before the app loads again).
  for (const person of [alice, bob]) {
    await person.page.addInitScript(() => {
      window.__sends = [];
      window.__receives = [];
      const Real = window.WebSocket;
      window.WebSocket = class extends Real {
        constructor(...args) {
          super(...args);
          this.addEventListener('message', (e) => window.__receives.push([performance.timeOrigin + performance.now(), e.data.byteLength ?? e.data.size ?? 0]));
        }
        send(data) {
          window.__sends.push([performance.timeOrigin + performance.now(), data.byteLength ?? data.length]);
          super.send(data);
        }
      };
    });
    await person.page.reload();
    await person.page.getByRole('status').filter({ hasText: 'Connected' }).waitFor();
    await person.page.getByRole('list', { name: 'Conversations' }).getByRole('button').first().click();
    await person.page.getByRole('log', { name: 'Messages' }).waitFor();
  }
  await bob.page.evaluate(() => {
    window.__arrivals = new Map();
    const log = document.querySelector('[role=log]');
    new MutationObserver(() => {
      for (const el of log.querySelectorAll('.text')) {
        if (!window.__arrivals.has(el.textContent)) window.__arrivals.set(el.textContent, performance.timeOrigin + performance.now());
      }
    }).observe(log, { childList: true, subtree: true });
  });
  const latencies = [];
  const parts = [];
  for (let i = 0; i < MESSAGES; i++) {
    const text = `latency probe ${i}`;
    const sentAt = await alice.page.evaluate((text) => {
      const box = document.querySelector('textarea[aria-label=Message]');
      box.value = text;
      box.dispatchEvent(new InputEvent('input', { bubbles: true }));
      const t = performance.timeOrigin + performance.now();
      [...document.querySelectorAll('button')].find((b) => b.textContent === 'Send').click();
      return t;
    }, text);
    const arrived = await bob.page.waitForFunction((text) => window.__arrivals.get(text), text, { polling: 'raf' });
    const shown = await arrived.jsonValue();
    latencies.push(shown - sentAt);
    // The message's deposit is A's first frame of at least the smallest envelope after the click,
    // and its delivery B's first such frame after that.
    const left = await alice.page.evaluate((t) => window.__sends.find(([at, n]) => at >= t && n >= 342)?.[0], sentAt);
    const came = left && (await bob.page.evaluate((t) => window.__receives.find(([at, n]) => at >= t && n >= 342)?.[0], left));
    if (left && came && came <= shown) parts.push([left - sentAt, came - left, shown - came]);
  }
  const part = (k) => percentile(parts.map((p) => p[k]).sort((a, b) => a - b), 50);
  latencies.sort((a, b) => a - b);
  const attachment = ATTACHMENT_MIB > 0 ? await attachmentThroughput(alice, bob) : undefined;
  console.log(JSON.stringify({
    first_render_ms: { loads: LOADS, p50: percentile(renders, 50), min: renders[0], max: renders[renders.length - 1] },
    latency_ms: {
      messages: MESSAGES,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      p999: percentile(latencies, 99.9),
      min: latencies[0],
      max: latencies[latencies.length - 1],
    },
    breakdown_ms: { messages: parts.length, tab_a: part(0), relay: part(1), tab_b: part(2) },
    attachment,
  }));
} finally {
  await browser.close();
  await relay.stop();
}
