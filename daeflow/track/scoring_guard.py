"""MLflow's scoring app behind daeflow's guard: bounded bodies, short errors, no echo.

`daeflow serve` runs uvicorn on `create_app`, which builds MLflow's scoring app exactly
as `mlflow models serve` does (the model path in MLflow's environment variable, the
request timeout from MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT) and wraps it in
`ScoringGuard`. MLflow's app puts the whole body into some error replies ("Input: ...",
"Failed to predict data '...'"), adds stack traces, and answers a body nested too deep
for `json.loads` with a bare 500. The guard:

- refuses a body over `max_body` bytes with 413, from its Content-Length or while it
  arrives, before MLflow reads any of it;
- refuses a JSON or CSV body that is not UTF-8 with 400 (MLflow would answer with the
  body's repr, twice: a 50 MB body, a 500 MB reply);
- replaces every 4xx/5xx reply with {"error_code", "message"}: one line, MLflow's echo of
  the input cut off, at most MESSAGE_MAX characters, no stack trace;
- answers an exception escaping the app with 400 when the body could not be parsed
  (RecursionError), 500 otherwise, in one sentence; the traceback goes to the server's log.
"""

import codecs
import json
import logging
import os
import re
from http import HTTPStatus
from pathlib import Path

# MLflow's scoring app reads the model from this variable (mlflow.pyfunc.scoring_server).
MODEL_PATH_ENV = "__pyfunc_model_path__"
MAX_BODY_ENV = "DAEFLOW_MAX_BODY"
FACTORY = "daeflow.track.scoring_guard:create_app"
# A request may carry BODY_FACTOR bytes per byte of params "max_bytes": base64 takes 4/3,
# and a JSON number of up to 23 characters and its comma becomes 8 bytes (int64, float64).
BODY_FACTOR = 3
BODY_SLACK = 2**20  # the JSON around the input, params
DRAIN_MAX = 2**26  # what is read and dropped beyond the limit before a 413
MESSAGE_MAX = 500
# MLflow's messages that carry the input: "Failed to predict data '<input>'. \nError: <why>"
# and "Ensure that input is a valid JSON formatted string. Error: ...\nInput: \n<body>".
PREDICT_PREFIX, PREDICT_ERROR = "Failed to predict data '", "'. \nError: "
INPUT_ECHO = "\nInput:"
# The same in MLflow's JSON reply (MlflowException.serialize_as_json), newlines escaped.
MESSAGE_KEY = b'"message": "'
JSON_PREDICT_ERROR, JSON_INPUT_ECHO = (
    json.dumps(m)[1:-1].encode() for m in (PREDICT_ERROR, INPUT_ECHO)
)
# A bytes literal in a message is the body, as in the repr of MLflow's UnicodeDecodeError.
BYTES_LITERAL = re.compile(r"""(?<!\w)b(?:'(?:[^'\\]++|\\.)*+'|"(?:[^"\\]++|\\.)*+")""", re.DOTALL)

log = logging.getLogger(__name__)


def max_body_for(model_folder: Path) -> int:
    """The body limit for a model: BODY_FACTOR x its params "max_bytes" default, plus slack."""
    import yaml

    from daeflow.track.flavor import MAX_REQUEST_BYTES

    conf = yaml.safe_load((Path(model_folder) / "MLmodel").read_text(encoding="utf-8"))
    signature = conf.get("signature") if isinstance(conf, dict) else None
    try:
        params = json.loads(signature.get("params") or "[]") if signature else []
        (limit,) = [p.get("default") for p in params if p.get("name") == "max_bytes"]
    except (ValueError, AttributeError, TypeError):  # no such param: older models
        limit = MAX_REQUEST_BYTES
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        limit = MAX_REQUEST_BYTES
    return BODY_FACTOR * limit + BODY_SLACK


