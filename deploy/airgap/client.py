#!/usr/bin/env python3
"""The HTTPS client of deploy/airgap-test.sh: one API step per call, Python's standard library
only, trusting only the server's own certificate.

usage: client.py STATE_DIR COMMAND ARGS...

STATE_DIR holds `base_url` (https://127.0.0.1:PORT), `cacert` (path of the server's
certificate), the passwords (`password-NAME`, written by the test, never printed), the session
tokens this client makes (`token-NAME`) and the ids of uploaded documents (`doc-LABEL`). Every
command prints a few lines of what it saw and exits 1 with the HTTP status and the server's
error code when a check fails. Tokens and passwords are never printed.
"""
from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
import uuid

STATE = ""


def state_path(name: str) -> str:
    return os.path.join(STATE, name)


def read_state(name: str) -> str:
    with open(state_path(name), encoding="utf-8") as handle:
        return handle.read().strip()


def write_state(name: str, value: str) -> None:
    path = state_path(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)


class Failed(Exception):
    pass


def context() -> ssl.SSLContext:
    # With a cafile, the system's CAs are not loaded: only the server's certificate is trusted.
    return ssl.create_default_context(cafile=read_state("cacert"))


def request(method: str, path: str, user: str | None = None, body=None, headers=None,
            timeout: float = 120, raw: bool = False):
    """(status, parsed JSON or the response object when raw)."""
    url = read_state("base_url") + path
    headers = dict(headers or {})
    data = None
    if body is not None and not isinstance(body, bytes):
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    elif body is not None:
        data = body
    if user:
        headers["authorization"] = "Bearer " + read_state(f"token-{user}")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        response = urllib.request.urlopen(req, context=context(), timeout=timeout)
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, {"code": "?", "message": text[:200]}
    if raw:
        return response.status, response
    text = response.read().decode("utf-8", "replace")
    return response.status, (json.loads(text) if text.strip() else None)


def expect(status: int, body, wanted, what: str):
    wanted = (wanted,) if isinstance(wanted, int) else wanted
    if status not in wanted:
        code = body.get("code") if isinstance(body, dict) else None
        message = body.get("message") if isinstance(body, dict) else None
        raise Failed(f"{what}: HTTP {status} (wanted {'/'.join(map(str, wanted))}) code={code} message={message}")


def cmd_ready(timeout: str = "120"):
    deadline = time.monotonic() + float(timeout)
    last = None
    while time.monotonic() < deadline:
        try:
            status, body = request("GET", "/v1/ready", timeout=5)
            if status == 200:
                print(f"GET /v1/ready: 200 {json.dumps(body)[:200]}")
                return
            last = f"HTTP {status} {json.dumps(body)[:200]}"
        except (OSError, urllib.error.URLError) as error:
            last = repr(error)
        time.sleep(0.5)
    raise Failed(f"not ready after {timeout} s: {last}")


def cmd_login(user: str):
    status, body = request("POST", "/v1/login", body={"user": user, "password": read_state(f"password-{user}")})
    expect(status, body, 200, f"login {user}")
    write_state(f"token-{user}", body["token"])
    status, me = request("GET", "/v1/me", user=user)
    expect(status, me, 200, "GET /v1/me")
    print(f"login {user}: 200, roles {body['user']['roles']}; /v1/me: {json.dumps(me, sort_keys=True)[:200]}")


def cmd_add_user(admin: str, name: str, role: str):
    status, body = request("POST", "/v1/users", user=admin, body={
        "name": name, "password": read_state(f"password-{name}"), "roles": [role], "groups": []})
    expect(status, body, 201, f"POST /v1/users {name}")
    status, users = request("GET", "/v1/users", user=admin)
    expect(status, users, 200, "GET /v1/users")
    names = sorted(u.get("name") for u in users)
    if name not in names:
        raise Failed(f"{name} not in GET /v1/users: {names}")
    print(f"POST /v1/users {name} (role {role}) by {admin}: 201; accounts now {names}")


