"""Disentanglement metrics, computed as disentanglement_lib computes them.

Array-level metrics take codes ``[num_points, num_codes]`` (float) and
factors ``[num_points, num_factors]`` (int class indices) and return Python
floats (or dicts of them):

* ``mig``, ``dci``, ``sap``, ``modularity_explicitness`` (supervised);
* ``gaussian_total_correlation``, ``gaussian_wasserstein_correlation``,
  ``gaussian_wasserstein_correlation_norm``, ``mutual_info_score``,
  ``unsupervised_scores`` (codes only; cheap enough to log while training).

Sampling-level metrics draw from a GroundTruthData-like dataset through a
``representation_fn`` (numpy observations -> numpy codes):
``beta_vae_score``, ``factor_vae_score``, ``irs``, ``downstream_task``,
``fairness``, ``udr`` (several models at once: ``representation_fns``
return (codes, KL per latent)), and the suite runner
``evaluate_representation`` with ``DEFAULT_SIZES`` (dlib's study settings)
and ``CHEAP_SIZES``. ``sample_codes_and_factors`` draws (codes, factors)
the way dlib does, to feed the array-level metrics yourself.
``CodeCache`` (``code_cache.py``) encodes each distinct observation of an
indexed dataset once, for one model or several at a time.

The suite's metrics, with their functions, preset sizes and the datasets
they apply to, are the entries of ``METRICS`` (``registry.py``; ``get_metric``,
``metric_names``); adding a metric is one entry there.

Definitions, defaults and every difference from dlib: ``docs/metrics.md``.
This package imports neither the training code nor, until DCI runs with
``backend="jax"`` (``gradient_boosting.py``), JAX.
"""

from factorvae_jax.metrics.code_cache import CodeCache
from factorvae_jax.metrics.downstream import downstream_task
from factorvae_jax.metrics.downstream import PREDICTORS
from factorvae_jax.metrics.fairness_metric import fairness
from factorvae_jax.metrics.code_cache import supports_code_cache
from factorvae_jax.metrics.information import DEFAULT_NUM_BINS
from factorvae_jax.metrics.information import discrete_entropy
from factorvae_jax.metrics.information import discrete_mutual_info
from factorvae_jax.metrics.information import histogram_discretize
from factorvae_jax.metrics.intervention import beta_vae_score
from factorvae_jax.metrics.intervention import DEFAULT_PRUNE_THRESHOLD
from factorvae_jax.metrics.intervention import factor_vae_score
from factorvae_jax.metrics.irs_metric import irs
from factorvae_jax.metrics.irs_metric import irs_from_codes
from factorvae_jax.metrics.sampling import encode
from factorvae_jax.metrics.sampling import sample_codes
from factorvae_jax.metrics.sampling import sample_codes_and_factors
from factorvae_jax.metrics.registry import ALL_METRICS
from factorvae_jax.metrics.registry import CHEAP_SIZES
from factorvae_jax.metrics.registry import check_dci_backend
from factorvae_jax.metrics.registry import check_metric_names
from factorvae_jax.metrics.registry import DCI_BACKENDS
from factorvae_jax.metrics.registry import DEFAULT_SIZES
from factorvae_jax.metrics.registry import get_metric
from factorvae_jax.metrics.registry import METRICS
from factorvae_jax.metrics.registry import MetricInputs
from factorvae_jax.metrics.registry import metric_names
from factorvae_jax.metrics.registry import MetricSpec
from factorvae_jax.metrics.registry import preset
from factorvae_jax.metrics.registry import SIZE_PRESET_NAMES
from factorvae_jax.metrics.registry import SIZE_PRESETS
from factorvae_jax.metrics.registry import TINY_SIZES
from factorvae_jax.metrics.suite import evaluate_representation
from factorvae_jax.metrics.supervised import dci
from factorvae_jax.metrics.supervised import dci_from_importance
from factorvae_jax.metrics.supervised import dci_importance_matrix
from factorvae_jax.metrics.supervised import mig
from factorvae_jax.metrics.supervised import modularity_explicitness
from factorvae_jax.metrics.supervised import modularity_from_mutual_info
from factorvae_jax.metrics.supervised import sap
from factorvae_jax.metrics.supervised import sap_score_matrix
from factorvae_jax.metrics.udr_metric import CORRELATION_MATRICES
from factorvae_jax.metrics.udr_metric import udr
from factorvae_jax.metrics.udr_metric import udr_from_codes
from factorvae_jax.metrics.unsupervised import gaussian_total_correlation
from factorvae_jax.metrics.unsupervised import gaussian_wasserstein_correlation
from factorvae_jax.metrics.unsupervised import (
    gaussian_wasserstein_correlation_norm)
from factorvae_jax.metrics.unsupervised import mutual_info_score
from factorvae_jax.metrics.unsupervised import unsupervised_scores

__all__ = [
    "ALL_METRICS",
    "CHEAP_SIZES",
    "CORRELATION_MATRICES",
    "CodeCache",
    "DCI_BACKENDS",
    "DEFAULT_NUM_BINS",
    "DEFAULT_PRUNE_THRESHOLD",
    "DEFAULT_SIZES",
    "METRICS",
    "MetricInputs",
    "MetricSpec",
    "PREDICTORS",
    "SIZE_PRESET_NAMES",
    "SIZE_PRESETS",
    "TINY_SIZES",
    "beta_vae_score",
    "check_dci_backend",
    "check_metric_names",
    "dci",
    "dci_from_importance",
    "dci_importance_matrix",
    "discrete_entropy",
    "discrete_mutual_info",
    "downstream_task",
    "encode",
    "evaluate_representation",
    "factor_vae_score",
    "fairness",
    "get_metric",
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation",
    "gaussian_wasserstein_correlation_norm",
    "histogram_discretize",
    "irs",
    "irs_from_codes",
    "metric_names",
    "mig",
    "modularity_explicitness",
    "modularity_from_mutual_info",
    "mutual_info_score",
    "preset",
    "sample_codes",
    "sample_codes_and_factors",
    "sap",
    "sap_score_matrix",
    "supports_code_cache",
    "udr",
    "udr_from_codes",
    "unsupervised_scores",
]
