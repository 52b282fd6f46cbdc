// A scripted stand-in for an OpenAI-compatible inference engine (POST /v1/chat/completions,
// streamed), for the browser test of citations: SmolLM2-135M, the default model, rarely writes
// `[n]` markers, so the UI path "click a citation in the answer" needs an answer that has them.
// It answers from the prompt Vellum sends: the source whose text shares the most words with
// the question is quoted and cited; then one sentence cites a source that does not exist and
// one cites nothing, so that invalid and uncited marking show too. Prints its port.

import http from 'node:http';

const STOP = new Set('a an and are as at be by do does for from how in is it of on or the to was what when where which who why with'.split(' '));
const words = (t) => (t.toLowerCase().match(/[\p{L}\p{N}]+/gu) || []).filter((w) => !STOP.has(w));

function answerFor(messages) {
  const user = [...messages].reverse().find((m) => m.role === 'user');
  const content = user ? String(user.content) : '';
  const question = (content.split('\nQuestion: ').pop() || '').trim();
  const sources = [...content.matchAll(/<source id="(\d+)"[^>]*>\n([\s\S]*?)\n<\/source>/g)]
    .map((m) => ({ n: Number(m[1]), text: m[2] }));
  if (!sources.length) return 'I found no sources to answer from.';
  const q = new Set(words(question));
  let best = sources[0];
  let bestScore = -1;
  for (const s of sources) {
    const score = words(s.text).filter((w) => q.has(w)).length;
    if (score > bestScore) { best = s; bestScore = score; }
  }
  const quote = best.text.replace(/\s+/g, ' ').trim().split(' ').slice(0, 24).join(' ').replace(/[.;,:]+$/, '');
  return `The agreement says: "${quote}" [${best.n}]. The parties also keep separate books [${sources.length + 5}]. This sentence cites nothing.`;
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url.endsWith('/chat/completions')) {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      let request;
      try { request = JSON.parse(body); } catch { res.writeHead(400).end(); return; }
      const text = answerFor(request.messages || []);
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      const pieces = text.match(/\S+\s*/g) || [];
      for (const piece of pieces) {
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: piece }, finish_reason: null }] })}\n\n`);
      }
      res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: { prompt_tokens: 100, completion_tokens: pieces.length } })}\n\n`);
      res.end('data: [DONE]\n\n');
    });
    return;
  }
  if (req.method === 'GET' && req.url.endsWith('/models')) {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ object: 'list', data: [{ id: 'scripted', object: 'model' }] }));
    return;
  }
  res.writeHead(404).end();
});
server.listen(0, '127.0.0.1', () => console.log(`scripted engine on ${server.address().port}`));
