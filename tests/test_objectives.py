"""Tests of the baseline VAE objectives' maths (hand-computed expectations).

Run: python -m pytest tests/test_objectives.py
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import annealedvae_dsprites
from experiments.configs import betatcvae_dsprites
from experiments.configs import betavae_dsprites
from experiments.configs import dipvaei_dsprites
from experiments.configs import dipvaeii_dsprites
from experiments.configs import factorvae_dsprites
from experiments.configs import vae_dsprites
from factorvae_jax import objectives
from factorvae_jax.objectives import annealed_vae
from factorvae_jax.objectives import base
from factorvae_jax.objectives import beta_tcvae
from factorvae_jax.objectives import dip_vae
from factorvae_jax.objectives import gaussian
from factorvae_jax.objectives import vae

BASELINES = ("vae", "beta_vae", "annealed_vae", "beta_tcvae", "dip_vae_i",
             "dip_vae_ii")
# The config files state every model's default hyperparameters.
CONFIGS = {"vae": vae_dsprites, "beta_vae": betavae_dsprites,
           "annealed_vae": annealedvae_dsprites,
           "beta_tcvae": betatcvae_dsprites, "dip_vae_i": dipvaei_dsprites,
           "dip_vae_ii": dipvaeii_dsprites, "factor_vae": factorvae_dsprites}


def _outputs(key, batch=8, latents=3, with_disc=False):
  """Random but fixed VAEOutputs on 2x2x1 images."""
  k = jax.random.split(key, 6)
  mean = jax.random.normal(k[0], (batch, latents))
  logvar = 0.5 * jax.random.normal(k[1], (batch, latents))
  z = gaussian.sample_diag_gaussian(
      jax.random.normal(k[2], (batch, latents)), mean, logvar)
  return base.VAEOutputs(
      images=jax.random.uniform(k[3], (batch, 2, 2, 1)),
      mean=mean, logvar=logvar, z=z,
      logits=jax.random.normal(k[4], (batch, 2, 2, 1)),
      aux=(jax.random.normal(k[5], (batch, 2)) if with_disc else None))


def _hparams(name, **overrides):
  model = CONFIGS[name].get_config().model
  h = {n: model[n] for n in objectives.get_objective(name).hparam_names}
  h.update(overrides)
  return {k: jnp.float32(v) for k, v in h.items()}


def _loss(name, outputs, step=0, axis_name=None, **overrides):
  return objectives.get_objective(name).compute_loss(
      outputs, _hparams(name, **overrides), jnp.int32(step), axis_name)


# --------------------------------------------------------------------------
# Registry.

def test_registry_and_config_files_agree():
  # (Other test files register test-only objectives; every built-in one
  # has its config file.)
  assert set(CONFIGS) <= set(objectives.list_objectives())
  for name, module in CONFIGS.items():
    model = module.get_config().model
    objective = objectives.get_objective(name)
    assert model.name == name
    # Every hyperparameter the objective reads has its default in the file.
    for hparam in objective.hparam_names:
      assert isinstance(model[hparam], float), (name, hparam)
    # Only FactorVAE trains networks beside the VAE.
    assert (objective.make_auxiliary is not None) == (name == "factor_vae")
  assert factorvae_dsprites.get_config().model.gamma == 35.0
  with pytest.raises(ValueError, match="not a known model"):
    objectives.get_objective("nope")


def test_table_keys_are_the_objectives_names():
  for name, objective in objectives.OBJECTIVES.items():
    assert objective.name == name


@pytest.mark.parametrize("name", BASELINES + ("factor_vae",))
def test_metrics_present_and_vmappable_over_hparams(name):
  """Required metrics exist; vmapping over stacked hparams = separate calls."""
  outputs = _outputs(jax.random.PRNGKey(0), with_disc=name == "factor_vae")
  objective = objectives.get_objective(name)
  h = _hparams(name)
  loss, metrics = objective.compute_loss(outputs, h, jnp.int32(1000), None)
  for key in ("reconstruction", "kl", "elbo", "loss"):
    assert key in metrics, key
  chex.assert_trees_all_close(metrics["loss"], loss)
  chex.assert_trees_all_close(metrics["elbo"],
                              -(metrics["reconstruction"] + metrics["kl"]))
  extra = {"annealed_vae": "capacity", "beta_tcvae": "tc_estimate",
           "dip_vae_i": "dip_regulariser", "dip_vae_ii": "dip_regulariser",
           "factor_vae": "tc_estimate"}
  if name in extra:
    assert extra[name] in metrics
  # Two models: defaults and defaults * 2 (every hparam) stacked.
  h2 = {k: v * 2 for k, v in h.items()}
  stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), h, h2)
  # axis_size: ``vae`` has no hparams, so nothing else fixes the axis size.
  vloss, _ = jax.vmap(objective.compute_loss, in_axes=(None, 0, None, None),
                      axis_size=2)(outputs, stacked, jnp.int32(1000), None)
  loss2, _ = objective.compute_loss(outputs, h2, jnp.int32(1000), None)
  chex.assert_trees_all_close(vloss, jnp.stack([loss, loss2]), rtol=1e-6)


# --------------------------------------------------------------------------
# KL and reconstruction.

def test_kl_of_known_gaussians_closed_form():
  # KL(N(m, s^2) || N(0, 1)) = 0.5 (m^2 + s^2 - log s^2 - 1), by hand:
  #   m=0, s=1 -> 0;  m=1, s=1 -> 0.5;  m=0, s^2=e -> 0.5 (e - 1 - 1);
  #   m=2, s^2=e^-2 -> 0.5 (4 + e^-2 + 2 - 1).
  mean = jnp.array([[0.0, 1.0, 0.0, 2.0]])
  logvar = jnp.array([[0.0, 0.0, 1.0, -2.0]])
  expected = [0.0, 0.5, 0.5 * (math.e - 2.0), 0.5 * (5.0 + math.exp(-2.0))]
  chex.assert_trees_all_close(
      gaussian.kl_to_standard_normal(mean, logvar)[0],
      jnp.array(expected), atol=1e-6)
  # The VAE's kl: summed over dims, averaged over the batch.
  kl = vae.kl_per_example(jnp.concatenate([mean, 0 * mean]),
                          jnp.concatenate([logvar, 0 * logvar]))
  chex.assert_trees_all_close(kl, jnp.array([sum(expected), 0.0]), atol=1e-6)


def test_kl_matches_monte_carlo():
  """E_q[log q(z) - log p(z)] from 200k fixed-seed samples ~ closed form."""
  mean = jnp.array([0.7, -1.3, 0.2])
  logvar = jnp.array([-0.5, 0.4, -2.0])
  eps = jax.random.normal(jax.random.PRNGKey(42), (200_000, 3))
  z = gaussian.sample_diag_gaussian(eps, mean, logvar)
  log_q = gaussian.log_density_diag_gaussian(z, mean, logvar)
  log_p = gaussian.log_density_diag_gaussian(z, 0.0, 0.0)
  mc = jnp.mean(log_q - log_p, axis=0)
  closed = gaussian.kl_to_standard_normal(mean, logvar)
  # MC standard error here is < 0.005 per dimension.
  chex.assert_trees_all_close(mc, closed, atol=0.02)


def test_vae_loss_is_recon_plus_kl_by_hand():
  # One 1-pixel image, target 1, logit 0: -log sigmoid(0) = log 2.
  # One latent, mean 1, logvar 0: KL = 0.5.
  outputs = base.VAEOutputs(
      images=jnp.ones((1, 1, 1, 1)), mean=jnp.ones((1, 1)),
      logvar=jnp.zeros((1, 1)), z=jnp.ones((1, 1)),
      logits=jnp.zeros((1, 1, 1, 1)))
  loss, metrics = _loss("vae", outputs)
  chex.assert_trees_all_close(metrics["reconstruction"], math.log(2.0),
                              rtol=1e-6)
  chex.assert_trees_all_close(metrics["kl"], 0.5, rtol=1e-6)
  chex.assert_trees_all_close(loss, math.log(2.0) + 0.5, rtol=1e-6)
  # beta-VAE with beta = 3: log 2 + 1.5.
  loss_b, _ = _loss("beta_vae", outputs, beta=3.0)
  chex.assert_trees_all_close(loss_b, math.log(2.0) + 1.5, rtol=1e-6)


def test_beta_one_models_equal_vae():
  outputs = _outputs(jax.random.PRNGKey(1))
  vae_loss, vae_metrics = _loss("vae", outputs)
  beta_loss, beta_metrics = _loss("beta_vae", outputs, beta=1.0)
  tc_loss, tc_metrics = _loss("beta_tcvae", outputs, beta=1.0)
  chex.assert_trees_all_close(beta_loss, vae_loss, rtol=1e-6)
  chex.assert_trees_all_close(tc_loss, vae_loss, rtol=1e-6)
  for m in (beta_metrics, tc_metrics):
    for key in ("reconstruction", "kl", "elbo"):
      chex.assert_trees_all_close(m[key], vae_metrics[key], rtol=1e-6)
  # And beta != 1 adds (beta - 1) * KL resp. (beta - 1) * TC_hat.
  b4, _ = _loss("beta_vae", outputs, beta=4.0)
  chex.assert_trees_all_close(b4, vae_loss + 3.0 * vae_metrics["kl"],
                              rtol=1e-5)
  t4, _ = _loss("beta_tcvae", outputs, beta=4.0)
  chex.assert_trees_all_close(t4, vae_loss + 3.0 * tc_metrics["tc_estimate"],
                              rtol=1e-5)


# --------------------------------------------------------------------------
# AnnealedVAE.

def test_annealed_capacity_schedule():
  c = lambda s: float(annealed_vae.capacity(jnp.int32(s), 25.0, 100000.0))
  assert c(0) == 0.0
  assert c(50_000) == pytest.approx(12.5)
  assert c(100_000) == pytest.approx(25.0)
  assert c(200_000) == pytest.approx(25.0)  # Held at c_max afterwards.


def test_annealed_loss_by_hand():
  # recon = log 2, KL = 0.5 (as above); gamma = 1000, c_max = 10,
  # threshold = 100: C(step 3) = 0.3 -> loss = log 2 + 1000 * |0.5 - 0.3|;
  # C(step 20) = 2 -> loss = log 2 + 1000 * 1.5; C(step 500) = 10.
  outputs = base.VAEOutputs(
      images=jnp.ones((1, 1, 1, 1)), mean=jnp.ones((1, 1)),
      logvar=jnp.zeros((1, 1)), z=jnp.ones((1, 1)),
      logits=jnp.zeros((1, 1, 1, 1)))
  for step, c in ((3, 0.3), (20, 2.0), (500, 10.0)):
    loss, metrics = _loss("annealed_vae", outputs, step=step, gamma=1000.0,
                          c_max=10.0, iteration_threshold=100.0)
    chex.assert_trees_all_close(metrics["capacity"], c, rtol=1e-6)
    chex.assert_trees_all_close(
        loss, math.log(2.0) + 1000.0 * abs(0.5 - c), rtol=1e-5)
    chex.assert_trees_all_close(metrics["elbo"], -(math.log(2.0) + 0.5),
                                rtol=1e-6)


# --------------------------------------------------------------------------
# DIP-VAE.

def test_covariance_is_biased_batch_covariance():
  x = jax.random.normal(jax.random.PRNGKey(3), (50, 3))
  chex.assert_trees_all_close(dip_vae.covariance(x),
                              np.cov(np.asarray(x).T, bias=True), atol=1e-5)


def _whitened(n, d, key):
  """An [n, d] sample with exactly zero mean and identity biased covariance."""
  x = np.asarray(jax.random.normal(key, (n, d)), np.float64)
  x -= x.mean(0)
  chol = np.linalg.cholesky(x.T @ x / n)
  return jnp.asarray(x @ np.linalg.inv(chol).T, jnp.float32)


def test_dip_regulariser_by_hand():
  # cov = [[2, 0.5], [0.5, 1]]: off-diagonal sum 2 * 0.25 = 0.5,
  # diagonal sum (2 - 1)^2 = 1 -> R = lambda_od * 0.5 + lambda_d * 1.
  cov = jnp.array([[2.0, 0.5], [0.5, 1.0]])
  reg, off, diag = dip_vae.dip_regulariser(cov, 3.0, 30.0)
  chex.assert_trees_all_close((reg, off, diag), (3.0 * 0.5 + 30.0, 0.5, 1.0),
                              rtol=1e-6)


@pytest.mark.parametrize("name", ["dip_vae_i", "dip_vae_ii"])
def test_dip_regulariser_zero_at_identity_positive_otherwise(name):
  n, d = 64, 3
  key = jax.random.PRNGKey(4)
  white = _whitened(n, d, key)
  if name == "dip_vae_i":
    # Cov[mean] = I exactly; logvar is irrelevant to type I.
    mean, logvar = white, jax.random.normal(key, (n, d))
  else:
    # Cov[mean] = 0.75 I and E[exp(logvar)] = 0.25 -> Cov_q[z] = I,
    # while Cov[mean] alone (type I) would be penalised.
    mean, logvar = math.sqrt(0.75) * white, jnp.full((n, d), math.log(0.25))
  outputs = base.VAEOutputs(
      images=jnp.zeros((n, 1, 1, 1)), mean=mean, logvar=logvar, z=mean,
      logits=jnp.zeros((n, 1, 1, 1)))
  _, metrics = _loss(name, outputs)
  assert abs(float(metrics["dip_regulariser"])) < 1e-5

  # Correlated means: positive, and linear in lambda_od at fixed factor.
  mixing = jnp.array([[1.0, 0.6, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5]])
  corr = outputs.replace(mean=mean @ mixing)
  r = {lam: float(_loss(name, corr, lambda_od=lam)[1]["dip_regulariser"])
       for lam in (1.0, 5.0)}
  assert r[1.0] > 0.1
  assert r[5.0] == pytest.approx(5.0 * r[1.0], rel=1e-5)
  # Separately: lambda_od weighs the off-diagonal, lambda_d the diagonal.
  _, m = _loss(name, corr, lambda_od=2.0, lambda_d_factor=3.0)
  assert float(m["dip_off_diagonal"]) > 0 and float(m["dip_diagonal"]) > 0
  chex.assert_trees_all_close(
      m["dip_regulariser"],
      2.0 * m["dip_off_diagonal"] + 6.0 * m["dip_diagonal"], rtol=1e-5)
  # Type II's covariance includes E[diag(exp(logvar))]; type I's does not.
  expected_cov = dip_vae.covariance(corr.mean)
  if name == "dip_vae_ii":
    expected_cov += jnp.diag(jnp.mean(jnp.exp(corr.logvar), axis=0))
  _, off, diag = dip_vae.dip_regulariser(expected_cov, 1.0, 1.0)
  chex.assert_trees_all_close((m["dip_off_diagonal"], m["dip_diagonal"]),
                              (off, diag), rtol=1e-5)


# --------------------------------------------------------------------------
# beta-TCVAE's total-correlation estimator.

def test_total_correlation_matches_brute_force_loops():
  """dlib's formula, recomputed with explicit loops in float64 numpy."""
  m, d = 5, 3
  k = jax.random.split(jax.random.PRNGKey(5), 3)
  z = np.asarray(jax.random.normal(k[0], (m, d)), np.float64)
  mu = np.asarray(jax.random.normal(k[1], (m, d)), np.float64)
  lv = np.asarray(0.3 * jax.random.normal(k[2], (m, d)), np.float64)

  def log_n(x, mean, logvar):
    return -0.5 * (math.log(2 * math.pi) + logvar +
                   (x - mean) ** 2 / math.exp(logvar))

  total = 0.0
  for i in range(m):
    joint = math.log(sum(math.exp(sum(log_n(z[i, t], mu[j, t], lv[j, t])
                                      for t in range(d))) for j in range(m)))
    marginals = sum(
        math.log(sum(math.exp(log_n(z[i, t], mu[j, t], lv[j, t]))
                     for j in range(m))) for t in range(d))
    total += joint - marginals
  expected = total / m
  got = beta_tcvae.total_correlation(jnp.asarray(z, jnp.float32),
                                     jnp.asarray(mu, jnp.float32),
                                     jnp.asarray(lv, jnp.float32))
  chex.assert_trees_all_close(got, expected, rtol=1e-4, atol=1e-5)
  # dataset_size = N > 0 adds (D - 1) log(N M); 0 is dlib's form.
  for n, corr in ((0.0, 0.0), (1.0, 2 * math.log(5)),
                  (737280.0, 2 * math.log(737280.0 * 5))):
    chex.assert_trees_all_close(beta_tcvae.mws_correction(d, m, n), corr,
                                rtol=1e-6, atol=1e-7)


