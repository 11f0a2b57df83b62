// Generated files (issue 11, "Outputs") through the Worker in workerd with Miniflare's R2 as the
// OUTPUTS bucket, the real PostgREST and Postgres: the pipeline's signed, streamed, size-capped
// upload (PUT /v1/pipeline/jobs/{id}/assets/{name}), the asset listed in the success event, the
// owner's download with Range (GET/HEAD /v1/jobs/{id}/assets/{asset_id}), and objects deleted
// from R2 when a project or an account is deleted (through the API, and through auth.users plus
// the cron). Also the pipeline's step events and its side of a cancel. What is stored is read
// straight from the bucket through Miniflare; rows with SQL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomUUID, randomBytes } from 'node:crypto';
import { startWorker, callWorker, createUser, bearer, sql, sqlRows, signPipeline, uploadDescription, PIPELINE_SECRET } from './harness.mjs';

const MAX_UPLOAD = 65536;
let w;
before(async () => { w = await startWorker({ OUTPUTS_MAX_UPLOAD_BYTES: String(MAX_UPLOAD) }); });
after(async () => { await w?.dispose(); });

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

const call = (method, path, user, body, headers) => callWorker(w, method, path, user, body, headers);

/** A signed pipeline JSON call. */
async function pipeline(path, body) {
  const raw = JSON.stringify(body);
  const res = await w.fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', 'pipeline-signature': signPipeline(raw) }, body: raw });
  return { status: res.status, body: await res.json() };
}

/** A QUEUED job of `user`, claimed by a worker of its own; returns what the claim answered for it. */
async function runningJob(user, prompt = 'Tide pools at dawn') {
  const r = await call('POST', '/v1/generate', user, { model_id: 'standard-v1', prompt, target_minutes: 1 }, { 'idempotency-key': randomUUID() });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const workerId = `gpu-${randomUUID().slice(0, 8)}`;
  // Other files' queued jobs may be claimed too; they are ended at once so nothing is left leased.
  for (let i = 0; i < 20; i++) {
    const claimed = await pipeline('/v1/pipeline/claim', { worker_id: workerId, limit: 100 });
    assert.equal(claimed.status, 200, JSON.stringify(claimed.body));
    for (const j of claimed.body.jobs.filter((j) => j.id !== r.body.job.id)) {
      await pipeline('/v1/pipeline/events', { type: 'job.failed', event_id: randomUUID(), job_id: j.id, worker_id: workerId, attempt: j.attempts, error_code: 'not_this_test', retryable: true });
    }
    const mine = claimed.body.jobs.find((j) => j.id === r.body.job.id);
    if (mine) return { ...mine, workerId };
  }
  throw new Error('the job was never claimed');
}

/**
 * Uploads `bytes` as the pipeline does: the signature covers the domain line, method, path,
 * length, content type, declared SHA-256, worker id and attempt. Any part can be overridden to
 * make a bad request (`description`: the whole signed text; `signature`: the header itself).
 */
async function upload(job, name, bytes, o = {}) {
  const path = `/v1/pipeline/jobs/${o.jobId ?? job.id}/assets/${name}`;
  const contentType = o.contentType ?? 'video/mp4';
  const declared = o.sha ?? sha256(bytes);
  const workerId = o.workerId ?? job.workerId;
  const attempt = o.attempt ?? job.attempts;
  const t = o.t ?? Math.floor(Date.now() / 1000);
  const input = o.description ?? uploadDescription({ path, length: o.signedLength ?? bytes.length, contentType, sha256: declared, workerId, attempt });
  const signature = `t=${t},v1=${createHmac('sha256', o.secret ?? PIPELINE_SECRET).update(`${t}.${input}`).digest('hex')}`;
  const headers = {
    'content-type': contentType, 'pipeline-content-sha256': declared, 'pipeline-worker-id': workerId,
    'pipeline-attempt': String(attempt), 'pipeline-signature': o.signature ?? signature,
  };
  const send = async () => {
    const init = { method: 'PUT', headers, body: bytes };
    if (o.chunked) {
      init.body = new ReadableStream({ start(c) { c.enqueue(bytes); c.close(); } });
      init.duplex = 'half';
    }
    const res = await w.fetch(path, init);
    return { status: res.status, body: await res.json() };
  };
  // `replay()` sends the very same request again (same headers, signature and bytes).
  return { ...(await send()), replay: send, signature: headers['pipeline-signature'] };
}

