"""--data-root and --split: one definition (rssnn.cli_support.add_data_flags) and one policy in
every command; a test split that the data lacks is refused in one line."""

from __future__ import annotations

import argparse

from conftest import assert_one_line_error, call_main


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from rssnn.commands import certify
    from rssnn.export import to_netx, to_nir
    from rssnn.lava_procs import run
    from rssnn.train import cifar, evaluate

    return {
        "train": cifar.build_parser(),
        "evaluate": evaluate.build_parser(),
        "run": run.build_parser(),
        "certify": certify.build_parser(),
        "to_netx": to_netx.build_parser(),
        "to_nir": to_nir.build_parser(),
    }


def _flag(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


def test_every_command_defines_data_root_and_split_alike():
    parsers = _parsers()
    roots = {(a.dest, a.default, a.help) for a in (_flag(p, "--data-root") for p in parsers.values())}
    assert len(roots) == 1 and next(iter(roots))[:2] == ("data_root", None), roots
    splits = {name: _flag(p, "--split") for name, p in parsers.items() if name != "train"}
    assert all(splits.values()), splits
    policies = {(a.dest, a.default, tuple(a.choices), a.help) for a in splits.values()}
    assert len(policies) == 1, policies
    assert next(iter(policies))[:3] == ("split", "val", ("val", "test"))


def test_the_training_images_are_no_split_to_evaluate_on(capsys):
    from rssnn.commands import cost

    code = call_main(cost.main, ["--net", "m.net", "--images", "2", "--split", "train"])
    assert_one_line_error(capsys, code, "invalid choice: 'train'")


def test_a_missing_test_batch_is_one_line_before_any_attack(cifar_root, tiny_run, tmp_path, capsys):
    from rssnn.train import evaluate

    copy = tmp_path / "cifar-10-batches-py"  # the training batches only, as the offline copy
    copy.mkdir()
    for src in (cifar_root / "cifar-10-batches-py").iterdir():
        if src.name != "test_batch":
            (copy / src.name).symlink_to(src)
    argv = ["--checkpoint", str(tiny_run / "best.pt"), "--data-root", str(tmp_path), "--split", "test",
            "--limit", "4", "--attacks", "clean", "--out", str(tmp_path / "e.json")]  # fmt: skip
    code = call_main(evaluate.main, argv)
    assert_one_line_error(capsys, code, "no test split in")
    assert not (tmp_path / "e.json").exists()
    # the exporters refuse it before they write (or announce) a file
    from rssnn.export import to_netx, to_nir

    for command, name in ((to_netx, "m.net"), (to_nir, "m.nir")):
        out = tmp_path / name
        argv = ["--checkpoint", str(tiny_run / "best.pt"), "--out", str(out), "--data-root", str(tmp_path),
                "--split", "test", "--verify", "2"]  # fmt: skip
        code = call_main(command.main, argv)
        captured = capsys.readouterr()
        assert code == 2 and "no test split in" in captured.err and "wrote" not in captured.out, captured
        assert not out.exists() and not list(tmp_path.glob(".*partial"))
