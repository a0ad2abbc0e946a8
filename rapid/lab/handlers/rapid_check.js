// rapid check's test handler for Node runtimes (handler string "rapid_check.handler").
//
// The event says what to do (the protocol is in rapid's README, "For runtime authors"):
//   {"op": "echo", ...}             return the event unchanged
//   {"op": "fail", "message": M}    throw an Error with message M
//   {"op": "sleep", "ms": N}        wait N ms, return {"slept_ms": N}
//   {"op": "log", "lines": [...]}   console.log each line, return {"logged": count}
//   {"op": "context"}               what the context object says (request id, ARN, remaining
//                                   time, client context, identity) and _X_AMZN_TRACE_ID
//   {"op": "env"}                   the handler's environment and working directory
// It works under the bundled Node runtime and under aws-lambda-ric alike (CommonJS, two
// parameters: aws-lambda-ric 4 refuses callback-style handlers).
//
// Where the runtime offers response streaming (aws-lambda-ric's awslambda.streamifyResponse),
// "rapid_check.stream" is a streaming handler: it writes two parts with a pause between
// them, or, for {"op": "stream", "fail": true}, fails after the first.
'use strict';

exports.handler = async (event, context) => {
  const op = event && event.op;
  if (op === 'echo') return event;
  if (op === 'fail') throw new Error(event.message || 'rapid check: deliberate failure');
  if (op === 'sleep') {
    await new Promise((resolve) => setTimeout(resolve, event.ms));
    return { slept_ms: event.ms };
  }
  if (op === 'log') {
    for (const line of event.lines) console.log(line);
    return { logged: event.lines.length };
  }
  if (op === 'context') {
    return {
      request_id: context.awsRequestId,
      function_arn: context.invokedFunctionArn,
      remaining_ms: context.getRemainingTimeInMillis(),
      client_context: context.clientContext ?? null,
      identity: context.identity ?? null,
      trace_id: process.env._X_AMZN_TRACE_ID ?? null,
    };
  }
  if (op === 'env') return { env: { ...process.env }, cwd: process.cwd(), handler_file: __filename };
  throw new Error(`rapid check: unknown op ${JSON.stringify(op)}`);
};

if (globalThis.awslambda && typeof globalThis.awslambda.streamifyResponse === 'function') {
  exports.stream = globalThis.awslambda.streamifyResponse(async (event, responseStream) => {
    responseStream.setContentType('text/plain');
    responseStream.write('rapid check stream: part 1, ');
    await new Promise((resolve) => setTimeout(resolve, 20));
    if (event && event.fail) throw new Error('rapid check: failure mid-stream');
    responseStream.write('part 2');
    responseStream.end();
  });
}
