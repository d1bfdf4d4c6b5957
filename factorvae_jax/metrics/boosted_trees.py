"""DCI's boosted trees on the CPU, bit for bit scikit-learn's.

``fit_gradient_boosting`` fits, for every factor, the model that
disentanglement_lib fits with ``sklearn.ensemble.GradientBoostingClassifier()``
(sklearn's defaults: 100 stages, depth-3 regression trees, learning rate 0.1)
and returns the same feature importances and train/test accuracies. It
repeats sklearn's arithmetic operation by operation, in the same order, so the
trees are the same trees and every number the same float, including which of
two equally good splits wins. The rules, read from scikit-learn 1.9's source
(``ensemble/_gb.py``, ``_loss/_loss.pyx.tp``, ``tree/_tree.pyx``,
``tree/_splitter.pyx``, ``tree/_partitioner.pyx``, ``tree/_criterion.pyx``):

* Inputs as float32; labels encoded over the sorted training classes. The
  initial raw score is the clipped class prior through sklearn's link
  (symmetric multinomial logit, or logit for two classes).
* Each stage: negative gradients from the raw scores (softmax with the
  maximum subtracted and the exponentials summed class by class; the binomial
  form for two classes); one tree per class (one for two classes).
* Each tree is grown depth first, left child first, as
  ``DepthFirstTreeBuilder`` does. At every node sklearn draws the order in
  which it visits the features from the tree's own xorshift generator (seeded
  from the classifier's ``RandomState``), skipping features it has found
  constant, and sorts the node's samples by each visited feature. The
  squared-error criterion then moves the samples left one block of tied
  values at a time and keeps the running sum of the left targets: forwards
  from the left, or, when fewer samples remain on the right than the block
  being moved, by reloading the node total and subtracting the right-hand
  samples from the end. The right sum is always ``total - left``. A position
  wins only with a strictly larger proxy ``S_L^2/n_L + S_R^2/n_R``. Where two
  features give the same split, these roundings, not the mathematics, decide
  which one sklearn keeps; we repeat them, including the node totals, which
  sklearn sums in the order its samples array holds them (the order of the
  last feature sorted, then swap-partitioned by the split).
* Leaf values: Friedman's Newton step from ``numpy.mean`` (pairwise
  summation, which we repeat) over the leaf's samples in index order; raw
  scores grow by ``0.1 * value``. Importances: sklearn's per-tree impurity
  decreases, averaged over the trees that split and normalised.

What differs: nothing is sorted per node. Each feature's samples are sorted
once, and every split stably partitions those sorted lists (``O(n)`` a
feature), so a node's search is one linear sweep per feature. The trees of a
stage are independent given its gradients and grow in parallel (threads
running the compiled kernel without the GIL; all cores by default). sklearn
sorts with an unstable introsort, so when a
feature takes *exactly equal* values on several samples of a node, sklearn's
order of those samples (and so the rounding of sums over them) is the
introsort's; ours is by sample index. On codes without exact duplicate values
everything is equal bit for bit (``tests/test_boosted_trees.py``); with
duplicates, only the last bits of some sums can differ, which can move a tie
between equally good splits (docs/metrics.md, DCI).

Needs numba (a compiled kernel; its first call in a fresh environment
compiles for about 10-20 s and caches the result on disk).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os

from numba import njit
import numpy as np
from scipy import special
from scipy import stats

# sklearn's defaults and constants (gb_rules says where each comes from).
from factorvae_jax.metrics import gb_rules
from factorvae_jax.metrics.gb_rules import LEARNING_RATE, MAX_DEPTH, NUM_STAGES
from factorvae_jax.metrics.gb_rules import EPSILON as _EPSILON
from factorvae_jax.metrics.gb_rules import FEATURE_THRESHOLD as _FEATURE_THRESHOLD
from factorvae_jax.metrics.gb_rules import MIN_DENOMINATOR as _MIN_DENOMINATOR
from factorvae_jax.metrics.gb_rules import RAND_R_MAX as _RAND_R_MAX
# A depth-3 binary tree has at most 15 nodes.
_MAX_NODES = 2 ** (MAX_DEPTH + 1) - 1


@njit(cache=True)
def _pairwise_sum(a, lo, n):
  """numpy's pairwise summation of ``a[lo:lo + n]`` (``np.add.reduce``).

  The same blocks (8 accumulators up to 128 elements, halves rounded to
  multiples of 8 above) and the same order of additions, so the same float.
  """
  if n < 8:
    res = 0.0
    for i in range(n):
      res += a[lo + i]
    return res
  elif n <= 128:
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    m = n - n % 8
    while i < m:
      r0 += a[lo + i]
      r1 += a[lo + i + 1]
      r2 += a[lo + i + 2]
      r3 += a[lo + i + 3]
      r4 += a[lo + i + 4]
      r5 += a[lo + i + 5]
      r6 += a[lo + i + 6]
      r7 += a[lo + i + 7]
      i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
      res += a[lo + i]
      i += 1
    return res
  n2 = n // 2
  n2 -= n2 % 8
  return _pairwise_sum(a, lo, n2) + _pairwise_sum(a, lo + n2, n - n2)


@njit(cache=True)
def _rand_int(low, high, state):
  """sklearn's ``rand_int`` on its xorshift ``our_rand_r``; state is [1]."""
  s = state[0]
  if s == 0:
    s = np.uint32(1)
  s ^= np.uint32(s << np.uint32(13))
  s ^= np.uint32(s >> np.uint32(17))
  s ^= np.uint32(s << np.uint32(5))
  state[0] = s
  return low + np.int64(s & np.uint32(0x7FFFFFFF)) % (high - low)


