"""A scripted Anthropic Messages API on 127.0.0.1: first a `Write` tool call, then a final text.

Enough of the streamed (server-sent events) protocol for the real Claude Code CLI to do a whole run offline.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INPUT_TOKENS = 1234
OUTPUT_TOKENS = 56
FINAL_TEXT = "Wrote FIXED.txt with the fix."


class ScriptedAnthropic:
    """Answers /v1/messages: a Write tool call until a tool result comes back, then `end_turn` text."""

    def __init__(self, file_path: str, content: str, *, bash: str | None = None) -> None:
        self.file_path = file_path
        self.content = content
        self.bash = bash  # a Bash tool call instead of Write
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def reply(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """The content blocks and the stop reason for one request."""
        messages = body.get("messages") or []
        has_result = any(
            isinstance(block, dict) and block.get("type") == "tool_result"
            for message in messages if isinstance(message.get("content"), list)
            for block in message["content"]
        )
        tools = [tool.get("name") for tool in body.get("tools") or []]
        if self.bash is not None and "Bash" in tools and not has_result:
            return [{"type": "tool_use", "id": "toolu_01KickoffBash", "name": "Bash",
                     "input": {"command": self.bash, "description": "Write the fix with the shell"}}], "tool_use"
        if self.bash is None and "Write" in tools and not has_result:
            return [{"type": "tool_use", "id": "toolu_01KickoffWrite", "name": "Write",
                     "input": {"file_path": self.file_path, "content": self.content}}], "tool_use"
        return [{"type": "text", "text": FINAL_TEXT}], "end_turn"


def _events(model: str, blocks: list[dict[str, Any]], stop_reason: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "message_start", {"type": "message_start", "message": {
        "id": "msg_01Kickoff", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0}}}
    for index, block in enumerate(blocks):
        if block["type"] == "tool_use":
            start = {**block, "input": {}}
            yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(block["input"])}}
        else:
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "text", "text": ""}}
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "text_delta", "text": block["text"]}}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                            "usage": {"output_tokens": OUTPUT_TOKENS}}
    yield "message_stop", {"type": "message_stop"}


def _handler(script: ScriptedAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            path = self.path.split("?", 1)[0]
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {}
            with script.lock:
                script.requests.append({"path": self.path, "body": body})
                script.headers.append(dict(self.headers.items()))
            if path.endswith("/count_tokens"):
                self._json({"input_tokens": INPUT_TOKENS})
                return
            if not path.endswith("/v1/messages"):
                self._json({"type": "error", "error": {"type": "not_found_error", "message": path}}, 404)
                return
            model = str(body.get("model") or "claude-sonnet-4-5")
            blocks, stop_reason = script.reply(body)
            if not body.get("stream"):
                self._json({"id": "msg_01Kickoff", "type": "message", "role": "assistant", "model": model,
                            "content": blocks, "stop_reason": stop_reason, "stop_sequence": None,
                            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS}})
                return
            payload = b"".join(
                f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in _events(model, blocks,
                                                                                                 stop_reason)
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._json({"type": "error", "error": {"type": "not_found_error", "message": self.path}}, 404)

        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _json(self, data: object, status: int = 200) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


@contextmanager
def serve(script: ScriptedAnthropic) -> Iterator[str]:
    """Serve `script` on a free loopback port; yields the base URL."""
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
