"""Where the FactorVAE train step's time goes: each part timed alone.

Builds the train step as ``benchmarks/train_step.py`` does (the paper
architecture, batch 64, this platform's ``conv_impl``, batches drawn from a
bank of random binary images on device) and times, each as its own jitted
``lax.scan`` of ``--steps`` iterations (the setting the real step runs in):

  data             both batches drawn from the bank
  encoder_fwd_bwd  the VAE's encoder: forward on x and the gradient of its
                   parameters
  decoder_fwd_bwd  the decoder: forward, Bernoulli loss, gradients of its
                   parameters and of z
  disc_for_vae     the discriminator on z for the TC term: forward and the
                   gradient of z (not of its parameters)
  encoder_fwd_x2   the encoder on the second batch (no gradient)
  disc_update      the discriminator loss on (z, permuted z2): forward on 128
                   samples and the gradient of its parameters
  permute          the dimension-wise permutation of z2
  adam_vae         Adam on the VAE's parameters
  adam_disc        Adam on the discriminator's parameters
  step             the whole step (``training.train_step.train_steps``)

and prints one line per part, medians over ``--rounds``:

  part=<name> ms=<float> mflop=<float> gflop_per_s=<float> share=<float>

``share`` is the part's time over the whole step's. Each part reduces its
outputs to one number per iteration (so XLA keeps all of it); that read is
included. With ``--layers`` each convolution is also timed alone
(``part=encoder.Conv_<i>``, ``part=decoder.ConvTranspose2x_<i>``: forward, a
ReLU and the gradients the step needs; they are inside the parts above, so
they are not added to the sum). The parts' sum differs from the step's time by what the step
fuses across parts or loses between them (printed as ``rest``). FLOPs come
from XLA's cost analysis. A last line times a large matmul on all cores:
the machine's practical peak, for scale.

  python benchmarks/profile_step.py [--steps=20] [--rounds=5] [--layers]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp
import optax

from benchmarks import train_step as step_bench
from benchmarks.encode import flops_of
from factorvae_jax.models import layers
from factorvae_jax.objectives.factorvae import permute_dims
from factorvae_jax.objectives.gaussian import sample_diag_gaussian
from factorvae_jax.training.train_step import train_steps
# pylint: enable=g-import-not-at-top,wrong-import-position


def _total(tree) -> jax.Array:
  """One number that depends on every element of ``tree``."""
  return sum(jnp.sum(leaf) for leaf in jax.tree.leaves(tree))


def make_parts(step_config, state, sample_fn, arrays, batch: int) -> dict:
  """{name: fn(key) -> scalar}: each part of the step, on fresh data per key."""
  nets = step_config.networks
  aux = step_config.auxiliary
  enc_params = state.vae_params["encoder"]
  dec_params = state.vae_params["decoder"]
  disc_params = state.disc_params
  latent_dim = nets.encoder.latent_dim

  def images(key):
    return sample_fn(arrays, key, batch)

  def latents(key):
    return jax.random.normal(key, (batch, latent_dim))

  def data(key):
    k1, k2 = jax.random.split(key)
    return jnp.sum(images(k1)) + jnp.sum(images(k2))

  def encoder_fwd_bwd(key):
    x = images(key)

    def loss(p):
      mean, logvar = nets.encoder.apply(p, x)
      return jnp.sum(mean) + 0.5 * jnp.sum(logvar)
    return _total(jax.grad(loss)(enc_params))

  def decoder_fwd_bwd(key):
    k1, k2 = jax.random.split(key)
    x, z = images(k1), latents(k2)

    def loss(p, z):
      logits = nets.decoder.apply(p, z)
      return jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x)) / batch
    return _total(jax.grad(loss, argnums=(0, 1))(dec_params, z))

  def disc_for_vae(key):
    def tc(z):
      logits = aux.apply_for_vae(disc_params, z)
      return jnp.mean(logits[:, 0] - logits[:, 1])
    return _total(jax.grad(tc)(latents(key)))

  def encoder_fwd_x2(key):
    k1, k2 = jax.random.split(key)
    mean, logvar = nets.encoder.apply(enc_params, images(k1))
    return jnp.sum(sample_diag_gaussian(
        jax.random.normal(k2, mean.shape), mean, logvar))

  def disc_update(key):
    k1, k2 = jax.random.split(key)
    data = (latents(k1), latents(k2))
    grads, _ = jax.grad(aux.loss, has_aux=True)(disc_params, data)
    return _total(grads)

  def permute(key):
    k1, k2 = jax.random.split(key)
    return jnp.sum(permute_dims(k2, latents(k1)) * jnp.arange(latent_dim))

  def adam(tx, params, opt_state):
    def run(key):
      # Gradients that change per iteration at the cost of one multiply.
      scale = 1e-3 * jax.random.uniform(key)
      grads = jax.tree.map(lambda p: p * scale, params)
      updates, new_opt_state = tx.update(grads, opt_state, params)
      return _total((optax.apply_updates(params, updates), new_opt_state))
    return run

  parts = {
      "data": data,
      "encoder_fwd_bwd": encoder_fwd_bwd,
      "decoder_fwd_bwd": decoder_fwd_bwd,
      "disc_for_vae": disc_for_vae,
      "encoder_fwd_x2": encoder_fwd_x2,
      "disc_update": disc_update,
      "permute": permute,
      "adam_vae": adam(step_config.vae_tx, state.vae_params,
                       state.vae_opt_state),
      "adam_disc": adam(aux.optimizer, disc_params, state.disc_opt_state),
  }
  return parts


def make_layer_parts(step_config, state, batch: int, observation_shape
                     ) -> dict:
  """{name: fn(key) -> scalar}: each stride-2 convolution of the encoder and
  the decoder alone, forward and the gradients the step needs (the first
  encoder layer's input is data: no input gradient)."""
  nets = step_config.networks
  # 'standard' (Flax's nn.Conv / nn.ConvTranspose) computes the plain forms.
  down, up = nets.encoder.downsample_impl, nets.decoder.upsample_impl
  if down == layers.STANDARD_IMPL:
    down = layers.PLAIN_DOWNSAMPLE_IMPL
  if up == layers.STANDARD_IMPL:
    up = layers.PLAIN_UPSAMPLE_IMPL
  parts = {}
  h, w, c = observation_shape
  enc_params = state.vae_params["encoder"]["params"]
  for i in range(len(nets.encoder.channels)):
    kernel = enc_params[f"Conv_{i}"]["kernel"]
    parts[f"encoder.Conv_{i}"] = _layer_part(
        functools.partial(layers.conv_2x, impl=down),
        (batch, h, w, c), kernel, input_grad=i > 0)
    h, w, c = -(-h // 2), -(-w // 2), kernel.shape[-1]
  dec_params = state.vae_params["decoder"]["params"]
  h = w = nets.decoder.base_size
  c = nets.decoder.base_channels
  for i in range(len(nets.decoder.channels) + 1):
    kernel = dec_params[f"ConvTranspose2x_{i}"]["kernel"]
    parts[f"decoder.ConvTranspose2x_{i}"] = _layer_part(
        functools.partial(layers.conv_transpose_2x, impl=up),
        (batch, h, w, c), kernel, input_grad=True)
    h, w, c = 2 * h, 2 * w, kernel.shape[-1]
  return parts


def _layer_part(op, input_shape, kernel, input_grad: bool):
  base = jax.random.uniform(jax.random.PRNGKey(1), input_shape)

  def run(key):
    # A new input per iteration at the cost of one multiply (drawing it
    # would cost more than some of the layers).
    x = base * (1.0 + jax.random.uniform(key))

    def loss(x, kernel):
      return jnp.sum(jax.nn.relu(op(x, kernel)))
    return _total(jax.grad(loss, argnums=(0, 1) if input_grad else 1)(
        x, kernel))
  return run


def _scan(part, steps: int):
  """A jitted ``key -> scalar`` running ``part`` ``steps`` times."""
  def body(total, i):
    return total + part(jax.random.fold_in(jax.random.PRNGKey(0), i)), None

  @jax.jit
  def run(offset):
    total, _ = jax.lax.scan(body, 0.0, offset + jnp.arange(steps))
    return total
  return run


def _seconds(fn, *args) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - start


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default=None,
                 help="config file[:variant]; default: paper architecture")
  p.add_argument("--steps", type=int, default=20,
                 help="iterations per timed call (lax.scan length)")
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--layers", action="store_true",
                 help="also time each convolution alone (forward and the "
                      "gradients the step needs): part=encoder.Conv_<i>, "
                      "part=decoder.ConvTranspose2x_<i>")
  a = p.parse_args(argv)

  config = step_bench.load_config(a.config)
  batch = int(config.batch_size)
  step_config, state, sample_fn, arrays = step_bench.build(
      config, None, None, "bank")
  if step_config.auxiliary is None:
    p.error("the config's objective has no discriminator; profile a "
            "FactorVAE config")
  parts = make_parts(step_config, state, sample_fn, arrays, batch)
  if a.layers:
    parts.update(make_layer_parts(step_config, state, batch,
                                  sample_fn(arrays, jax.random.PRNGKey(0),
                                            1).shape[1:]))
  runs = {name: _scan(part, a.steps) for name, part in parts.items()}
  whole = jax.jit(functools.partial(train_steps, step_config, sample_fn,
                                    batch, a.steps))
  # XLA's cost analysis counts a while loop's body once: the FLOPs of one
  # iteration.
  flops = {name: flops_of(run.lower(0).compile())
           for name, run in runs.items()}
  flops["step"] = flops_of(whole.lower(state, arrays).compile())
  for name, run in runs.items():
    run(0)  # Compiles.
  state, _ = whole(state, arrays)
  times = {name: [] for name in (*runs, "step")}
  for r in range(a.rounds):
    for name, run in runs.items():
      times[name].append(_seconds(run, r + 1) / a.steps)
    start = time.perf_counter()
    state, metrics = whole(state, arrays)
    jax.block_until_ready((state, metrics))
    times["step"].append((time.perf_counter() - start) / a.steps)
  median = {name: statistics.median(t) for name, t in times.items()}
  print(f"# device: {jax.devices()[0].device_kind}; cpus: {os.cpu_count()}; "
        f"load average: {os.getloadavg()[0]:.1f}; batch: {batch}; "
        f"conv_impl: {step_config.networks.encoder.downsample_impl}/"
        f"{step_config.networks.decoder.upsample_impl}; jax {jax.__version__}")
  for name, seconds in median.items():
    print(f"part={name} ms={seconds * 1e3:.2f} "
          f"mflop={flops[name] / 1e6:.1f} "
          f"gflop_per_s={flops[name] / seconds / 1e9:.1f} "
          f"share={seconds / median['step']:.3f}")
  rest = median["step"] - sum(s for n, s in median.items()
                              if n != "step" and "." not in n)
  print(f"part=rest ms={rest * 1e3:.2f} share={rest / median['step']:.3f} "
        f"steps_per_s={1 / median['step']:.2f}")

  n = 1024
  x = jax.random.normal(jax.random.PRNGKey(0), (n, n))
  matmul = jax.jit(lambda x: x @ x)
  jax.block_until_ready(matmul(x))
  best = min(_seconds(matmul, x) for _ in range(10))
  print(f"peak matmul n={n} gflop_per_s={2 * n ** 3 / best / 1e9:.1f}")


if __name__ == "__main__":
  main()
