"""Conformance kit for architecture authors: call `check_architecture` from your tests.

    from daeflow.testing import check_architecture

    def test_my_arch_conforms():
        check_architecture("my_arch")

The kit itself lives in `daeflow.workflow.conformance`; this is its public name.
"""

from daeflow.workflow.conformance import ConformanceError, Report, check_architecture

__all__ = ["ConformanceError", "Report", "check_architecture"]
