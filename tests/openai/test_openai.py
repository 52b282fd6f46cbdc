"""The real `openai` Python client (PyPI, pinned in requirements.txt) against the real
`vellum serve` binary over TLS, with the default embedded models.

Set-up, all through the `vellum` CLI before the server starts: two matters, each with a real
CUAD contract (PDF); alice (attorney on matter-1234), carol (attorney on matter-9999) and pete
(paralegal on a matter with no documents, so he may neither ask nor search anything); an API
key each. Policies: policies/law-firm plus one rule that lets attorneys chat with the plain
generation model (docs/openai-api.md).

Checks: models list what each caller may use and nothing else; a non-streamed chat completion
over matter-1234 and a streamed follow-up (with the first exchange as its earlier turn) carry
their sources as `annotations` (url_citation) and in
`vellum_sources`, in the first and the last chunk when streamed; embeddings of the 11 reference
texts in $VELLUM_SHARED_DIR/reference/minilm-embeddings.json (sentence-transformers'
all-MiniLM-L6-v2) have cosine >= 0.999 with the reference, both as the client's default
base64 and as floats; a wrong key raises AuthenticationError (401), a collection one may not
ask about NotFoundError (404), embeddings without any search permission
PermissionDeniedError (403); the audit log then holds alice's answers as `ask` records with
the chunks the model read, the follow-up's receipt with its earlier turn.

usage: python tests/openai/test_openai.py VELLUM_BINARY   (deploy/test.sh runs it)
"""

import json
import math
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import openai

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("VELLUM_SHARED_DIR", REPO.parent / "shared"))
CUAD = SHARED / "corpora" / "legal-cuad-contracts" / "pdf"
CONTRACTS = {
    "matter-1234": CUAD / "ACCELERATEDTECHNOLOGIESHOLDINGCORP_04_24_2003-EX-10.13-JOINT VENTURE AGREEMENT.PDF",
    "matter-9999": CUAD / "ANIXABIOSCIENCESINC_06_09_2020-EX-10.1-COLLABORATION AGREEMENT.PDF",
}
PLAIN_CHAT_POLICY = """
@id("attorneys-may-chat-without-documents")
permit (
    principal in Vellum::Role::"attorney",
    action == Vellum::Action::"ask",
    resource == Vellum::Collection::"vellum:model"
);
"""
QUESTION = "Who are the parties to the joint venture agreement?"
FOLLOW_UP = "What does each of them contribute?"