@njit(cache=True, fastmath=True)
def _approximate_proxies(running, valid, inverse, start, end, sum_total,
                         approx):
  """The proxy of every valid position with reciprocals, not divisions.

  Only a filter for ``_best_position`` (within a few ulp of sklearn's exact
  proxy, so fast-math's reordering is harmless here); -1 at invalid
  positions (a proxy is never negative). Returns the largest.
  """
  top = -1.0
  for p in range(start + 1, end):
    left = running[p]
    right = sum_total - left
    value = left * left * inverse[p - start] + right * right * inverse[end - p]
    value = value if valid[p] else -1.0
    approx[p] = value
    top = max(top, value)
  return top


@njit(cache=True)
def _best_position(xf, ids, y, start, end, sum_total, best_proxy, inverse,
                   values, valid, running, approx):
  """sklearn's sweep over one feature of one node (``node_split_best``).

  sklearn resets the criterion, then at every valid position ``p`` (the
  value there exceeds its left neighbour's by more than FEATURE_THRESHOLD)
  moves the samples between the last valid position ``pos`` and ``p`` to the
  left, adding their targets one by one to the running left sum; or, when
  ``p - pos > end - p``, reloads the node total and subtracts the targets
  from ``end - 1`` down to ``p``. The right sum is ``total - left`` and the
  proxy ``S_L^2/n_L + S_R^2/n_R``; a position wins only if its proxy is
  strictly larger than the best so far.

  Same sums here, in passes the CPU runs faster: one sequential running sum
  (the forward additions; the reverse rule can fire only in the last
  ``num_invalid + 1`` positions, which are redone exactly as sklearn does),
  the proxy of every valid position computed with reciprocals instead of
  divisions (a few ulp from the exact one), and sklearn's exact proxy only
  where the approximation comes within 1e-12 of the largest, in position
  order. A position skipped there has an exact proxy below the largest, so
  it cannot be the one sklearn keeps.

  Args:
    xf: float32 [N] the feature's values.
    ids: int32 the node's samples sorted by the feature, at [start, end).
    values, valid, running, approx: scratch, at least [end + 1].

  Returns:
    ``(best_proxy, position)``: the new best proxy and the position that
    set it, or ``(best_proxy, -1)`` when no position beats it.
  """
  threshold32 = _FEATURE_THRESHOLD
  num_invalid = 0
  total = 0.0
  previous = xf[ids[start]]
  values[start] = previous
  running[start] = 0.0
  for p in range(start + 1, end):
    total += y[ids[p - 1]]
    running[p] = total
    value = xf[ids[p]]
    values[p] = value
    ok = value > previous + threshold32
    valid[p] = ok
    num_invalid += np.int64(not ok)
    previous = value
  if num_invalid > 0:
    # The tail where sklearn may reverse: redo it with its exact rule.
    tail = max(start + 1, end - num_invalid - 1)
    pos = tail - 1
    while pos > start and not valid[pos]:
      pos -= 1
    total = running[pos]
    for p in range(tail, end):
      if not valid[p]:
        continue
      if p - pos <= end - p:
        for q in range(pos, p):
          total += y[ids[q]]
      else:
        total = sum_total
        for q in range(end - 1, p - 1, -1):
          total -= y[ids[q]]
      running[p] = total
      pos = p
  top = _approximate_proxies(running, valid, inverse, start, end, sum_total,
                             approx)
  found = -1
  if top < 0.0 or top * (1.0 + 1e-12) < best_proxy:
    return best_proxy, found
  cutoff = top * (1.0 - 1e-12)
  weight = float(end - start)
  for p in range(start + 1, end):
    if approx[p] < cutoff:
      continue
    left = running[p]
    right = sum_total - left
    # The counts are exact integers in sklearn's float64 weights.
    w_left = float(p - start)
    proxy = left * left / w_left + right * right / (weight - w_left)
    if proxy > best_proxy:
      best_proxy = proxy
      found = p
  return best_proxy, found


