"""Which method for this model? The ranking in the Compare view, per session."""

import numpy as np
import pytest

from tests.conftest import settle
from tests.dashboard.test_app import app, no_errors


@pytest.mark.slow
def test_compare_view_ranks_the_methods_for_its_session_only() -> None:
    at = app().run()
    at.switch_page("views/compare.py").run()
    assert not at.dataframe  # nothing is ranked until asked
    settle(at.button(key="rank_methods").click().run())
    no_errors(at)
    (table,) = [frame.value for frame in at.dataframe]
    ranked = table[table["faithfulness"].notna()]
    assert {"tree-shap", "permutation-shap"} <= set(ranked["method"])
    assert list(ranked["faithfulness"]) == sorted(ranked["faithfulness"], reverse=True)
    np.testing.assert_allclose(
        ranked["faithfulness"], (ranked["deletion"] + ranked["insertion"]) / 2, rtol=1e-9
    )
    assert (ranked["faithfulness"] > 1).all()  # every method beats random orders here
    assert (ranked["seconds per row"] > 0).all()
    refused = table.set_index("method").loc["integrated-gradients", "not ranked"]
    assert "needs a differentiable model" in refused

    at.run()  # a rerun shows the session's ranking without the button
    assert [frame.value.shape for frame in at.dataframe] == [table.shape]

    other = app().run()
    other.switch_page("views/compare.py").run()
    no_errors(other)
    assert not other.dataframe  # another session ranks for itself
