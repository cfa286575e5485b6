"""daeflow's guard around MLflow's scoring app, in process (tests/test_serving.py sends real
requests to `daeflow serve`): the body limit a model gets, MLflow's error messages cut
short, exceptions that escape the app."""

import asyncio
import json
import logging

import pytest
import yaml

from daeflow.track import scoring_guard


def test_the_model_path_is_passed_as_mlflows_scoring_server_reads_it():
    from mlflow.pyfunc.scoring_server import _SERVER_MODEL_PATH

    assert scoring_guard.MODEL_PATH_ENV == _SERVER_MODEL_PATH


@pytest.mark.parametrize("max_bytes", [None, 1000, "absent"])
def test_the_body_limit_is_three_times_the_models_max_bytes(tmp_path, max_bytes):
    from daeflow.track.flavor import MAX_REQUEST_BYTES, model_signature

    signature = model_signature().to_dict()
    params = json.loads(signature["params"])
    if max_bytes == "absent":  # a model logged before params "max_bytes"
        params = [p for p in params if p["name"] != "max_bytes"]
    elif max_bytes is not None:
        (param,) = [p for p in params if p["name"] == "max_bytes"]
        param["default"] = max_bytes
    signature["params"] = json.dumps(params)
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"signature": signature}))
    expected = 1000 if max_bytes == 1000 else MAX_REQUEST_BYTES
    assert scoring_guard.max_body_for(tmp_path) == 3 * expected + 2**20


def call(app, body=b"{}", max_body=1000, content_type=b"application/json") -> tuple[int, dict]:
    """One request through ScoringGuard(app): the status and the JSON reply."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    headers = [(b"content-type", content_type)]
    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": headers}
    asyncio.run(scoring_guard.ScoringGuard(app, max_body)(scope, receive, send))
    start, content = sent
    return start["status"], json.loads(content["body"])


@pytest.mark.parametrize(
    "body, fragment",
    [(b"{" + b"x" * 100_000, "property name"), (b'{"a": "' + b"\xff" * 100_000, "invalid start")],
    ids=["not-json", "not-utf-8"],
)
def test_mlflows_copies_of_a_bad_body_are_cut_from_its_message(body, fragment):
    from mlflow.pyfunc.scoring_server import _decode_json_input

    with pytest.raises(Exception) as caught:
        _decode_json_input(body)
    reply = caught.value.serialize_as_json().encode()
    assert len(reply) > 100_000  # MLflow's message holds the whole body, twice for \xff
    code, message = scoring_guard.error_parts(400, reply)
    assert code == "BAD_REQUEST" and "valid JSON" in message and fragment in message
    assert "xxx" not in message and "xff" not in message, message


def test_a_long_message_is_cut_short():
    _, message = scoring_guard.error_parts(400, json.dumps({"message": "y" * 10**4}).encode())
    assert len(message) <= scoring_guard.MESSAGE_MAX


def test_an_exception_escaping_the_app_is_one_sentence_and_its_detail_logged(caplog):
    async def failing(scope, receive, send):
        await receive()
        raise KeyError("/srv/secret/path")

    async def nested(scope, receive, send):
        json.loads(b"[" * 100_000 + b"]" * 100_000)

    with caplog.at_level(logging.ERROR, logger=scoring_guard.__name__):
        status, answer = call(failing)
        assert status == 500 and "secret" not in json.dumps(answer), answer
        assert answer["message"].startswith("Unexpected KeyError in the scoring server")
        assert "/srv/secret/path" in caplog.text and "Traceback" in caplog.text
    status, answer = call(nested)
    assert status == 400 and "nested too deeply" in answer["message"], answer


def test_a_text_body_that_is_not_utf8_never_reaches_mlflow():
    async def echo(scope, receive, send):  # answers 418 with the body's size
        body = (await receive())["body"]
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"%d bytes" % len(body)})

    bad = b'{"inputs": "' + "é".encode() * 2**20 + b"\xff" + b'"}'
    status, answer = call(echo, bad, max_body=2**22)
    assert status == 400 and "not UTF-8 text (invalid start byte near byte" in answer["message"]
    assert call(echo, bad[:-3] + b'"}', max_body=2**22)[0] == 418  # UTF-8 across the MiB
    assert call(echo, bad, 2**22, b"application/vnd.apache.parquet") == (
        418,
        {"error_code": "IM_A_TEAPOT", "message": f"{len(bad)} bytes"},
    )