def server_command(
    model_folder: Path, host: str, port: int, workers: int, max_body: int
) -> tuple[list[str], dict[str, str]]:
    """uvicorn on the guarded app, as MLflow's `models serve --env-manager local` starts it;
    the command and the environment variables it needs."""
    import sys

    command = [
        sys.executable, "-m", "uvicorn", "--factory", FACTORY,
        "--host", host, "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    env = {MODEL_PATH_ENV: Path(model_folder).resolve().as_uri(), MAX_BODY_ENV: str(max_body)}
    return command, env


def create_app():
    """MLflow's scoring app for the model in MODEL_PATH_ENV, behind the guard (for uvicorn)."""
    from mlflow.pyfunc.scoring_server import app as scoring

    return ScoringGuard(scoring.app, int(os.environ[MAX_BODY_ENV]))


class ScoringGuard:
    """ASGI middleware: the body read first (at most `max_body` bytes), error replies remade."""

    def __init__(self, app, max_body: int):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            # curl waits for "100 Continue" (sent on our first read): it need not send at all
            waits = headers.get(b"expect", b"").lower() == b"100-continue"
            drain = not waits and int(declared) <= self.max_body + DRAIN_MAX
            return await self.too_large(send, receive if drain else None, int(declared))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                chunks.clear()
                more = message.get("more_body")
                return await self.too_large(send, receive if more else None, read=size)
            if not message.get("more_body"):
                break
        body = [b"".join(chunks)]
        del chunks
        text_type = headers.get(b"content-type", b"").split(b";")[0].strip() in TEXT_TYPES
        where = not_utf8(body[0]) if text_type else None
        if where:  # MLflow would answer with the body's repr, 4 bytes per byte, twice
            return await reply(send, 400, "BAD_REQUEST", NOT_UTF8.format(where))

        async def replay():
            if body:
                return {"type": "http.request", "body": body.pop(), "more_body": False}
            return await receive()

        held: list = []  # an error reply of the app: its status, then its body parts
        sent = False

        async def guarded_send(message):
            nonlocal sent
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held.append(message["status"])
            elif held and message["type"] == "http.response.body":
                held.append(message.get("body", b""))
            else:
                sent = True
                await send(message)

        try:
            await self.app(scope, replay, guarded_send)
        except Exception as exc:
            if sent:
                raise  # too late for another reply
            log.error("%s %s failed", scope.get("method"), scope.get("path"), exc_info=exc)
            if isinstance(exc, RecursionError):
                await reply(send, 400, "BAD_REQUEST", NESTED_TOO_DEEP)
            else:
                await reply(send, 500, "INTERNAL_ERROR", UNEXPECTED.format(type(exc).__name__))
            return
        if held:  # sent only now: the app may still raise after its error reply
            status, *parts = held
            await reply(send, status, *error_parts(status, b"".join(parts)))

    async def too_large(self, send, receive=None, size: int | None = None, read: int = 0):
        """413; with `receive`, the rest of the body read and dropped first (up to DRAIN_MAX
        beyond the limit), since a client that sends its whole body before it reads the
        reply (urllib, requests) would find the connection reset, not the 413."""
        from daeflow.data.arrays import readable_bytes

        while receive is not None and read <= self.max_body + DRAIN_MAX:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        what = f" ({readable_bytes(size)})" if size else ""
        await reply(
            send,
            413,
            "REQUEST_ENTITY_TOO_LARGE",
            f"The request body{what} is larger than the {readable_bytes(self.max_body)} this "
            "server takes (daeflow serve --max-body); send fewer or smaller images per request.",
        )


NESTED_TOO_DEEP = (
    "The request body is JSON nested too deeply to parse; send images as MLflow's "
    '{"inputs": [...]} lists or as a base64 .npy file.'
)
UNEXPECTED = "Unexpected {} in the scoring server; the server's log has the details."
NOT_UTF8 = "The request body is not UTF-8 text ({}); MLflow's scoring server reads UTF-8 only."
TEXT_TYPES = (b"application/json", b"text/csv")


def not_utf8(body: bytes, step: int = 2**20) -> str | None:
    """Where `body` stops being UTF-8, read a MiB at a time; None if it is UTF-8."""
    if body.isascii():
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    for start in range(0, len(body), step):
        try:
            decoder.decode(body[start : start + step], final=start + step >= len(body))
        except UnicodeDecodeError as exc:
            return f"{exc.reason} near byte {start + exc.start}"
    return None


def error_parts(status: int, body: bytes) -> tuple[str, str]:
    """MLflow's error code and message in an error reply, as one line without the input."""
    code = _status_name(status)
    text = without_echo(body).decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        code = parsed["error_code"] if isinstance(parsed.get("error_code"), str) else code
        text = parsed.get("message", parsed.get("detail"))
        text = text if isinstance(text, str) else ""
    return code, short_message(text) or _status_phrase(status)


def without_echo(body: bytes) -> bytes:
    """MLflow's JSON error reply with its copies of the request cut out before it is parsed:
    a large body makes a reply as large, or larger."""
    start = body.find(MESSAGE_KEY)
    if start < 0:
        return body
    start += len(MESSAGE_KEY)
    if body.startswith(PREDICT_PREFIX.encode(), start):
        end = body.rfind(JSON_PREDICT_ERROR)
        if end > start:
            body = body[:start] + body[end + len(JSON_PREDICT_ERROR) :]
    end = body.find(JSON_INPUT_ECHO, start)
    return body if end < 0 else body[:end] + b'"}'


def short_message(text: str) -> str:
    """`text` without MLflow's copies of the input, on one line, at most MESSAGE_MAX long."""
    head, found, tail = text.rpartition(PREDICT_ERROR)
    if found and head.startswith(PREDICT_PREFIX):
        text = tail
    text = BYTES_LITERAL.sub("<the request's bytes>", text.split(INPUT_ECHO, 1)[0])
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_MAX else text[: MESSAGE_MAX - 4].rstrip() + " ..."


async def reply(send, status: int, code: str, message: str) -> None:
    content = json.dumps({"error_code": code, "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def _status_name(status: int) -> str:
    try:
        return HTTPStatus(status).name
    except ValueError:
        return "ERROR"


def _status_phrase(status: int) -> str:
    try:
        return f"{HTTPStatus(status).phrase}."
    except ValueError:
        return f"HTTP {status}."
