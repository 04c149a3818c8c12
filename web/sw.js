// The wallet's service worker: it keeps the bundle it was installed with, so the installed
// wallet opens offline and runs the code the user checked (`cargo xtask bundle-hash`), not
// whatever the host serves next. The build writes the bundle's file names into BUNDLE (a Trunk
// hook, see web/Trunk.toml); a new bundle means a new sw.js, which the browser installs on a
// later visit and uses once every tab of the old one is closed.
"use strict";

const BUNDLE = ["__BUNDLE__"];

// One cache per bundle: the hashed file names name it.
const CACHE = "superscalar-wallet-" + BUNDLE.join(" ").split("").reduce(
  (h, c) => (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0, 7).toString(16);

const scope = new URL(self.registration.scope);
const index = new URL("./", scope).href;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) =>
    cache.addAll([index, ...BUNDLE.map((f) => new URL(f, scope).href)])));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== scope.origin) return;
  // Opening the wallet (with or without `?lsp=…&esplora=…`): the kept page.
  const page = url.pathname === scope.pathname || url.pathname === scope.pathname + "index.html";
  if (request.mode === "navigate" && page) {
    event.respondWith(caches.match(index).then((hit) => hit || fetch(request)));
    return;
  }
  // The bundle's files; anything else (an LSP's terms on the same origin) from the network.
  event.respondWith(caches.match(request.url, { ignoreSearch: true })
    .then((hit) => hit || fetch(request)));
});
