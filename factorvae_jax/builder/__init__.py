"""From a config to networks, objective, optimisers and train state; runs on disk.

The layer between the building blocks (data, models, objectives, metrics,
monitoring, visualisation) and the two things that use them side by side:
``training/`` and ``evaluation/``. See docs/design.md.
"""

from factorvae_jax.builder.checkpointing import Checkpointer
from factorvae_jax.builder.model import AXIS_NAME, build_step_config, init_state
from factorvae_jax.builder.state import StepConfig, TrainState
from factorvae_jax.builder.trained_model import TrainedModel, load_trained_model, restore_vae_params

__all__ = [
    "AXIS_NAME",
    "Checkpointer",
    "StepConfig",
    "TrainState",
    "TrainedModel",
    "build_step_config",
    "init_state",
    "load_trained_model",
    "restore_vae_params",
]
