"""The claims where the truth is known: on the validation experiment's generated logs, claim 1
("the user matters little") must be contradicted where a taste is planted, claim 2 ("long-term
dependencies matter little") must be contradicted through the DNC at the long window where a
long-range recall is planted, and neither may be contradicted where nothing is planted.

Smoke size, trimmed to the runs the claims read (docs/validation.md has the full check): two
seeds (a comparison needs two trainings to decide anything), and the DNC's training shortened
to five epochs of batches of 512 at a higher learning rate.
"""

from __future__ import annotations

import pytest

from seqrec.app.verdicts import planted_claims
from seqrec.experiments import grid
from seqrec.ranks import RanksReader
from seqrec.runner import RunOptions, run_specs
from seqrec.validate import scenario_of

# The GRUs: three seeds of the smoke size, five epochs instead of eight. The DNC, ten times
# slower a window: two seeds, a long window of 7 instead of 10 (6 inputs: the recalled play, 5
# back, is in view), five epochs of batches of 512 at a higher learning rate.
LONG = 7
GRU_SETTINGS = ["seeds=3", "epochs=5"]
DNC_SETTINGS = ["seeds=2", f"validate.long_len={LONG}", "epochs=5", "batch_size=512", "lr=0.03"]
WANTED = {("taste", "gru", 4), ("taste", "user_gru", 4),
          ("long_range", "dnc", 4), ("long_range", "dnc", LONG),
          ("neither", "gru", 4), ("neither", "user_gru", 4), ("neither", "gru", 10)}


def _specs(settings, models):
    return [s for s in grid("validate", "smoke", settings, models=models, baselines=())
            if (scenario_of(s.group), s.model, s.value) in WANTED]


@pytest.mark.slow
def test_claims_find_the_planted_truth(tmp_path):
    specs = _specs(GRU_SETTINGS, ("gru", "user_gru")) + _specs(DNC_SETTINGS, ("dnc",))
    assert len(specs) == 3 * 5 + 2 * 2
    records = run_specs(specs, tmp_path, RunOptions(device="cpu", progress=False,
                                                    tensorboard=False), log=lambda *a: None)
    assert all(r.ok for r in records)
    table, results = planted_claims(records, RanksReader(tmp_path), n_boot=1000)
    print("\n" + table.to_string())
    verdicts = {(row.Scenario, row.Claim): row.Verdict for row in table.itertuples()}
    assert verdicts["taste", "1"] == "contradicted"
    assert verdicts["long_range", "2"] == "contradicted"
    via = table.set_index(["Scenario", "Claim"]).loc[("long_range", "2")]
    assert via["As expected"] == "yes"
    assert via["Deciding comparison"].startswith(f"DNC, seq_len={LONG}")
    assert verdicts["neither", "1"] in ("supported", "undecided")
    assert verdicts["neither", "2"] in ("supported", "undecided")
    assert (table["As expected"] != "NO").all()
    # what decided them
    taste = results["taste", "1"].deciding
    assert taste.effect.n_cells == 3 and taste.effect.low > 0 and taste.effect.p_value < 0.05
