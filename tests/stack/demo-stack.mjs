// The demo around the Worker, for `npm run dev` (dev-worker.mjs) and the browser test: the demo
// page on its own origin (examples/web/serve.mjs), the Stripe stand-in with its Checkout page
// (tests/e2e/stripe-standin.mjs), the Worker with bindings that allow the page's origin (CORS) and
// send Checkout back to it, and the demo pipeline (examples/pipeline/demo-pipeline.mjs) as a
// separate process driving the Worker's signed pipeline API, woken by each JOBS_QUEUE message.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { startWorker, stack, PIPELINE_SECRET } from '../e2e/harness.mjs';
import { startStripeStandin, STRIPE_TEST_KEY } from '../e2e/stripe-standin.mjs';
import { startDemoServer } from '../../examples/web/serve.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The local Stripe webhook endpoint secret (the stand-in signs with it, the Worker verifies). */
export const DEMO_WEBHOOK_SECRET = 'whsec_local_demo_0123456789';

export async function startDemoStack({ workerPort = 0, webPort = 0, log = false, logLines = null, pipelineStepMs = 700, r2Persist = false } = {}) {
  const stopping = [];
  const stop = async () => { for (const s of stopping.reverse()) await s(); };
  try {
    // The page's origin must be known before the Worker starts (CORS, Checkout return URLs).
    const web = await startDemoServer({ port: webPort, config: { apiUrl: null, anonKey: stack.anonKey } });
    stopping.push(web.close);
    const checkout = { webhookUrl: null, webhookSecret: DEMO_WEBHOOK_SECRET };
    const stripe = await startStripeStandin({ checkout });
    stopping.push(stripe.close);
    const worker = await startWorker({
      CORS_ALLOWED_ORIGINS: web.url,
      STRIPE_SECRET_KEY: STRIPE_TEST_KEY,
      STRIPE_API_BASE: stripe.url,
      STRIPE_WEBHOOK_SECRET: DEMO_WEBHOOK_SECRET,
      CHECKOUT_SUCCESS_URL: `${web.url}/?checkout=success&session={CHECKOUT_SESSION_ID}`,
      CHECKOUT_CANCEL_URL: `${web.url}/?checkout=cancelled`,
    }, { port: workerPort, log, logLines, r2Persist });
    stopping.push(worker.dispose);
    web.config.apiUrl = worker.url;
    checkout.webhookUrl = `${worker.url}/v1/purchase/stripe-webhook`;

    const pipeline = spawn(process.execPath, [path.join(root, 'examples/pipeline/demo-pipeline.mjs')], {
      env: { ...process.env, API_URL: worker.url, PIPELINE_SIGNING_SECRET: PIPELINE_SECRET, DEMO_STEP_MS: String(pipelineStepMs) },
      stdio: ['pipe', log ? 'inherit' : 'ignore', 'inherit'],
    });
    // The queue's wake-up, as the pipeline's queue consumer would get it: claim now.
    pipeline.stdin.on('error', () => {});
    worker.onQueued(() => pipeline.stdin.write('wake\n'));
    const exited = new Promise((resolve) => pipeline.once('exit', resolve));
    stopping.push(async () => { pipeline.kill('SIGTERM'); await exited; });
    return { web, stripe, worker, pipeline, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
