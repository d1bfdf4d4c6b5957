"""Warns when FactorVAE's discriminator stops giving a useful TC signal.

The total-correlation penalty is only as good as the discriminator. Two
failure modes are silent in the loss curves:

* At chance (accuracy ~0.5) the density-ratio estimate is ~0 and the TC
  term contributes no gradient: FactorVAE degrades to a plain VAE.
* Saturated (accuracy ~1) the logits grow without bound, so the TC estimate
  and its gradient can swamp the reconstruction and KL terms.

The test is on the mean accuracy over a window of steps rather than on
single values: with a batch of 64, an accuracy measured at chance fluctuates
by about +-0.045, so individual values leave a +-0.05 band every few logs
even when the discriminator is truly stuck.
"""

from __future__ import annotations

import collections
import math
from typing import Optional, Tuple

CHANCE = "chance"
SATURATED = "saturated"


class DiscriminatorWatch:
  """Flags a discriminator stuck at chance or saturated.

  Feed it the discriminator accuracy (mean of its accuracies on joint and on
  permuted samples) whenever the training loop logs. After ``warmup_steps``,
  once the accuracies logged over the last ``window_steps`` steps average
  inside ``chance_band`` or above ``saturated_above``, :meth:`update` returns
  a warning. It warns once per episode: again only after the average has
  left that range (recovered) and then stayed in it for a whole new window.
  """

  def __init__(self,
               warmup_steps: int = 1000,
               window_steps: int = 5000,
               chance_band: Tuple[float, float] = (0.45, 0.55),
               saturated_above: float = 0.99):
    """Configures the thresholds.

    Args:
      warmup_steps: accuracies logged before this step are ignored (the
        discriminator starts at chance and may saturate briefly early on).
      window_steps: how many steps the accuracy must stay stuck.
      chance_band: (low, high) range of mean accuracy counted as chance.
      saturated_above: mean accuracy above which the discriminator counts as
        saturated.
    """
    low, high = chance_band
    if not 0.0 <= low < high <= 1.0:
      raise ValueError(
          f"chance_band must satisfy 0 <= low < high <= 1, got {chance_band}.")
    if not high < saturated_above <= 1.0:
      raise ValueError(
          f"saturated_above must lie in ({high}, 1], got {saturated_above}.")
    if window_steps < 1 or warmup_steps < 0:
      raise ValueError(
          f"need window_steps >= 1 and warmup_steps >= 0, got "
          f"window_steps={window_steps}, warmup_steps={warmup_steps}.")
    self._warmup_steps = int(warmup_steps)
    self._window_steps = int(window_steps)
    self._low, self._high = float(low), float(high)
    self._saturated_above = float(saturated_above)
    self._history = collections.deque()  # (step, accuracy) after warmup.
    # Running sum of the accuracies in _history: a loop logging every step
    # would otherwise pay O(window) per update.
    self._sum = 0.0
    self._episode: Optional[str] = None  # CHANCE, SATURATED or None.
    self._last_step: Optional[int] = None

  @property
  def episode(self) -> Optional[str]:
    """The failure currently in progress ("chance", "saturated") or None."""
    return self._episode

  def reset(self) -> None:
    """Forgets all history, e.g. after restoring an earlier checkpoint."""
    self._history.clear()
    self._sum = 0.0
    self._episode = None
    self._last_step = None

  def update(self, step: int, accuracy: float) -> Optional[str]:
    """Records one logged accuracy.

    Args:
      step: the training step of the measurement. A step lower than the
        previous one (a restart from a checkpoint) resets the history.
      accuracy: discriminator accuracy in [0, 1]. Non-finite values are
        ignored; a NaN loss is for other checks to report.

    Returns:
      A warning message when a stuck episode is first detected, else None.
    """
    step = int(step)
    accuracy = float(accuracy)
    if self._last_step is not None and step < self._last_step:
      self.reset()
    self._last_step = step
    if step < self._warmup_steps or not math.isfinite(accuracy):
      return None

    self._history.append((step, accuracy))
    self._sum += accuracy
    window_start = step - self._window_steps
    # Keep one sample at or before the window's start, so "the window is
    # covered" is simply: the oldest sample is at or before it.
    while len(self._history) >= 2 and self._history[1][0] <= window_start:
      self._sum -= self._history.popleft()[1]
    if self._history[0][0] > window_start:
      return None  # Not yet watched for a whole window.

    mean = self._sum / len(self._history)
    if self._low <= mean <= self._high:
      state = CHANCE
    elif mean > self._saturated_above:
      state = SATURATED
    else:
      state = None

    if state is None:
      if self._episode is not None:
        # Recovered. Start a fresh window so a mean hovering at the edge of
        # the band cannot re-trigger the warning every log.
        self._episode = None
        self._history.clear()
        self._history.append((step, accuracy))
        self._sum = accuracy
      return None
    if state == self._episode:
      return None
    self._episode = state
    return self._format_warning(state, mean, self._history[0][0], step)

  def _format_warning(self, state: str, mean: float, first_step: int,
                      step: int) -> str:
    observed = (f"discriminator accuracy averaged {mean:.3f} over steps "
                f"{first_step}-{step}")
    if state == CHANCE:
      return (
          f"{observed} (chance band [{self._low:g}, {self._high:g}]): the "
          "discriminator is at chance: the TC estimate is ~0 and gives no "
          "gradient; check the discriminator learning rate, or whether the "
          "latents collapsed (per-dimension KL ~0).")
    return (
        f"{observed} (above {self._saturated_above:g}): the discriminator "
        "separates q(z) from the permuted samples almost perfectly: its logits "
        "and the TC estimate can be unbounded and gamma * TC can swamp the "
        "VAE loss; check that the permuted batch is permute_dims of the same "
        "z the TC term is computed on, and consider a lower discriminator "
        "learning rate or a larger batch.")
