// openai-node and LangChain JS, on their defaults, against a headend:
//   node node_clients.mjs BASE_URL API_KEY MODEL openai|langchain chat|responses
// One answer, then one streamed answer; prints both texts as JSON.
import { ChatOpenAI } from "@langchain/openai";
import OpenAI from "openai";

const [baseURL, apiKey, model, client, api] = process.argv.slice(2);
const question = [{ role: "user", content: "Hi" }];

async function openai() {
  const sdk = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
  if (api === "responses") {
    const answer = await sdk.responses.create({ model, input: "Hi" });
    let streamed = "";
    for await (const event of await sdk.responses.create({ model, input: "Hi", stream: true })) {
      if (event.type === "response.output_text.delta") streamed += event.delta;
    }
    return { answer: answer.output_text, streamed };
  }
  const answer = await sdk.chat.completions.create({ model, messages: question });
  let streamed = "";
  const stream = await sdk.chat.completions.create({ model, messages: question, stream: true });
  for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? "";
  return { answer: answer.choices[0].message.content, streamed };
}

async function langchain() {
  const chat = new ChatOpenAI({
    model,
    apiKey,
    configuration: { baseURL },
    useResponsesApi: api === "responses",
    maxRetries: 0,
  });
  const answer = await chat.invoke("Hi");
  let streamed = "";
  for await (const chunk of await chat.stream("Hi")) streamed += chunk.text;
  return { answer: answer.text, streamed };
}

console.log(JSON.stringify(await (client === "openai" ? openai() : langchain())));
