import json
import os

from labrunner.run import record as runs


def test_run_dirs_are_never_reused(tmp_path):
    a = runs.new_run_dir(tmp_path, "t", "k")
    b = runs.new_run_dir(tmp_path, "t", "k")
    assert a != b and a.is_dir() and b.is_dir()
    assert b.name.startswith(a.name)


def test_run_dir_names_are_safe(tmp_path):
    assert "/" not in runs.new_run_dir(tmp_path, "a/b", "k k").name


def test_record_starts_as_an_incomplete_error_and_finishes(tmp_path):
    d = runs.new_run_dir(tmp_path, "t", "k")
    rec = runs.Record(d / "run.json", test="t")
    on_disk = json.loads((d / "run.json").read_text())
    assert on_disk["verdict"] == "error" and on_disk["reason"].startswith("incomplete")
    (d / "console.log").write_text("x\n")
    rec.finish("pass", "ok")
    on_disk = json.loads((d / "run.json").read_text())
    assert (on_disk["verdict"], on_disk["reason"], on_disk["artifacts"]) == ("pass", "ok", ["console.log"])
    assert on_disk["finished_at"] and on_disk["duration_s"] >= 0
    assert not [n for n in os.listdir(d) if n.startswith(".")]  # no temporary file left
