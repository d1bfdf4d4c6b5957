"""Aggregates a sweep: ``python -m experiments.aggregate --sweep_dir=<dir>``.

Writes ``results.csv`` (one row per finished run), ``summary.md`` (mean and
standard deviation over seeds per model and hyperparameters), ``missing.txt`` (runs not
finished, with their status) and the PNG figures of docs/sweeps.md into
``--out_dir`` (default: the sweep dir): among them the rank correlation of
every metric and, once ``python -m experiments.udr`` has scored the sweep,
UDR against the supervised metrics. A partial sweep aggregates what is
done; runs with unreadable results are listed, not fatal.
"""

import os

from absl import app
from absl import flags

from factorvae_jax.sweeps import aggregate
from factorvae_jax.sweeps import figures
from factorvae_jax.utils import cli
from factorvae_jax.utils import errors
from factorvae_jax.utils.files import write_atomically

_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "The sweep's directory.")
_OUT_DIR = flags.DEFINE_string("out_dir", None,
                               "Where outputs go (default: --sweep_dir).")
flags.mark_flag_as_required("sweep_dir")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  out_dir = _OUT_DIR.value or _SWEEP_DIR.value
  try:
    results = aggregate.collect(_SWEEP_DIR.value)
  except errors.UserError:
    raise
  except FileNotFoundError as e:
    # collect names the sweep dir and how to start it.
    raise errors.NothingToDoError(str(e)) from e
  except ValueError as e:
    raise errors.InvalidValueError(str(e)) from e
  print(aggregate.report(results, _SWEEP_DIR.value))
  csv_path = aggregate.write_csv(results, os.path.join(out_dir,
                                                       "results.csv"))
  write_atomically(
      os.path.join(out_dir, "missing.txt"),
      lambda f: f.writelines(f"{name}\t{state}\n"
                             for name, state in results.missing))
  summary_path = aggregate.write_summary(
      results, os.path.join(out_dir, "summary.md"))
  written, skipped = figures.write_figures(results, out_dir)
  print(f"Wrote {csv_path} ({len(results.rows)} rows)")
  print(f"Wrote {summary_path} (mean ± std over seeds)")
  for path in written:
    print(f"Wrote {path}")
  for reason in skipped:
    print(f"Skipped {reason}")


if __name__ == "__main__":
  cli.run(main)
