#!/usr/bin/env node
// s3rver as `shopai s3` runs it: the pinned s3rver (package.json) keeping objects on disk, plus the one thing
// the embedded broker's s3:// engine needs and s3rver 3.7 lacks: conditional writes. tansu updates a
// partition's state with `If-Match: <etag>` and creates objects with `If-None-Match: *`, expecting
// 412 Precondition Failed when another writer came first; s3rver ignores both headers on PUT, so two
// producers writing to one partition at once overwrote each other's records after both were acknowledged
// (tests/integration/test_durable_broker.py publishes from several producers at once to catch it).
// Here every request to one object waits for the previous one to that object, and a PUT whose
// condition does not hold is answered 412, as S3 does. A PUT replaces its object whole or not at all, and a
// full disk is answered 507 with its reason instead of ending the store (see putObject below).
//
//   node tools/s3rver/serve.js --directory D --address 127.0.0.1 --port P --configure-bucket tansu
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const { dirname, join } = require('path');
const { Readable } = require('stream');
const S3rver = require('s3rver');
const S3Object = require('s3rver/lib/models/object');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const server = new S3rver({
  directory: option('directory'),
  address: option('address', '127.0.0.1'),
  port: Number(option('port', '4568')),
  silent: true,
  configureBuckets: [{ name: option('configure-bucket', 'tansu'), configs: [] }],
});

// Where s3rver's own putObject falls short on a full disk (found filling the store's disk to the last byte):
// it truncates the object's file and then writes into it, so a write that fails half way leaves an existing
// object cut short, or a new one empty but listed (a broker's partition state lost), and its write stream's
// error is not handled, so ENOSPC ended the whole store. Here the object, its MD5 and its metadata are
// written to temporary files beside it first and renamed over the old ones only when all three are whole;
// a failed write removes them and leaves every object as it was.
const TEMPORARY = '.shopai-partial-';
let writes = 0;

async function writeWhole(file, bytes) {
  const handle = await fs.promises.open(file, 'wx');
  try {
    await handle.writeFile(bytes);
  } finally {
    await handle.close();
  }
}

server.store.putObject = async function putObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  const md5Path = this.getResourcePath(object.bucket, object.key, 'object.md5');
  const metadataPath = this.getResourcePath(object.bucket, object.key, 'metadata.json');
  const content = Buffer.isBuffer(object.content) ? object.content : await new Promise((resolve, reject) => {
    const chunks = [];
    object.content.on('data', chunk => chunks.push(chunk)).on('error', reject)
      .on('end', () => resolve(Buffer.concat(chunks)));
  });
  const md5 = crypto.createHash('md5').update(content).digest('hex');
  // What s3rver's putMetadata keeps: the allowed headers and the user's x-amz-meta-*.
  const metadata = Object.fromEntries(Object.entries(object.metadata).filter(([name, value]) =>
    value !== undefined && (S3Object.ALLOWED_METADATA.includes(name) || name.startsWith('x-amz-meta-'))));
  const suffix = `${TEMPORARY}${process.pid}-${++writes}`;
  const files = [[objectPath, content], [md5Path, md5], [metadataPath, JSON.stringify(metadata, null, 2)]];
  try {
    await fs.promises.mkdir(dirname(objectPath), { recursive: true });
    for (const [file, bytes] of files) await writeWhole(file + suffix, bytes);
  } catch (err) {
    await Promise.all(files.map(([file]) => fs.promises.rm(file + suffix, { force: true })));
    throw err;
  }
  // The object last: it is what makes the key exist (listing, getMetadata).
  for (const [file] of [files[1], files[2], files[0]]) await fs.promises.rename(file + suffix, file);
  return { size: content.length, md5 };
};

// Partial files a store killed in the middle of a write left behind: never objects, only space taken.
function removePartials(directory) {
  let entries = [];
  try {
    entries = fs.readdirSync(directory, { withFileTypes: true });
  } catch (err) {
    if (err.code === 'ENOENT') return;
    throw err;
  }
  for (const entry of entries) {
    const file = join(directory, entry.name);
    if (entry.isDirectory()) removePartials(file);
    else if (entry.name.includes(TEMPORARY)) fs.rmSync(file, { force: true });
  }
}
removePartials(option('directory'));

const DISK_FULL = new Set(['ENOSPC', 'EDQUOT']);

