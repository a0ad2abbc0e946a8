// Validate KEDA resources (JSON documents, one per line on stdin) against the KEDA CRD
// schemas that @kubernetes-models/keda (npm) is generated from. Prints "ok" or the errors.
import { ScaledObject, TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import { readFileSync } from "node:fs";

const kinds = { ScaledObject, TriggerAuthentication };
let failed = false;
for (const line of readFileSync(0, "utf8").split("\n").filter(Boolean)) {
  const doc = JSON.parse(line);
  const Kind = kinds[doc.kind];
  try {
    if (!Kind) throw new Error(`no schema for kind ${doc.kind}`);
    new Kind(doc).validate();
  } catch (e) {
    failed = true;
    console.log(`${doc.kind}/${doc.metadata && doc.metadata.name}: ${e.message}`);
  }
}
console.log(failed ? "invalid" : "ok");
process.exit(failed ? 1 : 0);
