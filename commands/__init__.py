"""The command shell: the ``rssnn`` entry point and the commands that drive the rooms below it.

This room sits above ``train``, ``export`` and ``lava_procs`` and may import any of them; nothing
below imports it. Installed, it is ``rssnn.commands`` (pyproject's package-dir), like ``train``.
"""
