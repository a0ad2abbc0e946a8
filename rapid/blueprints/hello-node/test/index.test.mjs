// Run with: node --test
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { handler } from "../src/index.mjs";

test("hello", async () => {
  const event = JSON.parse(readFileSync(new URL("../events/event.json", import.meta.url)));
  assert.deepEqual(await handler(event, { awsRequestId: "test" }), { message: "Hello, rapid!" });
});
