// openai-node on its defaults, against a headend: a background response streamed, left
// after five deltas, resumed with starting_after; then a slow one cancelled.
//   node node_background.mjs BASE_URL API_KEY MODEL
// Prints {text, numbers, last, cancelled} as JSON.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const sdk = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

const seen = [];
const stream = await sdk.responses.create({ model, input: "Count", background: true, stream: true });
for await (const event of stream) {
  seen.push(event);
  if (seen.filter((e) => e.type === "response.output_text.delta").length === 5) break;
}
const id = seen[0].response.id;
const after = seen[seen.length - 1].sequence_number;
const resumed = await sdk.responses.retrieve(id, { stream: true, starting_after: after });
for await (const event of resumed) seen.push(event);

const slow = await sdk.responses.create({ model, input: "Count slowly", background: true });
let now = slow;
while (!(now.output_text ?? "")) {
  await new Promise((resolve) => setTimeout(resolve, 50));
  now = await sdk.responses.retrieve(slow.id);
}
const cancelled = await sdk.responses.cancel(slow.id);

console.log(
  JSON.stringify({
    text: seen.filter((e) => e.type === "response.output_text.delta").map((e) => e.delta).join(""),
    numbers: seen.map((e) => e.sequence_number),
    last: seen[seen.length - 1].type,
    cancelled: cancelled.status,
  }),
);
