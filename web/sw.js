// Doorless's service worker: it keeps one release build of the app, pinned by hash, so that the app
// opens while the relay (which also serves it) is unreachable. See docs/offline.md.
//
// `cargo xtask dist` writes dist/sw.js from this file, with FILES filled in: every file of the
// build by its SHA-384 (base64, as in SRI). Any change of the build therefore changes the bytes of
// this script, which is how the browser notices an update; `cargo xtask verify` compares it too.
'use strict';

const FILES = {
  /* FILES */
};

// One cache per pinned build, named after the hash of index.html (which holds the SRI hashes of
// the script and the wasm, so it differs between any two builds).
const INDEX = '/index.html';
const CACHE = `doorless-${FILES[INDEX]}`;

async function sri(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-384', bytes));
  return `sha384-${btoa(String.fromCharCode(...digest))}`;
}

// The headers a cached file is served with: its type and the relay's security headers (the CSP of
// index.html holds the hashes of its inline script). Nothing about how it was transferred.
const KEPT = ['content-type', 'content-security-policy', 'cross-origin-opener-policy', 'cross-origin-resource-policy'];

function kept(headers) {
  const out = new Headers();
  for (const name of KEPT) {
    const value = headers.get(name);
    if (value !== null) out.set(name, value);
  }
  return out;
}

// Fetches `path` from the relay; resolves with its bytes and headers only if they are the pinned ones.
async function fetchPinned(path) {
  const response = await fetch(path, { cache: path === INDEX ? 'no-cache' : 'default' });
  const body = await response.arrayBuffer();
  if (!response.ok || (await sri(body)) !== FILES[path]) return null;
  return { body, headers: kept(response.headers) };
}

// Installing: every file of the build is fetched and checked against its hash before this worker
// can ever serve anything. One file that does not match fails the install, and the worker that is
// already active (if any) stays.
self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    for (const path of Object.keys(FILES)) {
      const file = await fetchPinned(path);
      if (file === null) {
        await caches.delete(CACHE);
        throw new Error('the served build is not the one this worker pins');
      }
      await cache.put(path, new Response(file.body, { headers: file.headers }));
    }
  })());
});

// Active: the caches of other builds go, and open pages are served from this one from now on.
self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('doorless-') && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

// A new build waits until the person takes it ("Reload to update" in any tab), or until every
// Doorless tab is closed, as the browser does by itself.
self.addEventListener('message', (event) => {
  if (event.data === 'take-update') self.skipWaiting();
});

// The app's files come from the cache, checked against their hash each time they are served;
// everything else (the relay's WebSocket, /healthz, other paths) is left to the network.
self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const path = request.mode === 'navigate' && url.pathname === '/' ? INDEX : url.pathname;
  if (!Object.hasOwn(FILES, path)) return;
  event.respondWith(serve(path));
});

async function serve(path) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(path);
  if (cached) {
    const body = await cached.arrayBuffer();
    if ((await sri(body)) === FILES[path]) return new Response(body, { headers: cached.headers });
  }
  // Missing from the cache (the browser may evict it) or damaged: the relay's copy, if it is the
  // pinned file. Otherwise the relay serves another build, which this worker does not serve.
  const file = await fetchPinned(path).catch(() => null);
  if (file !== null) {
    await cache.put(path, new Response(file.body.slice(0), { headers: file.headers }));
    return new Response(file.body, { headers: file.headers });
  }
  return new Response(
    'Doorless: the copy of the app kept in this browser is gone, and the relay cannot be reached or serves another build. Close every Doorless tab and open it again.',
    { status: 503, headers: { 'content-type': 'text/plain; charset=utf-8' } },
  );
}
