// One call of the npm openai SDK against Ramparts; the scenario comes as JSON in argv[2],
// the outcome is printed as one JSON line: {"ok": true, "text": ...} or
// {"ok": false, "name": ..., "status": ..., "code": ..., "partial": ...}.
import OpenAI from "openai";

const s = JSON.parse(process.argv[2]);
const client = new OpenAI({
  baseURL: s.base_url,
  apiKey: s.api_key,
  defaultHeaders: { "X-Tenant-ID": s.tenant },
  maxRetries: s.max_retries ?? 0,
  timeout: (s.timeout_s ?? 20) * 1000,
});
const messages = [{ role: "user", content: s.text }];
let partial = "";
try {
  if (s.kind === "embed") {
    const r = await client.embeddings.create({ model: "text-embedding-3-small", input: [s.text] });
    console.log(JSON.stringify({ ok: true, text: String(r.data.length), usage: r.usage }));
  } else if (s.stream) {
    const stream = await client.chat.completions.create({ model: s.model ?? "gpt-4o-mini", messages, stream: true });
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      for (const c of chunk.choices) partial += c.delta?.content ?? "";
    }
    console.log(JSON.stringify({ ok: true, text: partial, chunks }));
  } else {
    const r = await client.chat.completions.create({ model: s.model ?? "gpt-4o-mini", messages });
    console.log(JSON.stringify({ ok: true, text: r.choices[0].message.content, usage: r.usage }));
  }
} catch (e) {
  console.log(JSON.stringify({
    ok: false,
    name: e?.constructor?.name ?? typeof e,
    status: e?.status ?? null,
    code: e?.code ?? e?.error?.code ?? null,
    message: String(e?.message ?? e).slice(0, 300),
    partial,
  }));
}
