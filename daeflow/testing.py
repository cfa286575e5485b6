"""Conformance kit for plugin authors: call `check_architecture` or `check_objective` from
your tests.

    from daeflow.testing import check_architecture, check_objective

    def test_my_arch_conforms():
        check_architecture("my_arch")

    def test_my_objective_conforms():
        check_objective("my_objective")

The kit itself lives in `daeflow.workflow.conformance`; this is its public name.
"""

from daeflow.workflow.conformance import (
    ConformanceError,
    ObjectiveReport,
    Report,
    check_architecture,
    check_objective,
)

__all__ = ["ConformanceError", "ObjectiveReport", "Report", "check_architecture", "check_objective"]
