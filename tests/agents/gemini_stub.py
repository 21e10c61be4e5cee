"""A scripted Gemini API (`generativelanguage`'s v1beta) on 127.0.0.1 for the real Gemini CLI: `streamGenerateContent`
(server-sent events) answers the first turn with a `run_shell_command` call that writes the file and prints the
agent's environment, and once the command's result comes back, a final text. Side requests (a JSON-mode
`generateContent`, `countTokens`) get small well-formed answers. Every request is recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.agents.openai_stub import Recorder

PROMPT_TOKENS = 2100
CANDIDATE_TOKENS = 45
FINAL_TEXT = "Wrote FIXED.txt with the fix."


class ScriptedGemini(Recorder):
    def __init__(self, file_path: str, content: str, hang: bool = False) -> None:
        super().__init__()
        self.file_path = file_path
        self.content = content
        self.hang = hang  # a dead endpoint: every request is accepted and never answered (until the server stops)
        self.stopping = threading.Event()

    def turn_requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if ":streamGenerateContent" in r["path"]]

    def parts(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        contents = body.get("contents") or []
        answered = any("functionResponse" in part for content in contents if isinstance(content, dict)
                       for part in content.get("parts") or [] if isinstance(part, dict))
        names = {str(declaration.get("name")) for tool in body.get("tools") or [] if isinstance(tool, dict)
                 for declaration in tool.get("functionDeclarations") or [] if isinstance(declaration, dict)}
        if answered or "run_shell_command" not in names:
            return [{"text": FINAL_TEXT}]
        command = f"cat > {self.file_path} <<'KICKOFF_EOF'\n{self.content}KICKOFF_EOF\nenv"
        return [{"functionCall": {"name": "run_shell_command",
                                  "args": {"command": command, "description": "Write the file"}}}]


def _answer(parts: list[dict[str, Any]], model: str) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": PROMPT_TOKENS, "candidatesTokenCount": CANDIDATE_TOKENS,
                              "totalTokenCount": PROMPT_TOKENS + CANDIDATE_TOKENS},
            "modelVersion": model}


def _handler(script: ScriptedGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {}
            script.record(self.path, body, dict(self.headers.items()))
            if script.hang:
                script.stopping.wait(600)
                return
            path = self.path.split("?", 1)[0]
            model = path.rsplit("/", 1)[-1].split(":", 1)[0] or "gemini-2.5-pro"
            if path.endswith(":countTokens"):
                self._json({"totalTokens": PROMPT_TOKENS})
            elif path.endswith(":streamGenerateContent"):
                self._sse(_answer(script.parts(body), model))
            elif path.endswith(":generateContent"):
                config = body.get("generationConfig") or {}
                if config.get("responseMimeType") == "application/json":
                    text = json.dumps({"next_speaker": "user", "reasoning": "The task is done.",
                                       "model_choice": "pro", "complexity_reasoning": "simple",
                                       "complexity_score": 1})
                else:
                    text = FINAL_TEXT
                self._json(_answer([{"text": text}], model))
            else:
                self._json({"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}}, 404)

        def do_GET(self) -> None:
            script.record(self.path, None, dict(self.headers.items()))
            self._json({"error": {"code": 404, "message": f"no route {self.path}", "status": "NOT_FOUND"}}, 404)

        def _sse(self, data: dict[str, Any]) -> None:
            payload = f"data: {json.dumps(data)}\r\n\r\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
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
def serve(script: ScriptedGemini) -> Iterator[str]:
    """Serve `script` on a free loopback port; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        script.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
