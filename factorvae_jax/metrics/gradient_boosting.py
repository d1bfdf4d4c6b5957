"""DCI's gradient-boosted trees in JAX: scikit-learn's rules, for GPU/TPU.

``fit_gradient_boosting`` fits, for every factor at once, the model that
disentanglement_lib fits per factor with
``sklearn.ensemble.GradientBoostingClassifier()``'s defaults, and returns the
same feature importances and train/test accuracies. The rules below are read
from scikit-learn's source (``ensemble/_gb.py``, ``tree/_splitter.pyx``,
``tree/_partitioner.pyx``, ``tree/_criterion.pyx``, ``tree/_tree.pyx``) and
followed step by step:

* Inputs are cast to float32 (sklearn's ``validate_data(dtype=float32)``).
  Labels are encoded to ``0..K-1`` over the sorted training classes.
* Loss: multinomial deviance with one tree per class and stage for ``K > 2``
  (softmax probabilities), binomial deviance with one tree per stage for
  ``K == 2`` (class 1 against class 0; predicted class 1 when the raw score is
  ``>= 0``). Initial raw score: the ``DummyClassifier(strategy="prior")``
  probabilities clipped to ``[eps, 1 - eps]`` through the symmetric
  multinomial logit ``log p_k - mean_k log p_k`` (binary: ``logit p_1``).
* Each stage: negative gradients ``y_k - p_k`` from the raw scores at the
  start of the stage; the ``K`` trees of a stage are independent given them.
* Tree: ``DecisionTreeRegressor(criterion="squared_error", max_depth=3)``,
  exact best split over every feature. A node is a leaf when it is at depth 3,
  has fewer than 2 samples, its impurity ``sum(g^2)/n - (sum(g)/n)^2`` is at
  most float64 eps, it has no valid split, or the best split's improvement is
  below ``-eps``. A split between sorted neighbours ``a < b`` of the node is
  valid only if ``b > float32(a + float32(1e-7))`` (sklearn's
  FEATURE_THRESHOLD, so values closer than that never get separated); its
  score is the proxy ``S_L^2 / n_L + S_R^2 / n_R``; the threshold is
  ``a / 2 + b / 2`` in float64 (``a`` if that rounds up to ``b``), samples
  with ``x <= threshold`` go left.
* Leaf values (Friedman's Newton step): ``mean(g) * (K-1)/K / mean(p (1-p))``
  over the leaf's samples (no ``(K-1)/K`` for binary), 0 when the
  denominator is below 1e-150; raw scores grow by ``0.1 * leaf value``.
* Importances: per split node ``(n imp - n_L imp_L - n_R imp_R) / N`` added to
  its feature, summed over the model's trees and normalised to sum 1 (all
  zeros if no tree splits), as ``feature_importances_``.

Ties. sklearn visits a node's features in a random order and keeps a
candidate only if its score is strictly larger, so of equally good splits
the first visited feature's wins. We replay that order: each tree's splitter
seed is drawn from ``RandomState(random_state)`` as sklearn draws it, and the
splitter's xorshift generator and Fisher-Yates draws are repeated node by
node in sklearn's depth-first order (assuming, for the number of draws, that
no feature is constant inside a node that searches). Scores within 1e-10 of
the best (relative to the node's sum of squares) count as equal, because our
sums round differently from sklearn's. What is not replayed is sklearn's
own rounding, which decides most ties: it keeps a sequential running sum of
the left targets in each feature's sorted order (the right sum is
``total - left``, and the node total is summed in the order of its samples
array), so of two splits with the same exact gain (common: at stage 0 each
class has two gradient values, so cutting off *different* samples with equal
gradients through different features gains the same), sklearn keeps
whichever rounded up. Repeating that needs sequential sums in sklearn's
order, which is what ``boosted_trees`` (the CPU backend) does; here the sums
are parallel prefix sums, so such a tie can go the other way, and from
then on the trees differ. Measured against sklearn (docs/metrics.md, DCI):
importances within a few 1e-3, accuracies occasionally differing by a few
test points, of the order of sklearn's own spread across ``random_state``.
Within one feature the first best position wins, as in sklearn.

Computation: the trees of all factors and classes (``T`` columns, 113 for
dSprites) grow together, level by level. Each feature keeps its samples
sorted by value inside each node (one ``[T, num_features, N]`` index array,
stably partitioned after every level), so finding every node's best split is
one prefix sum and one masked argmax per node over that array; the whole
100-stage fit is one jitted ``lax.scan`` in float64 (``jax.enable_x64`` for
the call only) on the default device. That suits a GPU; on a CPU the numba
backend (``boosted_trees``) is faster and exact (``docs/metrics.md``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

# sklearn's defaults and constants (gb_rules says where each comes from).
from factorvae_jax.metrics import gb_rules
from factorvae_jax.metrics.gb_rules import LEARNING_RATE, MAX_DEPTH, NUM_STAGES
from factorvae_jax.metrics.gb_rules import EPSILON as _EPSILON
from factorvae_jax.metrics.gb_rules import FEATURE_THRESHOLD as _FEATURE_THRESHOLD
from factorvae_jax.metrics.gb_rules import MIN_DENOMINATOR as _MIN_DENOMINATOR
from factorvae_jax.metrics.gb_rules import RAND_R_MAX as _RAND_R_MAX


class _Targets(NamedTuple):
  """The boosting problem of every factor, flattened into ``T`` columns."""
  classes: list            # per factor: sorted training classes
  column_factor: np.ndarray  # [T] factor of each column
  column_class: np.ndarray   # [T] encoded class of each column
  targets: np.ndarray      # [N, T] float64 indicator of the column's class
  raw_init: np.ndarray     # [T] initial raw score
  leaf_scale: np.ndarray   # [T] (K-1)/K, or 1 for a binary factor
  factor_binary: np.ndarray  # [F] bool


def _encode_targets(factors: np.ndarray) -> _Targets:
  """One column per class (one for a binary factor), as sklearn encodes y."""
  eps = np.finfo(np.float64).eps
  classes, column_factor, column_class, targets = [], [], [], []
  raw_init, leaf_scale, factor_binary = [], [], []
  for j in range(factors.shape[1]):
    values, encoded = gb_rules.encode_factor(factors, j)
    num_classes = len(values)
    classes.append(values)
    prior = np.bincount(encoded, minlength=num_classes) / len(encoded)
    prior = np.clip(prior, eps, 1 - eps)
    binary = num_classes == 2
    factor_binary.append(binary)
    if binary:
      column_classes = [1]
      init = [np.log(prior[1] / (1 - prior[1]))]
      scale = [1.0]
    else:
      column_classes = list(range(num_classes))
      log_prior = np.log(prior)
      init = list(log_prior - np.mean(log_prior))
      scale = [(num_classes - 1) / num_classes] * num_classes
    for k, value, s in zip(column_classes, init, scale):
      column_factor.append(j)
      column_class.append(k)
      targets.append((encoded == k).astype(np.float64))
      raw_init.append(value)
      leaf_scale.append(s)
  return _Targets(classes, np.array(column_factor, np.int32),
                  np.array(column_class, np.int32),
                  np.stack(targets, axis=1), np.array(raw_init, np.float64),
                  np.array(leaf_scale, np.float64),
                  np.array(factor_binary, bool))


def _probabilities(raw, column_factor, factor_binary, num_factors):
  """Softmax over each factor's columns; sigmoid for a binary factor's one.

  A binary factor's column is the raw score of class 1 against an implicit 0
  for class 0, so both cases are a softmax with that extra zero.
  """
  seg_max = jax.ops.segment_max(raw.T, column_factor, num_factors)  # [F, N]
  seg_max = jnp.where(factor_binary[:, None], jnp.maximum(seg_max, 0.0),
                      seg_max)
  exp = jnp.exp(raw - seg_max[column_factor].T)
  total = jax.ops.segment_sum(exp.T, column_factor, num_factors)
  total = total + jnp.where(factor_binary[:, None], jnp.exp(-seg_max), 0.0)
  return exp / total[column_factor].T


class _Level(NamedTuple):
  """The nodes at one depth of every column's tree (``M`` nodes)."""
  ids: jax.Array      # [T, D, N] samples sorted by feature within each node
  node: jax.Array     # [T, N] node of each sample (0..M-1)
  start: jax.Array    # [T, M] first sorted position of each node's run
  count: jax.Array    # [T, M] samples per node (float64)
  total: jax.Array    # [T, M] sum of the node's targets
  square: jax.Array   # [T, M] sum of the node's squared targets
  impurity: jax.Array  # [T, M]
  leaf: jax.Array     # [T, M] bool: the node does not split
  ranks: jax.Array    # [T, M, D] sklearn's feature visiting order per node
  rng: jax.Array      # [T] uint32 state of sklearn's splitter RNG
  perm: jax.Array     # [T, D] the splitter's feature array (persists)


