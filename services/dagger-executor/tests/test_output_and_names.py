"""Output tails, secret resolution and the names the executor uses."""

from aiop.contracts import check_token
from aiop.dagger_executor.domain.naming import claim_key, executor_id
from aiop.dagger_executor.domain.output import OutputTail, last_bytes
from aiop.dagger_executor.domain.secrets import resolve_secrets


def test_tail_keeps_the_last_lines_across_chunk_boundaries() -> None:
    tail = OutputTail(max_lines=3)
    tail.append("one\ntw")
    tail.append("o\nthree\nfour\nfi")
    assert tail.text() == "three\nfour\nfi"


def test_tail_is_capped_in_bytes_without_splitting_characters() -> None:
    tail = OutputTail(max_lines=100, max_bytes=10)
    tail.append("x" * 50 + "\n" + "é" * 8 + "\n")
    text = tail.text()
    assert len(text.encode()) <= 10
    assert text.endswith("é\n") or text.endswith("é")
    assert last_bytes("short", 10) == "short"


def test_executor_id_is_a_safe_subject_token() -> None:
    ident = executor_id("gpu", "host.example.com", 42)
    assert ident == "gpu-host-example-com-42"
    assert check_token(ident) == ident


def test_claim_key_names_workflow_and_attempt() -> None:
    assert claim_key("wf1", 3) == "wf1.a3"


def test_secrets_resolve_from_prefixed_environment() -> None:
    env = {"AIOP_SECRET_DB_PASSWORD": "s3cret", "AIOP_SECRET_token": "t"}
    found, missing = resolve_secrets(["db-password", "token", "absent"], env)
    assert found == {"db-password": "s3cret", "token": "t"}
    assert missing == ["absent"]
