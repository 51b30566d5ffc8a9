"""headsetd_workstation_seat_active: logind's seat0 state file, read as logind writes it."""

from __future__ import annotations

from pathlib import Path

from headsetd.seat import seat_active


def test_no_logind_means_no_answer(tmp_path: Path) -> None:
    assert seat_active(tmp_path / "missing") is None


def test_an_active_session_on_seat0(tmp_path: Path) -> None:
    # As systemd-logind writes /run/systemd/seats/seat0 (src/login/logind-seat.c).
    (tmp_path / "seat0").write_text(
        "# This is private data. Do not parse.\nIS_SEAT0=1\nCAN_MULTI_SESSION=1\n"
        "CAN_TTY=1\nCAN_GRAPHICAL=1\nACTIVE=3\nACTIVE_UID=1000\nSESSIONS=3\nUIDS=1000\n"
    )
    assert seat_active(tmp_path) is True


def test_a_seat_without_an_active_session(tmp_path: Path) -> None:
    (tmp_path / "seat0").write_text("IS_SEAT0=1\nCAN_MULTI_SESSION=1\nACTIVE=\n")
    assert seat_active(tmp_path) is False
    (tmp_path / "seat0").unlink()
    assert seat_active(tmp_path) is False  # logind runs, but there is no seat0 (a server)