function insufficientStorage(ctx, err) {
  // 507 and a code of their own, as S3-compatible stores answer when their disk is full (MinIO:
  // XMinioStorageFull); tansu passes the answer on to the producer as a failed produce.
  ctx.status = 507;
  ctx.type = 'application/xml';
  ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>StorageFull</Code>' +
    `<Message>The store's disk is full (${err.code}): free space to write again</Message></Error>`;
  console.error(`s3rver: ${ctx.method} ${ctx.path} refused: the disk is full (${err.code})`);
}

const queues = new Map(); // object path -> the promise of its last request

// The whole body of a PUT, read before the store is touched: s3rver writes a PUT's body straight into the
// object's file as it arrives, so a writer killed mid-request (the broker, SIGKILLed) left a truncated
// object behind, and the request never ended, holding its object's turn for ever: the restarted broker
// waited on it and answered nothing (found by `make chaos`). An upload that does not arrive whole is
// refused here and the store keeps the object as it was, as S3 does.
function wholeBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let ended = false;
    req.on('data', chunk => chunks.push(chunk));
    req.on('end', () => { ended = true; resolve(Buffer.concat(chunks)); });
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('the upload was aborted')));
    req.on('close', () => { if (!ended) reject(new Error('the connection closed during the upload')); });
  });
}

async function inTurn(path, work) {
  const previous = queues.get(path) || Promise.resolve();
  let done;
  const mine = new Promise(resolve => { done = resolve; });
  const tail = previous.then(() => mine);
  queues.set(path, tail);
  await previous;
  try {
    return await work();
  } finally {
    done();
    if (queues.get(path) === tail) queues.delete(path);
  }
}

const unquote = etag => (etag || '').replace(/^W\//, '').replace(/"/g, '');

const PRECONDITION_FAILED =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>' +
  '<Message>At least one of the pre-conditions you specified did not hold</Message></Error>';

server.middleware.unshift(async (ctx, next) => {
  const path = decodeURIComponent(ctx.path).replace(/^\/+/, '');
  const slash = path.indexOf('/');
  if (slash < 1 || slash === path.length - 1) return next(); // the service or a bucket: no object
  const bucket = path.slice(0, slash);
  const key = path.slice(slash + 1);
  if (ctx.method === 'PUT' && !ctx.get('x-amz-copy-source')) {
    let body;
    try {
      body = await wholeBody(ctx.req);
    } catch (err) {
      ctx.status = 400;
      ctx.type = 'application/xml';
      ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>IncompleteBody</Code>' +
        `<Message>${err.message}</Message></Error>`;
      return undefined;
    }
    const expected = ctx.get('content-length');
    if (expected !== '' && Number(expected) !== body.length) {
      ctx.status = 400;
      ctx.type = 'application/xml';
      ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>IncompleteBody</Code>' +
        '<Message>You did not provide the number of bytes specified by the Content-Length header</Message></Error>';
      return undefined;
    }
    // s3rver reads the body from ctx.req: hand it the bytes already here.
    ctx.req = Object.assign(Readable.from([body], { objectMode: false }), { headers: ctx.req.headers, method: ctx.req.method,
      url: ctx.req.url });
  }
  return inTurn(path, async () => {
    try {
      return await answer();
    } catch (err) {
      if (!DISK_FULL.has(err.code)) throw err;
      insufficientStorage(ctx, err);
      return undefined;
    }
  });

  async function answer() {
    const noneMatch = ctx.get('if-none-match');
    const match = ctx.get('if-match');
    if (ctx.method === 'PUT' && (noneMatch || match)) {
      let etag = null;
      try {
        etag = (await server.store.getMetadata(bucket, key)).etag;
      } catch (err) {
        if (err.code !== 'ENOENT') throw err;
      }
      const failed = (noneMatch === '*' && etag !== null) ||
        (noneMatch && noneMatch !== '*' && etag !== null && unquote(noneMatch) === unquote(etag)) ||
        (match && (etag === null || (match !== '*' && unquote(match) !== unquote(etag))));
      if (failed) {
        ctx.status = 412;
        ctx.type = 'application/xml';
        ctx.body = PRECONDITION_FAILED;
        return undefined;
      }
    }
    return next();
  }
});

server.run((err, { address, port } = {}) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
  console.log(`s3rver (conditional writes) listening on ${address}:${port}`);
});
