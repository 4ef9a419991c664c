/**
 * Contract: every route the library calls (src/routes.ts, the one list the client uses)
 * exists in the server's OpenAPI document, with every body field the library sends among
 * the request schema's properties and every answer field it reads among the answer's.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { CLAIMED_JOB_FIELDS, ROUTES, type Route } from "../src/routes.js";
import { withServer } from "./harness.js";

/** A JSON Schema node of the document. */
type Schema = Record<string, unknown>;

/** The properties a schema allows, following `$ref`, `allOf`, `oneOf` and `anyOf`. */
function properties(doc: Schema, schema: unknown, seen = new Set<string>()): Map<string, Schema> {
  const out = new Map<string, Schema>();
  if (schema === null || typeof schema !== "object") return out;
  const node = schema as Schema;
  const ref = node.$ref;
  if (typeof ref === "string") {
    if (seen.has(ref)) return out;
    seen.add(ref);
    const name = ref.replace("#/components/schemas/", "");
    return properties(doc, ((doc.components as Schema).schemas as Schema)[name], seen);
  }
  for (const [key, value] of Object.entries((node.properties as Schema | undefined) ?? {})) out.set(key, value as Schema);
  for (const combinator of ["allOf", "oneOf", "anyOf"]) {
    for (const part of (node[combinator] as unknown[] | undefined) ?? []) {
      for (const [key, value] of properties(doc, part, seen)) if (!out.has(key)) out.set(key, value);
    }
  }
  return out;
}

test("every route, body field and answer field the library uses is in /v1/openapi.json", async () => {
  await withServer(async (server) => {
    const response = await fetch(`${server.url}/v1/openapi.json`);
    assert.equal(response.status, 200);
    const doc = (await response.json()) as Schema;
    const paths = doc.paths as Record<string, Record<string, Schema>>;
    const problems: string[] = [];
    for (const [name, route] of Object.entries(ROUTES) as [string, Route][]) {
      const operation = paths[route.path]?.[route.method.toLowerCase()];
      if (operation === undefined) {
        problems.push(`${name}: ${route.method} ${route.path} is not in the document`);
        continue;
      }
      const requestSchema = ((operation.requestBody as Schema | undefined)?.content as Schema | undefined)?.["application/json"];
      const sent = properties(doc, (requestSchema as Schema | undefined)?.schema);
      for (const field of route.sends) {
        if (!sent.has(field)) problems.push(`${name}: sends \`${field}\`, not a property of the request body`);
      }
      const ok = (operation.responses as Record<string, Schema>)["200"] ?? (operation.responses as Record<string, Schema>)["201"];
      const answerSchema = ((ok?.content as Schema | undefined)?.["application/json"] as Schema | undefined)?.schema;
      const read = properties(doc, answerSchema);
      for (const field of route.reads) {
        if (!read.has(field)) problems.push(`${name}: reads \`${field}\`, not a property of the answer`);
      }
      const params = new Set(((operation.parameters as Schema[] | undefined) ?? []).map((p) => p.name as string));
      for (const key of route.query ?? []) {
        if (!params.has(key)) problems.push(`${name}: query parameter \`${key}\` is not in the document`);
      }
      for (const match of route.path.matchAll(/\{(\w+)\}/g)) {
        if (!params.has(match[1]!)) problems.push(`${name}: path parameter \`${match[1]}\` is not in the document`);
      }
    }
    // The claimed jobs the worker reads.
    const claimed = properties(doc, { $ref: "#/components/schemas/ClaimedJobView" });
    for (const field of CLAIMED_JOB_FIELDS) {
      if (!claimed.has(field)) problems.push(`claim: a claimed job has no \`${field}\``);
    }
    // Batch entries carry the same fields as one enqueue.
    const batchJob = properties(doc, { $ref: "#/components/schemas/EnqueueRequest" });
    for (const field of ROUTES.enqueue.sends) {
      if (!batchJob.has(field)) problems.push(`enqueueBatch: jobs[i] has no \`${field}\``);
    }
    assert.deepEqual(problems, []);
  });
});

test("the contract check itself catches a route or field the server does not have", async () => {
  // Guards the check above against passing vacuously: a made-up field must be reported.
  const doc: Schema = {
    components: { schemas: { A: { allOf: [{ properties: { x: {} } }, { oneOf: [{ type: "null" }, { properties: { y: {} } }] }] } } },
  };
  const found = properties(doc, { $ref: "#/components/schemas/A" });
  assert.deepEqual([...found.keys()].sort(), ["x", "y"]);
  assert.equal(found.has("made_up"), false);
});