def _analytic_tc(cov):
  """TC of N(0, cov) = -0.5 log det(correlation matrix)."""
  sd = np.sqrt(np.diag(cov))
  return -0.5 * np.log(np.linalg.det(cov / np.outer(sd, sd)))


_TC_JIT = jax.jit(beta_tcvae.total_correlation)


@pytest.mark.parametrize("correlated", [True, False])
def test_tc_estimate_converges_to_analytic_gaussian_tc(correlated):
  """The minibatch estimator approaches the TC of the aggregate posterior.

  Setup that makes the estimator consistent (and why not q(z|x) ~ delta):
  the estimator evaluates, at z_i ~ q(z|x_i), a kernel-density estimate of
  q(z) = (1/M) sum_j N(z; mu_j, sigma^2 I) with the batch's own posteriors as
  kernels. With the means mu_j ~ N(0, S) and a *fixed* sigma this mixture
  tends (M -> inf) to N(0, S + sigma^2 I), the true aggregate posterior, whose
  TC is -0.5 log det corr(S + sigma^2 I). A near-delta posterior (sigma -> 0)
  does *not* work: the self-term j = i then dominates every sum and TC_hat
  tends to (D - 1) log M-ish values (at sigma = 0.1 the error is still ~1 nat
  at M = 256, ~0.2-0.3 at M = 4096), i.e. the TC of the discrete empirical
  distribution. So sigma = 0.5 here.

  dlib's form omits the log(N M) normalisers; the plug-in TC of the
  minibatch aggregate posterior (dataset = the batch, N = 1) is
  TC_dlib + (D - 1) log M, which is what is compared.
  """
  d, sigma = 3, 0.5
  s = (np.array([[1.0, 0.8, 0.5], [0.8, 1.0, 0.3], [0.5, 0.3, 1.0]])
       if correlated else np.eye(d))
  chol = np.linalg.cholesky(s)
  truth = _analytic_tc(s + sigma ** 2 * np.eye(d))
  if correlated:
    assert truth == pytest.approx(0.351, abs=1e-3)

  def error(m, seed):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    mu = jax.random.normal(k1, (m, d)) @ jnp.asarray(chol.T, jnp.float32)
    logvar = jnp.full((m, d), 2 * math.log(sigma))
    z = gaussian.sample_diag_gaussian(jax.random.normal(k2, (m, d)), mu,
                                      logvar)
    tc = _TC_JIT(z, mu, logvar) + beta_tcvae.mws_correction(d, m, 1.0)
    return float(tc) - truth

  small = np.mean([abs(error(256, seed)) for seed in range(4)])
  large = abs(error(4096, 0))
  assert large < 0.03, (large, truth)
  assert small > 1.5 * large, (small, large)
  assert small < 0.15, small


