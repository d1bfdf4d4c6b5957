"""Stopping training cleanly on SIGTERM / SIGINT (preemption, Ctrl-C).

Exit statuses of the command-line tools (``experiments.run``,
``experiments.sweep``):

* ``0``: finished.
* ``EXIT_RESUMABLE`` (75, ``EX_TEMPFAIL``): stopped by a signal after saving a
  checkpoint of the last finished step; run the same command again to resume.
"""

EXIT_RESUMABLE = 75