/** The keys stored under a job in the bucket. */
async function storedKeys(jobId) {
  const listed = await (await w.bucket()).list({ prefix: `${jobId}/` });
  return listed.objects.map((o) => o.key).sort();
}

async function download(user, jobId, assetId, headers = {}, method = 'GET') {
  // HEAD is not recorded for the OpenAPI check (the document lists GET; HEAD is answered alike).
  const send = method === 'HEAD' ? (p, init) => fetch(w.url + p, init) : w.fetch;
  const res = await send(`/v1/jobs/${jobId}/assets/${assetId}`, { method, headers: { ...bearer(user.token), ...headers } });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

test('upload, success event, download whole, by Range and HEAD; another user and bad ids are 404', async () => {
  const alice = createUser();
  const bob = createUser();
  const job = await runningJob(alice);
  const video = randomBytes(5000);

  const up = await upload(job, 'final.mp4', video);
  assert.equal(up.status, 201, JSON.stringify(up.body));
  assert.equal(up.body.applied, true);
  assert.equal(up.body.asset.sha256, sha256(video));
  assert.equal(up.body.asset.size_bytes, 5000);
  assert.equal(up.body.asset.mime_type, 'video/mp4');
  assert.equal(up.body.asset.kind, 'video');
  const [row] = sqlRows(`select id, storage_key, size_bytes, sha256, mime_type from public.assets where job_id = '${job.id}'`);
  assert.match(row.storage_key, new RegExp(`^${job.id}/final\\.mp4/[0-9a-f-]{36}$`), 'stored under a key of its own');
  assert.deepEqual(await storedKeys(job.id), [row.storage_key]);
  const stored = await (await w.bucket()).get(row.storage_key);
  assert.deepEqual(Buffer.from(await stored.arrayBuffer()), video, 'R2 holds exactly the uploaded bytes');
  assert.equal(stored.httpMetadata.contentType, 'video/mp4');

  const done = await pipeline('/v1/pipeline/events', {
    type: 'job.succeeded', event_id: randomUUID(), job_id: job.id, worker_id: job.workerId, attempt: job.attempts,
    actual_cost: 2, assets: [{ name: 'final.mp4', kind: 'video', duration_seconds: 60 }],
  });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.equal(done.body.job.status, 'READY');
  const listed = await call('GET', `/v1/jobs/${job.id}`, alice);
  assert.equal(listed.body.assets.length, 1);
  assert.equal(listed.body.assets[0].id, row.id);
  assert.equal(Number(listed.body.assets[0].duration_seconds), 60, 'the success event refined the asset');

  const whole = await download(alice, job.id, row.id);
  assert.equal(whole.status, 200);
  assert.deepEqual(whole.bytes, video);
  assert.equal(whole.headers.get('content-type'), 'video/mp4');
  assert.equal(whole.headers.get('content-length'), '5000');
  assert.equal(whole.headers.get('accept-ranges'), 'bytes');
  assert.equal(whole.headers.get('etag'), `"${sha256(video)}"`, 'the strong ETag is the recorded SHA-256');
  assert.equal(whole.headers.get('last-modified'), stored.uploaded.toUTCString(), 'Last-Modified is when R2 stored it');
  assert.equal(whole.headers.get('content-disposition'), 'inline; filename="final.mp4"');

  const part = await download(alice, job.id, row.id, { range: 'bytes=100-199' });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), 'bytes 100-199/5000');
  assert.equal(part.headers.get('content-length'), '100');
  assert.deepEqual(part.bytes, video.subarray(100, 200), 'the right bytes');
  const tail = await download(alice, job.id, row.id, { range: 'bytes=-10' });
  assert.equal(tail.status, 206);
  assert.equal(tail.headers.get('content-range'), 'bytes 4990-4999/5000');
  assert.deepEqual(tail.bytes, video.subarray(4990));
  const open = await download(alice, job.id, row.id, { range: 'bytes=4000-' });
  assert.deepEqual([open.status, open.bytes.length], [206, 1000]);
  assert.deepEqual(open.bytes, video.subarray(4000));
  const beyond = await download(alice, job.id, row.id, { range: 'bytes=5000-' });
  assert.equal(beyond.status, 416);
  assert.equal(beyond.headers.get('content-range'), 'bytes */5000');
  assert.equal(JSON.parse(beyond.bytes).error.code, 'range_not_satisfiable');
  const many = await download(alice, job.id, row.id, { range: 'bytes=0-1,5-6' });
  assert.equal(many.status, 200, 'several ranges: the whole file');
  assert.equal(many.bytes.length, 5000);

  const head = await download(alice, job.id, row.id, {}, 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-length'), '5000');
  assert.equal(head.bytes.length, 0);

  for (const [who, jobId, assetId] of [[bob, job.id, row.id], [alice, randomUUID(), row.id], [alice, job.id, randomUUID()], [alice, job.id, 'nope']]) {
    const r = await download(who, jobId, assetId);
    assert.equal(r.status, 404, `${jobId}/${assetId}`);
    assert.equal(JSON.parse(r.bytes).error.code, 'not_found');
  }
  const anonymous = await w.fetch(`/v1/jobs/${job.id}/assets/${row.id}`);
  assert.equal(anonymous.status, 401);
});

