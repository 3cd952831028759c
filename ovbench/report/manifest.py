"""Which study a report folder holds, so ``ovbench report`` never silently replaces another study's report.

``reports/<study>/`` is committed. A user who runs the same ablation file on
their own machine gets a study of the same name in *another* storage; writing
its report over the committed one would lose measured results without a word.
So every report folder carries ``report.json``: the study name, the storage it
was read from (password masked), when, and the files the report wrote.

Before writing, :func:`check_writable` compares that record with the study
about to be reported:

* same study (same name in the same storage): rewrite; files the previous
  report wrote and this one does not (e.g. a plot for a dropped parameter) are
  removed, so the folder never mixes two reports;
* another study or storage, or a folder with report files but no record
  (written before ovbench kept one): refuse, naming both, unless ``force``.

Files in the folder that no report wrote (``notes.md``, ``bars.md``, the CI
``baseline.json``) are never touched.

The record is written twice: :func:`begin`, before the first file, names the study and marks the report
incomplete; :func:`finish` lists what was written. A report that stops half-way (an error in a plot)
thus leaves a folder that still says whose it is, so running it again needs no ``--force``, and another
study is still refused.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional

from ovbench.errors import InputError

MANIFEST = "report.json"
#: the names a report writes (``table.<fmt>``, ``summary.*``, ``trials.csv``, plots, panels): a folder holding
#: one of them and no manifest holds a report of unknown origin
REPORT_PATTERNS = ("table.*", "summary.*", "trials.csv", "*_vs_*.png", "*_vs_*.svg", "panel_*.png")


class ReportOverwrite(InputError):
    """The report folder holds another study's report; ``--force`` or another ``--out`` is needed."""


@dataclass
class ReportManifest:
    study: str
    storage: str  # display URL: never a password
    written_at: str = ""
    files: List[str] = field(default_factory=list)
    complete: bool = True  # False from :func:`begin` until :func:`finish`

    def same_study(self, other: "ReportManifest") -> bool:
        return (self.study, self.storage) == (other.study, other.storage)

    def describe(self) -> str:
        when = f", written {self.written_at}" if self.written_at else ""
        state = "" if self.complete else " (incomplete: its report stopped before it finished)"
        return f"study {self.study!r} in {self.storage}{when}{state}"


def read_manifest(out_dir: Path) -> Optional[ReportManifest]:
    """The folder's record, or None when it has none (a new folder, or one written before records)."""
    path = out_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return ReportManifest(study=str(data["study"]), storage=str(data["storage"]),
                              written_at=str(data.get("written_at", "")), files=list(data.get("files", [])),
                              complete=bool(data.get("complete", True)))
    except (ValueError, KeyError, TypeError) as e:
        raise ReportOverwrite(f"{path}: unreadable report record ({e}); expected JSON with 'study' and "
                              "'storage'. Pass --force to replace the report, or --out DIR to write elsewhere") from None


def _report_files(out_dir: Path) -> List[Path]:
    return sorted({p for pattern in REPORT_PATTERNS for p in out_dir.glob(pattern) if p.is_file()})


def check_writable(out_dir: Path, incoming: ReportManifest, force: bool = False) -> List[str]:
    """Refuse (``ReportOverwrite``) to write ``incoming``'s report over another study's.

    Returns the names of the files the folder's current report wrote, which this one replaces.
    """
    previous = read_manifest(out_dir)
    on_disk = [p.name for p in _report_files(out_dir)]
    # a record from begin() of a report that stopped half-way lists less than it left on disk
    old_files = sorted(set(previous.files) | set(on_disk)) if previous is not None else on_disk
    if force or (previous is not None and previous.same_study(incoming)) or not old_files:
        return old_files
    held = previous.describe() if previous is not None else \
        "a report with no record of its study (written before ovbench kept one)"
    raise ReportOverwrite(
        f"{out_dir}/ holds {held}; this report is of study {incoming.study!r} in {incoming.storage}. "
        "Refusing to replace it: pass --force to replace it, or --out DIR to write elsewhere"
    )


def begin(out_dir: Path, incoming: ReportManifest, old_files: List[str]) -> None:
    """Claim the folder for ``incoming`` before anything is written: an incomplete record that still lists
    the replaced report's files (:func:`finish` removes those this report does not write again)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = ReportManifest(incoming.study, incoming.storage, "", sorted(set(old_files)), complete=False)
    (out_dir / MANIFEST).write_text(json.dumps(asdict(record), indent=1) + "\n")


def finish(out_dir: Path, incoming: ReportManifest, written: List[Path], old_files: List[str]) -> ReportManifest:
    """Record what this report wrote and remove what the replaced report wrote and this one did not."""
    names = sorted({p.name for p in written})
    # the folder is this study's (check_writable): report files this run did not write are stale, and an
    # earlier run that stopped half-way may have left some its record does not list
    leftovers = {p.name for p in _report_files(out_dir)}
    for stale in (set(old_files) | leftovers) - set(names):
        if Path(stale).name == stale:  # a bare file name of this folder, never a path out of it
            (out_dir / stale).unlink(missing_ok=True)
    record = ReportManifest(incoming.study, incoming.storage, time.strftime("%Y-%m-%dT%H:%M:%S%z"), names)
    (out_dir / MANIFEST).write_text(json.dumps(asdict(record), indent=1) + "\n")
    return record
