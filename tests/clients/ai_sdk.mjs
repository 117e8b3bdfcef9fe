// The Vercel AI SDK's OpenAI provider, on its defaults, against a headend:
//   node ai_sdk.mjs BASE_URL API_KEY MODEL chat|responses generate|stream
// Two turns of one conversation (the second sends back the messages the SDK built from the
// first, as an app does), the first with a tool the SDK runs itself. Prints the texts as JSON.
// With REQUEST_LOG set, each request body the SDK sends is appended to that file (JSON lines).
import { appendFileSync } from "node:fs";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";

const [baseURL, apiKey, model, api, mode] = process.argv.slice(2);
const log = process.env.REQUEST_LOG;
const recording = async (url, init) => {
  if (log && init?.body) appendFileSync(log, `${init.body}\n`);
  return fetch(url, init);
};
const provider = createOpenAI({ baseURL, apiKey, fetch: log ? recording : undefined });
const languageModel = api === "chat" ? provider.chat(model) : provider.responses(model);

const tools = {
  weather: tool({
    description: "The weather in a city",
    inputSchema: jsonSchema({
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
    }),
    execute: async ({ city }) => `sunny in ${city}`,
  }),
};

async function turn(messages) {
  const options = { model: languageModel, messages, tools, stopWhen: stepCountIs(3) };
  if (mode === "stream") {
    const result = streamText(options);
    let streamed = "";
    for await (const delta of result.textStream) streamed += delta;
    return { text: streamed, messages: (await result.response).messages };
  }
  const result = await generateText(options);
  return { text: result.text, messages: result.response.messages };
}

const messages = [{ role: "user", content: "What is the weather in Oslo?" }];
const first = await turn(messages);
messages.push(...first.messages, { role: "user", content: "And tomorrow?" });
const second = await turn(messages);
console.log(JSON.stringify({ first: first.text, second: second.text }));
