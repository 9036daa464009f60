"""The demo's privacy section: built from the figures the privacy benchmarks recorded, or left out."""

from __future__ import annotations

from pathlib import Path

from homeloop.demo import BENCHMARK_RESULTS, _privacy


def test_privacy_section_shows_the_recorded_benchmark_figures(tmp_path: Path) -> None:
    section = _privacy(tmp_path)
    assert section is not None
    captions = [caption for caption, _, _ in section.tables]
    assert any("epsilon" in c for c in captions)
    speed = [c for c in captions if c.startswith("Speed")]
    assert len(speed) == 2 and "batch 64," in speed[0] and "batch 256," in speed[1]
    for name, _ in section.figures:
        assert (tmp_path / name).stat().st_size > 0
    assert "not re-measured by this demo run" in section.paragraphs[-1]
    attacked = [c for c in captions if c.startswith("Attacks against epsilon")]
    assert len(attacked) == 2 and "fast encoder" in attacked[0] and "linear probe" in attacked[1]
    assert any("amount of training data" in c for c in captions)
    assert (BENCHMARK_RESULTS / "dp_utility.json").is_file()


def test_privacy_section_is_left_out_without_recorded_figures(tmp_path: Path) -> None:
    assert _privacy(tmp_path / "report", results=tmp_path / "nothing-here") is None
