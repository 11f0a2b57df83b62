// What each named crate of the stack adds to the Worker's wasm (serde_json, postgrest-rs,
// jwt-simple, x509-cert), gzip KiB. bench.mjs section `bundle`; standalone: `node tests/bench/bundle.mjs`.
//
// Method (tests/bench/wasm-size.mjs --groups): two extra builds of the Worker with worker-build,
// each in its own target dir under target/ so the shipped build's cache is untouched:
//   lto      the shipped release profile (opt-level z, fat LTO, 1 codegen unit, wasm-opt) with only
//            the symbol names kept (CARGO_PROFILE_RELEASE_STRIP=false): the same code, give or
//            take the few functions strip changes (the code sections differ by under 1%).
//   no-lto   the same without LTO (16 codegen units): a crate's code is mostly not inlined into
//            its callers across crates, so it stays under its own names.
// A crate group's functions are found by name; its gzip share is measured by removal: gzip -9 of
// the code section's bodies minus gzip -9 of the bodies left without the group's.
// Limits: in the lto build (what ships) LLVM inlines a crate's code into its callers, which are
// counted as ours (postgrest-rs's builder vanishes into functions::db; jwt-simple's HS256 into
// functions::auth), so the lto figure is a lower bound; the no-lto figure counts the crate's code
// as compiled without cross-crate inlining, closer to what the crate costs but of a bigger build.
// Neither is a removal build: no named crate can be taken out without rewriting the code that uses it.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');

function build(kind) {
  const out = `build-${kind}`;
  const env = {
    ...process.env,
    WASM_BINDGEN_BIN: spawnSync('bash', ['-c', 'command -v wasm-bindgen'], { encoding: 'utf8' }).stdout.trim(),
    WASM_OPT_BIN: path.join(root, 'node_modules/.bin/wasm-opt'),
    ESBUILD_BIN: path.join(root, 'node_modules/.bin/esbuild'),
    CARGO_TARGET_DIR: path.join(root, `target/bundle-${kind}`),
    CARGO_PROFILE_RELEASE_STRIP: 'false',
    ...(kind === 'no-lto' ? { CARGO_PROFILE_RELEASE_LTO: 'false', CARGO_PROFILE_RELEASE_CODEGEN_UNITS: '16' } : {}),
  };
  const r = spawnSync('worker-build', ['--release', '--out-dir', out], { cwd: path.join(root, 'functions'), env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`worker-build (${kind}): ${(r.stdout + r.stderr).slice(-2000)}`);
  return path.join(root, 'functions', out, 'index_bg.wasm');
}

function groups(wasm) {
  const r = spawnSync('node', [path.join(here, 'wasm-size.mjs'), wasm, '--json', '--groups'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

const KiB = (b) => (b / 1024).toFixed(1);

export function bundleAttribution({ skipBuild = process.env.BENCH_BUNDLE_SKIP_BUILD === '1' } = {}) {
  const t0 = Date.now();
  const res = {};
  for (const kind of ['lto', 'no-lto']) {
    const wasm = skipBuild ? path.join(root, 'functions', `build-${kind}`, 'index_bg.wasm') : build(kind);
    res[kind] = groups(wasm);
  }
  const buildS = (Date.now() - t0) / 1000;
  const lto = res.lto, nolto = res['no-lto'];
  const rows = [['crate (with what only it pulls in)', 'lto (shipped profile): functions / raw KiB / gzip KiB by removal', 'no-lto: functions / raw KiB / gzip KiB by removal', 'no-lto share of its code gzip']];
  for (const g of lto.groups) {
    const n = nolto.groups.find((x) => x.group === g.group);
    rows.push([g.group, `${g.functions} / ${KiB(g.raw)} / ${KiB(g.gzipRemoved)}`, `${n.functions} / ${KiB(n.raw)} / ${KiB(n.gzipRemoved)}`, `${((100 * n.gzipRemoved) / n.codeGzip).toFixed(1)}%`]);
  }
  const md = (rs) => rs.map((r, i) => `| ${r.join(' | ')} |` + (i === 0 ? `\n|${r.map(() => '---').join('|')}|` : '')).join('\n');
  const top = (a) => a.crates.slice(0, 6).map((c) => `${c.crate} ${KiB(c.bytes)}`).join(', ');
  const text = `### 1b. What each named crate adds (symbol attribution, two builds)

Method (tests/bench/bundle.mjs, tests/bench/wasm-size.mjs --groups): the Worker built again with worker-build,
names kept (\`CARGO_PROFILE_RELEASE_STRIP=false\`), once with the shipped release profile (lto) and once
without LTO (16 codegen units); a group's functions found by their demangled names, its gzip share
measured by removing their bodies from the code section (gzip -9 of all bodies minus gzip -9 of the
rest). Code gzip: lto ${KiB(lto.groups[0].codeGzip)} KiB of a ${KiB(lto.total.gzip - (lto.sections.find((s) => s.section === 'custom:name')?.gzip ?? 0))} KiB wasm (gzip of the sections, names excluded);
no-lto ${KiB(nolto.groups[0].codeGzip)} KiB. The data section (strings, tables: ${KiB(lto.sections.find((s) => s.section === 'data').gzip)} KiB gzip) is not attributed.
${skipBuild ? 'Builds reused (BENCH_BUNDLE_SKIP_BUILD=1).' : `Built in ${buildS.toFixed(0)} s.`}

${md(rows)}

Largest crates by raw code, lto: ${top(lto)}; no-lto: ${top(nolto)}.
The lto column is a lower bound: LLVM inlines a crate's code into its callers, which then count as ours
(no function is named \`postgrest::\` in either build: its builder methods are small generics,
monomorphised into and inlined in \`functions::db\`, so the row "functions::db + postgrest + reqwest",
our PostgREST module with postgrest-rs inside it, is the nearest upper bound for postgrest-rs; the
biggest unattributed item is the async request handler with routes and handlers inlined into it,
named after \`js_sys::futures::future_to_promise\`). The
no-lto column keeps most crate code under its own name, but it is a different, larger build, and
generic code monomorphised for our types counts under the crate that defines it (serde_json's
deserializers of our request types count as serde_json, which is where they would go with it).
No removal build: none of the four can be taken out without rewriting what uses it.
`;
  return { text, lto, nolto, buildS };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = bundleAttribution();
  console.log(r.text);
}
