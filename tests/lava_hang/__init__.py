"""A Lava process that never finishes its step: the watchdog test's subject.

It lives in its own package because Lava's compiler executes every .py file beside a process
module when it searches for process models.
"""
