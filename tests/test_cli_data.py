"""``neuromem data list|verify|path``: the catalogue, a corrupt file named, one clear line
without a data directory."""

from __future__ import annotations

from neuromem import cli


def test_list_names_every_dataset_and_its_source(capsys):
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("CA3 recording exp2_stress_testbench", "MNIST train", "SHD test"):
        assert name in out
    assert "ossci-datasets.s3.amazonaws.com/mnist" in out and "not downloadable" in out


def test_path_without_a_data_directory_is_one_line(capsys, monkeypatch):
    monkeypatch.delenv("NEUROMEM_DATA", raising=False)
    assert cli.main(["data", "path"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "neuromem: no data directory: pass one or set NEUROMEM_DATA"


def test_verify_marks_missing_and_corrupt_files(tmp_path, capsys):
    assert cli.main(["data", "verify", "--data", str(tmp_path)]) == 0  # empty: all missing
    out = capsys.readouterr().out
    assert "--  MNIST train" in out and "BAD" not in out
    (tmp_path / "ca3").mkdir()
    (tmp_path / "ca3" / "exp2_stress_testbench.json").write_text("{}")
    assert cli.main(["data", "verify", "--data", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "BAD CA3 recording exp2_stress_testbench" in out and "SHA-256" in out
