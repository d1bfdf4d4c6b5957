"""Reading finished or partial runs and showing them: the HTML report, the
notebooks' helpers and plots.

The top of the library (beside ``sweeps/``): it reads workdirs and sweep
directories and may use every layer below; the picture primitives it draws
with live in ``visualisation/``.
"""
