// A Lambda function in Node.js: the event in, a JSON answer out.
export const handler = async (event, context) => {
  const name = (event && event.name) || "world";
  console.log(JSON.stringify({ level: "info", greeted: name, request: context.awsRequestId }));
  return { message: `Hello, ${name}!` };
};