def _xorshift(state):
  """sklearn's ``our_rand_r``: returns (new state, draw in [0, 2^31))."""
  state = jnp.where(state == 0, jnp.uint32(1), state)
  state = state ^ (state << 13)
  state = state ^ (state >> 17)
  state = state ^ (state << 5)
  return state, state & jnp.uint32(0x7FFFFFFF)


def _visit_order(rng, perm, attempted):
  """sklearn's Fisher-Yates draw of the features one node visits.

  ``node_split_best`` draws every feature once, in a random order, from the
  splitter's RNG and a feature array that persists from node to node; the
  first visited of several equally good features wins. This replays those
  draws (for nodes with no constant feature) where ``attempted``.

  Returns:
    ``(rng, perm, rank [T, D])``: the advanced state and each feature's
    position in the visiting order.
  """
  num_columns, num_features = perm.shape
  columns = jnp.arange(num_columns)

  def visit(step, carry):
    # A loop, not unrolled: it runs for 7 nodes a tree and would otherwise
    # dominate the compile time.
    state, order, rank = carry
    remaining = num_features - step
    state, draw = _xorshift(state)
    pick = (draw % remaining.astype(jnp.uint32)).astype(jnp.int32)
    feature = order[columns, pick]
    last = order[columns, remaining - 1]
    order = order.at[columns, pick].set(last).at[columns, remaining - 1].set(
        feature)
    return state, order, rank.at[columns, feature].set(step)

  state, order, rank = lax.fori_loop(
      0, num_features, visit,
      (rng, perm, jnp.zeros(perm.shape, jnp.int32)))
  return (jnp.where(attempted, state, rng),
          jnp.where(attempted[:, None], order, perm), rank)


