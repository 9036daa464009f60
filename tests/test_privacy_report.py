"""The demo's privacy section: built from the figures the privacy benchmarks recorded, or saying they are absent."""

from __future__ import annotations

from pathlib import Path

from homeloop.demo.privacy import recorded_privacy_section


def test_privacy_section_shows_the_recorded_benchmark_figures(tmp_path: Path) -> None:
    section = recorded_privacy_section(tmp_path)
    captions = [caption for caption, _, _ in section.tables]
    assert any("epsilon" in c for c in captions)
    speed = [c for c in captions if c.startswith("Speed")]
    assert len(speed) == 2 and "batch 64," in speed[0] and "batch 256," in speed[1]
    for name, _ in section.figures:
        assert (tmp_path / name).stat().st_size > 0
    assert "not re-measured by this demo run" in section.paragraphs[-1]
    assert not any("Absent" in p for p in section.paragraphs)
    attacked = [c for c in captions if c.startswith("Attacks against epsilon")]
    assert len(attacked) == 2 and "fast encoder" in attacked[0] and "linear probe" in attacked[1]
    assert any("amount of training data" in c for c in captions)


def test_privacy_section_says_plainly_when_the_recorded_figures_are_absent(tmp_path: Path) -> None:
    section = recorded_privacy_section(tmp_path / "report", folder=tmp_path / "nothing-here")
    assert section.tables == [] and section.figures == []
    assert section.paragraphs[-1].startswith("<b>Absent:</b>") and "dp_utility.json" in section.paragraphs[-1]


def test_privacy_section_names_the_one_recorded_file_that_is_absent(tmp_path: Path) -> None:
    from homeloop.demo.recorded_figures import RECORDED

    folder = tmp_path / "recorded"
    folder.mkdir()
    for name in ("dp_utility.json", "privacy_attacks.json", "privacy_attacks_probe.json", "dp_speed_batch64.json",
                 "dp_speed_batch256.json"):  # fmt: skip
        (folder / name).write_text((RECORDED / name).read_text())
    section = recorded_privacy_section(tmp_path / "report", folder=folder)
    assert not any("amount of training data" in c for c, _, _ in section.tables)
    assert "not re-measured by this demo run" in section.paragraphs[-2]
    assert "Absent" in section.paragraphs[-1] and "dp_utility_data_size.json" in section.paragraphs[-1]
    assert "dp_utility.json" not in section.paragraphs[-1]
