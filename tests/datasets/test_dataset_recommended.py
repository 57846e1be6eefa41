"""``explain-dataset --method recommended``: the benchmark's method for the
model's family, named with the reason before the run."""
import json

from dataset_helpers import TinyNet, write_photos

from pytorch_grad_cam.app import recommended_table
from pytorch_grad_cam.cli.models import LoadedModel
from pytorch_grad_cam.datasets.cli import main


def test_recommended_is_resolved_and_printed(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(recommended_table, "RECOMMENDED", {
        "cnn": {"method": "xgradcam", "reason": "best on the benchmark"}})
    write_photos(tmp_path / "photos", 2)
    out = tmp_path / "out"
    argv = [str(tmp_path / "photos"), "--out", str(out), "--no-progress", "--workers", "0",
            "--method", "recommended"]
    assert main(argv, load=lambda args: LoadedModel(TinyNet(), "tiny", 32)) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "recommended for CNN: xgradcam (best on the benchmark)"
    assert "explaining 2 of 2 images with xgradcam at features.4 on cpu" in printed
    assert json.loads((out / "config.json").read_text())["config"]["methods"] == ["xgradcam"]