@njit(cache=True)
def _grow_tree(x_t, sorted_idx, inverse, y, seed, max_depth,
               node_feature, node_threshold, node_left, node_right,
               node_impurity, node_samples, leaf_of, idx, values, valid,
               running, approx, samples, go_left, buf_i):
  """Grows one regression tree on targets ``y`` as sklearn does.

  Args:
    x_t: float32 [D, N] inputs, one row per feature.
    sorted_idx: int32 [D, N] each feature's samples by increasing value.
    inverse: float64 [N + 1], ``1 / k`` at ``k``.
    y: float64 [N] targets (negative gradients).
    seed: the splitter's xorshift seed.
    max_depth: sklearn's ``max_depth``.
    node_*: outputs, one entry per node in sklearn's node order (feature,
      float64 threshold, children (-1 for a leaf), impurity, sample count).
    leaf_of: int32 [N] output, each sample's leaf.
    idx, values, valid, running, approx, samples, go_left, buf_i: scratch,
      reused from tree to tree: allocating ~0.5 MB per
      tree costs page faults that were a tenth of the time.

  Returns:
    The number of nodes.
  """
  num_features, n = x_t.shape
  # idx: each feature's sorted lists, partitioned node by node. The root
  # reads the shared presorted arrays; its split writes idx.
  for i in range(n):
    samples[i] = i  # sklearn's samples array
  features = np.arange(num_features)
  constant_features = np.empty(num_features, np.int64)
  state = np.empty(1, np.uint32)
  state[0] = seed
  threshold32 = _FEATURE_THRESHOLD
  eps = _EPSILON
  # Stack of (start, end, depth, parent, is_left, n_constant) and impurity.
  stack_i = np.empty((2 * max_depth + 2, 6), np.int64)
  stack_f = np.empty(2 * max_depth + 2, np.float64)
  top = 0
  stack_i[0, 0] = 0
  stack_i[0, 1] = n
  stack_i[0, 2] = 0
  stack_i[0, 3] = -1
  stack_i[0, 4] = 0
  stack_i[0, 5] = 0
  stack_f[0] = np.inf
  top = 1
  node_count = 0
  first = True
  total_weight = float(n)
  while top > 0:
    top -= 1
    start = stack_i[top, 0]
    end = stack_i[top, 1]
    depth = stack_i[top, 2]
    parent = stack_i[top, 3]
    is_left = stack_i[top, 4]
    n_known_constants = stack_i[top, 5]
    impurity = stack_f[top]
    n_node = end - start
    weighted_n_node = float(n_node)
    # criterion.init: sums in the samples array's order.
    sum_total = 0.0
    sq_sum_total = 0.0
    for p in range(start, end):
      yi = y[samples[p]]
      sum_total += yi
      sq_sum_total += yi * yi
    is_leaf = depth >= max_depth or n_node < 2
    if first:
      mean = sum_total / weighted_n_node
      impurity = sq_sum_total / weighted_n_node - mean * mean
      first = False
    is_leaf = is_leaf or impurity <= eps
    best_pos = end
    best_feature = 0
    best_threshold = 0.0
    improvement = -np.inf
    impurity_left = np.inf
    impurity_right = np.inf
    n_total_constants = n_known_constants
    if not is_leaf:
      # node_split_best: draw the features in sklearn's order.
      best_proxy = -np.inf
      last_sorted = -1
      f_i = num_features
      n_visited = 0
      n_found_constants = 0
      n_drawn_constants = 0
      while f_i > n_total_constants and (
          n_visited < num_features
          or n_visited <= n_found_constants + n_drawn_constants):
        n_visited += 1
        f_j = _rand_int(n_drawn_constants, f_i - n_found_constants, state)
        if f_j < n_known_constants:
          tmp = features[n_drawn_constants]
          features[n_drawn_constants] = features[f_j]
          features[f_j] = tmp
          n_drawn_constants += 1
          continue
        f_j += n_found_constants
        f = features[f_j]
        ids = sorted_idx[f] if depth == 0 else idx[f]
        xf = x_t[f]
        lowest = xf[ids[start]]
        highest = xf[ids[end - 1]]
        # sklearn sorts the samples by f here; an all-equal run keeps its
        # order (3-way introsort), anything else is now sorted by f.
        if highest != lowest:
          last_sorted = f
        if highest <= lowest + threshold32:
          tmp = features[f_j]
          features[f_j] = features[n_total_constants]
          features[n_total_constants] = tmp
          n_found_constants += 1
          n_total_constants += 1
          continue
        f_i -= 1
        tmp = features[f_i]
        features[f_i] = features[f_j]
        features[f_j] = tmp
        best_proxy, found = _best_position(
            xf, ids, y, start, end, sum_total, best_proxy, inverse, values,
            valid, running, approx)
        if found >= 0:
          best_pos = found
          best_feature = f
          best_threshold = (np.float64(values[found - 1]) / 2.0
                            + np.float64(values[found]) / 2.0)
      if last_sorted >= 0:
        src = sorted_idx[last_sorted] if depth == 0 else idx[last_sorted]
        for p in range(start, end):
          samples[p] = src[p]
      if best_pos < end:
        # partition_samples_final: swap partition of the samples array.
        xf = x_t[best_feature]
        lo = start
        hi = end
        while lo < hi:
          if np.float64(xf[samples[lo]]) <= best_threshold:
            lo += 1
          else:
            hi -= 1
            tmp = samples[lo]
            samples[lo] = samples[hi]
            samples[hi] = tmp
        # criterion.reset(); criterion.update(best_pos); children_impurity.
        if best_pos - start <= end - best_pos:
          sum_left = 0.0
          w_left = 0.0
          for q in range(start, best_pos):
            sum_left += y[samples[q]]
            w_left += 1.0
        else:
          sum_left = sum_total
          w_left = weighted_n_node
          for q in range(end - 1, best_pos - 1, -1):
            sum_left -= y[samples[q]]
            w_left -= 1.0
        w_right = weighted_n_node - w_left
        sum_right = sum_total - sum_left
        sq_left = 0.0
        for q in range(start, best_pos):
          yi = y[samples[q]]
          sq_left += yi * yi
        sq_right = sq_sum_total - sq_left
        mean_left = sum_left / w_left
        mean_right = sum_right / w_right
        impurity_left = sq_left / w_left - mean_left * mean_left
        impurity_right = sq_right / w_right - mean_right * mean_right
        improvement = (weighted_n_node / total_weight) * (
            impurity - w_right / weighted_n_node * impurity_right
            - w_left / weighted_n_node * impurity_left)
      # Constant-feature bookkeeping, as sklearn leaves it for the children.
      for i in range(n_known_constants):
        features[i] = constant_features[i]
      for i in range(n_known_constants, n_total_constants):
        constant_features[i] = features[i]
      is_leaf = best_pos >= end or improvement + eps < 0.0
    node_id = node_count
    node_count += 1
    if parent >= 0:
      if is_left:
        node_left[parent] = node_id
      else:
        node_right[parent] = node_id
    node_impurity[node_id] = impurity
    node_samples[node_id] = n_node
    node_left[node_id] = -1
    node_right[node_id] = -1
    if is_leaf:
      node_feature[node_id] = -2
      node_threshold[node_id] = -2.0
      for p in range(start, end):
        leaf_of[samples[p]] = node_id
      continue
    node_feature[node_id] = best_feature
    node_threshold[node_id] = best_threshold
    if depth + 1 < max_depth:
      # Stable partition of every feature's sorted run: left samples first.
      xf = x_t[best_feature]
      for p in range(start, end):
        s = samples[p]
        go_left[s] = np.float64(xf[s]) <= best_threshold
      for g in range(num_features):
        src_ids = sorted_idx[g] if depth == 0 else idx[g]
        ids = idx[g]
        write = start
        n_right = 0
        for p in range(start, end):
          # Branch-free: the side is random, so a branch mispredicts.
          s = src_ids[p]
          side = np.int64(go_left[s])
          ids[write] = s
          buf_i[n_right] = s
          write += side
          n_right += 1 - side
        for r in range(n_right):
          ids[write + r] = buf_i[r]
    # Right child first on the stack, so the left one is built first.
    stack_i[top, 0] = best_pos
    stack_i[top, 1] = end
    stack_i[top, 2] = depth + 1
    stack_i[top, 3] = node_id
    stack_i[top, 4] = 0
    stack_i[top, 5] = n_total_constants
    stack_f[top] = impurity_right
    top += 1
    stack_i[top, 0] = start
    stack_i[top, 1] = best_pos
    stack_i[top, 2] = depth + 1
    stack_i[top, 3] = node_id
    stack_i[top, 4] = 1
    stack_i[top, 5] = n_total_constants
    stack_f[top] = impurity_left
    top += 1
  return node_count


