// Run with: node --test (awslambda is the runtime's; this test gives a small stand-in)
import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";

test("streams three chunks", async () => {
  const written = [];
  globalThis.awslambda = {
    streamifyResponse: (fn) => fn,
    HttpResponseStream: { from: (stream, prelude) => { written.push(JSON.stringify(prelude)); return stream; } },
  };
  const { handler } = await import("../src/index.mjs");
  const stream = new Writable({ write(chunk, _enc, cb) { written.push(chunk.toString()); cb(); } });
  await handler({}, stream, {});
  assert.deepEqual(written.slice(1), ["chunk 1 of 3\n", "chunk 2 of 3\n", "chunk 3 of 3\n"]);
});
