"""Fixtures for the durability tests: the integration harness, reused.

tests/integration/conftest.py is loaded under the module name fm_harness
(not "conftest", which pytest uses for every conftest.py it loads) and its
fixtures are re-exported here; test files import helpers from fm_harness
(Broker, Client, wait_for, props, ...) and mqttraw.
"""
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_INTEGRATION = os.path.join(os.path.dirname(_HERE), "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)

if "fm_harness" in sys.modules:
    fm_harness = sys.modules["fm_harness"]
else:
    _spec = importlib.util.spec_from_file_location("fm_harness",
                                                   os.path.join(_INTEGRATION, "conftest.py"))
    fm_harness = importlib.util.module_from_spec(_spec)
    sys.modules["fm_harness"] = fm_harness
    _spec.loader.exec_module(fm_harness)

# Everything public, fixtures included (pytest finds those by their marker).
# Being a superset of tests/integration/conftest.py also keeps
# `from conftest import ...` in tests/integration working when one pytest run
# collects both folders (pytest imports every conftest.py as "conftest").
globals().update({k: v for k, v in vars(fm_harness).items() if not k.startswith("_")})