@njit(cache=True)
def _leaf_values(neg_grad, indicator, leaf_of, node_left, node_count, scale,
                 node_value, grad_sorted, hess_sorted):
  """Friedman's Newton step per leaf, as ``_update_terminal_regions``."""
  n = neg_grad.shape[0]
  count = np.zeros(node_count, np.int64)
  for i in range(n):
    count[leaf_of[i]] += 1
  offset = np.zeros(node_count + 1, np.int64)
  for node in range(node_count):
    offset[node + 1] = offset[node] + count[node]
  fill = offset[:node_count].copy()
  for i in range(n):  # ascending sample index within each leaf
    node = leaf_of[i]
    g = neg_grad[i]
    prob = indicator[i] - g
    grad_sorted[fill[node]] = g
    hess_sorted[fill[node]] = prob * (1.0 - prob)
    fill[node] += 1
  for node in range(node_count):
    node_value[node] = 0.0
    if node_left[node] != -1:
      continue
    m = count[node]
    numerator = _pairwise_sum(grad_sorted, offset[node], m) / m
    numerator *= scale
    denominator = _pairwise_sum(hess_sorted, offset[node], m) / m
    if abs(denominator) < _MIN_DENOMINATOR:
      node_value[node] = 0.0
    else:
      node_value[node] = numerator / denominator