def cmd_change_password(user: str):
    """The user's first sign-in: a password set by an administrator must be changed."""
    status, body = request("GET", "/v1/documents", user=user)
    before = f"GET /v1/documents before the change: HTTP {status} {body.get('code') if isinstance(body, dict) else ''}"
    new = read_state(f"password-{user}-new")
    status, body = request("PUT", f"/v1/users/{user}/password", user=user, body={
        "password": new, "current_password": read_state(f"password-{user}")})
    expect(status, body, 204, f"PUT /v1/users/{user}/password")
    write_state(f"password-{user}", new)
    print(f"{before}; PUT /v1/users/{user}/password: 204 (sessions ended)")
    cmd_login(user)


def cmd_upload(user: str, path: str, collection: str, label: str, want: str = "201"):
    boundary = "vellum-airgap-" + uuid.uuid4().hex
    name = os.path.basename(path)
    with open(path, "rb") as handle:
        content = handle.read()
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    body = (f"--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{quoted}\"\r\n"
            f"content-type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    started = time.monotonic()
    status, response = request("POST", f"/v1/documents?collection={collection}", user=user, body=body,
                               headers={"content-type": f"multipart/form-data; boundary={boundary}"},
                               timeout=600)
    expect(status, response, tuple(int(w) for w in want.split("/")), f"upload {name}")
    document = response["document"]
    write_state(f"doc-{label}", document["id"])
    if document.get("num_chunks", 0) < 1:
        raise Failed(f"upload {name}: indexed with no chunks: {document}")
    print(f"POST /v1/documents {name!r} ({len(content)} bytes): {status} in {time.monotonic() - started:.1f} s; "
          f"format {document['format']}, {document['num_pages']} page(s), {document['num_chunks']} chunk(s)")


def cmd_wait_indexed(admin: str, count: str, timeout: str = "300"):
    deadline = time.monotonic() + float(timeout)
    while True:
        status, body = request("GET", "/v1/status", user=admin)
        expect(status, body, 200, "GET /v1/status")
        done = body["ingests_in_progress"] == 0 and body["ready"] and body["documents"] >= int(count)
        if done or time.monotonic() > deadline:
            break
        time.sleep(1)
    print(f"GET /v1/status: documents {body['documents']}, chunks {body['chunks']}, "
          f"ingests in progress {body['ingests_in_progress']}, ready {body['ready']}")
    if not done:
        raise Failed(f"not indexed after {timeout} s")
    status, docs = request("GET", "/v1/documents", user=admin)
    expect(status, docs, 200, "GET /v1/documents")
    for doc in docs:
        print(f"  {doc['file_name'][:70]!r}: {doc['num_chunks']} chunks, {doc['num_pages']} page(s)")


def cmd_chunks(user: str, label: str, needle: str):
    status, chunks = request("GET", f"/v1/documents/{read_state('doc-' + label)}/chunks", user=user)
    expect(status, chunks, 200, "GET chunks")
    text = " ".join(chunk["text"] for chunk in chunks)
    if needle.lower() not in text.lower():
        raise Failed(f"{needle!r} not in the {len(chunks)} chunk(s) of {label}: {text[:300]!r}")
    at = text.lower().index(needle.lower())
    print(f"GET /v1/documents/{{{label}}}/chunks: {len(chunks)} chunk(s); OCR text has {needle!r}: "
          f"...{text[max(0, at - 60):at + 80]!r}...")


def cmd_search(user: str, query: str, label: str, mode: str = "hybrid"):
    status, body = request("POST", "/v1/search", user=user, body={"query": query, "k": 5, "mode": mode})
    expect(status, body, 200, "POST /v1/search")
    wanted = read_state(f"doc-{label}")
    results = body["results"]
    for rank, hit in enumerate(results[:3], 1):
        print(f"  {rank}. {hit['title'][:60]!r} p.{hit['page']} score {hit['score']:.4f}: {hit['text'][:90]!r}")
    ranks = [rank for rank, hit in enumerate(results, 1) if hit["document_id"] == wanted]
    if not ranks:
        raise Failed(f"search {query!r}: {label} not in the top {len(results)}")
    print(f"POST /v1/search {query!r} ({mode}): {len(results)} hits; {label} at rank {ranks[0]}")


def cmd_ask(user: str, question: str, label: str, max_tokens: str = "96"):
    started = time.monotonic()
    status, response = request("POST", "/v1/ask", user=user, raw=True, timeout=600, body={
        "question": question, "k": 5, "max_tokens": int(max_tokens),
        "document_id": read_state(f"doc-{label}")})
    if status != 200:
        expect(status, response, 200, "POST /v1/ask")
    events = {"token": 0}
    answer = sources = None
    first_token = None
    event = None
    for raw in response:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data = json.loads(line[5:].strip())
            if event == "sources":
                sources = data["sources"]
            elif event == "token":
                events["token"] += 1
                if first_token is None:
                    first_token = time.monotonic() - started
            elif event == "answer":
                answer = data
            elif event == "error":
                raise Failed(f"ask: event error {data}")
    elapsed = time.monotonic() - started
    if sources is None or answer is None:
        raise Failed(f"ask: stream ended without sources/answer (sources={sources is not None}, answer={answer is not None})")
    if not sources:
        raise Failed("ask: no sources")
    receipt = answer.get("receipt") or {}
    model = receipt.get("model") or {}
    print(f"POST /v1/ask: 200 (SSE) in {elapsed:.1f} s, first token after "
          f"{first_token if first_token is None else round(first_token, 1)} s; {len(sources)} sources, "
          f"{events['token']} token events, {answer.get('generated_tokens')} generated tokens, "
          f"{len(answer.get('quotes') or [])} quote(s), cited {answer.get('cited')}")
    print(f"  model: {model.get('file') or model.get('name') or json.dumps(model)[:120]} on {model.get('device', '?')}")
    text = " ".join(answer.get("text", "").split())
    print(f"  answer: {text[:300]!r}")


def cmd_summarize(user: str, label: str, prose: str = "true"):
    started = time.monotonic()
    status, body = request("POST", "/v1/summarize", user=user, timeout=600, body={
        "document_id": read_state(f"doc-{label}"), "prose": prose == "true", "max_tokens": 96})
    expect(status, body, 200, "POST /v1/summarize")
    found = [item for item in body["items"] if item["status"] == "found"]
    if not found:
        raise Failed(f"summarize: nothing found in {label}")
    prose_part = body.get("prose") or {}
    print(f"POST /v1/summarize ({label}, prose {prose}): 200 in {time.monotonic() - started:.1f} s; kind "
          f"{body['kind']}, {len(found)}/{len(body['items'])} items found; prose kept "
          f"{len((prose_part.get('text') or '').strip()) > 0}, dropped {len(prose_part.get('dropped_sentences') or [])} sentence(s)")
    for item in found[:3]:
        print(f"  {item['section']} (p. {item['page']}): {' '.join((item.get('text') or '').split())[:100]!r}")


def cmd_audit_online(admin: str):
    status, body = request("GET", "/v1/audit/verify", user=admin)
    expect(status, body, 200, "GET /v1/audit/verify")
    print(f"GET /v1/audit/verify: 200 {json.dumps(body, sort_keys=True)[:300]}")


COMMANDS = {
    "ready": cmd_ready, "login": cmd_login, "add-user": cmd_add_user,
    "change-password": cmd_change_password, "upload": cmd_upload, "wait-indexed": cmd_wait_indexed,
    "chunks": cmd_chunks, "search": cmd_search, "ask": cmd_ask, "summarize": cmd_summarize,
    "audit-online": cmd_audit_online,
}


def main(argv: list[str]) -> int:
    global STATE
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        print("commands: " + ", ".join(COMMANDS), file=sys.stderr)
        return 2
    STATE = argv[0]
    try:
        COMMANDS[argv[1]](*argv[2:])
    except Failed as error:
        print(f"FAILED: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