def log(message):
    print(f"openai-test: {message}", flush=True)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def vellum(binary, data, *args, stdin=None):
    result = subprocess.run(
        [binary, "--data-dir", str(data), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"vellum {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def setup(binary, work):
    data = work / "data"
    data.mkdir(mode=0o700)
    for collection, contract in CONTRACTS.items():
        vellum(binary, data, "ingest", str(contract), "--collection", collection)
    users = {
        "alice": (["attorney"], ["matter-1234"]),
        "carol": (["attorney"], ["matter-9999"]),
        "pete": (["paralegal"], ["matter-5555"]),
    }
    keys = {}
    for name, (roles, groups) in users.items():
        args = ["user", "add", name, "--password-stdin"]
        for role in roles:
            args += ["--role", role]
        for group in groups:
            args += ["--group", group]
        vellum(binary, data, *args, stdin=f"{name}'s long password\n")
        created = json.loads(vellum(binary, data, "--json", "key", "create", name, "--name", "openai-test"))
        keys[name] = created["key"]
    policies = work / "policies"
    shutil.copytree(REPO / "policies" / "law-firm", policies)
    (policies / "plain-chat.cedar").write_text(PLAIN_CHAT_POLICY)
    return data, policies, keys


class Server:
    """`vellum serve` on a free loopback port; stopped (SIGTERM) on exit."""

    def __init__(self, binary, data, policies):
        env = dict(os.environ, VELLUM_ADMIN_PASSWORD="admin password for the openai test")
        self.process = subprocess.Popen(
            [binary, "--data-dir", str(data), "serve", "--listen", "127.0.0.1:0",
             "--workers", "2", "--policies", str(policies)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.output = []
        self.address = None
        ready = threading.Event()

        def read():
            for line in self.process.stdout:
                self.output.append(line)
                if line.startswith("listening on https://"):
                    self.address = line.strip().removeprefix("listening on https://")
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(180) or self.address is None:
            self.stop()
            raise RuntimeError("vellum serve did not start:\n" + "".join(self.output))

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def client(base_url, cert, key):
    # Trust only the server's own (self-signed) certificate; it names localhost.
    context = ssl.create_default_context(cafile=str(cert))
    return openai.OpenAI(
        base_url=base_url,
        api_key=key,
        max_retries=0,
        timeout=600,
        http_client=openai.DefaultHttpxClient(verify=context),
    )


def extra(model, name):
    """A field the openai client does not know (pydantic keeps it in model_extra)."""
    value = getattr(model, name, None)
    if value is None and model.model_extra:
        value = model.model_extra.get(name)
    return value


def field(item, name):
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def check_sources(sources, where, cited_known):
    check(isinstance(sources, list) and sources, f"{where}: no vellum_sources: {sources!r}")
    for source in sources:
        for name in ("n", "document_id", "title", "page", "chunk_id", "quote", "url"):
            check(name in source, f"{where}: source without {name}: {source}")
        check(source["url"].startswith("https://localhost:"), f"{where}: url {source['url']}")
        check("#/document/" in source["url"] and "page=" in source["url"], source["url"])
        check(source["quote"].strip(), f"{where}: empty quote")
        if cited_known:
            check(isinstance(source.get("cited"), bool), f"{where}: cited missing: {source}")


def check_annotations(annotations, content, where, sources):
    check(isinstance(annotations, list) and annotations, f"{where}: no annotations")
    numbers = set()
    for annotation in annotations:
        check(field(annotation, "type") == "url_citation", f"{where}: {annotation}")
        citation = field(annotation, "url_citation")
        url, title = field(citation, "url"), field(citation, "title")
        start, end = field(citation, "start_index"), field(citation, "end_index")
        check(url.startswith("https://localhost:") and "#/document/" in url, url)
        check(title, f"{where}: annotation without title")
        if content is not None and end > start:
            marker = content[start:end]
            check(marker.startswith("[") and marker.endswith("]"), f"{where}: span {marker!r}")
        numbers.add(url)
    check(len(numbers) == len({s["url"] for s in sources}),
          f"{where}: annotations cover {len(numbers)} of {len(sources)} sources")


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def run(binary):
    work = Path(tempfile.mkdtemp(prefix="vellum-openai-"))
    try:
        started = time.time()
        data, policies, keys = setup(binary, work)
        log(f"ingested 2 CUAD contracts, 3 users with keys in {time.time() - started:.0f} s")
        server = Server(binary, data, policies)
        try:
            port = server.address.rsplit(":", 1)[1]
            base_url = f"https://localhost:{port}/openai/v1"
            cert = data / "tls" / "cert.pem"
            alice = client(base_url, cert, keys["alice"])
            carol = client(base_url, cert, keys["carol"])
            pete = client(base_url, cert, keys["pete"])
            tests(alice, carol, pete, client(base_url, cert, "vk_wrong-key"))
        finally:
            server.stop()
        audit(binary, data)
        log(f"all checks passed in {time.time() - started:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def tests(alice, carol, pete, stranger):
    # Models: each caller sees what it may use.
    alice_models = [model.id for model in alice.models.list()]
    log(f"alice's models: {alice_models}")
    check("vellum:matter-1234" in alice_models, alice_models)
    check("vellum:all" in alice_models and "vellum-embed" in alice_models, alice_models)
    check("vellum:matter-9999" not in alice_models, "alice sees carol's matter")
    plain = [m for m in alice_models if not m.startswith("vellum")]
    check(len(plain) == 1, f"alice should see the plain model: {alice_models}")
    carol_models = [model.id for model in carol.models.list()]
    check("vellum:matter-9999" in carol_models and "vellum:matter-1234" not in carol_models,
          carol_models)
    pete_models = [model.id for model in pete.models.list()]
    check(pete_models == ["vellum:all"], f"pete: {pete_models}")
    check(alice.models.retrieve("vellum:matter-1234").owned_by == "vellum", "retrieve")

    # A grounded answer, not streamed.
    started = time.time()
    completion = alice.chat.completions.create(
        model="vellum:matter-1234",
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=48,
    )
    message = completion.choices[0].message
    log(f"non-streamed answer in {time.time() - started:.1f} s "
        f"({completion.usage.prompt_tokens} prompt + {completion.usage.completion_tokens} "
        f"completion tokens, finish {completion.choices[0].finish_reason}): {message.content!r}")
    check(message.content, "empty answer")
    sources = extra(message, "vellum_sources")
    check_sources(sources, "non-streamed", cited_known=True)
    check_annotations(message.annotations, message.content, "non-streamed", sources)
    check(all(s["document_id"] == sources[0]["document_id"] for s in sources),
          "sources from more than the one contract of matter-1234")
    check(completion.usage.completion_tokens <= 48, "max_tokens not honoured")
    log(f"  {len(sources)} sources, {len(message.annotations)} annotations; first: "
        f"{message.annotations[0].url_citation.title} -> {message.annotations[0].url_citation.url}")

    # Streamed, with usage: a follow-up, the first answer going with it as the earlier turn.
    started = time.time()
    stream = alice.chat.completions.create(
        model="vellum:matter-1234",
        messages=[
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": message.content},
            {"role": "user", "content": FOLLOW_UP},
        ],
        max_tokens=32,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = "".join(
        chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices
    )
    with_choices = [chunk for chunk in chunks if chunk.choices]
    first, last = with_choices[0].choices[0], with_choices[-1].choices[0]
    log(f"streamed answer: {len(chunks)} chunks in {time.time() - started:.1f} s: {content!r}")
    check(content, "empty streamed answer")
    check(first.delta.role == "assistant", "first chunk without role")
    check_sources(extra(first.delta, "vellum_sources"), "first chunk", cited_known=False)
    check_annotations(extra(first.delta, "annotations"), None, "first chunk",
                      extra(first.delta, "vellum_sources"))
    check(last.finish_reason in ("stop", "length"), f"finish {last.finish_reason}")
    last_sources = extra(last.delta, "vellum_sources")
    check_sources(last_sources, "last chunk", cited_known=True)
    check_annotations(extra(last.delta, "annotations"), content, "last chunk", last_sources)
    check(chunks[-1].usage and chunks[-1].usage.completion_tokens > 0, "no usage chunk")

    # The plain model (no documents) for an attorney, whom the added rule permits.
    plain_answer = alice.chat.completions.create(
        model=plain[0],
        messages=[
            # The conversation of the reference continuation in
            # $VELLUM_SHARED_DIR/reference/smollm2-greedy.json ("The capital of France is Paris.").
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        max_tokens=12,
        temperature=0,
    )
    log(f"plain model {plain[0]}: {plain_answer.choices[0].message.content!r}")
    check("Paris" in plain_answer.choices[0].message.content, "the system message was lost")
    check(extra(plain_answer.choices[0].message, "vellum_sources") is None, "plain has sources")

    # Embeddings against the reference vectors (sentence-transformers all-MiniLM-L6-v2).
    reference = json.loads((SHARED / "reference" / "minilm-embeddings.json").read_text())
    texts = [item["text"] for item in reference["items"]]
    for encoding in ("base64 (the client's default)", "float"):
        kwargs = {} if encoding.startswith("base64") else {"encoding_format": "float"}
        response = alice.embeddings.create(model="vellum-embed", input=texts, **kwargs)
        check(len(response.data) == len(texts), "one vector per text")
        cosines = [cosine(row.embedding, item["embedding"])
                   for row, item in zip(response.data, reference["items"])]
        log(f"embeddings ({encoding}): {len(texts)} texts, {len(response.data[0].embedding)} "
            f"dimensions, {response.usage.prompt_tokens} tokens, cosine with the reference "
            f"min {min(cosines):.7f}")
        check(min(cosines) >= 0.999, f"cosines {cosines}")
    single = alice.embeddings.create(model="vellum-embed", input=texts[0], encoding_format="float")
    check(cosine(single.data[0].embedding, reference["items"][0]["embedding"]) >= 0.999, "single")

    # Errors a client can show.
    try:
        stranger.models.list()
        raise AssertionError("a wrong key was accepted")
    except openai.AuthenticationError as err:
        check(err.status_code == 401 and "API key" in err.message, err.message)
        log(f"wrong key: {err.status_code} {err.body}")
    try:
        alice.chat.completions.create(
            model="vellum:matter-9999",
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=8,
        )
        raise AssertionError("alice asked about carol's matter")
    except openai.NotFoundError as err:
        check("vellum:matter-9999" in err.message and "access" in err.message, err.message)
        log(f"forbidden collection: {err.status_code} {err.body}")
    try:
        pete.embeddings.create(model="vellum-embed", input="indemnification")
        raise AssertionError("pete embedded without any search permission")
    except openai.PermissionDeniedError as err:
        log(f"embeddings without search permission: {err.status_code} {err.body}")
    try:
        alice.chat.completions.create(
            model="vellum:matter-1234",
            messages=[{"role": "user", "content": QUESTION}],
            n=2,
        )
        raise AssertionError("n=2 was accepted")
    except openai.BadRequestError as err:
        check(err.body.get("param") == "n", err.body)
        log(f"n=2: {err.status_code} {err.body}")


def audit(binary, data):
    """The answers are recorded like /v1/ask: `ask` with the chunks given to the model."""
    exported = json.loads(vellum(binary, data, "--json", "audit", "export", "--principal", "alice"))
    records = exported if isinstance(exported, list) else exported.get("records", [])
    actions = [record.get("action") for record in records]
    asks = [r for r in records if r.get("action") == "ask" and r.get("reads")]
    check(len(asks) >= 2, f"ask records with reads: {len(asks)} of {actions}")
    check(actions.count("ask.answer") >= 2, actions)
    follow_ups = [r for r in asks if (r.get("receipt") or {}).get("history")]
    check(follow_ups and follow_ups[0]["receipt"]["history"][0]["question"] == QUESTION,
          "the follow-up's earlier turn is not in its receipt")
    for action in ("model.list", "embed", "chat", "chat.answer"):
        check(action in actions, f"no {action} record: {actions}")
    log(f"audit: {len(asks)} ask records with {sum(len(r['reads']) for r in asks)} chunk reads, "
        f"{actions.count('embed')} embed, {actions.count('model.list')} model.list records for alice")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    run(sys.argv[1])