@njit(cache=True)
def _negative_gradient(raw, targets, first, width, binary, out):
  """sklearn's negative gradient for one factor's columns (in place).

  Multinomial: ``-(softmax - indicator)`` with the maximum subtracted and
  the exponentials summed class by class; binomial: sklearn's
  ``cgradient_half_binomial``.
  """
  n = raw.shape[1]
  if binary:
    for i in range(n):
      r = raw[first, i]
      yt = targets[first, i]
      if r > -37.0:
        e = np.exp(-r)
        out[first, i] = -(((1.0 - yt) - yt * e) / (1.0 + e))
      else:
        out[first, i] = -(np.exp(r) - yt)
    return
  p = np.empty(width, np.float64)
  for i in range(n):
    top = raw[first, i]
    for k in range(1, width):
      if top < raw[first + k, i]:
        top = raw[first + k, i]
    total = 0.0
    for k in range(width):
      p[k] = np.exp(raw[first + k, i] - top)
      total += p[k]
    for k in range(width):
      out[first + k, i] = -(p[k] / total - targets[first + k, i])


@njit(cache=True, nogil=True)
def _gradients(factors, raw, targets, factor_first, factor_width,
               factor_binary, neg_grad):
  """Negative gradients of the given factors' columns (one stage)."""
  for j in factors:
    _negative_gradient(raw, targets, factor_first[j], factor_width[j],
                       factor_binary[j], neg_grad)