def _impurity(count, total, square):
  """sklearn's MSE node impurity ``sum(y^2)/n - (sum(y)/n)^2``."""
  safe = jnp.maximum(count, 1.0)
  return square / safe - (total / safe) ** 2


def _split_level(level: _Level, grad, x_features, num_nodes, partition):
  """Finds every node's best split at one depth and applies it.

  The layout keeps each column's data contiguous ([T, ...]) so that the
  per-column gathers stay in cache.

  Args:
    level: the nodes at this depth.
    grad: [T, N] negative gradients (the regression targets).
    x_features: [D, N] float32 inputs, one row per feature.
    num_nodes: ``M``, the number of nodes at this depth.
    partition: whether to re-sort ``ids`` for the next depth.

  Returns:
    ``(next_level, feature [T, M], threshold [T, M], importance [T, D])``.
  """
  num_features, num_samples = x_features.shape
  num_columns = grad.shape[0]
  positions = jnp.arange(num_samples, dtype=jnp.int32)[None]  # [1, N]
  ids = level.ids
  # Each node's samples occupy one run of sorted positions, runs in node
  # order; position p belongs to the last node starting at or before it (an
  # empty node shares its start with the next one, so it is never picked).
  pos_node = jnp.sum(positions[:, :, None] >= level.start[:, None, :],
                     axis=-1, dtype=jnp.int32) - 1  # [T, N]
  take = lambda v: jnp.take_along_axis(v, pos_node, axis=1)  # noqa: E731
  pos_start = take(level.start)
  pos_count = take(level.count)
  pos_total = take(level.total)
  pos_before = take(jnp.cumsum(level.total, axis=1) - level.total)
  pos_open = ~take(level.leaf)

  # Targets and values in each feature's within-node sorted order.
  grad_sorted = jnp.take_along_axis(grad[:, None, :], ids, axis=2)
  x_sorted = jnp.take_along_axis(x_features[None], ids, axis=2)
  left_sum = jnp.cumsum(grad_sorted, axis=2) - pos_before[:, None]
  left_count = (positions - pos_start + 1).astype(jnp.float64)
  right_count = pos_count - left_count
  x_next = jnp.concatenate(
      [x_sorted[..., 1:], jnp.full_like(x_sorted[..., :1], jnp.inf)], axis=2)
  # sklearn's FEATURE_THRESHOLD test, in float32 as there.
  valid = ((right_count >= 1) & pos_open)[:, None] & (
      x_next > x_sorted + _FEATURE_THRESHOLD)
  right_sum = pos_total[:, None] - left_sum
  proxy = jnp.where(
      valid, left_sum * left_sum / left_count[:, None]
      + right_sum * right_sum / jnp.maximum(right_count, 1.0)[:, None],
      -jnp.inf)

  # Best position per node and feature (the first maximum).
  feature_pos, feature_max = [], []
  for m in range(num_nodes):
    masked = jnp.where((pos_node == m)[:, None], proxy, -jnp.inf)
    pos = jnp.argmax(masked, axis=2)  # [T, D]
    feature_pos.append(pos)
    feature_max.append(jnp.take_along_axis(masked, pos[..., None],
                                           axis=2)[..., 0])
  feature_pos = jnp.stack(feature_pos, axis=1)  # [T, M, D]
  feature_max = jnp.stack(feature_max, axis=1)
  attempted = (~level.leaf & (level.count >= 2)
               & (level.impurity > _EPSILON))

  flat_proxy = proxy.reshape(num_columns, num_features * num_samples)
  flat_x = x_sorted.reshape(flat_proxy.shape)
  in_node = level.node[:, :, None] == jnp.arange(num_nodes)  # [T, N, M]

  def locate(flat_best):
    """Feature and threshold of flat (feature, position) indices [T, K]."""
    x_low = jnp.take_along_axis(flat_x, flat_best, axis=1).astype(jnp.float64)
    x_high = jnp.take_along_axis(
        flat_x, jnp.minimum(flat_best + 1, flat_x.shape[1] - 1),
        axis=1).astype(jnp.float64)
    threshold = x_low / 2.0 + x_high / 2.0
    threshold = jnp.where(threshold == x_high, x_low, threshold)
    return (flat_best // num_samples).astype(jnp.int32), threshold

  def route(split, best_feature, best_threshold):
    """Sample routing and child sums when the ``split`` nodes split."""
    feature = jnp.where(split, best_feature, 0)
    threshold = jnp.where(split, best_threshold, jnp.inf)
    sample_feature = jnp.take_along_axis(feature, level.node, axis=1)
    sample_threshold = jnp.take_along_axis(threshold, level.node, axis=1)
    x_value = jnp.take_along_axis(x_features[None], sample_feature[:, None],
                                  axis=1)[:, 0].astype(jnp.float64)
    go_left = x_value <= sample_threshold  # [T, N]
    left = in_node & go_left[:, :, None]
    n_left = jnp.sum(left, axis=1, dtype=jnp.float64)
    s_left = jnp.sum(jnp.where(left, grad[:, :, None], 0.0), axis=1)
    q_left = jnp.sum(jnp.where(left, (grad * grad)[:, :, None], 0.0), axis=1)
    n_right = level.count - n_left
    s_right = level.total - s_left
    q_right = level.square - q_left
    return (go_left, feature, threshold, (n_left, s_left, q_left),
            (n_right, s_right, q_right))

  def checked(split, best_feature, best_threshold):
    """sklearn's last check: no split whose improvement is below -eps."""
    _, _, _, left, right = route(split, best_feature, best_threshold)
    safe_count = jnp.maximum(level.count, 1.0)
    improvement = (level.count / num_samples) * (
        level.impurity - right[0] / safe_count * _impurity(*right)
        - left[0] / safe_count * _impurity(*left))
    return split & ~(improvement + _EPSILON < 0.0)

  def choose(m, rank):
    """Node m's feature: the first visited among the equally good ones.

    Scores within 1e-10 of the node's (relative to its sum of squares) count
    as equal: our sums round differently from sklearn's, whose equal
    candidates (e.g. one sample cut off on either of two codes) compare
    bit-equal there and go to the first visited feature.
    """
    best_max = jnp.max(feature_max[:, m], axis=1, keepdims=True)
    tolerance = 1e-10 * (jnp.abs(best_max) + level.square[:, m:m + 1])
    tied = feature_max[:, m] >= best_max - tolerance
    feature = jnp.argmin(jnp.where(tied, rank, num_features + 1), axis=1)
    pos = jnp.take_along_axis(feature_pos[:, m], feature[:, None], axis=1)
    return feature * num_samples + pos[:, 0]

  def children_attempted(m, flat_best):
    """Whether node m's children search for splits: sklearn draws their
    visiting orders before node m + 1's."""
    flat = jnp.broadcast_to(flat_best[:, None], (num_columns, num_nodes))
    split_m = attempted[:, m] & jnp.isfinite(
        jnp.take_along_axis(flat_proxy, flat_best[:, None], axis=1)[:, 0])
    only_m = jnp.zeros_like(attempted).at[:, m].set(split_m)
    only_m = checked(only_m, *locate(flat))
    _, _, _, left, right = route(only_m, *locate(flat))
    return [only_m[:, m] & (stats[0][:, m] >= 2)
            & (_impurity(*stats)[:, m] > _EPSILON) for stats in (left, right)]

  rng, perm = level.rng, level.perm
  chosen, next_ranks = [], []
  for m in range(num_nodes):
    if num_nodes < 4:  # depths 0 and 1 draw their orders here
      rng, perm, rank = _visit_order(rng, perm, attempted[:, m])
    else:  # depth 2: drawn during depth 1, in sklearn's depth-first order
      rank = level.ranks[:, m]
    chosen.append(choose(m, rank))
    if num_nodes == 2:
      for child in children_attempted(m, chosen[-1]):
        rng, perm, child_rank = _visit_order(rng, perm, child)
        next_ranks.append(child_rank)
  best = jnp.stack(chosen, axis=1)  # [T, M]
  if not next_ranks:
    next_ranks = [jnp.zeros_like(level.ranks[:, 0])] * (2 * num_nodes)
  best_proxy = jnp.take_along_axis(flat_proxy, best, axis=1)
  split = checked(attempted & jnp.isfinite(best_proxy), *locate(best))
  go_left, feature, threshold, left, right = route(split, *locate(best))
  imp_left, imp_right = _impurity(*left), _impurity(*right)
  gain = jnp.where(split, (level.count * level.impurity - left[0] * imp_left
                           - right[0] * imp_right) / num_samples, 0.0)
  importance = jnp.einsum(
      "tm,tmd->td", gain,
      jax.nn.one_hot(feature, num_features, dtype=jnp.float64))

  next_ids = ids
  if partition:
    # Stable partition of every node's sorted run: left samples first.
    goes_left = jnp.take_along_axis(go_left[:, None, :], ids, axis=2)
    left_before = jnp.cumsum(goes_left, axis=2, dtype=jnp.int32) - goes_left
    n_left_int = left[0].astype(jnp.int32)
    pos_left_before = take(jnp.cumsum(n_left_int, axis=1) - n_left_int)
    pos_n_left = take(n_left_int)
    left_rank = left_before - pos_left_before[:, None]
    right_rank = (positions - pos_start)[:, None] - left_rank
    new_pos = jnp.where(goes_left, pos_start[:, None] + left_rank,
                        (pos_start + pos_n_left)[:, None] + right_rank)
    next_ids = jnp.put_along_axis(jnp.zeros_like(ids), new_pos, ids, axis=2,
                                  inplace=False)

  def interleave(a, b):
    return jnp.stack([a, b], axis=2).reshape(num_columns, 2 * num_nodes)

  next_level = _Level(
      ids=next_ids,
      node=2 * level.node + (~go_left).astype(jnp.int32),
      start=interleave(level.start,
                       level.start + left[0].astype(jnp.int32)),
      count=interleave(left[0], right[0]),
      total=interleave(left[1], right[1]),
      square=interleave(left[2], right[2]),
      # A node that does not split keeps its samples in its left child,
      # which stays a leaf; sklearn stores the split's child impurities.
      impurity=interleave(jnp.where(split, imp_left, level.impurity),
                          imp_right),
      leaf=interleave(~split, ~split),
      ranks=jnp.stack(next_ranks, axis=1), rng=rng, perm=perm)
  return next_level, feature, threshold, importance


def _fit_tree(grad, order, x_features, tree_seed):
  """One depth-3 squared-error regression tree per row of ``grad`` [T, N].

  ``tree_seed`` [T] uint32 is each tree's splitter seed (sklearn draws it
  from the classifier's RandomState); it only breaks ties.

  Returns:
    ``(leaf [T, N], feature [T, 7], threshold [T, 7], importance [T, D])``:
    the leaf (0..7) of each training sample and the heap-ordered internal
    nodes; a node that does not split has threshold +inf (all samples left).
  """
  num_columns, num_samples = grad.shape
  total = jnp.sum(grad, axis=1, keepdims=True)
  square = jnp.sum(grad * grad, axis=1, keepdims=True)
  level = _Level(
      ids=jnp.broadcast_to(order[None], (num_columns,) + order.shape),
      node=jnp.zeros(grad.shape, jnp.int32),
      start=jnp.zeros((num_columns, 1), jnp.int32),
      count=jnp.full((num_columns, 1), float(num_samples)),
      total=total, square=square,
      impurity=_impurity(jnp.float64(num_samples), total, square),
      leaf=jnp.zeros((num_columns, 1), bool),
      ranks=jnp.zeros((num_columns, 1, order.shape[0]), jnp.int32),
      rng=tree_seed,
      perm=jnp.broadcast_to(jnp.arange(order.shape[0], dtype=jnp.int32),
                            (num_columns, order.shape[0])))
  features, thresholds, importance = [], [], 0.0
  for depth in range(MAX_DEPTH):
    level, feature, threshold, gain = _split_level(
        level, grad, x_features, 2 ** depth, partition=depth < MAX_DEPTH - 1)
    features.append(feature)
    thresholds.append(threshold)
    importance = importance + gain
  return (level.node, jnp.concatenate(features, axis=1),
          jnp.concatenate(thresholds, axis=1), importance)


def _predict_stage(raw, x_features, feature, threshold, value):
  """Adds one stage's trees ([T, 7], [T, 7], [T, 8]) to ``raw`` [T, n]."""
  node = jnp.zeros(raw.shape, jnp.int32)
  for depth in range(MAX_DEPTH):
    heap = node + (2 ** depth - 1)
    f = jnp.take_along_axis(feature, heap, axis=1)
    t = jnp.take_along_axis(threshold, heap, axis=1)
    x_value = jnp.take_along_axis(x_features[None], f[:, None], axis=1)[:, 0]
    node = 2 * node + (x_value.astype(jnp.float64) > t).astype(jnp.int32)
  return raw + LEARNING_RATE * jnp.take_along_axis(value, node, axis=1)


@functools.partial(jax.jit, static_argnames=("num_factors", "num_stages"))
def _boost(x_train, order, targets, raw_init, leaf_scale, column_factor,
           factor_binary, x_test, tree_seeds, num_factors, num_stages):
  """The whole fit and both predictions, in float64 (the caller enables x64).

  Columns lead every array ([T, N]); ``x_train``/``x_test`` are [n, D]
  float32 and ``order`` [D, N] the training samples sorted per feature.
  """
  x_features = x_train.T
  targets = targets.T
  num_leaves = 2 ** MAX_DEPTH

  def stage(carry, tree_seed):
    raw, importance = carry
    prob = _probabilities(raw.T, column_factor, factor_binary, num_factors).T
    grad = targets - prob
    leaf, feature, threshold, gain = _fit_tree(grad, order, x_features,
                                               tree_seed)
    in_leaf = leaf[:, :, None] == jnp.arange(num_leaves)  # [T, N, 8]
    count = jnp.maximum(jnp.sum(in_leaf, axis=1, dtype=jnp.float64), 1.0)
    grad_sum = jnp.sum(jnp.where(in_leaf, grad[:, :, None], 0.0), axis=1)
    # sklearn recovers p as y - (y - p), and scales the mean gradient by
    # (K-1)/K before dividing.
    p = targets - grad
    hess_sum = jnp.sum(jnp.where(in_leaf, (p * (1 - p))[:, :, None], 0.0),
                       axis=1)
    numerator = grad_sum / count * leaf_scale[:, None]
    denominator = hess_sum / count
    small = jnp.abs(denominator) < _MIN_DENOMINATOR
    value = jnp.where(small, 0.0,
                      numerator / jnp.where(small, 1.0, denominator))
    raw = raw + LEARNING_RATE * jnp.take_along_axis(value, leaf, axis=1)
    return (raw, importance + gain), (feature, threshold, value)

  raw0 = jnp.broadcast_to(raw_init[:, None], targets.shape)
  importance0 = jnp.zeros((targets.shape[0], x_train.shape[1]))
  (_, importance), trees = lax.scan(stage, (raw0, importance0), tree_seeds,
                                    length=num_stages)

  def predict(x):
    raw = jnp.broadcast_to(raw_init[:, None], (raw_init.shape[0], len(x)))
    return lax.fori_loop(
        0, num_stages,
        lambda s, r: _predict_stage(r, x.T, *(a[s] for a in trees)), raw)

  return importance.T, predict(x_train).T, predict(x_test).T


def _tree_seeds(problem: _Targets, num_stages: int, random_state
                ) -> np.ndarray:
  """[num_stages, T] splitter seeds, drawn as sklearn draws them.

  Each factor's classifier owns one RandomState; every tree it fits (stage
  by stage, class by class) draws its splitter seed from it.
  """
  if random_state is None:
    random_state = np.random.randint(0, 2**31 - 1)
  seeds = np.zeros((num_stages, len(problem.column_factor)), np.uint32)
  for j in range(len(problem.classes)):
    columns = np.flatnonzero(problem.column_factor == j)
    rs = np.random.RandomState(random_state)
    for stage in range(num_stages):
      for column in columns:
        seeds[stage, column] = rs.randint(0, _RAND_R_MAX)
  return seeds


def _accuracy(raw, factors, problem: _Targets) -> np.ndarray:
  """Per-factor accuracy of the class with the highest raw score."""
  accuracy = []
  for j, classes in enumerate(problem.classes):
    columns = raw[:, problem.column_factor == j]
    if problem.factor_binary[j]:
      predicted = (columns[:, 0] >= 0).astype(int)
    else:
      predicted = np.argmax(columns, axis=1)
    accuracy.append(float(np.mean(classes[predicted] == factors[:, j])))
  return np.array(accuracy)


def fit_gradient_boosting(codes_train, factors_train, codes_test,
                          factors_test, num_stages: int = NUM_STAGES,
                          random_state=0):
  """Fits one sklearn-equal boosted classifier per factor, all at once.

  Args:
    codes_train: float [num_train, num_codes].
    factors_train: int [num_train, num_factors]; each factor needs at least
      two classes.
    codes_test: float [num_test, num_codes].
    factors_test: int [num_test, num_factors].
    num_stages: boosting stages (sklearn's ``n_estimators``; dlib: 100).
    random_state: int seed or ``None``: as sklearn's ``random_state`` for
      each factor's classifier, it decides only which of equally good splits
      is taken (sklearn's visiting order of the features is replayed).

  Returns:
    ``(importance, train_accuracy, test_accuracy)`` as
    ``dci_importance_matrix`` returns them: float64 [num_codes, num_factors]
    (each column sums to 1, or is all zero if no tree split) and float64
    [num_factors] twice.
  """
  x_train = np.asarray(codes_train, np.float32)
  x_test = np.asarray(codes_test, np.float32)
  factors_train = np.asarray(factors_train)
  factors_test = np.asarray(factors_test)
  problem = _encode_targets(factors_train)
  order = np.argsort(x_train, axis=0, kind="stable").T.astype(np.int32)
  tree_seeds = _tree_seeds(problem, num_stages, random_state)
  with jax.enable_x64(True):
    importance, raw_train, raw_test = _boost(
        x_train, order, problem.targets, problem.raw_init,
        problem.leaf_scale, problem.column_factor, problem.factor_binary,
        x_test, tree_seeds, num_factors=factors_train.shape[1],
        num_stages=num_stages)
    importance = np.asarray(importance, np.float64)
    raw_train = np.asarray(raw_train, np.float64)
    raw_test = np.asarray(raw_test, np.float64)
  per_factor = np.stack(
      [importance[:, problem.column_factor == j].sum(axis=1)
       for j in range(factors_train.shape[1])], axis=1)
  sums = per_factor.sum(axis=0, keepdims=True)
  per_factor = np.where(sums > 0, per_factor / np.where(sums > 0, sums, 1.0),
                        0.0)
  return (per_factor, _accuracy(raw_train, factors_train, problem),
          _accuracy(raw_test, factors_test, problem))
