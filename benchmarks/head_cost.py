"""What cheaper variants of the embedded CAT-Seg-style head would cost per training iteration.

    python benchmarks/head_cost.py                                     # the default variants below
    python benchmarks/head_cost.py --variant "no_guidance:model.aggregator.decoder_guidance_dims=[0,0]"

Why: after the speed issue's changes the forward is about 80% the head, and the head is compute
(benchmarks/trial_time.py): a 2x faster trial needs a cheaper head, and a cheaper head is a change of
the benchmark (a new version), so its cost must be known before a recipe is chosen for it. This
script answers only the cost side; what a variant scores is a study's question (several seeds).

Each variant is the block_size q=32 trial's config (``--ablation``/``--point``, as
benchmarks/trial_time.py builds it) with ``KEY=VALUE`` config overrides, built as a Runner with its
optimizer. On one pre-built training batch it times forward + backward + AdamW step (the bare loop of
benchmarks/trial_time.py), in rounds that visit every variant in turn so that drift of a shared
machine falls on all alike; it prints the median s/iter per variant, its ratio to the first variant
(the reference, measured in the same run), and the head's parameter count. Run it on a quiet machine
with ``--threads 1`` (the trials' thread count with 2 workers on 2 cores).

**Measured** (2026-12-03, this project's 2-core machine, otherwise idle, 1 thread, median of 3 rounds
x 5 iterations; two runs, each with its own reference, since the reference moved 1.20 -> 1.40 s/iter
between runs: this machine's run-to-run spread; compare ratios within a run):

| variant | head parameters | ratio to the v2 head |
|---|---|---|
| v2 head (hidden 32, 2 layers, decoder (16, 8): two x2 stages, 8x8 -> 32x32) | 90,421 | 1.00 |
| one decoder stage (16; 8x8 -> 16x16, output stride 4 as CAT-Seg's) | 86,873 | 0.76 |
| decoder at half width ((8, 4), guidance (4, 2)) | 82,355 | 0.91 |
| one aggregation layer | 58,645 | 0.83 |
| one decoder stage and one aggregation layer (second run) | 55,097 | 0.55 |
| no decoder (logits at 8x8, second run) | 73,697 | 0.69 |

The 32x32 stage is what the second decoder stage costs: dropping it saves a quarter of an iteration,
as the profile said. Halving the decoder's width saves less, and its rounds spread widely (0.95-1.29
s/iter): not a clear win. What a variant scores is a study's question: the one-stage decoder, in
ablations/decoder_stages.yaml (5 seeds), trained in 0.73x the time and was not distinguishable from
the v2 head's mean at 400 iterations (-0.41 ± 5.00), but with twice its seed spread
(reports/decoder_stages/notes.md). On v3's recipe it scored as the two-stage head with the same seed
spread (reports/decoder_v4/notes.md) and became benchmark v4's head. One aggregation layer on v4
(ablations/one_layer.yaml, 5 seeds, paired with noise_floor's v4 trials) scored -2.27 ± 2.98 synth_large
unseen mIoU (p = 0.10; lower on 3 of 4 metrics) and trained in 0.77x the time: not adopted
(reports/one_layer/notes.md).

**Measured against v4's head** (2026-12-05, this machine, otherwise idle, 1 thread, median of 3 rounds x
5 iterations, one run; ``--variant reference: --variant one_layer:model.aggregator.num_layers=1 ...``):

| variant | head parameters | s/iter | ratio to v4's head |
|---|---|---|---|
| v4 head (hidden 32, 2 layers, 4 heads, guidance 32, one decoder stage) | 86,873 | 0.557 | 1.00 |
| one aggregation layer | 55,097 | 0.368 | 0.66 |
| hidden 24 | 58,417 | 0.466 | 0.84 |
| 2 attention heads (same weights) | 86,873 | 0.472 | 0.85 |
| guidance 16 (appearance and text) | 76,601 | 0.527 | 0.95 |

Two heads instead of four cost the same arithmetic but 15% less time: on one core each head's small
matrix products cost more in overhead than in arithmetic. What it scores: ablations/two_heads.yaml
(the same as v4's head, reports/two_heads/notes.md). A second run the same day: 2 heads 0.90x (0.491
against 0.547 s/iter), 2 heads with hidden 24 0.80x (58,417 parameters; scores not measured). At
0.80x of the loop, a v4 trial (training 65 of 92.5 s) would be about 80 s, 1.8x a59a146's: still
short of issue 18's 2x.

A third run (2026-12-05, idle machine, 1 thread, median of 3 rounds x 5 iterations; reference 0.600
s/iter):

| variant | head parameters | ratio to v4's head |
|---|---|---|
| 2 heads | 86,873 | 0.93 |
| 1 head | 86,873 | 0.87 |
| 2 heads, hidden 24 | 58,417 | 0.77 |
| 2 heads, hidden 24, guidance 16 | 49,681 | 0.78 |
| 2 heads, one aggregation layer | 55,097 | 0.63 |
| 2 heads, hidden 16 | 36,617 | 0.64 |

The ratio of 2 heads moves between runs (0.85, 0.90, 0.93); narrower guidance buys nothing once the
width is 24. Two heads at hidden 16 keep both aggregation layers at the cost of one layer: the first
variant cheap enough for the 2x. What they score on two methods (5 seeds each, paired with noise_floor's
v4 trials): hidden 16 costs frozen CLIP 2.60 points (Holm p = 0.03; reports/two_heads_hidden16), and even
2 heads alone cost it 0.66 on every seed (reports/cheaper_heads_frozen). No measured head is both cheap
enough for the 2x and neutral on two methods.

**Fewer classes per training batch** (``model.train_classes``: the classes present plus random others; the
same head), 2026-12-05, idle machine, 1 thread, median of 3 rounds x 10 iterations over the same 10
training batches (``--batches 10``; one batch alone misleads here, since its classes set the cost):

| variant | s/iter | ratio to v4 |
|---|---|---|
| v4 (all 48 training classes) | 0.549 | 1.00 |
| 32 classes | 0.394 | 0.72 |
| 24 classes (about the classes present) | 0.331 | 0.60 |

Side by side in whole trials (ablations/train_classes_seeds.yaml) 32 classes trained in 0.70x (H-CLIP) and
0.68x (frozen) the time, enough for the 2x; over ten seeds H-CLIP scored as v4 (-0.28 ± 1.09) and frozen
CLIP lost 0.76 ± 0.59 (p = 0.02). Not adopted (reports/train_classes/notes.md).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from trial_time import bare_loop, parse_point, training_batches  # noqa: E402  (one bare loop, one definition)

# The reference is the config's own head: since benchmark v4 the one-stage decoder (the table above was
# measured against v1-v3's two-stage head, now the first variant).
DEFAULT_VARIANTS = [
    "reference:",
    "v3_two_stages:model.aggregator.decoder_dims=[16,8],model.aggregator.decoder_guidance_dims=[8,4]",
    "one_layer:model.aggregator.num_layers=1",
]


def parse_variant(text: str) -> Tuple[str, Dict[str, Any]]:
    """``NAME:KEY=VALUE,KEY=VALUE`` (values as YAML; no commas inside a value) -> name, overrides."""
    import yaml

    name, _, rest = text.partition(":")
    if not name:
        raise SystemExit(f"--variant {text!r}: expected NAME:KEY=VALUE,KEY=VALUE")
    overrides = {}
    for item in filter(None, _split_top_level(rest)):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--variant {text!r}: {item!r} is not KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    return name, overrides


def _split_top_level(text: str) -> List[str]:
    """Split on commas outside brackets, so ``k=[8,4],j=[4,2]`` gives two items."""
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[({"
        depth -= ch in "])}"
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    return items + [cur]


def build_runner(args: argparse.Namespace, overrides: Dict[str, Any]) -> Any:
    from mmengine.runner import Runner

    from ovbench.sweep import trial
    from ovbench.sweep.executor import prepare_datasets, trial_request
    from ovbench.sweep.spec import load_spec

    spec = load_spec(args.ablation)
    point = {**parse_point(args.point), "seed": args.seed}
    work = Path(tempfile.mkdtemp(prefix="head_cost_"))
    claim = SimpleNamespace(point=point, trial=SimpleNamespace(number=0), work_dir=work)
    req = trial_request(spec, claim, prepare_datasets(spec))
    req["overrides"] = {**req["overrides"], **overrides}
    runner = Runner.from_cfg(trial.build_config(req))
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    return runner


def head_params(runner: Any) -> int:
    from ovbench.sweep import trial

    return sum(p.numel() for p in trial.unwrap(runner.model).aggregator.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ablation", default="ablations/block_size.yaml")
    parser.add_argument("--point", nargs="*", default=["model.clip.peft.q=32"], help="KEY=VALUE of the space")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", action="append", metavar="NAME:KEY=VALUE,...",
                        help="a config variant (repeatable); the first is the reference (default: "
                             + "; ".join(v.split(':')[0] for v in DEFAULT_VARIANTS) + ")")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, default=1,
                        help="distinct training batches, taken in turn (more than 1 where a batch's content "
                             "sets the cost, as with model.train_classes)")
    args = parser.parse_args()
    os.chdir(ROOT)
    import torch

    import ovbench  # noqa: F401

    torch.set_num_threads(args.threads)
    variants = [parse_variant(v) for v in (args.variant or DEFAULT_VARIANTS)]
    runners = {name: build_runner(args, ov) for name, ov in variants}
    # the same first batches of the same seed's loader for every variant, reused every round
    batches = {name: training_batches(runner, args.batches) for name, runner in runners.items()}
    times: Dict[str, List[float]] = {name: [] for name, _ in variants}
    for r in range(args.rounds):
        for name, _ in variants:
            times[name].append(bare_loop(runners[name], args.iters, batches[name]))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {t[-1]:.3f}" for n, t in times.items()),
              flush=True)
    ref = statistics.median(times[variants[0][0]])
    print(f"\n# head variants: {args.ablation} {' '.join(args.point)}, {args.threads} thread(s), "
          f"median of {args.rounds} rounds x {args.iters} iterations over {args.batches} batch(es)\n")
    print("| variant | overrides | head parameters | s/iter | ratio to " + variants[0][0] + " |")
    print("|---|---|---|---|---|")
    for name, ov in variants:
        med = statistics.median(times[name])
        ovs = ", ".join(f"{k}={v}" for k, v in ov.items()) or "-"
        print(f"| {name} | {ovs} | {head_params(runners[name]):,} | {med:.3f} | {med / ref:.2f} |")


if __name__ == "__main__":
    main()
