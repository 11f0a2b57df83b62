// A demo generation pipeline: a stand-in for the service a team runs to make the videos, using the
// Worker's real pipeline API, so that `npm run dev` and the browser test show a job's progress.
//
// When woken (a line on stdin: one per JOBS_QUEUE message, as `npm run dev` forwards them) and
// every `pollMs` besides (for retries and missed wake-ups), it leases runnable jobs
// (`POST /v1/pipeline/claim`); for each one it reports a
// step every `stepMs` (`job.progress` through the PRD's working states after SCRIPTING, where the
// claim puts the job: VOICE_GEN 20% ... PACKAGING 95%)
// and then uploads a small script (`PUT /v1/pipeline/jobs/{id}/assets/script.txt`, streamed into
// R2) and sends `job.succeeded` at the job's reserved credits, listing it (`POST /v1/pipeline/events`).
// Each JSON request is signed `Pipeline-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "{t}.{body}">`
// with PIPELINE_SIGNING_SECRET; an upload signs its description instead (method, path, length,
// content type, SHA-256, worker id, attempt; ARCHITECTURE.md). Each call names the attempt the
// claim returned. It makes no video: the output URL is a placeholder.
//
//   API_URL=http://127.0.0.1:8787 PIPELINE_SIGNING_SECRET=... [DEMO_STEP_MS=700] [DEMO_POLL_MS=15000] \
//     node examples/pipeline/demo-pipeline.mjs
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const STEPS = [['VOICE_GEN', 20], ['ALIGNMENT', 30], ['VISUAL_PLAN', 40], ['IMAGE_GEN', 55], ['TIMELINE', 70], ['RENDERING', 85], ['PACKAGING', 95]];

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

/** Runs until `signal` aborts; each `wake` event of `waker` claims at once. */
export async function runDemoPipeline({ apiUrl, secret, workerId = `demo-${process.pid}`, pollMs = 15000, stepMs = 700, signal, waker, log = console.log }) {
  async function post(path, payload) {
    const body = JSON.stringify(payload);
    const t = Math.floor(Date.now() / 1000);
    const signature = `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
    const res = await fetch(apiUrl + path, { method: 'POST', headers: { 'content-type': 'application/json', 'pipeline-signature': signature }, body });
    const answer = await res.json();
    if (!res.ok) throw new Error(`${path}: ${res.status} ${answer.error?.code}: ${answer.error?.message}`);
    return answer;
  }

  /** Uploads `text` as a file of `job`; answers whether it was stored. */
  async function upload(job, name, text) {
    const bytes = Buffer.from(text);
    const path = `/v1/pipeline/jobs/${job.id}/assets/${name}`;
    const sha = createHash('sha256').update(bytes).digest('hex');
    const t = Math.floor(Date.now() / 1000);
    // The signed description of an upload starts with its domain line, then one line per part.
    const described = ['outputs-upload-v1', 'PUT', path, bytes.length, 'text/plain', sha, workerId, job.attempts].join('\n');
    const signature = `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${described}`).digest('hex')}`;
    const res = await fetch(apiUrl + path, {
      method: 'PUT', body: bytes,
      headers: { 'content-type': 'text/plain', 'pipeline-content-sha256': sha, 'pipeline-worker-id': workerId, 'pipeline-attempt': String(job.attempts), 'pipeline-signature': signature },
    });
    if (!res.ok) log(`demo pipeline: upload ${name}: ${res.status} ${(await res.json()).error?.code}`);
    return res.ok;
  }

  async function work(job) {
    const base = { job_id: job.id, worker_id: workerId, attempt: job.attempts };
    for (const [status, progress] of STEPS) {
      await sleep(stepMs, signal);
      if (signal?.aborted) return;
      const r = await post('/v1/pipeline/events', { type: 'job.progress', event_id: randomUUID(), ...base, status, progress, message: `${status.toLowerCase()}` });
      if (!r.applied) return log(`demo pipeline: job ${job.id} is no longer ours`);
    }
    await sleep(stepMs, signal);
    if (signal?.aborted) return;
    const script = await upload(job, 'script.txt', `Demo script for job ${job.id}.\n`);
    await post('/v1/pipeline/events', {
      type: 'job.succeeded', event_id: randomUUID(), ...base, actual_cost: job.credits_reserved,
      output_url: `https://cdn.example.test/demo/${job.id}.mp4`,
      assets: [{ kind: 'video', url: `https://cdn.example.test/demo/${job.id}.mp4` }, ...(script ? [{ name: 'script.txt' }] : [])],
    });
    log(`demo pipeline: job ${job.id} READY (${job.credits_reserved} credits)`);
  }

  const running = new Set();
  // A wake-up that comes while claiming is not lost: the next wait is skipped.
  let woken = false;
  let interrupt = null;
  waker?.addEventListener('wake', () => { woken = true; interrupt?.(); });
  signal?.addEventListener('abort', () => interrupt?.(), { once: true });
  while (!signal?.aborted) {
    woken = false;
    try {
      const { jobs } = await post('/v1/pipeline/claim', { worker_id: workerId, limit: 10 });
      for (const job of jobs) {
        const p = work(job).catch((e) => log(`demo pipeline: job ${job.id}: ${e.message}`)).finally(() => running.delete(p));
        running.add(p);
      }
    } catch (e) {
      // The Worker may not be up yet, or be restarting: try again at the next poll.
      if (!/fetch failed/.test(e.message)) log(`demo pipeline: ${e.message}`);
    }
    if (!woken && !signal?.aborted) {
      await new Promise((resolve) => {
        const t = setTimeout(resolve, pollMs);
        interrupt = () => { clearTimeout(t); resolve(); };
      });
    }
    interrupt = null;
  }
  await Promise.all(running);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const controller = new AbortController();
  for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => controller.abort());
  const apiUrl = process.env.API_URL ?? 'http://127.0.0.1:8787';
  const secret = process.env.PIPELINE_SIGNING_SECRET;
  if (!secret) throw new Error('PIPELINE_SIGNING_SECRET is not set');
  const waker = new EventTarget();
  process.stdin.on('data', () => waker.dispatchEvent(new Event('wake')));
  process.stdin.on('error', () => {});
  console.log(`demo pipeline: claiming jobs from ${apiUrl}`);
  await runDemoPipeline({
    apiUrl, secret, waker, signal: controller.signal,
    stepMs: Number(process.env.DEMO_STEP_MS ?? 700), pollMs: Number(process.env.DEMO_POLL_MS ?? 15000),
  });
  process.stdin.destroy();
}
