"""The drift explorer's data: token texts that join back into the evaluated text, scored
positions in evaluation order, worst passages by hand, and escaped HTML."""
import numpy as np

from qcompare.core.registry import parse_method_arg
from qcompare.core.specs import CorpusSpec
from qcompare.explore import drift
from qcompare.jobs import worker
from qcompare.jobs.submit import build_specs
from qcompare.sources.corpora import embedded_text
from qcompare.sources.models import model_from_arg
from qcompare.store.tokenscores import TokenScores


def test_a_run_keeps_the_text_of_every_token_and_its_top_token_changes(tiny_model_dir, state_dir,
                                                                       tiny_eval):
    model = model_from_arg(str(tiny_model_dir))
    specs = build_specs(model, [parse_method_arg(m) for m in ("fp32", "rtn:bits=2,granularity=tensor")],
                        CorpusSpec(), tiny_eval)
    rows = [worker.run(s, state_dir) for s in specs]
    p = drift.read_pieces(state_dir, rows[1]["reference_key"])
    assert len(p.pieces) == tiny_eval.tokens
    assert embedded_text().startswith("".join(p.pieces))           # they join back into the text
    scores = TokenScores(state_dir).read(rows[1]["key"])
    assert len(p.scored) == len(scores["kl"]) == rows[1]["n_scored"]
    assert not (p.scored % tiny_eval.window == 0).any()             # each window's first: unscored
    assert scores["same_top"].mean() == rows[1]["top1_agree"]
    values = drift.values_by_position(p, scores["kl"])
    assert np.isnan(values[0]) and np.nansum(values) == scores["kl"].sum()


def test_worst_passages_by_hand():
    v = np.array([0.0] * 4 + [1.0] * 4 + [0.5] * 4)
    assert drift.worst_passages(v, n=2, size=4) == [(4, 1.0), (8, 0.5)]


def test_html_is_escaped_coloured_and_greys_unscored_tokens():
    p = drift.Pieces(["<b>", " & ", "ok"], np.array([1, 2]))
    values = drift.values_by_position(p, np.array([0.5, 0.0]))
    out = drift.html_span(p, values, 0, 3, scale=1.0)
    assert "&lt;b&gt;" in out and "&amp;" in out and "<b>" not in out
    assert "color:#999" in out and "rgba(214,39,40,0.500)" in out and 'title="KL 0.5000"' in out
    changed = np.array([False, True, False])
    assert "rgba(255,170,0" in drift.html_span(p, values, 0, 3, 1.0, changed)
