"""The command shell: the ``rssnn`` entry point and the commands that drive the rooms below it.

This room sits above ``train``, ``export`` and ``lava_procs`` and may import any of them; nothing
below imports it. Installed, it is ``rssnn.commands`` (pyproject's package-dir), like ``train``.
"""

from rssnn import _refuse_a_bare_name

_refuse_a_bare_name(__name__)  # its modules import each other relatively: one package, one copy
