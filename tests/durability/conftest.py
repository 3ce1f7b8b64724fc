"""The durability suite's fixtures and helpers: the harness module
tests/harness/fm_harness.py, re-exported (pytest finds the fixtures here;
test files import helpers from fm_harness, and mqttraw)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "harness"))

from fm_harness import *  # noqa: E402,F401,F403
