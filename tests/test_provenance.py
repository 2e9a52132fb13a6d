"""Which code made a run: versions in records, and a line wherever a folder mixes them."""

from __future__ import annotations

import dataclasses

from seqrec import __version__
from seqrec.app import build_report
from seqrec.experiment import GridRequest, build_grid
from seqrec.experiments import EXPERIMENTS
from seqrec.provenance import _git_head, code_version, version_text, versions_line
from seqrec.record import read_record, write_record
from seqrec.runner import RunOptions, run_dir, run_specs

OPTIONS = RunOptions(progress=False, tensorboard=False)


def test_version_text_and_the_line_for_mixed_versions():
    here = code_version()
    assert version_text({"seqrec": "0.2.0"}) == "0.2.0"
    assert version_text({"seqrec": "0.3.0", "commit": "1a2b3c4d5e6f"}) == "0.3.0 (1a2b3c4d)"
    assert version_text({}) == "unknown"
    assert versions_line([here, here]) is None and versions_line([]) is None
    line = versions_line([here, {"seqrec": "0.2.0"}, {"seqrec": "0.2.0"}])
    assert line.startswith("finished runs came from more than one version: 2 by seqrec 0.2.0, "
                           f"1 by seqrec {version_text(here)}")
    assert "another version: 1 by seqrec 0.1.0" in versions_line([{"seqrec": "0.1.0"}])


def test_records_carry_the_version_and_a_run_into_a_folder_of_another_says_so(tmp_path):
    specs = build_grid(EXPERIMENTS["exp4"], GridRequest("exp4", "smoke", models=(),
                                                        baselines=("pop", "recent"),
                                                        chunks=(0,)))
    first = run_specs(specs[:1], tmp_path, OPTIONS, log=lambda _: None)
    assert first[0].versions["seqrec"] == __version__
    assert first[0].versions["commit"] == code_version()["commit"]
    # The finished run as an older seqrec would have left it.
    folder = run_dir(tmp_path, specs[0])
    old = read_record(folder)
    write_record(folder, dataclasses.replace(old, versions={**old.versions, "seqrec": "0.2.0",
                                                             "commit": ""}))
    logs = []
    run_specs(specs, tmp_path, OPTIONS, log=logs.append)
    assert logs[0].startswith("finished runs came from another version: 1 by seqrec 0.2.0")
    logs.clear()
    run_specs(specs, tmp_path, OPTIONS, log=logs.append)  # nothing to train: no line
    assert not any("another version" in line or "more than one" in line for line in logs)


def test_the_commit_of_a_checkout_is_read_from_its_files(tmp_path):
    sha = "0123456789abcdef0123456789abcdef01234567"
    git = tmp_path / "repo" / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text(sha + "\n")
    assert _git_head(tmp_path / "repo") == sha
    (git / "refs" / "heads" / "main").unlink()  # packed
    (git / "packed-refs").write_text(f"# pack-refs\n{sha} refs/heads/main\n")
    assert _git_head(tmp_path / "repo") == sha
    (git / "HEAD").write_text(sha[::-1] + "\n")  # detached
    assert _git_head(tmp_path / "repo") == sha[::-1]
    # A worktree: .git is a file naming its folder, whose refs live in the common folder.
    wt_git = git / "worktrees" / "wt"
    wt_git.mkdir(parents=True)
    (wt_git / "HEAD").write_text("ref: refs/heads/main\n")
    (wt_git / "commondir").write_text("../..\n")
    (tmp_path / "wt").mkdir()
    (tmp_path / "wt" / ".git").write_text(f"gitdir: {wt_git}\n")
    assert _git_head(tmp_path / "wt") == sha
    assert _git_head(tmp_path / "nothing") == ""


def test_the_report_names_the_code_and_warns_when_a_grid_mixes_versions(tmp_path):
    specs = build_grid(EXPERIMENTS["exp4"], GridRequest("exp4", "smoke", models=(),
                                                        baselines=("pop", "recent"),
                                                        chunks=(0,)))
    run_specs(specs, tmp_path, OPTIONS, log=lambda _: None)
    text = build_report(tmp_path).read_text()
    assert f"Trained by seqrec {version_text(code_version())}" in text
    assert "more than one version" not in text
    folder = run_dir(tmp_path, specs[0])
    old = read_record(folder)
    write_record(folder, dataclasses.replace(old, versions={**old.versions, "seqrec": "0.2.0",
                                                             "commit": ""}))
    text = build_report(tmp_path).read_text()
    assert ("WARNING: these runs came from more than one version of seqrec (1 by seqrec 0.2.0, "
            f"3 by seqrec {version_text(code_version())})") in text
