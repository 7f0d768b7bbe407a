"""The multi-engine eval CLI: one pass embeds with both engines into a cache, a rerun
scores every engine setting from the cache alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.face.__main__ import main


def test_eval_every_engine_from_one_cached_pass(
    faces_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a small set of the shared photos: 3 same-person and 3 different-person pairs
    photos = {n: faces_dir / "faces" / n / "1.jpg" for n in ("obama", "biden", "clapton")}
    seconds = {n: faces_dir / "faces" / n / "2.jpg" for n in photos}
    rows = [f"{photos[n]},{seconds[n]},1" for n in photos]
    rows += [f"{photos['obama']},{photos['biden']},0", f"{photos['biden']},{seconds['clapton']},0",
             f"{seconds['obama']},{photos['clapton']},0"]  # fmt: skip
    data = tmp_path / "set"
    data.mkdir()
    (data / "pairs.csv").write_text("img_a,img_b,same\n" + "\n".join(rows) + "\n")
    cache, out = tmp_path / "emb.npz", tmp_path / "report.json"
    args = ["eval", "--data", str(data), "--engine", "sface", "--workers", "1",
            "--embeddings", str(cache), "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    first = json.loads(out.read_text())
    assert "embeddings computed" in capsys.readouterr().out and cache.is_file()
    assert main(args) == 0
    assert "embeddings from cache" in capsys.readouterr().out
    again = json.loads(out.read_text())
    assert first["headline"] == "sface" and first["failed_images"] == 0
    assert set(first["modes"]) == {"dlib", "sface", "both", "fused", "both-live", "fused-live"}
    for mode, report in first["modes"].items():
        assert report == again["modes"][mode]
        # these six pairs are easy: every setting separates them at the deployed 0.60
        assert report["eer"] == 0.0 and report["deployed"]["accuracy"] == 1.0, mode
    line = first["calibration_line"]
    assert set(line["curves"]) == {"dlib", "sface", "both", "fused"}
    assert set(line["params"]) == {"sface_threshold", "fusion"}
