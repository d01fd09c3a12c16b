"""`s284 policy check|explain|diff`, as the people who own the rules use them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.cli.policy import policy
from policies import load_bundle

SHIPPED = load_bundle().path
RISK_ALERT = {
    "sender_agency": "corrections",
    "sender_role": "case_manager",
    "recipient_agency": "police",
    "kind": "risk.alert",
    "purpose": "risk_reduction",
    "order_status": "supervision_order",
}


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None):
        return runner.invoke(policy, list(args), input=stdin, catch_exceptions=False)

    return invoke


def copy_bundle(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(SHIPPED, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_check_passes_on_the_shipped_bundle(run):
    """CI runs `s284 policy check`: exit 0 and a one-line verdict with the version."""
    result = run("check")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"ok: bundle {load_bundle().version}")
    assert "0 failed, 0 policies untested" in result.output


def test_check_fails_on_a_broken_row(run, tmp_path):
    """A row whose decision changed fails the check (exit 1), naming the row."""
    bundle = copy_bundle(tmp_path)
    edit(bundle / "30-evidence.cedar", "< 30", "< 20")
    result = run("check", str(bundle))
    assert result.exit_code == 1
    assert "evidence.yaml:" in result.output
    assert "risk_reduction with a justification too short to state reasons" in result.output
    assert result.output.splitlines()[-1].startswith("FAILED: bundle")


def test_check_reports_a_malformed_policy_at_its_line(run, tmp_path):
    """A syntax error is a one-line error naming the file and line, not a traceback."""
    bundle = copy_bundle(tmp_path)
    edit(
        bundle / "40-orders.cedar",
        "].contains(resource.purpose) &&",
        "].contains(resource.purpose) &&&",
    )
    result = run("check", str(bundle))
    assert result.exit_code == 1
    assert "40-orders.cedar:5: not a valid Cedar policy" in result.output
    assert "Traceback" not in result.output


def test_explain_refusal_says_why(run, tmp_path):
    """A risk_reduction request without a justification: exit 3, the policy and the reason."""
    path = tmp_path / "request.json"
    path.write_text(json.dumps(RISK_ALERT))
    result = run("explain", str(path))
    assert result.exit_code == 3
    assert "decision  deny" in result.output
    assert "policy    risk-reduction-justification  (30-evidence.cedar:" in result.output
    assert "needs a written justification" in result.output


def test_explain_permit_shows_review_and_policy(run):
    """With the reasons written down: exit 0, permitted, flagged for privacy review."""
    form = RISK_ALERT | {"justification": "Offender disclosed intent to visit the victim tonight"}
    result = run("explain", "-", stdin=json.dumps(form))
    assert result.exit_code == 0, result.output
    assert "decision  permit" in result.output
    assert "permit-risk-reduction  (20-grounds.cedar:" in result.output
    assert "ground: risk_reduction" in result.output
    assert "review    required" in result.output


def test_explain_json_and_default_deny(run):
    """`--json` prints the decision for machines; a default deny is labelled."""
    form = RISK_ALERT | {"purpose": "reports"}
    result = run("explain", "--json", "-", stdin=json.dumps(form))
    assert result.exit_code == 3
    decision = json.loads(result.output)
    assert decision["decision"] == "deny"
    assert decision["default_deny"] is True
    assert decision["policy_ids"] == ["default-deny"]
    assert decision["bundle"].startswith("s284-")


def test_explain_unknown_purpose_names_the_field(run):
    """An undeclared purpose is an error naming the field and the declared grounds."""
    form = RISK_ALERT | {"purpose": "general_interest"}
    result = run("explain", "-", stdin=json.dumps(form))
    assert result.exit_code == 1
    assert "field 'purpose': 'general_interest' is not declared" in result.output
    assert "risk_reduction" in result.output


def test_explain_rejects_a_file_that_is_not_json(run):
    """A usage error (exit 2) points at the request file's line."""
    result = run("explain", "-", stdin='{\n"purpose": }')
    assert result.exit_code == 2
    assert "REQUEST.json is not JSON: line 2" in result.output


def test_diff_of_identical_bundles_lists_nothing(run, tmp_path):
    """Copying a bundle changes no decision."""
    result = run("diff", str(SHIPPED), str(copy_bundle(tmp_path)))
    assert result.exit_code == 0
    assert result.output.strip().startswith("0 request(s) change decision")


def test_diff_lists_every_changed_request(run, tmp_path):
    """Taking Police off the Health-treatment rule lists exactly Health's treatment
    progress to Police, before and after, with the policies that decide each."""
    bundle = copy_bundle(tmp_path)
    edit(bundle / "50-information.cedar", 'S284::Agency::"police"].contains', "].contains")
    result = run("diff", str(SHIPPED), str(bundle))
    assert result.exit_code == 0
    *lines, summary = result.output.splitlines()
    assert summary == f"{len(lines)} request(s) change decision from {SHIPPED} to {bundle}."
    assert lines
    assert all(
        line.startswith("health/") and " -> police  service.progress  " in line for line in lines
    )
    assert (
        "health/clinician -> police  service.progress  reports  order=none  "
        "justification=0 consent=no law=no:  permit [permit-reports]  ->  "
        "deny [health-treatment-details]"
    ) in lines


def test_diff_json_lines(run, tmp_path):
    """`--json`: one object per request, in the documented request form; summary on stderr."""
    bundle = copy_bundle(tmp_path)
    edit(bundle / "30-evidence.cedar", "< 30", "< 31")
    result = CliRunner().invoke(policy, ["diff", "--json", str(SHIPPED), str(bundle)])
    assert result.exit_code == 0
    changes = [json.loads(line) for line in result.stdout.splitlines()]
    assert changes
    for change in changes:
        assert change["request"]["purpose"] == "risk_reduction"
        assert len(change["request"]["justification"]) == 30
        assert (change["old"]["decision"], change["new"]["decision"]) == ("permit", "deny")
    assert f"{len(changes)} request(s) change decision" in result.stderr


def test_diff_reports_a_bad_bundle(run, tmp_path):
    """A diff against an invalid bundle fails with the file and line, exit 1."""
    bundle = copy_bundle(tmp_path)
    edit(bundle / "minimisation.yaml", "dffh:\n", "dffh: [\n")
    result = run("diff", str(SHIPPED), str(bundle))
    assert result.exit_code == 1
    assert "minimisation.yaml:" in result.output
    assert "not valid YAML" in result.output
