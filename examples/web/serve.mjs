// Serves the demo page (examples/web) on its own origin, as an app's static host would: the page,
// the typed client bundled for the browser by esbuild (`/credits-client.js`, built from
// clients/typescript/src at start), and `/config.json` (the API's URL and the project's anon key,
// which a real app builds in). `npm run dev` starts it on 127.0.0.1:8788; the browser test on a
// free port. The Worker must list this origin in CORS_ALLOWED_ORIGINS.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');

const FILES = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
};

/** The client as one browser ES module (openapi-fetch included). */
export async function bundleClient() {
  const out = await build({
    entryPoints: [path.join(root, 'clients/typescript/src/index.ts')],
    bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, logLevel: 'silent',
  });
  return out.outputFiles[0].text;
}

/** Starts the server; `config` ({ apiUrl, anonKey }) may be changed later (it is read per request). */
export async function startDemoServer({ port = 8788, host = '127.0.0.1', config }) {
  const client = await bundleClient();
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const send = (status, type, body) => res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed');
    if (url.pathname === '/credits-client.js') return send(200, 'text/javascript; charset=utf-8', client);
    if (url.pathname === '/config.json') return send(200, 'application/json', JSON.stringify(config));
    const file = FILES[url.pathname];
    if (!file) return send(404, 'text/plain', 'not found');
    send(200, file[1], await readFile(path.join(here, file[0])));
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  return {
    url: `http://${host}:${server.address().port}`,
    config,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