@njit(cache=True, nogil=True)
def _stage_trees(columns, x_t, sorted_idx, inverse, neg_grad,
                 targets, leaf_scale, seeds, max_depth, node_feature,
                 node_threshold, node_left, node_right, node_value,
                 node_count, importance, raw):
  """Grows one stage's trees of the given columns and updates their scores.

  Args:
    columns: int64 tree columns to grow (each a class of a factor).
    inverse: float64 [N + 1], ``1 / k`` at ``k``.
    neg_grad: float64 [T, N] the stage's negative gradients.
    targets: float64 [T, N] class indicators.
    leaf_scale: float64 [T] (K-1)/K, or 1 for a binary factor.
    seeds: uint32 [T] each tree's splitter seed.
    node_*: this stage's outputs [T, 15] (node_count [T]); importance
      [T, D]: each tree's unnormalised ``compute_feature_importances``.
    raw: float64 [T, N] raw scores, updated in place.
  """
  n = neg_grad.shape[1]
  num_features = x_t.shape[0]
  leaf_of = np.empty(n, np.int32)
  impurity = np.empty(_MAX_NODES, np.float64)
  samples = np.empty(_MAX_NODES, np.int64)
  idx = np.empty_like(sorted_idx)
  values = np.empty(n + 1, np.float32)
  valid = np.empty(n + 1, np.bool_)
  running = np.empty(n + 1, np.float64)
  approx = np.empty(n + 1, np.float64)
  order = np.empty(n, np.int32)
  go_left = np.zeros(n, np.bool_)
  buf_i = np.empty(n, np.int32)
  grad_sorted = np.empty(n, np.float64)
  hess_sorted = np.empty(n, np.float64)
  for t in columns:
    count = _grow_tree(
        x_t, sorted_idx, inverse, neg_grad[t], seeds[t],
        max_depth, node_feature[t], node_threshold[t], node_left[t],
        node_right[t], impurity, samples, leaf_of, idx, values, valid,
        running, approx, order, go_left, buf_i)
    node_count[t] = count
    _leaf_values(neg_grad[t], targets[t], leaf_of, node_left[t], count,
                 leaf_scale[t], node_value[t], grad_sorted, hess_sorted)
    for i in range(n):
      raw[t, i] += LEARNING_RATE * node_value[t, leaf_of[i]]
    for d in range(num_features):
      importance[t, d] = 0.0
    for node in range(count):
      left = node_left[t, node]
      if left != -1:
        right = node_right[t, node]
        importance[t, node_feature[t, node]] += (
            samples[node] * impurity[node] - samples[left] * impurity[left]
            - samples[right] * impurity[right])
    for d in range(num_features):
      importance[t, d] /= float(n)


@njit(cache=True, nogil=True)
def _predict(columns, x, raw_init, node_feature, node_threshold, node_left,
             node_right, node_value, raw):
  """Raw scores of ``x`` [n, D] float32 for the given columns, into ``raw``
  [T, n], adding the stages in order as sklearn's ``predict_stages``."""
  num_stages = node_feature.shape[0]
  n = x.shape[0]
  for t in columns:
    for i in range(n):
      r = raw_init[t]
      for stage in range(num_stages):
        node = 0
        while node_left[stage, t, node] != -1:
          if (np.float64(x[i, node_feature[stage, t, node]])
              <= node_threshold[stage, t, node]):
            node = node_left[stage, t, node]
          else:
            node = node_right[stage, t, node]
        r += LEARNING_RATE * node_value[stage, t, node]
      raw[t, i] = r


def _initial_raw(encoded: np.ndarray, num_classes: int) -> np.ndarray:
  """sklearn's initial raw scores: the clipped prior through its link."""
  counts = np.bincount(encoded, minlength=num_classes).astype(np.float64)
  prior = counts / counts.sum()
  eps = np.finfo(np.float64).eps
  prior = np.clip(prior, eps, 1 - eps, dtype=np.float64)
  if num_classes == 2:
    return np.array([special.logit(prior[1])])
  return np.log(prior / stats.gmean(prior))


