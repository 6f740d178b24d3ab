"""Everything that runs inside Lava: processes, their CPU models, the network builder, the runner.

Process packages (``dlif``, ``monitor``, ``io``) hold only ``process.py`` and ``models.py``:
Lava's compiler executes every ``.py`` file beside a process module when it looks for models.
"""
