"""`mutmut run`, with each mutant's tests ordered fastest first.

mutmut runs, for each mutant, the tests that call the mutated function, with pytest's ``-x`` (stop at the first
failure), in no particular order. Ordering them by their measured duration makes a killed mutant stop at its cheapest
failing test, which is what keeps scripts/mutation.sh within its time budget. Arguments go to ``mutmut``.
"""

from __future__ import annotations

from typing import Any

import mutmut.__main__ as mutmut_main
from mutmut.state import state

_make_runner = mutmut_main.get_mutant_runner


def _runner_with_fastest_tests_first(*args: Any, **kwargs: Any) -> Any:
    runner = _make_runner(*args, **kwargs)
    submit = runner.submit

    def submit_sorted(mutant_name: str, tests: list[str], *rest: Any, **kw: Any) -> Any:
        durations = state().duration_by_test
        return submit(mutant_name, sorted(tests, key=lambda t: (durations.get(t, 0.0), t)), *rest, **kw)

    runner.submit = submit_sorted  # type: ignore[method-assign]
    return runner


mutmut_main.get_mutant_runner = _runner_with_fastest_tests_first  # type: ignore[assignment]

if __name__ == "__main__":
    mutmut_main.cli()