def tree_seeds(num_columns_per_factor, num_stages: int, random_state
               ) -> list[np.ndarray]:
  """Each factor's [num_stages, columns] splitter seeds, drawn as sklearn.

  Each factor's classifier owns ``check_random_state(random_state)``; every
  tree it fits (stage by stage, class by class) draws its splitter seed from
  it with ``randint(0, RAND_R_MAX)``.
  """
  if random_state is None:
    random_state = np.random.randint(0, _RAND_R_MAX)
  seeds = []
  for width in num_columns_per_factor:
    rs = (random_state if isinstance(random_state, np.random.RandomState)
          else np.random.RandomState(random_state))
    seeds.append(np.array(
        [[rs.randint(0, _RAND_R_MAX) for _ in range(width)]
         for _ in range(num_stages)], np.int64).reshape(num_stages, width))
  return seeds


@dataclasses.dataclass
class BoostedTrees:
  """One fitted ``GradientBoostingClassifier()`` per factor (``fit_trees``).

  Attributes:
    classes: per factor, its class values (sorted, as sklearn's
      ``classes_``).
    importance: float64 [num_codes, num_factors]; column ``k`` is factor
      ``k``'s model's ``feature_importances_``.
    raw_train: float64 [num_columns, num_train] raw scores of the training
      points (the columns of factor ``k``: one if it has 2 classes, else one
      per class).
    num_threads: threads for ``predict``.
  """
  classes: list
  importance: np.ndarray
  raw_train: np.ndarray
  first: np.ndarray
  width: np.ndarray
  binary: list
  raw_init: np.ndarray
  trees: tuple  # node_feature, node_threshold, node_left, node_right, value
  num_threads: int

  def classes_of(self, raw: np.ndarray, factor: int) -> np.ndarray:
    """Predicted classes from the raw scores of ``factor``'s columns, as
    sklearn's ``predict`` (ties go to the first class)."""
    scores = raw[self.first[factor]:self.first[factor] + self.width[factor]]
    if self.binary[factor]:
      predicted = (scores[0] >= 0).astype(int)
    else:
      predicted = np.argmax(scores, axis=0)
    return self.classes[factor][predicted]

  def predict(self, codes, factor: int) -> np.ndarray:
    """``factor``'s model's ``predict(codes)``: its class of every point."""
    x = np.ascontiguousarray(codes, np.float32)
    columns = np.arange(self.first[factor],
                        self.first[factor] + self.width[factor])
    raw = np.empty((len(self.raw_init), len(x)), np.float64)
    threads = max(1, min(self.num_threads, len(columns)))
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
      list(pool.map(lambda chosen: _predict(chosen, x, self.raw_init,
                                            *self.trees, raw),
                    [columns[i::threads] for i in range(threads)]))
    return self.classes_of(raw, factor)


