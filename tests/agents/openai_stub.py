"""Scripted OpenAI APIs on 127.0.0.1 for the real agent CLIs: the Responses API over server-sent events (Codex) and
chat completions (aider). Each answers the first request with an edit and, once the CLI sends the edit's result
back, with a final text; every request (path, headers, body) is recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INPUT_TOKENS = 1500
CACHED_TOKENS = 300
OUTPUT_TOKENS = 70
FINAL_TEXT = "Wrote FIXED.txt with the fix."


class Recorder:
    """What the CLI sent: requests (path, body) and their headers, in order."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def record(self, path: str, body: object, headers: dict[str, str]) -> None:
        with self.lock:
            self.requests.append({"path": path, "body": body})
            self.headers.append(headers)

    def sent(self) -> str:
        """Everything the model was sent, as one string (to look for a secret in)."""
        with self.lock:
            return json.dumps(self.requests) + json.dumps(self.headers)


def add_file_patch(path: str, content: str) -> str:
    lines = "".join(f"+{line}\n" for line in content.splitlines())
    return f"*** Begin Patch\n*** Add File: {path}\n{lines}*** End Patch\n"


class ScriptedResponses(Recorder):
    """POST /v1/responses (streamed): a tool call adding the file (`apply_patch` where offered, else a shell
    command, which with `show_env` also prints the agent's environment back to the model), then a final message."""

    def __init__(self, file_path: str, content: str, show_env: bool = False) -> None:
        super().__init__()
        self.file_path = file_path
        self.content = content
        self.show_env = show_env

    def output(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        items = body.get("input") or []
        answered = any(isinstance(item, dict) and str(item.get("type", "")).endswith("_call_output")
                       for item in items)
        if answered:
            return [{"type": "message", "id": "msg_kickoff_2", "role": "assistant", "status": "completed",
                     "content": [{"type": "output_text", "text": FINAL_TEXT, "annotations": []}]}]
        patch = add_file_patch(self.file_path, self.content)
        tools = {str(tool.get("name")): tool for tool in body.get("tools") or [] if isinstance(tool, dict)}
        tool = tools.get("apply_patch")
        if tool is not None and tool.get("type") == "custom" and not self.show_env:
            return [{"type": "custom_tool_call", "id": "ctc_kickoff_1", "status": "completed",
                     "call_id": "call_kickoff_1", "name": "apply_patch", "input": patch}]
        if tool is not None and not self.show_env:
            return [{"type": "function_call", "id": "fc_kickoff_1", "status": "completed",
                     "call_id": "call_kickoff_1", "name": "apply_patch", "arguments": json.dumps({"input": patch})}]
        script = f"cat > {self.file_path} <<'KICKOFF_EOF'\n{self.content}KICKOFF_EOF\n"
        if self.show_env:
            script += "env\n"
        name = "exec_command" if "exec_command" in tools else "shell"
        arguments = {"cmd": script} if name == "exec_command" else {"command": ["bash", "-c", script]}
        return [{"type": "function_call", "id": "fc_kickoff_1", "status": "completed", "call_id": "call_kickoff_1",
                 "name": name, "arguments": json.dumps(arguments)}]

    def events(self, body: dict[str, Any], number: int) -> Iterator[dict[str, Any]]:
        response_id = f"resp_kickoff_{number}"
        model = str(body.get("model") or "gpt-5-codex")
        base = {"id": response_id, "object": "response", "model": model, "status": "in_progress", "output": []}
        yield {"type": "response.created", "response": base}
        output = self.output(body)
        for index, item in enumerate(output):
            yield {"type": "response.output_item.added", "output_index": index, "item": item}
            yield {"type": "response.output_item.done", "output_index": index, "item": item}
        usage = {"input_tokens": INPUT_TOKENS, "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
                 "output_tokens": OUTPUT_TOKENS, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}
        yield {"type": "response.completed", "response": {**base, "status": "completed", "output": output,
                                                          "usage": usage}}


class ScriptedChat(Recorder):
    """POST /v1/chat/completions: an edit creating the file, in aider's SEARCH/REPLACE format (the `diff` edit
    format, whose empty SEARCH section makes a new file), with a line of explanation before it."""

    def __init__(self, file_path: str, content: str) -> None:
        super().__init__()
        self.file_path = file_path
        self.content = content

    def reply(self, body: dict[str, Any]) -> str:
        return (f"{FINAL_TEXT}\n\n{self.file_path}\n```\n<<<<<<< SEARCH\n=======\n{self.content}"
                ">>>>>>> REPLACE\n```\n")


def _handler(script: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {"raw": raw.decode(errors="replace")}
            script.record(self.path, body, dict(self.headers.items()))
            path = self.path.split("?", 1)[0]
            if isinstance(script, ScriptedResponses) and path.endswith("/responses"):
                self._sse(script.events(body, len(script.requests)))
            elif isinstance(script, ScriptedChat) and path.endswith("/chat/completions"):
                self._chat(script, body)
            else:
                self._json({"error": {"message": f"no route {path}", "type": "invalid_request_error"}}, 404)

        def do_GET(self) -> None:
            script.record(self.path, None, dict(self.headers.items()))
            if self.path.split("?", 1)[0].endswith("/models"):
                self._json({"object": "list", "data": [], "models": []})
                return
            self._json({"error": {"message": f"no route {self.path}"}}, 404)

        def _chat(self, chat: ScriptedChat, body: dict[str, Any]) -> None:
            text = chat.reply(body)
            model = str(body.get("model") or "gpt-4o")
            usage = {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
                     "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}
            if not body.get("stream"):
                self._json({"id": "chatcmpl-kickoff", "object": "chat.completion", "created": 1, "model": model,
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": text}}], "usage": usage})
                return
            chunks = [
                {"id": "chatcmpl-kickoff", "object": "chat.completion.chunk", "created": 1, "model": model,
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]},
                {"id": "chatcmpl-kickoff", "object": "chat.completion.chunk", "created": 1, "model": model,
                 "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage},
            ]
            self._sse(iter(chunks), done=True)

        def _sse(self, events: Iterator[dict[str, Any]], done: bool = False) -> None:
            parts = []
            for event in events:
                name = event.get("type")
                parts.append((f"event: {name}\n" if name and not done else "") + f"data: {json.dumps(event)}\n\n")
            if done:
                parts.append("data: [DONE]\n\n")
            payload = "".join(parts).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _json(self, data: object, status: int = 200) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


@contextmanager
def serve(script: Recorder) -> Iterator[str]:
    """Serve `script` on a free loopback port; yields the base URL (without `/v1`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
