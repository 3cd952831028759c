"""Progress output: a bar on a terminal, plain periodic lines in a log (no carriage-return flood)."""
from __future__ import annotations

import io

from ovbench.progress import LineProgress, progress_bar


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_stream_gets_plain_lines_without_carriage_returns():
    out = io.StringIO()
    bar = progress_bar(100, "sweep", unit="trial", file=out, interval_s=3600)
    assert isinstance(bar, LineProgress)
    for _ in range(99):
        bar.update(1)  # inside the interval: silent
    assert out.getvalue() == ""
    bar.write("trial 3: COMPLETE")
    bar.update(1)  # reaching the total always prints
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0] == "trial 3: COMPLETE"
    assert lines[1].startswith("sweep: 100/100 trial")
    assert len(lines) == 2  # close after completion adds nothing


def test_line_progress_reports_eta_and_postfix_when_interval_elapses():
    out = io.StringIO()
    bar = LineProgress(10, "pretrain-clip", unit="step", file=out, interval_s=0.0)
    bar.update(5)
    bar.set_postfix(loss="0.500")
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("pretrain-clip: 5/10 step") and "eta" in last and "[loss=0.500]" in last


def test_terminal_gets_tqdm():
    from tqdm import tqdm

    bar = progress_bar(3, "x", file=_Tty())
    try:
        assert isinstance(bar, tqdm)
    finally:
        bar.close()