test('bad uploads are refused with stable codes and write nothing: no row, no object', async () => {
  const alice = createUser();
  const job = await runningJob(alice);
  const other = await runningJob(createUser(), 'Another job');
  const bytes = randomBytes(2000);
  const nothingWritten = async (label) => {
    assert.equal(sql(`select count(*) from public.assets where job_id in ('${job.id}', '${other.id}')`), '0', `${label}: no row`);
    assert.deepEqual(await storedKeys(job.id), [], `${label}: no object`);
    assert.deepEqual(await storedKeys(other.id), [], `${label}: no object`);
    assert.equal(sql(`select count(*) from public.storage_deletions where storage_key like '${job.id}/%' or storage_key like '${other.id}/%'`), '0', `${label}: nothing left queued`);
  };

  const cases = [
    ['bad signature', () => upload(job, 'a.mp4', bytes, { secret: 'not-the-secret-0123456789abcdef' }), 400, 'invalid_signature'],
    ['signature over another length', () => upload(job, 'a.mp4', bytes, { signedLength: 10 }), 400, 'invalid_signature'],
    ['signature without the upload domain line', () => upload(job, 'a.mp4', bytes, {
      description: ['PUT', `/v1/pipeline/jobs/${job.id}/assets/a.mp4`, bytes.length, 'video/mp4', sha256(bytes), job.workerId, job.attempts].join('\n'),
    }), 400, 'invalid_signature'],
    ['the signature of a pipeline JSON call', () => upload(job, 'a.mp4', bytes, {
      signature: signPipeline(JSON.stringify({ type: 'job.progress', event_id: randomUUID(), job_id: job.id, worker_id: job.workerId, attempt: job.attempts })),
    }), 400, 'invalid_signature'],
    ['too big', () => upload(job, 'big.mp4', randomBytes(MAX_UPLOAD + 1)), 413, 'payload_too_large'],
    ['bad name', () => upload(job, '.hidden', bytes), 400, 'invalid_request'],
    ['name with an encoded slash', () => upload(job, 'a%2Fb.mp4', bytes), 400, 'invalid_request'],
    ['long name', () => upload(job, 'a'.repeat(129), bytes), 400, 'invalid_request'],
    ['content type off the list', () => upload(job, 'page.html', bytes, { contentType: 'text/html' }), 415, 'unsupported_media_type'],
    ['checksum mismatch', () => upload(job, 'a.mp4', bytes, { sha: sha256(Buffer.from('other bytes')) }), 400, 'checksum_mismatch'],
    ['declared SHA-256 not hex', () => upload(job, 'a.mp4', bytes, { sha: 'x'.repeat(64) }), 400, 'invalid_request'],
    ['wrong job (not this worker\'s)', () => upload(job, 'a.mp4', bytes, { jobId: other.id }), 409, 'upload_refused'],
    ['another attempt', () => upload(job, 'a.mp4', bytes, { attempt: job.attempts + 1 }), 409, 'upload_refused'],
    ['unknown job', () => upload(job, 'a.mp4', bytes, { jobId: randomUUID() }), 404, 'not_found'],
    ['no Content-Length (chunked)', () => upload(job, 'a.mp4', bytes, { chunked: true }), 411, 'length_required'],
  ];
  for (const [label, send, status, code] of cases) {
    const r = await send();
    assert.equal(r.status, status, `${label}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, code, label);
    await nothingWritten(label);
  }

  // The same name uploaded again replaces the file; the replaced object is deleted from R2.
  const first = await upload(job, 'final.mp4', bytes);
  assert.equal(first.status, 201);
  const second = await upload(job, 'final.mp4', Buffer.from('second version'));
  assert.equal(second.status, 201);
  assert.equal(second.body.asset.id, first.body.asset.id, 'the same asset');
  assert.deepEqual(await storedKeys(job.id), [second.body.storage_key], 'only the new object is kept');
  const got = await download(alice, job.id, second.body.asset.id);
  assert.equal(got.bytes.toString(), 'second version');

  // A finished job takes no more files, and its file is untouched by the refused upload.
  const ended = await pipeline('/v1/pipeline/events', { type: 'job.succeeded', event_id: randomUUID(), job_id: job.id, worker_id: job.workerId, attempt: job.attempts, actual_cost: 1, assets: [{ name: 'final.mp4' }] });
  assert.equal(ended.body.job.status, 'READY');
  // (Other bytes than `first`'s: the same bytes signed in the same second would be `first` replayed.)
  const late = await upload(job, 'final.mp4', Buffer.from('a late version'));
  assert.equal(late.status, 409);
  assert.equal(late.body.error.code, 'upload_refused');
  assert.deepEqual(await storedKeys(job.id), [second.body.storage_key]);
  assert.equal((await download(alice, job.id, second.body.asset.id)).bytes.toString(), 'second version');
});

test('an upload\'s signature passes for nothing else: its signed description posted as a pipeline event is refused', async () => {
  const job = await runningJob(createUser());
  const bytes = randomBytes(100);
  const path = `/v1/pipeline/jobs/${job.id}/assets/a.mp4`;
  const description = uploadDescription({ path, length: bytes.length, contentType: 'video/mp4', sha256: sha256(bytes), workerId: job.workerId, attempt: job.attempts });
  assert.ok(description.startsWith('outputs-upload-v1\nPUT\n'), 'the description starts with its domain line');
  const before = sql(`select concat_ws('|', status, attempts, (select count(*) from public.job_steps where job_id = '${job.id}')) from public.jobs where id = '${job.id}'`);
  const res = await w.fetch('/v1/pipeline/events', { method: 'POST', headers: { 'content-type': 'application/json', 'pipeline-signature': signPipeline(description) }, body: description });
  assert.equal(res.status, 400, 'a verified signature over an upload description is no pipeline event');
  assert.equal(sql(`select concat_ws('|', status, attempts, (select count(*) from public.job_steps where job_id = '${job.id}')) from public.jobs where id = '${job.id}'`), before);
});

test('a signed upload counts once: replayed after a newer upload it is refused (no roll-back); replayed while current it answers its record', async () => {
  const alice = createUser();
  const job = await runningJob(alice);
  const v1 = Buffer.from('first cut');
  const v2 = Buffer.from('second cut, longer');
  const first = await upload(job, 'cut.mp4', v1);
  assert.equal(first.status, 201, JSON.stringify(first.body));
  assert.equal(first.body.replayed, false);
  const second = await upload(job, 'cut.mp4', v2);
  assert.equal(second.status, 201, JSON.stringify(second.body));
  assert.deepEqual(await storedKeys(job.id), [second.body.storage_key]);

  // The first request again, byte for byte, within its 5-minute window.
  const replay1 = await first.replay();
  assert.equal(replay1.status, 409, JSON.stringify(replay1.body));
  assert.equal(replay1.body.error.code, 'upload_replayed');
  assert.deepEqual(await storedKeys(job.id), [second.body.storage_key], 'the replay\'s object is deleted; the file stays');
  assert.equal((await download(alice, job.id, second.body.asset.id)).bytes.toString(), v2.toString(), 'the file is still the second cut');

  // The current upload again (a pipeline retrying a request whose answer it lost): its record.
  const replay2 = await second.replay();
  assert.equal(replay2.status, 201, JSON.stringify(replay2.body));
  assert.equal(replay2.body.replayed, true);
  assert.equal(replay2.body.storage_key, second.body.storage_key, 'the key it was stored under the first time');
  assert.equal(replay2.body.asset.id, second.body.asset.id);
  assert.deepEqual(await storedKeys(job.id), [second.body.storage_key], 'only one object');
  assert.equal(sql(`select count(*) from public.storage_deletions where storage_key like '${job.id}/%'`), '0', 'nothing left queued');
});

test('If-Range: the same strong ETag serves the range; after a re-upload, a weak tag or a date, the whole file', async () => {
  const alice = createUser();
  const job = await runningJob(alice);
  const v1 = randomBytes(1000);
  const v2 = randomBytes(1200);
  const up1 = await upload(job, 'final.mp4', v1);
  assert.equal(up1.status, 201, JSON.stringify(up1.body));
  const first = await download(alice, job.id, up1.body.asset.id);
  const etag1 = first.headers.get('etag');
  assert.equal(etag1, `"${sha256(v1)}"`);
  const resumed = await download(alice, job.id, up1.body.asset.id, { range: 'bytes=500-', 'if-range': etag1 });
  assert.equal(resumed.status, 206, 'the file is unchanged: the range');
  assert.deepEqual(resumed.bytes, v1.subarray(500));

  // The pipeline uploads the file again; a download resumed with the old ETag gets the new file whole.
  const up2 = await upload(job, 'final.mp4', v2);
  assert.equal(up2.status, 201, JSON.stringify(up2.body));
  assert.equal(up2.body.asset.id, up1.body.asset.id);
  const mixed = await download(alice, job.id, up1.body.asset.id, { range: 'bytes=500-', 'if-range': etag1 });
  assert.equal(mixed.status, 200, 'another file since: the whole file, never its bytes from 500 on');
  assert.deepEqual(mixed.bytes, v2);
  assert.equal(mixed.headers.get('etag'), `"${sha256(v2)}"`);
  assert.equal(mixed.headers.get('content-range'), null);
  const etag2 = mixed.headers.get('etag');
  const current = await download(alice, job.id, up1.body.asset.id, { range: 'bytes=500-', 'if-range': etag2 });
  assert.equal(current.status, 206);
  assert.equal(current.headers.get('content-range'), 'bytes 500-1199/1200');
  assert.deepEqual(current.bytes, v2.subarray(500));
  const weak = await download(alice, job.id, up1.body.asset.id, { range: 'bytes=500-', 'if-range': `W/${etag2}` });
  assert.deepEqual([weak.status, weak.bytes.length], [200, 1200], 'a weak tag never matches');
  const dated = await download(alice, job.id, up1.body.asset.id, { range: 'bytes=500-', 'if-range': mixed.headers.get('last-modified') });
  assert.deepEqual([dated.status, dated.bytes.length], [200, 1200], 'a date is not a strong validator here: the whole file');
  const noRange = await download(alice, job.id, up1.body.asset.id, { 'if-range': etag1 });
  assert.deepEqual([noRange.status, noRange.bytes.length], [200, 1200], 'If-Range without Range changes nothing');
  const staleBeyond = await download(alice, job.id, up1.body.asset.id, { range: 'bytes=5000-', 'if-range': etag1 });
  assert.deepEqual([staleBeyond.status, staleBeyond.bytes.length], [200, 1200], 'If-Range is decided before the range: no 416 for another file');
  const beyond = await download(alice, job.id, up1.body.asset.id, { range: 'bytes=5000-', 'if-range': etag2 });
  assert.equal(beyond.status, 416, 'a matching If-Range with a range past the end is still 416');
});

/** A READY job of `user` with one uploaded file; returns the job, the asset id and its key. */
async function jobWithFile(user) {
  const job = await runningJob(user);
  const up = await upload(job, 'final.mp4', randomBytes(300));
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const done = await pipeline('/v1/pipeline/events', { type: 'job.succeeded', event_id: randomUUID(), job_id: job.id, worker_id: job.workerId, attempt: job.attempts, actual_cost: 1, assets: [{ name: 'final.mp4' }] });
  assert.equal(done.body.job.status, 'READY');
  assert.deepEqual(await storedKeys(job.id), [up.body.storage_key]);
  return { job, assetId: up.body.asset.id, key: up.body.storage_key };
}

const queued = (key) => sql(`select count(*) from public.storage_deletions where storage_key = '${key}'`);

test('deleting a project deletes its objects from R2', async () => {
  const alice = createUser();
  const { job, assetId, key } = await jobWithFile(alice);
  const deleted = await call('DELETE', `/v1/projects/${job.project_id}`, alice);
  assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
  assert.deepEqual(deleted.body.storage_keys, [key]);
  assert.deepEqual(await storedKeys(job.id), [], 'the object is gone from R2');
  assert.equal(queued(key), '0', 'and confirmed in the queue');
  assert.equal((await download(alice, job.id, assetId)).status, 404);
});

test('closing an account through the API deletes its objects from R2', async () => {
  const alice = createUser();
  const one = await jobWithFile(alice);
  const two = await jobWithFile(alice);
  const closed = await call('DELETE', '/v1/account', alice);
  assert.equal(closed.status, 200, JSON.stringify(closed.body));
  assert.equal(closed.body.files_queued_for_deletion, 2);
  assert.deepEqual(await storedKeys(one.job.id), []);
  assert.deepEqual(await storedKeys(two.job.id), []);
  assert.equal(queued(one.key) + queued(two.key), '00');
});

test('a user\'s deletion deletes only the objects it freed; other users\' backlog is left to the cron', async () => {
  const alice = createUser();
  const { job, key } = await jobWithFile(alice);
  const bob = createUser();
  const other = await jobWithFile(bob);
  // Other users' deletions waiting in the queue (objects that no longer exist: deleting them is
  // fine), queued after the uploads (the pipeline's upload drains the queue).
  const tag = randomUUID();
  sql(`insert into public.storage_deletions (storage_key, reason) select '${tag}/backlog/' || g, 'project_deleted' from generate_series(1, 150) g`);
  const backlog = () => Number(sql(`select count(*) from public.storage_deletions where storage_key like '${tag}/%'`));

  const deleted = await call('DELETE', `/v1/projects/${job.project_id}`, alice);
  assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
  assert.deepEqual(await storedKeys(job.id), [], 'its own object is deleted');
  assert.equal(queued(key), '0', 'and confirmed');
  assert.equal(backlog(), 150, 'the backlog is left to the cron');
  assert.equal((await call('DELETE', '/v1/account', bob)).status, 200);
  assert.deepEqual(await storedKeys(other.job.id), [], 'a closed account\'s objects are deleted');
  assert.equal(backlog(), 150, 'and the backlog is still left');

  // One cron run drains at most 1,000 keys, oldest first: older leftovers may come before these.
  for (let run = 0; run < 5 && backlog() > 0; run++) {
    const res = await fetch(`${w.url}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent('*/5 * * * *')}`);
    assert.equal(res.status, 200);
    await res.text();
  }
  assert.equal(backlog(), 0, 'the cron drained the backlog');
});

test('deleting the auth.users row (the dashboard) leaves the objects queued; the cron deletes them', async () => {
  const alice = createUser();
  const { job, key } = await jobWithFile(alice);
  sql(`delete from auth.users where id = '${alice.id}'`);
  assert.equal(queued(key), '1', 'queued by the database');
  assert.deepEqual(await storedKeys(job.id), [key], 'still in R2: no request reached the Worker');
  const res = await fetch(`${w.url}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent('*/5 * * * *')}`);
  assert.equal(res.status, 200);
  await res.text();
  assert.deepEqual(await storedKeys(job.id), [], 'the cron deleted it');
  assert.equal(queued(key), '0');
});

test('step events reach job_steps; a cancel is learnt from event answers and ends with what was spent', async () => {
  const alice = createUser();
  const job = await runningJob(alice);
  const base = { job_id: job.id, worker_id: job.workerId, attempt: job.attempts };
  const step = await pipeline('/v1/pipeline/events', {
    type: 'job.step', event_id: randomUUID(), ...base, step: 'VOICE_GEN', status: 'failed', progress: 40,
    error: 'TTS timed out', log_excerpt: 'retrying voice', artifacts: [{ name: 'voice.wav' }],
  });
  assert.equal(step.status, 200, JSON.stringify(step.body));
  assert.equal(step.body.applied, true);
  assert.equal(step.body.cancel_requested, false);
  const [row] = sqlRows(`select status, progress, error, log_excerpt, artifacts from public.job_steps where job_id = '${job.id}' and name = 'VOICE_GEN'`);
  assert.deepEqual(row, { status: 'failed', progress: 40, error: 'TTS timed out', log_excerpt: 'retrying voice', artifacts: [{ name: 'voice.wav' }] });
  const user = await call('GET', `/v1/jobs/${job.id}`, alice);
  assert.ok(user.body.steps.some((s) => s.name === 'VOICE_GEN' && s.status === 'failed'), 'the owner sees the step');

  for (const [bad, field] of [[{ step: 'NAPPING', status: 'started' }, 'step'], [{ step: 'VOICE_GEN', status: 'done' }, 'status'], [{ status: 'started' }, 'step'], [{ step: 'VOICE_GEN', status: 'started', artifacts: {} }, 'artifacts']]) {
    const r = await pipeline('/v1/pipeline/events', { type: 'job.step', event_id: randomUUID(), ...base, ...bad });
    assert.equal(r.status, 400, JSON.stringify(bad));
    assert.equal(r.body.error.field, field, JSON.stringify(r.body));
  }

  // The user cancels the running job; the pipeline learns it from its next heartbeat or step.
  const cancel = await call('POST', `/v1/jobs/${job.id}/cancel`, alice);
  assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
  assert.notEqual(cancel.body.job.status, 'CANCELED', 'a running job only gets a cancel request');
  const beat = await pipeline('/v1/pipeline/events', { type: 'job.progress', event_id: randomUUID(), ...base, status: 'VOICE_GEN', progress: 30 });
  assert.equal(beat.body.cancel_requested, true);
  const next = await pipeline('/v1/pipeline/events', { type: 'job.step', event_id: randomUUID(), ...base, step: 'VOICE_GEN', status: 'started' });
  assert.equal(next.body.cancel_requested, true);

  const tooMuch = await pipeline('/v1/pipeline/events', { type: 'job.canceled', event_id: randomUUID(), ...base, spent: 1000 });
  assert.equal(tooMuch.status, 400);
  assert.equal(tooMuch.body.error.field, 'spent');
  const ledgerBefore = sql(`select string_agg(type || ':' || delta_available || ':' || delta_held, ',' order by id) from public.credit_ledger where job_id = '${job.id}'`);
  assert.equal(ledgerBefore, 'hold:-3:3');
  const stopped = await pipeline('/v1/pipeline/events', { type: 'job.canceled', event_id: randomUUID(), ...base, spent: 1 });
  assert.equal(stopped.status, 200, JSON.stringify(stopped.body));
  assert.equal(stopped.body.applied, true);
  assert.equal(stopped.body.job.status, 'CANCELED');
  assert.equal(stopped.body.job.credits_final, 1);
  const balance = await call('GET', '/v1/balance', alice);
  assert.deepEqual([balance.body.available, balance.body.held], [9, 0], '1 credit spent, 2 returned');
  const again = await pipeline('/v1/pipeline/events', { type: 'job.canceled', event_id: randomUUID(), ...base, spent: 3 });
  assert.equal(again.body.applied, false, 'a second report changes nothing');
  assert.deepEqual(JSON.parse(sql('select public.reconcile()')), []);
});
