"""The docs stay true: every training flag is documented, the README opens with two commands."""

from __future__ import annotations

from conftest import ROOT

from rssnn.train.cifar import build_parser


def test_every_training_flag_is_in_the_cli_reference():
    reference = (ROOT / "docs" / "training.md").read_text()
    flags = [
        opt for action in build_parser()._actions for opt in action.option_strings if opt.startswith("--")
    ]
    missing = [f for f in flags if f not in reference]
    assert len(flags) > 30 and not missing, f"undocumented flags: {missing}"


def test_readme_opens_with_the_main_and_test_commands_that_ci_uses():
    lines = (ROOT / "README.md").read_text().splitlines()
    commands = [ln for ln in lines[:6] if ln.startswith("bash ")]
    assert [c.split()[1] for c in commands] == ["scripts/main.sh", "scripts/test.sh"]
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    for c in commands:
        assert (ROOT / c.split()[1]).is_file()
