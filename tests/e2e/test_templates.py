"""Templates as a user meets them through ``aiop up``: the built-in ones run as shipped,
with their defaults, on the sample inputs beside them; bad parameters are refused before
anything runs; a template registered from a file runs with the parameters given."""

import json

import pytest

from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e

BUILTIN = ("ci-cd", "data-processing", "ml-training", "scheduled-maintenance")


def run(platform: Platform, *args: str) -> dict[str, object]:
    done = platform.aiop("run", *args, "--wait", "--json", timeout=300)
    assert done.returncode in (0, 1), done.stderr
    view: dict[str, object] = json.loads(done.stdout)
    return view


def test_the_built_in_templates_run_as_shipped(platform: Platform) -> None:
    listed = platform.aiop("templates", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    versions = {t["name"]: t["version"] for t in json.loads(listed.stdout) if t["builtin"]}
    assert set(BUILTIN) <= set(versions)
    for name in BUILTIN:
        view = run(platform, name)
        assert view["state"] == "succeeded", json.dumps(view, indent=1)
        assert view["template"] == f"{name}@{versions[name]}"
        assert view["parameters"], "the defaults it ran with are recorded"
    ml = run(platform, "ml-training")  # the same again: every step a cache hit
    assert {s["state"] for s in ml["steps"]} == {"cached"}  # type: ignore[union-attr]
    summary = ml["summary"]["evaluate"]  # type: ignore[index]
    assert 0.8 <= summary["accuracy"] <= 1  # the summary survives the cache


def test_bad_parameters_are_refused_and_a_missed_threshold_fails(platform: Platform) -> None:
    refused = platform.aiop("run", "ml-training", "-p", "epochs=0")
    assert refused.returncode == 2
    assert "/parameters/epochs" in refused.stderr
    assert "minimum" in refused.stderr
    strict = run(platform, "ml-training", "-p", "min_accuracy=0.999")
    assert strict["state"] == "failed"
    steps = {s["name"]: s for s in strict["steps"]}  # type: ignore[union-attr]
    assert steps["evaluate"]["state"] == "failed"
    assert steps["train"]["state"] in ("succeeded", "cached")


def test_a_registered_template_runs_with_its_parameters(platform: Platform) -> None:
    folder = platform.root / "my-template"
    folder.mkdir(exist_ok=True)
    (folder / "say.py").write_text(
        "import json, os, sys\nwords = sys.argv[1:]\nprint(*words)\n"
        "json.dump({'words': len(words)}, open(os.environ['AIOP_SUMMARY'], 'w'))\n"
    )
    (folder / "template.yaml").write_text(
        "name: e2e-say\nversion: '1.0.0'\nparameters:\n  type: object\n  properties:\n"
        "    who: {type: string, default: world}\n    times: {type: integer, default: 1}\n"
        "workflow:\n  name: say\n  steps:\n    - name: say\n"
        "      run: [python3, say.py, hello, '${{ params.who }}', '${{ params.times }}']\n"
        "      files: {say.py: {from: say.py}}\n"
    )
    registered = platform.aiop("templates", "register", "my-template/template.yaml")
    assert registered.returncode == 0, registered.stderr
    shown = platform.aiop("templates", "show", "e2e-say")
    assert 'who: string = "world"' in shown.stdout
    view = run(platform, "e2e-say@1.0.0", "-p", "who=AIOP", "-p", "times=3")
    assert view["state"] == "succeeded", json.dumps(view, indent=1)
    assert view["parameters"] == {"who": "AIOP", "times": 3}
    assert view["summary"] == {"say": {"words": 3}}
    status = platform.aiop("status", str(view["workflow_id"]))
    assert 'template  e2e-say@1.0.0  who="AIOP" times=3' in status.stdout
    logs = platform.aiop("logs", str(view["workflow_id"]))
    assert "hello AIOP 3" in logs.stdout
