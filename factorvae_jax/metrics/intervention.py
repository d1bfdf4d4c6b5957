"""Metrics that sample batches with one factor held fixed: BetaVAE, FactorVAE.

Both follow disentanglement_lib's ``beta_vae_sklearn`` and
``factor_vae_score`` draw for draw: every vote makes the same
``random_state`` calls in the same order as dlib (factor index, then the
factor batches, then the observations), so on a dataset that samples like
dlib's the votes are identical. What differs is only that observations from
many votes are encoded together, ``chunk_size``-ish per
``representation_fn`` call, instead of one call per batch; for a
deterministic representation the codes, and so the scores, are the same.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import exceptions as sklearn_exceptions
from sklearn.linear_model import LogisticRegression

from factorvae_jax.metrics import sampling
from factorvae_jax.utils import random_state as random_state_lib

#: dlib study default: dimensions whose global std is below this are pruned.
DEFAULT_PRUNE_THRESHOLD = 0.05


def _check_common(data, batch_size, num_train, num_eval, min_batch):
  if data.num_factors < 2:
    raise ValueError(
        f"the dataset has {data.num_factors} factor(s); these scores classify "
        f"which factor was fixed, so they need at least 2.")
  return (sampling.check_positive("batch_size", batch_size, min_batch),
          sampling.check_positive("num_train", num_train),
          sampling.check_positive("num_eval", num_eval))


# --------------------------------------------------------------------------
# BetaVAE
# --------------------------------------------------------------------------


def _beta_vae_points(data, representation_fn, batch_size, num_points, rs,
                     chunk_size):
  """Returns dlib's BetaVAE training points: (features [n, C], labels [n])."""
  votes_per_chunk = max(1, chunk_size // (2 * batch_size))
  features, labels = [], []
  done = 0
  while done < num_points:
    num_votes = min(votes_per_chunk, num_points - done)
    index = np.empty(num_votes, dtype=np.int64)
    buffer = sampling.EncodingBuffer(representation_fn, chunk_size)
    for v in range(num_votes):
      index[v] = rs.randint(data.num_factors)
      factors1 = np.array(data.sample_factors(batch_size, rs))
      factors2 = np.array(data.sample_factors(batch_size, rs))
      factors2[:, index[v]] = factors1[:, index[v]]
      buffer.add(data.sample_observations_from_factors(factors1, rs))
      buffer.add(data.sample_observations_from_factors(factors2, rs))
    codes = buffer.codes().astype(np.float64)
    codes = codes.reshape(num_votes, 2, batch_size, -1)
    features.append(np.mean(np.abs(codes[:, 0] - codes[:, 1]), axis=1))
    labels.append(index)
    done += num_votes
  return np.concatenate(features, axis=0), np.concatenate(labels, axis=0)


def beta_vae_score(data, representation_fn, random_state,
                   batch_size: int = 64, num_train: int = 10000,
                   num_eval: int = 5000,
                   chunk_size: int = sampling.DEFAULT_CHUNK_SIZE
                   ) -> dict[str, float]:
  """BetaVAE disentanglement metric (Higgins et al. 2017, "beta-VAE:
  Learning Basic Visual Concepts with a Constrained Variational Framework"),
  in disentanglement_lib's scikit-learn form (``beta_vae_sklearn``).

  Definition: each training point ("vote") picks a factor ``k`` uniformly,
  draws two batches of ``batch_size`` factor vectors that agree on factor
  ``k`` (all other factors independent), encodes both and takes the feature
  ``mean_b |z(x1_b) - z(x2_b)|`` (per code, over the batch). A
  ``sklearn.linear_model.LogisticRegression`` with sklearn's default settings
  learns to predict ``k`` from ``num_train`` such features; the score is its
  accuracy on ``num_eval`` fresh ones. A code that captures factor ``k``
  alone has zero difference exactly when ``k`` is fixed, so a disentangled
  representation scores 1; chance is about ``1 / num_factors``.

  Args:
    data: GroundTruthData-like dataset (at least 2 factors).
    representation_fn: numpy observations [B, ...] -> codes [B, num_codes].
    random_state: ``np.random.RandomState`` or int seed; draws are consumed
      in dlib's order (train votes, then eval votes).
    batch_size: observations per batch of a pair (dlib study: 64).
    num_train: training votes (dlib study: 10000).
    num_eval: evaluation votes (dlib study: 5000).
    chunk_size: observations per ``representation_fn`` call (not in dlib,
      which encodes one batch per call; it changes no result).

  Returns:
    ``{"train_accuracy", "eval_accuracy"}``; ``eval_accuracy`` is the score.
  """
  batch_size, num_train, num_eval = _check_common(data, batch_size, num_train,
                                                  num_eval, min_batch=1)
  chunk_size = sampling.check_chunk_size(chunk_size)
  rs = random_state_lib.as_random_state(random_state)
  train_x, train_y = _beta_vae_points(data, representation_fn, batch_size,
                                      num_train, rs, chunk_size)
  if len(np.unique(train_y)) < 2:
    raise ValueError(
        f"beta_vae_score: all {num_train} training votes fixed the same "
        f"factor, so no classifier can be fitted. Use a larger num_train "
        f"(dlib: 10000).")
  with warnings.catch_warnings():
    # Default LogisticRegression settings (100 lbfgs iterations) are dlib's;
    # hitting the cap is part of the reference computation.
    warnings.simplefilter("ignore", sklearn_exceptions.ConvergenceWarning)
    model = LogisticRegression().fit(train_x, train_y)
  train_accuracy = float(np.mean(model.predict(train_x) == train_y))
  eval_x, eval_y = _beta_vae_points(data, representation_fn, batch_size,
                                    num_eval, rs, chunk_size)
  eval_accuracy = float(np.mean(model.predict(eval_x) == eval_y))
  return {"train_accuracy": train_accuracy, "eval_accuracy": eval_accuracy}


# --------------------------------------------------------------------------
# FactorVAE
# --------------------------------------------------------------------------


def factor_vae_votes(local_variances, global_variances, active) -> np.ndarray:
  """The code each FactorVAE vote picks: argmin of the normalised variance.

  Args:
    local_variances: [num_votes, num_codes] per-batch code variances (ddof=1).
    global_variances: [num_codes] variances over random observations (ddof=1).
    active: bool [num_codes], the codes not pruned.

  Returns:
    int64 [num_votes] code indices (into all codes). Among active codes the
    smallest ``local / global`` wins; ties go to the lowest index, as
    ``np.argmin`` breaks them in dlib.
  """
  active_index = np.flatnonzero(active)
  ratio = local_variances[:, active_index] / global_variances[active_index]
  return active_index[np.argmin(ratio, axis=1)]


def _factor_vae_vote_matrix(data, representation_fn, batch_size, num_points,
                            rs, global_variances, active, chunk_size):
  """Returns dlib's vote counts [num_factors, num_codes]."""
  votes = np.zeros((data.num_factors, len(global_variances)), dtype=np.int64)
  votes_per_chunk = max(1, chunk_size // batch_size)
  done = 0
  while done < num_points:
    num_votes = min(votes_per_chunk, num_points - done)
    index = np.empty(num_votes, dtype=np.int64)
    buffer = sampling.EncodingBuffer(representation_fn, chunk_size)
    for v in range(num_votes):
      index[v] = rs.randint(data.num_factors)
      factors = np.array(data.sample_factors(batch_size, rs))
      factors[:, index[v]] = factors[0, index[v]]
      buffer.add(data.sample_observations_from_factors(factors, rs))
    codes = buffer.codes().astype(np.float64)
    codes = codes.reshape(num_votes, batch_size, -1)
    if codes.shape[2] != len(global_variances):
      raise ValueError(
          f"representation_fn returned {codes.shape[2]} codes for the votes "
          f"but {len(global_variances)} for the variance estimate; it must "
          f"return the same number every call.")
    chosen = factor_vae_votes(np.var(codes, axis=1, ddof=1), global_variances,
                              active)
    np.add.at(votes, (index, chosen), 1)
    done += num_votes
  return votes


def factor_vae_accuracy(votes, classifier) -> float:
  """Fraction of votes whose (factor, code) matches ``classifier[code]``."""
  votes = np.asarray(votes)
  return float(np.sum(votes[classifier, np.arange(votes.shape[1])])
               / np.sum(votes))


def factor_vae_score(data, representation_fn, random_state,
                     batch_size: int = 64, num_train: int = 10000,
                     num_eval: int = 5000, num_variance_estimate: int = 10000,
                     prune_threshold: float = DEFAULT_PRUNE_THRESHOLD,
                     chunk_size: int = sampling.DEFAULT_CHUNK_SIZE
                     ) -> dict[str, float]:
  """FactorVAE disentanglement metric (Kim & Mnih 2018, "Disentangling by
  Factorising", Sec. 4), computed as disentanglement_lib's
  ``factor_vae_score``.

  Definition:

  1. Global scale: the variance (ddof=1) of every code over
     ``num_variance_estimate`` random observations. Codes whose standard
     deviation is below ``prune_threshold`` are pruned (collapsed to the
     prior); so are exactly constant codes.
  2. Each vote picks a factor ``k`` uniformly, draws ``batch_size`` factor
     vectors that all share factor ``k``'s value (drawn once, the others
     independent), encodes them and votes for the active code with the
     smallest ``var_batch(z_i) / var_global(z_i)`` (ddof=1; i.e. the smallest
     variance after dividing each code by its global std), ties to the lowest
     code index.
  3. The majority-vote classifier maps each code to the factor it was voted
     for most often on ``num_train`` votes (ties to the lowest factor index;
     a code never voted for maps to factor 0). Accuracy is the fraction of
     votes whose factor the classifier predicts from their code; the score
     is the accuracy on ``num_eval`` fresh votes.

  A code that is constant whenever its factor is fixed wins every such vote,
  so a disentangled representation scores 1. The result is invariant to
  permuting the codes and to rescaling any code (the normalised variance is).

  Args:
    data: GroundTruthData-like dataset (at least 2 factors).
    representation_fn: numpy observations [B, ...] -> codes [B, num_codes].
    random_state: ``np.random.RandomState`` or int seed; draws are consumed
      in dlib's order (variance estimate, train votes, eval votes).
    batch_size: observations per vote (dlib study: 64); at least 2.
    num_train: votes to build the classifier (dlib study: 10000).
    num_eval: votes to score it (dlib study: 5000).
    num_variance_estimate: observations for the global variances (dlib
      study: 10000).
    prune_threshold: minimum global std of an active code (dlib study: 0.05,
      set through ``prune_dims.threshold``; dlib's function default is 0,
      i.e. no pruning).
    chunk_size: observations per ``representation_fn`` call (not in dlib; it
      changes no result).

  Returns:
    ``{"train_accuracy", "eval_accuracy", "num_active_dims"}``;
    ``eval_accuracy`` is the score. ``num_active_dims`` is the number of
    codes that survived pruning (dlib reports the total number of codes
    under this name, a known quirk). With no active code both accuracies are
    0 and a warning says why.
  """
  batch_size, num_train, num_eval = _check_common(data, batch_size, num_train,
                                                  num_eval, min_batch=2)
  num_variance_estimate = sampling.check_positive(
      "num_variance_estimate", num_variance_estimate, minimum=2)
  if not np.isfinite(prune_threshold) or prune_threshold < 0:
    raise ValueError(
        f"prune_threshold must be a finite std >= 0, got {prune_threshold!r}; "
        f"dlib's study uses {DEFAULT_PRUNE_THRESHOLD}, 0 disables pruning.")
  chunk_size = sampling.check_chunk_size(chunk_size)
  rs = random_state_lib.as_random_state(random_state)

  codes = sampling.sample_codes(data, representation_fn, num_variance_estimate,
                                rs, chunk_size).astype(np.float64)
  global_variances = np.var(codes, axis=0, ddof=1)
  # Constant codes are pruned whatever the threshold: dlib keeps them at
  # threshold 0 and then divides 0 by 0, letting a NaN win every argmin.
  active = (np.sqrt(global_variances) >= prune_threshold) & (
      global_variances > 0)
  if not active.any():
    warnings.warn(
        f"factor_vae_score: no code has a global std >= prune_threshold="
        f"{prune_threshold} (largest std {np.sqrt(global_variances.max()):.3g}"
        f"), so every dimension is pruned and the score is 0. The "
        f"representation has collapsed, or its scale is tiny: lower "
        f"prune_threshold if that is intended.", stacklevel=2)
    return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}

  train_votes = _factor_vae_vote_matrix(data, representation_fn, batch_size,
                                        num_train, rs, global_variances,
                                        active, chunk_size)
  classifier = np.argmax(train_votes, axis=0)
  eval_votes = _factor_vae_vote_matrix(data, representation_fn, batch_size,
                                       num_eval, rs, global_variances, active,
                                       chunk_size)
  return {"train_accuracy": factor_vae_accuracy(train_votes, classifier),
          "eval_accuracy": factor_vae_accuracy(eval_votes, classifier),
          "num_active_dims": int(np.sum(active))}
