// A streaming function: what it writes reaches the client as it is written.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export const handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  const http = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 200,
    headers: { "content-type": "text/plain" },
  });
  for (let i = 1; i <= 3; i++) {
    http.write(`chunk ${i} of 3\n`);
    await sleep(100);
  }
  http.end();
});
