"""The GitHub workflows are valid YAML, test with the README's command and publish what the README's build
command builds, so the documentation and the deployment cannot drift apart."""
import re

import yaml

from conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def _runs(name):
    wf = yaml.safe_load((WORKFLOWS / name).read_text())
    return wf, [step["run"].strip() for job in wf["jobs"].values() for step in job["steps"] if "run" in step]


def _readme_commands():
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [line.split("#")[0].strip() for b in blocks for line in b.splitlines() if line.strip()]


def test_deploy_builds_with_the_readme_command_and_publishes_pages():
    wf, runs = _runs("deploy.yml")
    readme = _readme_commands()
    assert "make build-book" in readme and runs == ["make build-book"]
    uses = [step.get("uses", "") for job in wf["jobs"].values() for step in job["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    assert wf["concurrency"]["group"] == "pages" and wf["permissions"]["pages"] == "write"
    build = (ROOT / "Makefile").read_text()
    assert re.search(r"^build-book:.*\n(\t.*\n)*?\t.*jupyter-book build .*-W", build, re.M)  # strict, no execution
    triggers = wf.get("on", wf.get(True))                 # YAML 1.1 reads the key `on` as True
    assert "push" in triggers


def test_tests_run_the_readme_test_command_on_pushes_and_pull_requests():
    wf, runs = _runs("tests.yml")
    assert runs == ["make test"] and "make test" in _readme_commands()
    triggers = wf.get("on", wf.get(True))
    assert {"push", "pull_request"} <= set(triggers)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
