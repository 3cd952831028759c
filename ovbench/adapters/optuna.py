"""The one place ovbench reaches past optuna's public API (checked against optuna 5.0.0).

Private, and why:

* ``Study._storage`` (:func:`storage_of`): optuna has no public accessor for a study's
  storage, and ovbench's trial claim needs storage-level writes that ``Study`` lacks:
  creating a trial *directly in state RUNNING with its owner and heartbeat* in one write
  (``create_new_trial(template_trial=...)``), so that no claimed trial is ever visible
  without its owner (``Study.ask`` + attribute writes are separate writes, and a worker
  killed between them leaves an ownerless RUNNING trial), and setting attributes of a
  trial by id while reconciling trials of dead workers.

What is public and used as such: every ``BaseStorage`` method, ``Study.ask``/``tell``,
and the id look-ups below (:func:`study_id_of`, :func:`trial_id_of`), which replace the
private ``Study._study_id`` / ``FrozenTrial._trial_id`` at the cost of one query each.

Why the claim does not use optuna 5's ``enqueue_trial`` + ``ask`` (which does pop a
WAITING trial atomically in RDB storages, ``set_trial_state_values`` under
``SELECT ... FOR UPDATE``): a claim is more than a pop. Under one critical section it
settles trials of dead workers (same-host pid liveness and recovery of a finished
``result.json``, which optuna's RDB-only heartbeat does not do: it only fails them),
re-offers their points, honours ``--rerun``, and answers "nothing left" instead of
creating a fresh trial as ``ask`` does on an empty queue; enqueueing itself is not
atomic (``skip_if_exists`` reads then writes). That section is
:class:`ovbench.sweep.lock.StorageLock`, which only uses public storage methods.
"""
from __future__ import annotations

from typing import Union

import optuna
from optuna.trial import FrozenTrial


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage behind ``study`` (private ``Study._storage``; see the module docstring)."""
    return study._storage


def study_id_of(study: optuna.Study) -> int:
    """The storage's id of ``study`` (public: looked up by name)."""
    return storage_of(study).get_study_id_from_name(study.study_name)


def trial_id_of(study: optuna.Study, trial: Union[FrozenTrial, optuna.Trial]) -> int:
    """The storage's id of a trial of ``study`` (public: looked up by its number)."""
    return storage_of(study).get_trial_id_from_study_id_trial_number(study_id_of(study), trial.number)
