"""One learner run, end to end, as stages that hand typed records to each other.

The run is built so that the registry only ever changes for a reason that is written down
(``once.py`` composes the stages in this order):

1. pin the timeline's Delta version; skip when this policy's last run already read it
   (``data.py``);
2. read the window, densify; 3. split train/eval by a stable hash of ``episode_id``;
   too little data rejects (``data.py``);
4. load the incumbent (``CURRENT``, sha256-verified), fit the normalizer on the train split,
   train (warm start from the incumbent when its features and actions match); divergence
   rejects (``training.py``);
5. export the candidate to TorchScript *first* and evaluate the exported module -- what CPE
   judges is byte for byte what would be served -- and the incumbent through its own served
   module on the same eval split (``evaluation.py``, ``served.py``);
6. ask the gate (``gate.py``);
7. reject, or publish: store the version unpromoted, write the report, append to ``gate_log``,
   and only then swap ``CURRENT``; any failure before the swap discards the stored version, so
   a failed run leaves the registry exactly as it was (``outcome.py``, ``manifest.py``);
8. the report and the metrics (Pushgateway or textfile) fill in as stages finish
   (``ledger.py``).

``records.py`` holds the records the stages pass; ``external.py`` the CPE of a policy that is
not being published (``policyloop cpe``).
"""

from learner.run.data import NO_DATA_HINT
from learner.run.external import ExternalEvaluation, evaluate_external, read_target_probs
from learner.run.once import run_once
from learner.run.records import RunResult
from learner.run.served import align_to_policy, served_probs

__all__ = [
    "NO_DATA_HINT",
    "ExternalEvaluation",
    "RunResult",
    "align_to_policy",
    "evaluate_external",
    "read_target_probs",
    "run_once",
    "served_probs",
]
