// Where the bytes of a wasm file go: section sizes, and the code section by function and by crate,
// using the wasm "name" custom section (worker-build keeps it: it runs wasm-opt with --debuginfo).
// A wasm whose names were stripped still gets its section table.
//
//   node tests/bench/wasm-size.mjs functions/build/index_bg.wasm [--top 40] [--json] [--groups]
//
// --groups: what each named crate of the stack adds (serde_json, postgrest-rs, jwt-simple,
// x509-cert, each with the crates only it pulls in), by symbol: the raw bytes of the function
// bodies attributed to the group, and its gzip share measured by removal from the code section:
// gzip -9 of every body minus gzip -9 of the bodies left without the group's. Needs the name section:
// build with names kept (tests/bench/bundle-attribution.sh: CARGO_PROFILE_RELEASE_STRIP=false, the
// same code otherwise). Limits: after LTO a function inlined into another is counted where it was
// inlined (our handlers inline serde_json and postgrest-rs code); generic code monomorphised for
// our types is counted under the crate that defines it (serde_json::de for our Deserialize impls,
// which is right: it goes with serde_json); the data section (strings, tables) is not attributed.
//
// Sizes are raw bytes of function bodies (before gzip); a crate's share of the raw code is a good
// proxy for its share of the gzip size. Names are attributed to a crate by the first path segment
// of the demangled name, looking through `<T as Trait>::` to the impl's type when that type is
// from a crate, else to the trait (e.g. `<&T as core::fmt::Debug>::fmt` -> core::fmt).
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
const top = Number(args[args.indexOf('--top') + 1]) || 40;
const asJson = args.includes('--json');
const withGroups = args.includes('--groups');
if (!file) {
  console.error('usage: node tests/bench/wasm-size.mjs FILE.wasm [--top N] [--json]');
  process.exit(2);
}
const buf = readFileSync(file);

