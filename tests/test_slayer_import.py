"""SLAYER's two unused heavy imports are deferred (train/slayer_import.py), and still work when
used: in a fresh interpreter, since the pytest worker may have imported them already."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

PROBE = """
import sys
import rssnn.train.slayer_import as si
heavy = [m for m in ('cv2', 'torchvision', 'torch.utils.hipify') if m in sys.modules]
print('heavy', heavy)
from lava.lib.dl import slayer
import torch.utils.cpp_extension as ce
assert ce is sys.modules['torch.utils.cpp_extension'] is __import__('torch').utils.cpp_extension
assert ce.__file__.endswith('cpp_extension.py') and 'torch.utils.hipify' not in sys.modules
print('cuda_home', type(ce.CUDA_HOME).__name__ in ('str', 'NoneType'))   # the real module now
assert 'torch.utils.hipify' in sys.modules and type(sys.modules['torch.utils.cpp_extension']) is type(sys)
print('bbox', slayer.object_detection.bbox.utils.__name__)
od = sys.modules['lava.lib.dl.slayer.object_detection']
assert 'torchvision' in sys.modules and slayer.object_detection is od and type(od) is type(sys)
"""


def test_slayer_imports_without_cv2_torchvision_or_hipify_and_they_load_when_used():
    res = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert "heavy []" in lines
    assert "cuda_home True" in lines
    assert "bbox lava.lib.dl.slayer.object_detection.boundingbox.utils" in lines