def fit_trees(codes_train, factors_train, num_stages: int = NUM_STAGES,
              random_state=0, num_threads: int | None = None
              ) -> BoostedTrees:
  """Fits sklearn's ``GradientBoostingClassifier()`` once per factor.

  Args:
    codes_train: float [num_train, num_codes].
    factors_train: int [num_train, num_factors]; each factor needs at least
      two classes.
    num_stages: boosting stages (sklearn's ``n_estimators``; dlib: 100).
    random_state: each classifier's ``random_state`` (int, ``None`` or a
      ``RandomState``, as sklearn takes it); it decides which of equally good
      splits is taken.
    num_threads: threads growing a stage's trees (default: every CPU);
      the result does not depend on it.

  Returns:
    The fitted ``BoostedTrees``.
  """
  if num_threads is None:
    num_threads = os.cpu_count() or 1
  x_train = np.ascontiguousarray(codes_train, np.float32)
  factors_train = np.asarray(factors_train)
  num_train, num_features = x_train.shape
  num_factors = factors_train.shape[1]

  classes, targets, raw_init, leaf_scale = [], [], [], []
  first, width, binary = [], [], []
  for j in range(num_factors):
    values, encoded = gb_rules.encode_factor(factors_train, j)
    num_classes = len(values)
    classes.append(values)
    first.append(len(targets))
    raw_init.extend(_initial_raw(encoded, num_classes))
    if num_classes == 2:
      width.append(1)
      binary.append(True)
      targets.append(encoded.astype(np.float64))
      leaf_scale.append(1.0)
    else:
      width.append(num_classes)
      binary.append(False)
      for k in range(num_classes):
        targets.append((encoded == k).astype(np.float64))
        leaf_scale.append((num_classes - 1) / num_classes)
  targets = np.stack(targets)
  num_columns = len(targets)
  seeds = np.concatenate(tree_seeds(width, num_stages, random_state),
                         axis=1).astype(np.uint32)

  x_t = np.ascontiguousarray(x_train.T)
  sorted_idx = np.ascontiguousarray(
      np.argsort(x_t, axis=1, kind="stable").astype(np.int32))
  shape = (num_stages, num_columns, _MAX_NODES)
  node_feature = np.full(shape, -2, np.int64)
  node_threshold = np.zeros(shape, np.float64)
  node_left = np.full(shape, -1, np.int64)
  node_right = np.full(shape, -1, np.int64)
  node_value = np.zeros(shape, np.float64)
  node_count = np.zeros(shape[:2], np.int64)
  importance = np.zeros((num_stages, num_columns, num_features))
  raw_init = np.array(raw_init, np.float64)
  leaf_scale = np.array(leaf_scale, np.float64)
  first = np.array(first, np.int64)
  width = np.array(width, np.int64)
  binary_array = np.array(binary, np.bool_)
  inverse = 1.0 / np.arange(num_train + 1, dtype=np.float64).clip(1.0)
  raw_train = np.repeat(raw_init[:, None], num_train, axis=1)
  neg_grad = np.empty_like(raw_train)
  # The trees of a stage are independent given its gradients: spread them
  # over threads (the kernels release the GIL), each thread taking every
  # num_threads-th column so that the factors' classes share the load.
  threads = max(1, min(int(num_threads or 1), num_columns))
  column_sets = [np.arange(i, num_columns, threads) for i in range(threads)]
  by_cost = np.argsort(-width, kind="stable")
  factor_sets = [by_cost[i::threads] for i in range(threads)]
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:

    def run(fn, sets, *args):
      list(pool.map(lambda chosen: fn(chosen, *args), sets))

    for stage in range(num_stages):
      run(_gradients, factor_sets, raw_train, targets, first, width,
          binary_array, neg_grad)
      run(_stage_trees, column_sets, x_t, sorted_idx, inverse,
          neg_grad, targets, leaf_scale, seeds[stage], MAX_DEPTH,
          node_feature[stage], node_threshold[stage], node_left[stage],
          node_right[stage], node_value[stage], node_count[stage],
          importance[stage], raw_train)

  per_factor = np.zeros((num_features, num_factors))
  for j in range(num_factors):
    columns = slice(first[j], first[j] + width[j])
    # feature_importances_: the mean over the trees that split (stage by
    # stage, class by class), normalised.
    split = node_count[:, columns].reshape(-1) > 1
    if split.any():
      trees = importance[:, columns].reshape(-1, num_features)[split]
      mean = np.mean(trees, axis=0, dtype=np.float64)
      per_factor[:, j] = mean / np.sum(mean)
  return BoostedTrees(
      classes=classes, importance=per_factor, raw_train=raw_train,
      first=first, width=width, binary=binary, raw_init=raw_init,
      trees=(node_feature, node_threshold, node_left, node_right,
             node_value), num_threads=threads)


def fit_gradient_boosting(codes_train, factors_train, codes_test,
                          factors_test, num_stages: int = NUM_STAGES,
                          random_state=0, num_threads: int | None = None):
  """DCI's fits: ``fit_trees``, with the train and test accuracies.

  Args:
    codes_train, factors_train, num_stages, random_state, num_threads: as
      for ``fit_trees``.
    codes_test: float [num_test, num_codes].
    factors_test: int [num_test, num_factors].

  Returns:
    ``(importance, train_accuracy, test_accuracy)``: float64
    [num_codes, num_factors] (column ``k`` is factor ``k``'s model's
    ``feature_importances_``) and float64 [num_factors] twice.
  """
  model = fit_trees(codes_train, factors_train, num_stages, random_state,
                    num_threads)
  factors_train = np.asarray(factors_train)
  factors_test = np.asarray(factors_test)
  num_factors = factors_train.shape[1]
  train_accuracy = np.zeros(num_factors)
  test_accuracy = np.zeros(num_factors)
  for j in range(num_factors):
    train_accuracy[j] = np.mean(
        model.classes_of(model.raw_train, j) == factors_train[:, j])
    test_accuracy[j] = np.mean(model.predict(codes_test, j) ==
                               factors_test[:, j])
  return model.importance, train_accuracy, test_accuracy