let pos = 8;
function leb() {
  let result = 0, shift = 0, byte;
  do {
    byte = buf[pos++];
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return result;
}
function name() {
  const len = leb();
  const s = buf.toString('utf8', pos, pos + len);
  pos += len;
  return s;
}

const SECTION = ['custom', 'type', 'import', 'function', 'table', 'memory', 'global', 'export', 'start', 'element', 'code', 'data', 'datacount', 'tag'];
const sections = [];
let importedFuncs = 0;
const bodies = []; // size per defined function, in order
const spans = []; // [start, end) of each body in the file
const names = new Map(); // function index -> name
while (pos < buf.length) {
  const id = buf[pos++];
  const size = leb();
  const start = pos;
  const end = pos + size;
  let label = SECTION[id] ?? `unknown(${id})`;
  if (id === 0) {
    label = `custom:${name()}`;
    if (label === 'custom:name') {
      while (pos < end) {
        const sub = buf[pos++];
        const subSize = leb();
        const subEnd = pos + subSize;
        if (sub === 1) {
          const n = leb();
          for (let i = 0; i < n; i++) {
            const idx = leb();
            names.set(idx, name());
          }
        }
        pos = subEnd;
      }
    }
  } else if (id === 2) {
    const n = leb();
    for (let i = 0; i < n; i++) {
      name(); name();
      const kind = buf[pos++];
      if (kind === 0) { leb(); importedFuncs++; }
      else if (kind === 1) { pos++; const flags = leb(); leb(); if (flags & 1) leb(); }
      else if (kind === 2) { const flags = leb(); leb(); if (flags & 1) leb(); }
      else if (kind === 3) { pos += 2; }
      else if (kind === 4) { pos++; leb(); }
    }
  } else if (id === 10) {
    const n = leb();
    for (let i = 0; i < n; i++) {
      const s = leb();
      bodies.push(s + 1); // + its size prefix, roughly
      spans.push([pos, pos + s]);
      pos += s;
    }
  }
  sections.push({ section: label, bytes: end - start, gzip: gzipSync(buf.subarray(start, end), { level: 9 }).length });
  pos = end;
}

function crateOf(n) {
  if (!n) return '(unnamed)';
  let s = n.trim();
  // `<A as B>::f` : prefer A when it is a path into a crate, else B.
  const m = s.match(/^<(.+?) as (.+?)>::/);
  if (m) {
    const a = m[1].replace(/^(&mut |&|\*const |\*mut |\[|\()+/, '');
    s = /^[a-z_][a-z0-9_]*::/.test(a) ? a : m[2];
  } else if (s.startsWith('<')) {
    s = s.slice(1).replace(/^(&mut |&|\*const |\*mut |\[|\()+/, '');
  }
  s = s.replace(/\[[0-9a-f]{8,}\]/g, "");
  const first = s.split('::')[0].replace(/[<>].*$/, '');
  if (first === 'core' || first === 'alloc' || first === 'std') {
    const second = s.split('::')[1]?.replace(/[<>].*$/, '');
    return second ? `${first}::${second}` : first;
  }
  if (/^(wasm_bindgen|js_sys|web_sys|worker|worker_sys|serde|serde_json|serde_urlencoded|shared|functions|hmac|sha2|digest|base64|url|http|matchit|futures|dlmalloc|memchr|itoa|ryu|idna|percent_encoding|form_urlencoded|chrono|tokio|bytes|pin_project|async_trait)$/.test(first)) return first;
  if (/^__wbg|^__wbindgen|^wasm_bindgen|externref|closure|catch wrapper|^__externref/.test(n)) return 'wasm_bindgen (glue)';
  if (/^(memcpy|memset|memmove|memcmp|__rust|rust_|__rdl|__rg|malloc|free|realloc)/.test(first)) return 'runtime (alloc/mem)';
  return first || '(other)';
}

const funcs = bodies.map((size, i) => ({ index: importedFuncs + i, name: names.get(importedFuncs + i) ?? '', size }));
const codeBytes = funcs.reduce((a, f) => a + f.size, 0);
const byCrate = new Map();
for (const f of funcs) {
  const c = crateOf(f.name);
  const e = byCrate.get(c) ?? { crate: c, bytes: 0, functions: 0 };
  e.bytes += f.size;
  e.functions++;
  byCrate.set(c, e);
}
const crates = [...byCrate.values()].sort((a, b) => b.bytes - a.bytes);
const biggest = [...funcs].sort((a, b) => b.size - a.size).slice(0, top);
// What each named crate of the stack adds, with the crates only it brings in (cargo tree -i on
// wasm32: reqwest only through postgrest-rs; coarsetime, ct-codecs, hmac-sha256 and the curve
// crates only through jwt-simple; der, spki, const-oid only through x509-cert and our App Store
// certificate code, which uses der directly for the same certificates).
const GROUPS = {
  serde_json: ['serde_json'],
  'postgrest-rs (postgrest)': ['postgrest'],
  'postgrest-rs + reqwest (its HTTP client types)': ['postgrest', 'reqwest'],
  'jwt-simple (+ coarsetime, ct_codecs, hmac_sha256, p256, ecdsa, elliptic_curve, primeorder, k256, ed25519_compact)': ['jwt_simple', 'coarsetime', 'ct_codecs', 'hmac_sha256', 'p256', 'ecdsa', 'elliptic_curve', 'primeorder', 'k256', 'ed25519_compact', 'superboring'],
  'x509-cert (+ der, spki, const_oid, flagset)': ['x509_cert', 'der', 'spki', 'const_oid', 'flagset'],
  // postgrest-rs's builder methods are small generics, monomorphised into and inlined in our db
  // module: no function keeps its name, so the module that uses it is the nearest upper bound.
  'functions::db (our PostgREST module, postgrest-rs inlined in it) + postgrest + reqwest': ['prefix:functions::db::', 'postgrest', 'reqwest'],
};
const inGroupOf = (crates, f) => crates.includes(crateOf(f.name)) || crates.some((c) => c.startsWith('prefix:') && f.name.replace(/^</, '').startsWith(c.slice(7)));
function groupSizes() {
  const all = spans.map(([a, b]) => buf.subarray(a, b));
  const gzAll = gzipSync(Buffer.concat(all), { level: 9 }).length;
  return Object.entries(GROUPS).map(([group, crates]) => {
    const inGroup = funcs.map((f) => inGroupOf(crates, f));
    const mine = all.filter((_, i) => inGroup[i]);
    const rest = all.filter((_, i) => !inGroup[i]);
    const raw = mine.reduce((a, b) => a + b.length, 0);
    const gzAlone = mine.length ? gzipSync(Buffer.concat(mine), { level: 9 }).length : 0;
    const gzRemoved = gzAll - gzipSync(Buffer.concat(rest), { level: 9 }).length;
    return { group, crates, functions: mine.length, raw, gzipRemoved: gzRemoved, gzipAlone: gzAlone, codeGzip: gzAll };
  });
}
const groups = withGroups && names.size ? groupSizes() : [];

const total = { bytes: buf.length, gzip: gzipSync(buf, { level: 9 }).length, functions: funcs.length, named: names.size, codeBytes };

if (asJson) {
  console.log(JSON.stringify({ file, total, sections, crates, biggest, groups }, null, 2));
} else {
  const pct = (n) => `${((100 * n) / codeBytes).toFixed(1)}%`;
  console.log(`${file}: ${total.bytes} bytes, ${total.gzip} bytes gzip -9, ${total.functions} functions (${total.named} named)`);
  console.log('\nsections (raw / gzip of the section alone):');
  for (const s of sections) console.log(`  ${s.section.padEnd(28)} ${String(s.bytes).padStart(8)} ${String(s.gzip).padStart(8)}`);
  if (names.size) {
    console.log(`\ncode by crate (raw bytes, share of ${codeBytes}):`);
    for (const c of crates) console.log(`  ${c.crate.padEnd(28)} ${String(c.bytes).padStart(8)} ${pct(c.bytes).padStart(6)}  ${c.functions} fns`);
    if (groups.length) {
      console.log(`\nwhat each named crate adds (code section; gzip -9 of all bodies: ${(groups[0].codeGzip / 1024).toFixed(1)} KiB):`);
      console.log(`  ${'group'.padEnd(60)} ${'fns'.padStart(5)} ${'raw KiB'.padStart(8)} ${'gzip KiB (removal)'.padStart(18)} ${'gzip KiB (alone)'.padStart(16)}`);
      for (const g of groups) console.log(`  ${g.group.slice(0, 60).padEnd(60)} ${String(g.functions).padStart(5)} ${(g.raw / 1024).toFixed(1).padStart(8)} ${(g.gzipRemoved / 1024).toFixed(1).padStart(18)} ${(g.gzipAlone / 1024).toFixed(1).padStart(16)}`);
    }
    console.log(`\n${top} biggest functions:`);
    for (const f of biggest) console.log(`  ${String(f.size).padStart(7)}  ${f.name.slice(0, 150)}`);
  } else {
    console.log('\n(no name section: build with names kept to attribute code to crates)');
  }
}