# --------------------------------------------------------------------------
# pmap: batch-statistic terms on the gathered batch.

_N_DEV = 4


def _toy_loss(name, params, x, eps, step, axis_name, **hp):
  """Tiny linear VAE: mean = x W, logvar = x V, logits = z U."""
  flat = x.reshape(x.shape[0], -1)
  mean = flat @ params["W"]
  logvar = flat @ params["V"]
  z = gaussian.sample_diag_gaussian(eps, mean, logvar)
  logits = (z @ params["U"]).reshape(x.shape)
  outputs = base.VAEOutputs(images=x, mean=mean, logvar=logvar, z=z,
                            logits=logits)
  loss, _ = _loss(name, outputs, step=step, axis_name=axis_name, **hp)
  return loss


@pytest.mark.parametrize("name,hp,step", [
    ("beta_tcvae", {"beta": 6.0, "dataset_size": 1000.0}, 0),
    ("dip_vae_i", {"lambda_od": 5.0}, 0),
    ("dip_vae_ii", {"lambda_od": 5.0}, 0),
    # |KL - C| of the batch-mean KL: also a batch statistic. C = 0.42 at
    # step 42k lies between the shards' mean KLs (0.41, 0.42, 0.42, 0.55;
    # global 0.45), so per-shard |.| would flip signs.
    ("annealed_vae", {"c_max": 1.0}, 42_000),
])
def test_pmap_gradient_equals_single_device_global_batch(name, hp, step):
  assert jax.local_device_count() >= _N_DEV, "conftest sets 4 CPU devices"
  batch, pixels, d = 16, 4, 3
  k = jax.random.split(jax.random.PRNGKey(6), 5)
  params = {"W": 0.5 * jax.random.normal(k[0], (pixels, d)),
            "V": 0.3 * jax.random.normal(k[1], (pixels, d)),
            "U": 0.5 * jax.random.normal(k[2], (d, pixels))}
  x = jax.random.uniform(k[3], (batch, 2, 2, 1))
  eps = jax.random.normal(k[4], (batch, d))

  single_loss, single_grad = jax.jit(jax.value_and_grad(
      lambda p: _toy_loss(name, p, x, eps, step, None, **hp)))(params)

  def device_step(p, xs, es):
    loss, g = jax.value_and_grad(
        lambda p_: _toy_loss(name, p_, xs, es, step, "batch", **hp))(p)
    return jax.lax.pmean(loss, "batch"), jax.lax.pmean(g, "batch")

  shard = lambda a: a.reshape((_N_DEV, batch // _N_DEV) + a.shape[1:])
  replicated = jax.tree.map(lambda a: jnp.stack([a] * _N_DEV), params)
  p_loss, p_grad = jax.pmap(device_step, axis_name="batch")(
      replicated, shard(x), shard(eps))
  chex.assert_trees_all_close(p_loss, jnp.full((_N_DEV,), single_loss),
                              rtol=1e-5)
  for key in params:
    assert float(jnp.max(jnp.abs(single_grad[key]))) > 1e-3, key
    chex.assert_trees_all_close(
        p_grad[key], jnp.stack([single_grad[key]] * _N_DEV), rtol=1e-4,
        atol=1e-5)

  # Sanity check that the test can fail: the batch term computed per shard
  # (no gather) gives a different gradient.
  def no_gather_step(p, xs, es):
    g = jax.grad(lambda p_: _toy_loss(name, p_, xs, es, step, None, **hp))(p)
    return jax.lax.pmean(g, "batch")

  wrong = jax.pmap(no_gather_step, axis_name="batch")(
      replicated, shard(x), shard(eps))
  assert not np.allclose(np.asarray(wrong["W"])[0], single_grad["W"], rtol=1e-3,
                         atol=1e-4)
