"""files.py: whole files or none, and the one reader of export files."""

import pytest
import yaml

from sweetspot.core.atomic_files import atomic_file, write_atomically
from sweetspot.errors import FileError
from sweetspot.results.export_file import read_export

TEACHER = {"trial": 3, "best": True, "params": {"batch_size": 64, "epochs": 2}, "metrics": {},
           "recipe": {"dataset": "digits", "arch": "mlp", "optimizer": "adam", "lr": 1e-3, "batch_size": 64,
                      "epochs": 2, "seed": 7}}


def test_write_atomically_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.yaml"
    write_atomically(target, "a: 1\n")
    assert target.read_text() == "a: 1\n" and [p.name for p in tmp_path.iterdir()] == ["out.yaml"]
    with pytest.raises(FileError, match="directory .* does not exist"):
        write_atomically(tmp_path / "missing" / "x.yaml", "")


def test_atomic_file_removes_its_temporary_file_when_the_block_fails(tmp_path):
    target = tmp_path / "weights.pt"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        (tmp_path / tmp).write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_a_file_written_whole_has_the_mode_a_plain_write_gives(tmp_path):
    """mkstemp makes its file 0o600; an export or an unpacked dataset shared with the group must not
    be, so the file gets what ``open(path, "w")`` would give under this umask."""
    import stat

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_atomically(tmp_path / "whole.txt", "x")
    mode = stat.S_IMODE((tmp_path / "whole.txt").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode)


def test_atomic_file_names_no_flag(tmp_path):
    # a library helper says what is wrong in its own terms; the CLI adds the flag it came from
    with pytest.raises(FileError) as caught:
        write_atomically(tmp_path / "missing" / "x.ckpt", "")
    assert "--" not in str(caught.value)


def _write(tmp_path, document) -> str:
    path = tmp_path / "export.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return str(path)


def test_read_export_takes_a_valid_export(tmp_path):
    document = {"config": {"name": "digits"}, "teachers": [TEACHER, {**TEACHER, "trial": 4, "best": False}]}
    assert read_export(_write(tmp_path, document)) == document


@pytest.mark.parametrize(("document", "message"), [
    ("a: [1, 2", "not a `sweetspot export` file \\(not YAML or JSON\\)"),
    ("- just\n- a list\n", "needs a config and a list of teachers"),
    ({"config": {}, "teachers": []}, "needs a config and a list of teachers"),
    ({"config": {}, "teachers": [{k: v for k, v in TEACHER.items() if k != "recipe"}]}, "lacks recipe"),
    ({"config": {}, "teachers": [{**TEACHER, "recipe": {"arch": "mlp"}}]}, "lacks recipe.dataset, recipe.optimizer"),
    ({"config": {}, "teachers": [TEACHER, TEACHER]}, "exactly one teacher must be marked best"),
])
def test_read_export_refuses_what_is_not_an_export_in_one_line(tmp_path, document, message):
    with pytest.raises(FileError, match=message) as caught:
        read_export(_write(tmp_path, document))
    assert "\n" not in str(caught.value)


def test_read_export_of_a_missing_file_keeps_its_cause(tmp_path):
    with pytest.raises(FileError, match="cannot read") as caught:
        read_export(tmp_path / "nowhere.yaml")
    assert isinstance(caught.value.__cause__, FileNotFoundError)
